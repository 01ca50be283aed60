package projections

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"cqrsgate/domain"
	"cqrsgate/eventstore"
)

// Options tune the Runner. Zero values mean the defaults.
type Options struct {
	// BatchSize is the most events applied in one transaction (default 500).
	BatchSize int
	// MaxFailures is how often an event is retried before the projection
	// stops in the FAILED state (default 5).
	MaxFailures int
	// RetryBackoff is the first wait after a failure; it doubles up to 10s
	// (default 200ms).
	RetryBackoff time.Duration
	// Poll is how often a caught-up projection re-reads the log even without
	// a wake-up, a safety net for lost notifications (default 2s).
	Poll time.Duration
	// LeaderRetry is how often a process that does not run a projection
	// checks whether it can take over (default 2s).
	LeaderRetry time.Duration
}

func (o Options) withDefaults() Options {
	if o.BatchSize <= 0 {
		o.BatchSize = 500
	}
	if o.MaxFailures <= 0 {
		o.MaxFailures = 5
	}
	if o.RetryBackoff <= 0 {
		o.RetryBackoff = 200 * time.Millisecond
	}
	if o.Poll <= 0 {
		o.Poll = 2 * time.Second
	}
	if o.LeaderRetry <= 0 {
		o.LeaderRetry = 2 * time.Second
	}
	return o
}

// Runner runs projections: each in its own goroutine, each in one process
// at a time across all processes sharing the database.
type Runner struct {
	pool        *pgxpool.Pool
	store       eventstore.Store
	log         *slog.Logger
	opts        Options
	projections []Projection
	progress    *eventstore.Broadcaster
}

// NewRunner returns a Runner for projections over the events of store,
// keeping read models and checkpoints in pool's database (which must have
// been migrated with Migrate). It fails on an invalid or duplicate
// projection name.
func NewRunner(pool *pgxpool.Pool, store eventstore.Store, log *slog.Logger, opts Options, projections ...Projection) (*Runner, error) {
	seen := map[string]bool{}
	for _, p := range projections {
		if err := checkProjection(p); err != nil {
			return nil, err
		}
		if seen[p.Name()] {
			return nil, fmt.Errorf("projection %s is registered twice", p.Name())
		}
		seen[p.Name()] = true
	}
	return &Runner{pool: pool, store: store, log: log, opts: opts.withDefaults(), projections: projections, progress: eventstore.NewBroadcaster()}, nil
}

// Progress returns a channel closed the next time a projection in this
// process advances its checkpoint.
func (r *Runner) Progress() <-chan struct{} { return r.progress.Changed() }

// Run runs every projection until ctx ends, then returns nil once all of
// them have stopped (no goroutine outlives Run).
func (r *Runner) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, p := range r.projections {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.runOne(ctx, p)
		}()
	}
	wg.Wait()
	return nil
}

// runOne keeps trying to lead projection p until ctx ends.
func (r *Runner) runOne(ctx context.Context, p Projection) {
	for {
		err := r.lead(ctx, p)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			r.log.WarnContext(ctx, "projection stopped; retrying", "projection", p.Name(), "version", p.Version(), "err", err)
		}
		if !sleep(ctx, r.opts.LeaderRetry) {
			return
		}
	}
}

// lockKey is the advisory lock that elects the process running p.
func lockKey(p Projection) int64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "cqrsgate/projection/%s/%d", p.Name(), p.Version())
	return int64(h.Sum64())
}

// lead takes the projection's lock on a dedicated connection and, while it
// holds it, sets the projection up and follows the log. It returns nil when
// another process leads (or ctx ends), an error when leading failed.
func (r *Runner) lead(ctx context.Context, p Projection) error {
	conn, err := pgx.ConnectConfig(ctx, r.pool.Config().ConnConfig.Copy())
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_ = conn.Close(closeCtx) // ends the session, releasing the lock
	}()
	var leader bool
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", lockKey(p)).Scan(&leader); err != nil {
		return fmt.Errorf("leader lock: %w", err)
	}
	if !leader {
		return nil
	}
	r.log.InfoContext(ctx, "running projection", "projection", p.Name(), "version", p.Version())
	if err := r.setup(ctx, p); err != nil {
		return err
	}
	return r.follow(ctx, p, conn)
}

