package eventstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"cqrsgate/domain"
	"cqrsgate/eventstore"
	"cqrsgate/eventstore/eventstoretest"
	"cqrsgate/internal/pgtest"
	"cqrsgate/schemaregistry"
)

func TestMain(m *testing.M) {
	// The schema registry's tables too: appends through it are checked
	// against its revision (see schemarace_test.go).
	pgtest.Main(m, pgtest.Options{Migrate: pgtest.OnConn(func(ctx context.Context, conn *pgx.Conn) error {
		if err := eventstore.Migrate(ctx, conn); err != nil {
			return err
		}
		return schemaregistry.Migrate(ctx, conn)
	})})
}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func newPostgres(t *testing.T, pool *pgxpool.Pool) *eventstore.Postgres {
	return eventstore.NewPostgres(pool, quietLogger(), eventstore.Limits{}, eventstore.NewBroadcaster())
}

func TestPostgresConformance(t *testing.T) {
	eventstoretest.Run(t, func(t *testing.T) eventstore.Store {
		return newPostgres(t, pgtest.NewPool(t))
	})
}

func TestMigrationsAppliedAndIdempotent(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	ok, err := eventstore.MigrationsApplied(ctx, conn)
	if err != nil || !ok {
		t.Fatalf("MigrationsApplied on a migrated database = %v, %v", ok, err)
	}
	if err := eventstore.Migrate(ctx, conn); err != nil {
		t.Fatalf("migrating twice: %v", err)
	}
	if _, err := conn.Exec(ctx, "DROP TABLE eventstore_schema_version"); err != nil {
		t.Fatal(err)
	}
	if ok, err := eventstore.MigrationsApplied(ctx, conn); err != nil || ok {
		t.Fatalf("MigrationsApplied without the version table = %v, %v; want false", ok, err)
	}
}

