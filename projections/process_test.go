package projections_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cqrsgate/domain"
	"cqrsgate/projections"
)

// overlapProcess counts the Handle calls in progress across the processes
// sharing inHandle (one per gateway).
type overlapProcess struct {
	inHandle *atomic.Int32
	overlap  *atomic.Bool
	calls    atomic.Int32
	// block, when set, holds the first call until it is closed or the
	// call's context ends, as a long step of the saga does (its commands
	// stop when their context ends).
	block chan struct{}
	first atomic.Bool
	// stopped counts the calls that returned because their context ended.
	stopped atomic.Int32
}

func (p *overlapProcess) Name() string               { return "overlap" }
func (p *overlapProcess) EventTypes() []string       { return []string{"AccountOpened"} }
func (p *overlapProcess) Tick(context.Context) error { return nil }
func (p *overlapProcess) TickEvery() time.Duration   { return time.Hour }
func (p *overlapProcess) Handle(ctx context.Context, e domain.RecordedEvent) error {
	if p.inHandle.Add(1) > 1 {
		p.overlap.Store(true)
	}
	defer p.inHandle.Add(-1)
	p.calls.Add(1)
	if p.block != nil && p.first.CompareAndSwap(false, true) {
		select {
		case <-p.block:
		case <-ctx.Done():
			p.stopped.Add(1)
			return ctx.Err()
		}
	}
	return nil
}

// The process runner promises one leader per database: "one runner per
// database, elected by an advisory lock; another process takes over when
// it dies". When the leader's lock connection is lost (a network blip, an
// idle-session timeout, an operator's pg_terminate_backend) while it is
// handling an event, the other gateway takes the lock; the old leader's
// Handle is told to stop, and the new one handles nothing before it has
// had the time to.
func TestProcessRunnersNeverHandleAtOnce(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for _, id := range []string{"a1", "a2", "a3"} {
		e.exec(t, domain.OpenAccount{AccountID: id, Owner: "x", Currency: "EUR"})
	}
	var inHandle atomic.Int32
	var overlap atomic.Bool
	block := make(chan struct{})
	var once sync.Once
	closeBlock := func() { once.Do(func() { close(block) }) }
	p1 := &overlapProcess{inHandle: &inHandle, overlap: &overlap, block: block}
	p2 := &overlapProcess{inHandle: &inHandle, overlap: &overlap}
	opts := projections.ProcessOptions{Poll: 50 * time.Millisecond, LeaderRetry: 50 * time.Millisecond}
	r1, err := projections.NewProcessRunner(e.pool, e.store, quiet, opts, p1)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := projections.NewProcessRunner(e.pool, e.store, quiet, opts, p2)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{}, 2)
	go func() { _ = r1.Run(runCtx); done <- struct{}{} }()
	waitFor(t, "gateway 1 to lead and handle an event", func() bool { return p1.calls.Load() == 1 })
	go func() { _ = r2.Run(runCtx); done <- struct{}{} }()
	defer func() { stop(); closeBlock(); <-done; <-done }()

	// Gateway 1's lock connection is lost while it handles the event.
	var n int
	if err := e.pool.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("terminated %d lock holders: %v", n, err)
	}
	waitFor(t, "a leader to handle every event", func() bool { return p1.calls.Load()+p2.calls.Load() >= 4 || overlap.Load() })
	if overlap.Load() {
		t.Fatalf("gateway 2 handled %d events while gateway 1 was still handling one: two leaders at once", p2.calls.Load())
	}
	if p1.stopped.Load() != 1 {
		t.Fatalf("gateway 1's Handle was not told to stop when its lock was lost")
	}
}

// A leader that finds the checkpoint moved past an event it handled (by a
// leader that took over while it was stalled) does not move it back and
// steps down; leading again, it starts from the checkpoint, and handles
// none of the events again.
func TestProcessCheckpointNeverMovesBackwards(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	var last int64
	for _, id := range []string{"a1", "a2", "a3"} {
		last = e.exec(t, domain.OpenAccount{AccountID: id, Owner: "x", Currency: "EUR"}).Position
	}
	var inHandle atomic.Int32
	var overlap atomic.Bool
	block := make(chan struct{})
	p := &overlapProcess{inHandle: &inHandle, overlap: &overlap, block: block}
	r, err := projections.NewProcessRunner(e.pool, e.store, quiet, projections.ProcessOptions{Poll: 50 * time.Millisecond, LeaderRetry: 50 * time.Millisecond}, p)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = r.Run(runCtx); close(done) }()
	defer func() { stop(); <-done }()
	waitFor(t, "the runner to lead and handle an event", func() bool { return p.calls.Load() == 1 })

	// Another leader handled every event meanwhile.
	if _, err := e.pool.Exec(ctx, `UPDATE process_checkpoints SET position = $1 WHERE name = 'overlap'`, last); err != nil {
		t.Fatal(err)
	}
	close(block)
	waitFor(t, "the runner to lead from the moved checkpoint", func() bool { return r.Position() >= last })
	var saved int64
	if err := e.pool.QueryRow(ctx, `SELECT position FROM process_checkpoints WHERE name = 'overlap'`).Scan(&saved); err != nil {
		t.Fatal(err)
	}
	if saved < last || p.calls.Load() != 1 {
		t.Fatalf("checkpoint %d (moved to %d), %d events handled; want it not moved back and no event handled again", saved, last, p.calls.Load())
	}
}