// setup creates the version's schema and tables and its row; the first
// version of a projection serves queries at once.
func (r *Runner) setup(ctx context.Context, p Projection) error {
	return pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
		schema := pgx.Identifier{SchemaName(p.Name(), p.Version())}.Sanitize()
		if _, err := tx.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+schema); err != nil {
			return fmt.Errorf("setup %s: %w", p.Name(), err)
		}
		if _, err := tx.Exec(ctx, "SET LOCAL search_path TO "+schema+", public"); err != nil {
			return err
		}
		if err := p.Setup(ctx, tx); err != nil {
			return fmt.Errorf("setup %s v%d: %w", p.Name(), p.Version(), err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO public.projections (name, version) VALUES ($1, $2) ON CONFLICT DO NOTHING`, p.Name(), p.Version()); err != nil {
			return err
		}
		var serving bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM public.projections WHERE name = $1 AND serving)`, p.Name()).Scan(&serving); err != nil {
			return err
		}
		if !serving {
			return switchServing(ctx, tx, p)
		}
		return nil
	})
}

// switchServing makes p's version the one queries read, in tx: the views
// in schema readmodel are replaced, atomically for readers.
func switchServing(ctx context.Context, tx pgx.Tx, p Projection) error {
	if _, err := tx.Exec(ctx, `UPDATE public.projections SET serving = false WHERE name = $1 AND serving`, p.Name()); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `UPDATE public.projections SET serving = true, updated_at = clock_timestamp() WHERE name = $1 AND version = $2`, p.Name(), p.Version()); err != nil {
		return err
	}
	schema := SchemaName(p.Name(), p.Version())
	for _, t := range p.Tables() {
		view := pgx.Identifier{"readmodel", t}.Sanitize()
		if _, err := tx.Exec(ctx, "DROP VIEW IF EXISTS "+view); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "CREATE VIEW "+view+" AS SELECT * FROM "+pgx.Identifier{schema, t}.Sanitize()); err != nil {
			return fmt.Errorf("expose %s: %w", t, err)
		}
	}
	return nil
}

// retireOlder drops the schemas of p's older versions once p serves.
func (r *Runner) retireOlder(ctx context.Context, p Projection) error {
	rows, err := r.pool.Query(ctx, `SELECT version FROM projections WHERE name = $1 AND version < $2 AND status <> 'RETIRED'`, p.Name(), p.Version())
	if err != nil {
		return err
	}
	old, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return err
	}
	for _, v := range old {
		if _, err := r.pool.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{SchemaName(p.Name(), int(v))}.Sanitize()+" CASCADE"); err != nil {
			return err
		}
		if _, err := r.pool.Exec(ctx, `UPDATE projections SET status = 'RETIRED', serving = false, updated_at = clock_timestamp() WHERE name = $1 AND version = $2`, p.Name(), v); err != nil {
			return err
		}
		r.log.InfoContext(ctx, "retired projection version", "projection", p.Name(), "version", v)
	}
	return nil
}

var errLostLead = errors.New("checkpoint moved under us: another process runs this projection")

// follow applies the log to p from its checkpoint until ctx ends or the
// leader connection fails.
func (r *Runner) follow(ctx context.Context, p Projection, leaderConn *pgx.Conn) error {
	batch := r.opts.BatchSize
	backoff := r.opts.RetryBackoff
	timer := time.NewTimer(r.opts.Poll)
	defer timer.Stop()
	var stuckAt int64 // position of the failing event while retrying one by one
	retired := false  // older versions dropped since this version began serving
	for {
		st, err := r.loadState(ctx, p)
		if err != nil {
			return err
		}
		if st.status == "FAILED" {
			// Wait for an admin to retry or skip.
			if !sleep(ctx, r.opts.LeaderRetry/4+50*time.Millisecond) {
				return nil
			}
			if err := leaderConn.Ping(ctx); err != nil {
				return fmt.Errorf("leader connection: %w", err)
			}
			continue
		}
		changed := r.store.Changed()
		page, err := r.store.ReadAll(ctx, eventstore.AllQuery{After: st.position, Limit: batch, Types: p.EventTypes()})
		if err != nil {
			return err
		}
		switch {
		case len(page.Events) > 0:
			err := r.applyBatch(ctx, p, st.position, page.Next, page.Events)
			if errors.Is(err, errLostLead) || ctx.Err() != nil {
				return err
			}
			if err != nil {
				failures, ferr := r.recordFailure(ctx, p, page.Events, err, batch == 1)
				if ferr != nil {
					return ferr
				}
				if batch > 1 {
					batch = 1 // find the event that fails
				} else if failures >= r.opts.MaxFailures {
					r.log.ErrorContext(ctx, "projection failed", "projection", p.Name(), "position", page.Events[0].Position, "eventId", page.Events[0].ID, "err", err)
					continue
				}
				stuckAt = page.Events[0].Position
				if !sleep(ctx, backoff) {
					return nil
				}
				backoff = min(backoff*2, 10*time.Second)
				continue
			}
			backoff = r.opts.RetryBackoff
			if batch == 1 && page.Events[0].Position >= stuckAt {
				batch = r.opts.BatchSize
			}
			r.progress.Notify(page.Next)
			if len(page.Events) == batch {
				continue // more is waiting
			}
		case page.Next > st.position:
			// Nothing this projection reads, but the log moved on.
			if err := r.advance(ctx, p, st.position, page.Next); err != nil {
				return err
			}
			r.progress.Notify(page.Next)
		}
		if !st.serving {
			// A rebuild has caught up: switch queries to it.
			if err := pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error { return switchServing(ctx, tx, p) }); err != nil {
				return fmt.Errorf("switch %s to v%d: %w", p.Name(), p.Version(), err)
			}
			r.log.InfoContext(ctx, "projection version now serving", "projection", p.Name(), "version", p.Version())
			retired = false
		}
		if !retired {
			if err := r.retireOlder(ctx, p); err != nil {
				return err
			}
			retired = true
		}
		if err := leaderConn.Ping(ctx); err != nil {
			return fmt.Errorf("leader connection: %w", err)
		}
		timer.Reset(r.opts.Poll)
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-timer.C:
		}
	}
}