// TestGapSafety appends from 32 goroutines over two pools (as two processes
// would), holding some transactions open and rolling some back, while a
// follower on the first pool reads the log by position. The follower must see
// every committed event exactly once, in increasing position order, and no
// rolled-back event.
func TestGapSafety(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	url := pgtest.NewDatabase(t)
	pools := make([]*pgxpool.Pool, 2)
	stores := make([]*eventstore.Postgres, 2)
	for i := range pools {
		cfg, err := pgxpool.ParseConfig(url)
		if err != nil {
			t.Fatal(err)
		}
		cfg.MaxConns = 20
		pools[i], err = pgxpool.NewWithConfig(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer pools[i].Close()
		stores[i] = newPostgres(t, pools[i])
		stores[i].SetBeforeCommit(func(ctx context.Context, stream string) error {
			switch r := rand.IntN(100); {
			case r < 5:
				return errRolledBack
			case r < 15:
				time.Sleep(time.Duration(20+rand.IntN(200)) * time.Millisecond) // held open
			}
			return nil
		})
	}
	// The follower's process learns of the other pool's commits by NOTIFY.
	lis := eventstore.NewListener(pools[0].Config().ConnConfig.Copy(), stores[0].Broadcaster(), quietLogger())
	lisCtx, stopLis := context.WithCancel(ctx)
	lisDone := make(chan error, 1)
	go func() { lisDone <- lis.Run(lisCtx) }()
	defer func() { stopLis(); <-lisDone }()
	<-lis.Ready()

	var (
		mu           sync.Mutex
		committed    = map[string]bool{}
		maxCommitted int64
		rolled       = 0
	)
	seen := map[string]int{}
	var order []int64
	followCtx, stopFollow := context.WithCancel(ctx)
	followed := make(chan error, 1)
	go func() {
		followed <- eventstore.Follow(followCtx, stores[0], eventstore.AllQuery{Limit: 200}, time.Second, func(p eventstore.Page) error {
			mu.Lock()
			defer mu.Unlock()
			for _, e := range p.Events {
				seen[e.ID]++
				order = append(order, e.Position)
			}
			return nil
		})
	}()

	const writers = 32
	writeUntil := time.Now().Add(3 * time.Second)
	var wg sync.WaitGroup
	var appends atomic.Int64
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := stores[w%2]
			stream := fmt.Sprintf("gap-%d", w)
			version := domain.ExpectNoStream
			for i := 0; time.Now().Before(writeUntil); i++ {
				n := 1 + rand.IntN(3)
				evs := make([]domain.EventData, n)
				for j := range evs {
					evs[j] = eventstoretest.Ev("Tick", i)
				}
				res, err := s.Append(ctx, stream, version, evs...)
				if errors.Is(err, errRolledBack) {
					mu.Lock()
					rolled++
					mu.Unlock()
					continue
				}
				if err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
				appends.Add(1)
				version = domain.ExpectedVersion(res.LastVersion)
				mu.Lock()
				for _, e := range res.Events {
					committed[e.ID] = true
				}
				maxCommitted = max(maxCommitted, res.LastPosition)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	// Wait until the follower has passed the last committed event.
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		caughtUp := len(order) > 0 && order[len(order)-1] >= maxCommitted
		mu.Unlock()
		if caughtUp || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	stopFollow()
	if err := <-followed; !errors.Is(err, context.Canceled) {
		t.Fatalf("follower: %v", err)
	}
	if rolled == 0 {
		t.Fatal("no append was rolled back: the test did not exercise rollbacks")
	}
	t.Logf("%d appends (%d events) committed, %d rolled back, follower saw %d events", appends.Load(), len(committed), rolled, len(seen))
	eventstoretest.CheckExactlyOnce(t, committed, seen, order)
}

var errRolledBack = errors.New("rolled back on purpose")

// TestAppendsInsertSideBySide holds an append inside its INSERT (it waits
// on the unique stream version a foreign, uncommitted transaction wrote,
// following the allocation protocol): an append to another stream must
// still commit meanwhile, since the allocation lock covers only the
// reservation of positions, and readers must see neither event until the
// held one is settled, then both, in position order.
func TestAppendsInsertSideBySide(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pool := pgtest.NewPool(t)
	s := newPostgres(t, pool)

	foreign, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = foreign.Rollback(ctx) }()
	// The foreign writer allocates its position under the allocation lock.
	lock := []any{eventstore.AllocLockClass, eventstore.AllocLockID}
	_, err = foreign.Exec(ctx, "SELECT pg_advisory_lock($1, $2)", lock...)
	if err == nil {
		_, err = foreign.Exec(ctx, `INSERT INTO events (event_id, stream_id, stream_version, event_type, schema_version, data, metadata)
			VALUES (gen_random_uuid(), 'held', 1, 'Tick', 1, '{}', '{}')`)
	}
	if err == nil {
		_, err = foreign.Exec(ctx, "SELECT pg_advisory_unlock($1, $2)", lock...)
	}
	if err != nil {
		t.Fatal(err)
	}

	type outcome struct {
		res domain.AppendResult
		err error
	}
	held := make(chan outcome, 1)
	go func() {
		res, err := s.Append(ctx, "held", domain.ExpectAny, eventstoretest.Ev("Tick", 1))
		held <- outcome{res, err}
	}()
	// Until the held append waits inside its INSERT.
	for {
		var waiting bool
		if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%INSERT INTO events%')`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting {
			break
		}
		select {
		case o := <-held:
			t.Fatalf("the held append ended before the foreign transaction did: %+v", o)
		case <-time.After(10 * time.Millisecond):
		}
	}

	freeCtx, cancelFree := context.WithTimeout(ctx, 5*time.Second)
	defer cancelFree()
	free, err := s.Append(freeCtx, "free", domain.ExpectNoStream, eventstoretest.Ev("Tick", 2))
	if err != nil {
		t.Fatalf("an append to another stream while one waits inside its INSERT: %v (the allocation lock is held for the INSERT)", err)
	}
	if p, err := s.ReadAll(ctx, eventstore.AllQuery{}); err != nil || len(p.Events) != 0 {
		t.Fatalf("while the foreign transaction is open, ReadAll = %d events, %v; want none (the held append's positions come first)", len(p.Events), err)
	}

	if err := foreign.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	o := <-held
	if o.err != nil {
		t.Fatalf("the held append after the foreign transaction rolled back: %v", o.err)
	}
	if o.res.LastPosition >= free.LastPosition {
		t.Fatalf("held append at %d, the later one at %d: positions must follow the order of reservation", o.res.LastPosition, free.LastPosition)
	}
	p, err := s.ReadAll(ctx, eventstore.AllQuery{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range p.Events {
		got = append(got, fmt.Sprintf("%s@%d", e.StreamID, e.Position))
	}
	want := []string{fmt.Sprintf("held@%d", o.res.LastPosition), fmt.Sprintf("free@%d", free.LastPosition)}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("ReadAll = %v, want %v", got, want)
	}
}

// TestAppendIsAtomic makes the database refuse the second of three events
// in the middle of the insert: nothing of the append may be stored, and the
// connection must come back clean (no transaction, no allocation lock), so
// later appends from many goroutines still go through.
func TestAppendIsAtomic(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	s := newPostgres(t, pool)
	_, err := pool.Exec(ctx, `
		CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.event_type = 'Poison' THEN RAISE EXCEPTION 'poison refused'; END IF;
			RETURN NEW;
		END $$;
		CREATE TRIGGER refuse_poison BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION refuse_poison();`)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ { // more than once: each failure must leave the connection clean
		_, err := s.Append(ctx, "atomic", domain.ExpectAny, eventstoretest.Ev("A", 1), eventstoretest.Ev("Poison", 2), eventstoretest.Ev("B", 3))
		if err == nil {
			t.Fatal("append with a refused event succeeded")
		}
	}
	if v, _ := s.StreamVersion(ctx, "atomic"); v != 0 {
		t.Fatalf("a failed append left the stream at version %d", v)
	}
	var wg sync.WaitGroup
	tctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 5; i++ {
				if _, err := s.Append(tctx, fmt.Sprintf("after-%d", w), domain.ExpectAny, eventstoretest.Ev("A", i)); err != nil {
					t.Errorf("append after failures: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	var locks int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted`).Scan(&locks); err != nil {
		t.Fatal(err)
	}
	if locks != 0 {
		t.Fatalf("%d advisory locks still held after all appends returned", locks)
	}
}

// Streams created before the rules on new stream ids (invisible
// characters) stay writable, with any expected version that lets an
// existing stream be appended to; a new stream with such an id is refused.
func TestStreamsCreatedBeforeTheIDRulesStayWritable(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	s := newPostgres(t, pool)
	const legacy = "legacy\u200bstream"
	if _, err := pool.Exec(ctx, `INSERT INTO events (event_id, stream_id, stream_version, event_type, schema_version, data)
		VALUES (gen_random_uuid(), $1, 1, 'Created', 1, '{}')`, legacy); err != nil {
		t.Fatal(err)
	}
	for i, expected := range []domain.ExpectedVersion{1, domain.ExpectStreamExists, domain.ExpectAny} {
		if _, err := s.Append(ctx, legacy, expected, eventstoretest.Ev("Appended", i)); err != nil {
			t.Errorf("append to the existing stream %q expecting %v: %v (code %q)", legacy, expected, err, domain.CodeOf(err))
		}
	}
	var de *domain.Error
	if _, err := s.Append(ctx, "new\u200bstream", domain.ExpectAny, eventstoretest.Ev("Appended", 1)); !errors.As(err, &de) || de.Code != domain.Invalid || de.Field != "stream" {
		t.Errorf("append creating a stream with an invisible character: %v; want VALIDATION on stream", err)
	}
}

// TestStoredJSONRoundTrips checks that data comes back as the same JSON
// value (jsonb normalises white space and key order, not values).
func TestStoredJSONRoundTrips(t *testing.T) {
	ctx := context.Background()
	s := newPostgres(t, pgtest.NewPool(t))
	data := json.RawMessage(`{"z": 1, "a": {"nested": [1, 2.5, "x", null, true]}, "big": 9007199254740993, "s": "é\n\"q\"", "pair": "\ud83d\ude00", "escaped": "\\ud800"}`)
	res, err := s.Append(ctx, "json", domain.ExpectNoStream, domain.EventData{Type: "J", SchemaVersion: 3, Data: data})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.ReadStream(ctx, "json", eventstore.StreamQuery{})
	if err != nil || len(got) != 1 {
		t.Fatalf("read = %v, %v", got, err)
	}
	var want, have map[string]any
	dec := func(raw json.RawMessage, v *map[string]any) {
		d := json.NewDecoder(bytesReader(raw))
		d.UseNumber()
		if err := d.Decode(v); err != nil {
			t.Fatal(err)
		}
	}
	dec(data, &want)
	dec(got[0].Data, &have)
	if fmt.Sprint(want) != fmt.Sprint(have) || got[0].SchemaVersion != 3 || got[0].ID != res.Events[0].ID {
		t.Fatalf("stored %s as %s (schema %d)", data, got[0].Data, got[0].SchemaVersion)
	}
}

// A process's Listener skips the notifications of its own commits (its
// store woke the followers already) and passes on everyone else's,
// administrators' nudges included.
func TestListenerSkipsItsOwnCommits(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	store := newPostgres(t, pool)
	lis := eventstore.NewListener(pool.Config().ConnConfig.Copy(), store.Broadcaster(), quietLogger())
	lisCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- lis.Run(lisCtx) }()
	defer func() { stop(); <-done }()
	<-lis.Ready()
	time.Sleep(100 * time.Millisecond) // the listener's own wake-up on connecting

	if _, err := store.Append(ctx, "own", domain.ExpectAny, eventstoretest.Ev("Opened", 1)); err != nil {
		t.Fatal(err)
	}
	woken := store.Broadcaster().Changed() // after the store's own wake-up
	select {
	case <-woken:
		t.Fatal("the listener passed on this process's own commit")
	case <-time.After(300 * time.Millisecond):
	}
	for _, payload := range []string{"12345 another-process", "0"} {
		if _, err := pool.Exec(ctx, "SELECT pg_notify($1, $2)", eventstore.NotifyChannel, payload); err != nil {
			t.Fatal(err)
		}
		select {
		case <-woken:
		case <-time.After(5 * time.Second):
			t.Fatalf("notification %q woke nobody", payload)
		}
		woken = store.Broadcaster().Changed()
	}
}

// TestCommitNotificationsCarryTheHighestPosition: each commit's NOTIFY
// names the highest position it wrote (the last event of one of its
// appends), so that other processes' followers know how far to read; not
// the end of its reservation, which a refused append leaves empty.
func TestCommitNotificationsCarryTheHighestPosition(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	store := newPostgres(t, pool)
	conn, err := pgx.Connect(ctx, pool.Config().ConnConfig.ConnString())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "LISTEN "+eventstore.NotifyChannel); err != nil {
		t.Fatal(err)
	}
	// Concurrent appends of several events each, so that some are written
	// together in one transaction; every third is refused (its stream does
	// not exist), so that some batches end with a refused append.
	const appends = 48
	var wg sync.WaitGroup
	results := make([]domain.AppendResult, appends)
	errs := make([]error, appends)
	for i := range appends {
		wg.Add(1)
		go func() {
			defer wg.Done()
			expect := domain.ExpectNoStream
			if i%3 == 2 {
				expect = domain.ExpectStreamExists
			}
			evs := []domain.EventData{eventstoretest.Ev("A", 1), eventstoretest.Ev("B", 2), eventstoretest.Ev("C", 3)}
			results[i], errs[i] = store.Append(ctx, fmt.Sprintf("notified-%d", i), expect, evs...)
		}()
	}
	wg.Wait()
	last := map[int64]bool{}
	var head int64
	for i, err := range errs {
		var wrong *eventstore.WrongExpectedVersionError
		if i%3 == 2 {
			if !errors.As(err, &wrong) {
				t.Fatalf("append %d to a missing stream: %v", i, err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		last[results[i].LastPosition] = true
		head = max(head, results[i].LastPosition)
	}
	var highest int64
	for highest < head {
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		if err != nil {
			t.Fatalf("notifications stopped at %d, head %d: %v", highest, head, err)
		}
		pos, origin, _ := strings.Cut(n.Payload, " ")
		p, err := strconv.ParseInt(pos, 10, 64)
		if err != nil || origin != store.Broadcaster().Origin() {
			t.Fatalf("payload %q", n.Payload)
		}
		if !last[p] {
			t.Fatalf("notified position %d is not the last position of an append", p)
		}
		highest = max(highest, p)
	}
}

// TestReadsWalkAnIndexInOrder: right after a bulk load, before statistics
// know of it, a read of the log (of some types, of a tenant, ...) after a
// position is planned along an index in position order (its cost follows
// the events it returns), never as a bitmap of all the events after it,
// sorted.
func TestReadsWalkAnIndexInOrder(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	for _, sql := range []string{
		`ALTER TABLE events SET (autovacuum_enabled = false)`, // no analyze behind the test's back
		`INSERT INTO events (event_id, stream_id, stream_version, event_type, schema_version, data)
		 SELECT gen_random_uuid(), CASE WHEN g % 10 = 0 THEN 'acme~s-' ELSE 's-' END || g, 1, CASE WHEN g % 3 = 0 THEN 'B' ELSE 'A' END, 1, '{"n": 1}' FROM generate_series(1, 30000) g`,
	} {
		if _, err := pool.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	tenant, acme := "", "acme"
	for _, q := range []eventstore.AllQuery{
		{After: 100, Types: []string{"B"}},
		{After: 100, Types: []string{"A", "B"}},
		{After: 100, Types: []string{"B"}, Tenant: &tenant},
		{After: 100, Tenant: &tenant},
		{After: 100, Tenant: &acme},
		{After: 100, StreamPrefix: "s-1"},
		{After: 100},
	} {
		sql, args := eventstore.ReadAllSQL(q, 1000)
		plan := func(settings bool) string {
			tx, err := pool.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = tx.Rollback(ctx) }()
			if settings {
				if _, err := tx.Exec(ctx, eventstore.ReadSettings(q)); err != nil {
					t.Fatal(err)
				}
			}
			var out string
			if err := tx.QueryRow(ctx, "EXPLAIN (FORMAT JSON) "+sql, args...).Scan(&out); err != nil {
				t.Fatal(err)
			}
			return out
		}
		if !eventstore.WalksInOrder(q) {
			t.Fatalf("%+v is not made to walk an index in order", q)
		}
		t.Logf("%+v without the settings: sort %v, bitmap %v", q, strings.Contains(plan(false), `"Sort"`), strings.Contains(plan(false), "Bitmap"))
		if p := plan(true); strings.Contains(p, `"Node Type": "Sort"`) || strings.Contains(p, "Bitmap") || strings.Contains(p, "Seq Scan") {
			t.Errorf("%+v is planned with a sort, a bitmap or a sequential scan:\n%s", q, p)
		}
		// A tenant's events are found by the tenant's index.
		if q.Tenant != nil && *q.Tenant == acme && !strings.Contains(plan(true), "events_tenant_position") {
			t.Errorf("%+v does not use the tenant's index:\n%s", q, plan(true))
		}
	}
	// A read of one stream finds its events by the stream's index (and
	// sorts them), rather than walking the log past every other stream.
	q := eventstore.AllQuery{After: 100, Stream: "s-29000"}
	if eventstore.WalksInOrder(q) {
		t.Fatal("a read of one stream is made to walk the log in order")
	}
	sql, args := eventstore.ReadAllSQL(q, 1000)
	var p string
	if err := pool.QueryRow(ctx, "EXPLAIN (FORMAT JSON) "+sql, args...).Scan(&p); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(p, "events_stream_version_key") {
		t.Errorf("a read of one stream does not use the stream's index:\n%s", p)
	}
}

// A read of the whole log runs on its prepared statement's generic plan
// (the walk of the position index), rather than being planned afresh; a
// read by type, tenant or stream prefix is left to PostgreSQL's choice,
// whose custom plans find its events by their own index.
func TestPlainReadsUseGenericPlans(t *testing.T) {
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 1 // prepared statements are per connection
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	s := newPostgres(t, pool)
	for i := range 20 {
		if _, err := s.Append(ctx, fmt.Sprintf("s-%d", i), domain.ExpectNoStream, eventstoretest.Ev("A", i), eventstoretest.Ev("B", i)); err != nil {
			t.Fatal(err)
		}
	}
	tenant := ""
	plain := eventstore.AllQuery{Limit: 5}
	filtered := []eventstore.AllQuery{{Limit: 5, Types: []string{"B"}}, {Limit: 5, StreamPrefix: "s-"}, {Limit: 5, Tenant: &tenant}}
	for after := range int64(10) {
		for _, q := range append([]eventstore.AllQuery{plain}, filtered...) {
			q.After = after
			if _, err := s.ReadAll(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
	}
	plans := func(q eventstore.AllQuery) (generic, custom int64) {
		sql, _ := eventstore.ReadAllSQL(q, q.Limit)
		if err := pool.QueryRow(ctx, `SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement = $1`, sql).Scan(&generic, &custom); err != nil {
			t.Fatalf("the prepared read %q: %v", sql, err)
		}
		return generic, custom
	}
	if generic, custom := plans(plain); generic < 10 || custom != 0 {
		t.Errorf("the read of the whole log ran on %d generic and %d custom plans; want every run on the generic plan", generic, custom)
	}
	// PostgreSQL plans a prepared statement's first five runs for their
	// parameters before it may settle on a generic plan; forced, it plans
	// none.
	for _, q := range filtered {
		if _, custom := plans(q); custom < 5 {
			t.Errorf("the read %+v ran on %d custom plans in 10 runs; want PostgreSQL's choice (at least the first five)", q, custom)
		}
	}
}

// A database that ran the withdrawn migration 003 (the partial tenant
// index) migrates on to 004, which puts the full index back: the reads'
// tenant filter is its expression again. Deleting 003 had left such a
// database unable to start ("current version 3 is outside the valid
// versions of 0 to 2").
func TestMigratingPastTheWithdrawnPartialTenantIndex(t *testing.T) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var def string
	if err := conn.QueryRow(ctx, `SELECT pg_get_indexdef('events_tenant_position'::regclass)`).Scan(&def); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(def, "WHERE") || !strings.Contains(def, "CASE") {
		t.Fatalf("the tenant index after every migration: %s, want the full CASE index", def)
	}
	// Back to 3 (the partial index), as adbc376 left a database, and up again.
	if _, err := conn.Exec(ctx, `DROP INDEX events_tenant_position;
		CREATE INDEX events_tenant_position ON events (split_part(stream_id, '~', 1), position) WHERE strpos(stream_id, '~') > 0;
		UPDATE `+eventstore.VersionTable+` SET version = 3`); err != nil {
		t.Fatal(err)
	}
	if err := eventstore.Migrate(ctx, conn); err != nil {
		t.Fatalf("migrating a database at 003: %v", err)
	}
	if err := conn.QueryRow(ctx, `SELECT pg_get_indexdef('events_tenant_position'::regclass)`).Scan(&def); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(def, "WHERE") || !strings.Contains(def, "CASE") {
		t.Fatalf("the tenant index after migrating from 003: %s", def)
	}
}
