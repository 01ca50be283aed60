package main

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"cqrsgate/domain"
	"cqrsgate/eventstore"
	"cqrsgate/internal/workload"
	"cqrsgate/projections"
	"cqrsgate/schemaregistry"
)

var quiet = slog.New(slog.DiscardHandler)

// stack is the gateway's write and read path in this process: the event
// store validated and upcast by the schema registry, the command service
// and the projection runner, on a fresh database.
type stack struct {
	pool     *pgxpool.Pool
	raw      *eventstore.Postgres
	store    eventstore.Store
	commands *domain.Service
	drop     func()
}

func (e *env) stack(ctx context.Context, name string, snapshotEvery int) (*stack, error) {
	dbURL, drop, err := e.database(ctx, name)
	if err != nil {
		return nil, err
	}
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		drop()
		return nil, err
	}
	cfg.MaxConns = 40
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		drop()
		return nil, err
	}
	s := &stack{pool: pool, drop: func() { pool.Close(); drop() }}
	conn, err := pool.Acquire(ctx)
	if err == nil {
		err = eventstore.Migrate(ctx, conn.Conn())
		if err == nil {
			err = projections.Migrate(ctx, conn.Conn())
		}
		if err == nil {
			err = schemaregistry.Migrate(ctx, conn.Conn())
		}
		conn.Release()
	}
	if err != nil {
		s.drop()
		return nil, fmt.Errorf("migrate: %w", err)
	}
	s.raw = eventstore.NewPostgres(pool, quiet, eventstore.Limits{}, eventstore.NewBroadcaster())
	registry, err := schemaregistry.New(ctx, pool, s.raw, quiet, schemaregistry.Options{})
	if err == nil {
		err = registry.Seed(ctx, domain.EventSchemas())
	}
	if err != nil {
		s.drop()
		return nil, err
	}
	s.store = eventstore.WithSchemas(eventstore.NewTail(s.raw, eventstore.TailOptions{}), registry) // as server.go composes it
	s.commands = domain.NewService(s.store, quiet, time.Now, domain.ServiceOptions{SnapshotEvery: snapshotEvery})
	return s, nil
}

// runProjections runs the runner over projections until ctx ends.
func (s *stack) runProjections(ctx context.Context, ps ...projections.Projection) (*projections.Runner, func(), error) {
	r, err := projections.NewRunner(s.pool, s.store, quiet, projections.Options{Poll: 50 * time.Millisecond, LeaderRetry: 50 * time.Millisecond}, ps...)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(ctx) }()
	return r, func() { cancel(); <-done }, nil
}

func event(e domain.Event) domain.EventData {
	d, err := domain.EncodeEvent(e)
	if err != nil {
		panic(err)
	}
	return d
}

// fill appends total events (workload.Mixed) with 8 writers.
func (s *stack) fill(ctx context.Context, total int) error {
	streams, err := workload.Mixed(total, time.Now().UTC())
	if err != nil {
		return err
	}
	return workload.Append(ctx, s.store, streams, 8)
}

func (s *stack) head(ctx context.Context) (int64, error) {
	p, err := s.raw.ReadAll(ctx, eventstore.AllQuery{Limit: 1})
	return p.Head, err
}

// rebuild: building the account and order read models from 200,000
// events, against reading the same events with pgx in position order.
func (e *env) rebuild(ctx context.Context) (measure, error) {
	total := e.size.rebuildEvents
	s, err := e.stack(ctx, "rebuild", 100)
	if err != nil {
		return measure{}, err
	}
	defer s.drop()
	if err := s.fill(ctx, total); err != nil {
		return measure{}, fmt.Errorf("fill: %w", err)
	}
	head, err := s.head(ctx)
	if err != nil {
		return measure{}, err
	}

	// The baseline, every event with all its columns in position order,
	// is read three times: once to set the rows' hint bits (the first
	// reader after the appends' commits does, and the rebuild comes after
	// one), then on each side of the rebuild, whose figure is their mean
	// (the machine's speed moves).
	if _, _, err := scanAll(ctx, s.pool); err != nil {
		return measure{}, err
	}
	n, before, err := scanAll(ctx, s.pool)
	if err != nil {
		return measure{}, err
	}

	start := time.Now()
	r, stop, err := s.runProjections(ctx, projections.Accounts{}, projections.Orders{})
	if err != nil {
		return measure{}, err
	}
	positions := projections.NewPositions(s.pool, r)
	err = positions.WaitFor(ctx, []string{"accounts", "orders"}, head, 10*time.Minute)
	built := time.Since(start)
	stop()
	if err != nil {
		return measure{}, fmt.Errorf("rebuild: %w", err)
	}

	_, after, err := scanAll(ctx, s.pool)
	if err != nil {
		return measure{}, err
	}
	scan := (before + after) / 2
	return measure{Value: float64(total) / built.Seconds(), Baseline: float64(n) / scan.Seconds(),
		Notes: fmt.Sprintf("%d events: rebuilt in %s, scanned in %s before and %s after", total, built.Round(time.Millisecond),
			before.Round(time.Millisecond), after.Round(time.Millisecond))}, nil
}