type state struct {
	position int64
	status   string
	serving  bool
}

func (r *Runner) loadState(ctx context.Context, p Projection) (state, error) {
	var st state
	err := r.pool.QueryRow(ctx, `SELECT position, status, serving FROM projections WHERE name = $1 AND version = $2`, p.Name(), p.Version()).
		Scan(&st.position, &st.status, &st.serving)
	if err != nil {
		return st, fmt.Errorf("projection %s state: %w", p.Name(), err)
	}
	return st, nil
}

// applyBatch applies events and moves the checkpoint from `from` to `to` in
// one transaction.
func (r *Runner) applyBatch(ctx context.Context, p Projection, from, to int64, events []domain.RecordedEvent) error {
	return pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
		schema := pgx.Identifier{SchemaName(p.Name(), p.Version())}.Sanitize()
		if _, err := tx.Exec(ctx, "SET LOCAL search_path TO "+schema+", public"); err != nil {
			return err
		}
		if err := p.Apply(ctx, tx, events); err != nil {
			return err
		}
		return moveCheckpoint(ctx, tx, p, from, to)
	})
}

func (r *Runner) advance(ctx context.Context, p Projection, from, to int64) error {
	return pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error { return moveCheckpoint(ctx, tx, p, from, to) })
}

func moveCheckpoint(ctx context.Context, tx pgx.Tx, p Projection, from, to int64) error {
	tag, err := tx.Exec(ctx, `UPDATE public.projections SET position = $3, failures = 0, last_error = NULL, updated_at = clock_timestamp()
		WHERE name = $1 AND version = $2 AND position = $4 AND status = 'RUNNING'`, p.Name(), p.Version(), to, from)
	if err != nil {
		return err
	}
	if tag.RowsAffected() != 1 {
		return errLostLead
	}
	return nil
}

// recordFailure counts a failed attempt; with single is true the batch was
// one event, which is named, and the projection is marked FAILED once the
// failures reach MaxFailures.
func (r *Runner) recordFailure(ctx context.Context, p Projection, events []domain.RecordedEvent, cause error, single bool) (int, error) {
	var failures int
	e := events[0]
	err := r.pool.QueryRow(ctx, `UPDATE projections SET failures = failures + 1, last_error = $3, failed_position = $4, failed_event_id = $5,
			status = CASE WHEN $6 AND failures + 1 >= $7 THEN 'FAILED' ELSE status END, updated_at = clock_timestamp()
		WHERE name = $1 AND version = $2 RETURNING failures`,
		p.Name(), p.Version(), truncateError(cause), e.Position, e.ID, single, r.opts.MaxFailures).Scan(&failures)
	if err != nil {
		return 0, fmt.Errorf("record failure of %s: %w", p.Name(), err)
	}
	return failures, nil
}

func truncateError(err error) string {
	s := err.Error()
	if len(s) > 2000 {
		s = s[:2000] + "..."
	}
	return s
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
