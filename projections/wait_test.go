package projections_test

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"cqrsgate/domain"
	"cqrsgate/eventstore"
	"cqrsgate/projections"
)

// countReads counts the reads of the serving checkpoints made through a
// pool.
type countReads struct{ n atomic.Int64 }

func (c *countReads) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if strings.Contains(d.SQL, "FROM projections WHERE") && strings.Contains(d.SQL, "serving") {
		c.n.Add(1)
	}
	return ctx
}
func (c *countReads) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// tracedPositions runs the accounts projection, opens an account and waits
// until the projection has applied it; it returns that position and a
// Positions that reads the checkpoints as another process would (no
// runner), through a pool of its own whose queries go through tracer.
func tracedPositions(t *testing.T, e *env, tracer pgx.QueryTracer) (*projections.Positions, int64) {
	t.Helper()
	ctx := context.Background()
	e.start(t, projections.Options{}, projections.Accounts{})
	head := e.exec(t, domain.OpenAccount{AccountID: "w", Owner: "o", Currency: "EUR"}).Position
	if err := projections.NewPositions(e.pool, nil).WaitFor(ctx, []string{"accounts"}, head, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	cfg := e.pool.Config().Copy()
	cfg.ConnConfig.Tracer = tracer
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if _, err := pool.Exec(ctx, `SELECT 1`); err != nil { // a connection ready: the first read starts at once
		t.Fatal(err)
	}
	return projections.NewPositions(pool, nil), head
}

// Many waiters (many requests, or one operation with many aliased fields)
// share the reads of the checkpoints: PostgreSQL is asked about once per
// poll, not once per waiter per poll (a review measured 11,664
// transactions for one operation of 2,000 aliases waiting a second).
func TestWaitersShareReadsOfTheCheckpoints(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	reads := &countReads{}
	positions, head := tracedPositions(t, e, reads)

	const waiters, wait = 200, 500 * time.Millisecond
	before := reads.n.Load()
	var wg sync.WaitGroup
	errs := make(chan error, waiters)
	for range waiters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- positions.WaitFor(ctx, []string{"accounts"}, head+1_000_000, wait)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		var de *domain.Error
		if !errors.As(err, &de) || de.Code != domain.Stale || de.Details["reached"] != head {
			t.Fatalf("a waiter for a position far ahead: %v, want STALE having reached %d", err, head)
		}
	}
	// One waiter alone polls every 25 ms: about 20 reads in 500 ms.
	if n := reads.n.Load() - before; n > 60 {
		t.Errorf("%d waiters for %s made %d reads of the checkpoints, want about %d", waiters, wait, n, wait/(25*time.Millisecond))
	}

	// A checkpoint another process moves is seen within a poll or two.
	next := e.exec(t, domain.DepositMoney{AccountID: "w", Amount: 1}).Position
	start := time.Now()
	if err := positions.WaitFor(ctx, []string{"accounts"}, next, 10*time.Second); err != nil {
		t.Fatalf("waiting for the deposit: %v", err)
	}
	t.Logf("%d waiters: %d reads; the deposit seen after %s", waiters, reads.n.Load()-before, time.Since(start))
}

// A waiter for a projection another process runs is woken by this
// process's runner on every batch of its own projections; the waiter still
// reads the checkpoints every poll (a review found a first version of the
// shared reads that put the poll off at each wake-up, so that the waiter
// saw the other process's progress only at its deadline).
func TestWaiterPollsWhileTheLocalRunnerIsBusy(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	local := e.start(t, projections.Options{}, projections.Accounts{}) // this process: accounts
	// "Another process" runs orders: its own store, so it sees appends by
	// polling (every 100 ms), not by this process's broadcaster.
	other := &env{pool: e.pool, store: eventstore.NewPostgres(e.pool, quiet, eventstore.Limits{}, eventstore.NewBroadcaster())}
	other.start(t, projections.Options{}, projections.Orders{})
	e.exec(t, domain.OpenAccount{AccountID: "busy", Owner: "o", Currency: "EUR"})
	positions := projections.NewPositions(e.pool, local)
	if err := positions.WaitFor(ctx, []string{"accounts", "orders"}, e.head(t), 10*time.Second); err != nil {
		t.Fatalf("catching up: %v", err)
	}

	// Steady write traffic this process's runner follows (about every 5 ms).
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			_, _ = e.try(domain.DepositMoney{AccountID: "busy", Amount: 1})
		}
	}()
	defer func() { close(stop); wg.Wait() }()
	time.Sleep(200 * time.Millisecond)

	res, err := domain.Execute(ctx, e.commands, domain.Orders, domain.PlaceOrder{OrderID: "o1", CustomerID: "c", Currency: "EUR"}, domain.CommandMeta{})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = positions.WaitFor(ctx, []string{"orders"}, res.Position, 2*time.Second)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("waiting 2s for an order the other process projects within ~100 ms: %v", err)
	}
	// The other process polls every 100 ms: the order is projected within a
	// few hundred ms, and a waiter polling every 25 ms sees it soon after.
	if took > time.Second {
		t.Fatalf("an order the other process projects within ~100 ms was seen by the waiter only after %s (its timeout: 2s)", took)
	}
	t.Logf("seen after %s", took)
}