// scanAll is the rebuild's baseline: it reads every event, all columns, in
// position order, and returns how many there were and how long that took.
func scanAll(ctx context.Context, pool *pgxpool.Pool) (int, time.Duration, error) {
	start := time.Now()
	rows, err := pool.Query(ctx, `SELECT position, event_id, stream_id, stream_version, event_type, schema_version, data, metadata, recorded_at FROM events ORDER BY position`)
	if err != nil {
		return 0, 0, err
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var (
			pos, version int64
			id, stream   string
			typ          string
			sv           int
			data, meta   []byte
			at           time.Time
		)
		if err := rows.Scan(&pos, &id, &stream, &version, &typ, &sv, &data, &meta, &at); err != nil {
			return 0, 0, err
		}
		n++
	}
	return n, time.Since(start), rows.Err()
}

// lag: commit-to-read-model latency (from a command's commit to the
// accounts read model's checkpoint passing its position) while 128 writers
// run deposits at 80% of the rate the same writers reach unpaced. The paced
// load keeps a schedule (each writer's commands fall due at fixed
// intervals, and a writer that falls behind catches up), so the rate is
// the one asked for unless the machine cannot give it; the rate reached,
// as a share of the maximum, is reported with the figure. An observer
// reads the checkpoint at each of the runner's progress wake-ups, so the
// writers never wait for the read model.
func (e *env) lag(ctx context.Context) (measure, error) {
	const writers = 128
	s, err := e.stack(ctx, "lag", 100)
	if err != nil {
		return measure{}, err
	}
	defer s.drop()
	r, stop, err := s.runProjections(ctx, projections.Accounts{})
	if err != nil {
		return measure{}, err
	}
	defer stop()
	for w := 0; w < writers; w++ {
		if _, err := domain.Execute(ctx, s.commands, domain.Accounts, domain.OpenAccount{AccountID: fmt.Sprintf("w%d", w), Owner: "b", Currency: "EUR"}, domain.CommandMeta{}); err != nil {
			return measure{}, err
		}
	}
	deposit := func(ctx context.Context, w int) (domain.Result, error) {
		return domain.Execute(ctx, s.commands, domain.Accounts, domain.DepositMoney{AccountID: fmt.Sprintf("w%d", w), Amount: 1}, domain.CommandMeta{})
	}
	// The unpaced rate.
	max, _, err := load(ctx, writers, e.duration()/2, func(ctx context.Context, w, _ int) error {
		_, err := deposit(ctx, w)
		return err
	})
	if err != nil {
		return measure{}, err
	}
	positions := projections.NewPositions(s.pool, r)
	head, err := s.head(ctx)
	if err == nil {
		err = positions.WaitFor(ctx, []string{"accounts"}, head, time.Minute)
	}
	if err != nil {
		return measure{}, err
	}

	// The observer: at every progress wake-up, the checkpoint settles the
	// commits at or below it.
	type commit struct {
		position int64
		at       time.Time
	}
	var mu sync.Mutex
	var pending []commit
	var lags []time.Duration
	obsCtx, stopObs := context.WithCancel(ctx)
	obsDone := make(chan error, 1)
	go func() {
		for {
			wake := r.Progress()
			var reached int64
			if err := s.pool.QueryRow(obsCtx, `SELECT position FROM projections WHERE name = 'accounts' AND serving`).Scan(&reached); err != nil {
				obsDone <- err
				return
			}
			now := time.Now()
			mu.Lock()
			kept := pending[:0]
			for _, c := range pending {
				if c.position <= reached {
					lags = append(lags, now.Sub(c.at))
				} else {
					kept = append(kept, c)
				}
			}
			pending = kept
			mu.Unlock()
			select {
			case <-obsCtx.Done():
				obsDone <- nil
				return
			case <-wake:
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	interval := pacing(max, writers)
	start := time.Now()
	done, _, err := load(ctx, writers, e.duration(), func(ctx context.Context, w, i int) error {
		if wait := time.Until(due(start, interval, writers, w, i)); wait > 0 {
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return ctx.Err() // the time is up: not a command
			}
		}
		res, err := deposit(ctx, w)
		if err != nil {
			return err
		}
		mu.Lock()
		pending = append(pending, commit{res.Position, time.Now()})
		mu.Unlock()
		return nil
	})
	for deadline := time.Now().Add(time.Minute); err == nil && ctx.Err() == nil; time.Sleep(10 * time.Millisecond) {
		mu.Lock()
		left := len(pending)
		mu.Unlock()
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			err = fmt.Errorf("%d commits never reached the read model", left)
		}
	}
	stopObs()
	if oerr := <-obsDone; err == nil && oerr != nil && obsCtx.Err() == nil {
		err = oerr
	}
	if err != nil {
		return measure{}, err
	}
	slices.Sort(lags)
	p99 := quantile(lags, .99)
	share := 100 * done / max
	return measure{Value: float64(p99.Microseconds()) / 1000, Extra: map[string]float64{"loadPct": share},
		Notes: fmt.Sprintf("%d commands at %.0f/s, %.1f%% of the unpaced max %.0f/s: p50 %s p99 %s max %s", len(lags), done, share, max, quantile(lags, .5).Round(10*time.Microsecond), p99.Round(10*time.Microsecond), lags[len(lags)-1].Round(10*time.Microsecond))}, nil
}

// lagLoad is the share of the maximum command rate lag runs at.
const lagLoad = 0.8

// pacing is the interval between one writer's commands for writers
// together to run at lagLoad of max commands a second.
func pacing(max float64, writers int) time.Duration {
	return time.Duration(float64(time.Second) * float64(writers) / (lagLoad * max))
}

// due is when writer w's i-th command falls due: the writers' schedules
// are spread evenly over an interval, and each keeps its own whatever
// its commands' latencies, so a writer delayed by a slow command catches
// up (a writer that waited an interval after each command's end would
// run slower than asked whenever a command took long).
func due(start time.Time, interval time.Duration, writers, w, i int) time.Time {
	return start.Add(time.Duration((float64(w)/float64(writers) + float64(i)) * float64(interval)))
}

// aggregateLoad: loading an account with 100,000 events with snapshots on,
// against loading one with 100 events.
func (e *env) aggregateLoad(ctx context.Context) (measure, error) {
	long := e.size.longAggregate
	s, err := e.stack(ctx, "load", 100)
	if err != nil {
		return measure{}, err
	}
	defer s.drop()
	for _, a := range []struct {
		id     string
		events int
	}{{"short", 100}, {"long", long}} {
		if _, err := domain.Execute(ctx, s.commands, domain.Accounts, domain.OpenAccount{AccountID: a.id, Owner: "b", Currency: "EUR"}, domain.CommandMeta{}); err != nil {
			return measure{}, err
		}
		// Deposits through the command service, which snapshots as it goes;
		// the rest of the history in bulk to keep the set-up short.
		for v := 1; v < a.events; v += 1000 {
			var batch []domain.EventData
			for j := v; j < min(v+1000, a.events); j++ {
				batch = append(batch, event(domain.MoneyDeposited{Amount: 1, BalanceAfter: int64(j)}))
			}
			if _, err := s.store.Append(ctx, domain.Accounts.StreamID(a.id), domain.ExpectAny, batch...); err != nil {
				return measure{}, err
			}
		}
		if a.id == "short" {
			continue
		}
		// Commands up to the next multiple of 100 write a snapshot, as the
		// command service does in production as a stream grows.
		for i := 0; i < 100; i++ {
			if _, err := domain.Execute(ctx, s.commands, domain.Accounts, domain.DepositMoney{AccountID: a.id, Amount: 1}, domain.CommandMeta{}); err != nil {
				return measure{}, err
			}
		}
	}
	timeLoad := func(id string) (time.Duration, error) {
		const n = 200
		start := time.Now()
		for i := 0; i < n; i++ {
			if _, _, err := domain.Load(ctx, s.commands, domain.Accounts, id); err != nil {
				return 0, err
			}
		}
		return time.Since(start) / n, nil
	}
	short, err := timeLoad("short")
	if err != nil {
		return measure{}, err
	}
	longT, err := timeLoad("long")
	if err != nil {
		return measure{}, err
	}
	var snap int64
	_ = s.pool.QueryRow(ctx, `SELECT coalesce(max(stream_version), 0) FROM snapshots WHERE stream_id = $1`, domain.Accounts.StreamID("long")).Scan(&snap)
	return measure{Value: float64(longT.Microseconds()) / 1000, Baseline: float64(short.Microseconds()) / 1000,
		Notes: fmt.Sprintf("%d events (snapshot at %d): %s; 100 events: %s", long+100, snap, longT.Round(time.Microsecond), short.Round(time.Microsecond))}, nil
}