// Waiters that join a read of the checkpoints take its outcome, a failure
// too: against a database that fails slowly (here each connection attempt
// times out after 300 ms) they all fail after one attempt, not one after
// another (a review found the k-th failing after k attempts, far past its
// READ_TIMEOUT).
func TestWaitersShareAFailedRead(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var mu sync.Mutex
	var conns []net.Conn
	go func() { // accept and never answer
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	}()
	cfg, err := pgxpool.ParseConfig("postgres://u@" + ln.Addr().String() + "/db?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.ConnectTimeout = 300 * time.Millisecond
	cfg.MaxConns = 50 // not the limit here
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	positions := projections.NewPositions(pool, nil)

	const waiters, timeout = 10, time.Second
	start := time.Now()
	var wg sync.WaitGroup
	took := make([]time.Duration, waiters)
	for i := range waiters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := positions.WaitFor(context.Background(), []string{"accounts"}, 1, timeout)
			took[i] = time.Since(start)
			if err == nil {
				t.Errorf("waiter %d: no error from an unreachable database", i)
			}
		}()
	}
	wg.Wait()
	slices.Sort(took)
	if last := took[len(took)-1]; last > timeout+500*time.Millisecond {
		t.Fatalf("%d waiters with a %s timeout, database unreachable (300 ms per attempt): they returned after %v", waiters, timeout, took)
	}
}

// gateReads holds the first read of the serving checkpoints until release
// is closed, and reports when it has started.
type gateReads struct {
	started chan struct{}
	release chan struct{}
	mu      sync.Mutex
	n       int
	onEnd   func() // run once, synchronously, when the first read ends
	endOnce sync.Once
}

func (g *gateReads) isRead(sql string) bool {
	return strings.Contains(sql, "FROM projections WHERE") && strings.Contains(sql, "serving")
}

func (g *gateReads) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if !g.isRead(d.SQL) {
		return ctx
	}
	g.mu.Lock()
	g.n++
	first := g.n == 1
	g.mu.Unlock()
	if first && g.release != nil {
		close(g.started)
		<-g.release
	}
	return context.WithValue(ctx, gateKey{}, true)
}

type gateKey struct{}

func (g *gateReads) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryEndData) {
	if ctx.Value(gateKey{}) != nil && g.onEnd != nil {
		g.endOnce.Do(g.onEnd)
	}
}

// A waiter that joins the read another waiter began does not share that
// waiter's cancellation: the read runs on neither's context (a review found
// every joined waiter failing with the first one's context error when its
// client went away).
func TestAJoinedWaiterOutlivesTheReadersCancellation(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	gate := &gateReads{started: make(chan struct{}), release: make(chan struct{})}
	positions, head := tracedPositions(t, e, gate)

	actx, cancelA := context.WithCancel(ctx)
	aErr := make(chan error, 1)
	go func() { aErr <- positions.WaitFor(actx, []string{"accounts"}, head, 10*time.Second) }()
	<-gate.started // A's read is under way

	bErr := make(chan error, 1)
	go func() { bErr <- positions.WaitFor(ctx, []string{"accounts"}, head, 10*time.Second) }()
	time.Sleep(3 * time.Millisecond) // B joins A's read (it began < 5 ms ago)
	cancelA()                        // A's client goes away
	close(gate.release)
	<-aErr
	if err := <-bErr; err != nil {
		t.Fatalf("waiter B (context fine, position %d reached) failed with waiter A's cancellation: %v", head, err)
	}
}

// At its deadline a waiter reads the checkpoints once more before it
// reports Stale, also with a timeout shorter than the poll interval (a
// review found it judged by its first read, missing progress made
// meanwhile by another process).
func TestAWaiterReadsAgainAtItsDeadline(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	var want int64 // set below, before the first read of positions
	gate := &gateReads{onEnd: func() {
		// Another process's projection reaches want right after the
		// waiter's first read (before that read returns to it).
		if _, err := e.pool.Exec(ctx, `UPDATE projections SET position = $1 WHERE name = 'accounts' AND serving`, want); err != nil {
			t.Error(err)
		}
	}}
	positions, head := tracedPositions(t, e, gate)
	want = head + 1000 // not reached yet
	err := positions.WaitFor(ctx, []string{"accounts"}, want, 20*time.Millisecond)
	var de *domain.Error
	if errors.As(err, &de) {
		var now int64
		_ = e.pool.QueryRow(ctx, `SELECT position FROM projections WHERE name = 'accounts' AND serving`).Scan(&now)
		t.Fatalf("timeout 20ms: %v (checkpoint now %d, reached ~1 ms after the first read; no second read was made: %d reads)", err, now, gate.n)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// slowCheckpointReads makes each read of the checkpoints take 100 ms and records how
// many were under way at once.
type slowCheckpointReads struct {
	mu        sync.Mutex
	now, most int
}

func (s *slowCheckpointReads) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if !strings.Contains(d.SQL, "FROM projections WHERE") {
		return ctx
	}
	s.mu.Lock()
	s.now++
	s.most = max(s.most, s.now)
	s.mu.Unlock()
	time.Sleep(100 * time.Millisecond)
	return context.WithValue(ctx, slowCheckpointKey{}, true)
}

type slowCheckpointKey struct{}

func (s *slowCheckpointReads) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryEndData) {
	if ctx.Value(slowCheckpointKey{}) != nil {
		s.mu.Lock()
		s.now--
		s.mu.Unlock()
	}
}

// Against a slow database, waiters make one read of the checkpoints at a
// time, not one per poll piling up on the pool.
func TestWaitersReadOneAtATime(t *testing.T) {
	e := newEnv(t)
	slow := &slowCheckpointReads{}
	positions, head := tracedPositions(t, e, slow)
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = positions.WaitFor(context.Background(), []string{"accounts"}, head+1000, 600*time.Millisecond)
		}()
		time.Sleep(5 * time.Millisecond)
	}
	wg.Wait()
	if slow.most != 1 {
		t.Errorf("%d reads of the checkpoints were under way at once, want 1", slow.most)
	}
}

// A waiter returns Stale near its timeout when the database cannot answer
// (here its pool is exhausted), not after the reads' own timeouts (a
// review measured 19.9 s for a 500 ms timeout).
func TestAWaiterKeepsItsTimeoutWhenThePoolIsExhausted(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.start(t, projections.Options{}, projections.Accounts{})
	head := e.exec(t, domain.OpenAccount{AccountID: "x", Owner: "o", Currency: "EUR"}).Position
	if err := projections.NewPositions(e.pool, nil).WaitFor(ctx, []string{"accounts"}, head, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	cfg := e.pool.Config().Copy()
	cfg.MaxConns = 1
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	busy, err := pool.Acquire(ctx) // the only connection: in use
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Release()
	positions := projections.NewPositions(pool, nil)

	go func() { _ = positions.WaitFor(ctx, []string{"accounts"}, head, 30*time.Second) }() // A: its read waits for a connection
	time.Sleep(100 * time.Millisecond)

	const timeout = 500 * time.Millisecond
	start := time.Now()
	err = positions.WaitFor(ctx, []string{"accounts"}, head, timeout) // B
	took := time.Since(start)
	t.Logf("B: %v after %s", err, took.Round(time.Millisecond))
	if took > timeout+time.Second {
		t.Fatalf("WaitFor with a %s timeout returned after %s (err: %v)", timeout, took.Round(time.Millisecond), err)
	}
	if de := (*domain.Error)(nil); !errors.As(err, &de) || de.Code != domain.Stale {
		t.Fatalf("WaitFor with no answer from the database: %v, want STALE", err)
	}
}
