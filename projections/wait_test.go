package projections_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"cqrsgate/domain"
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

// Many waiters (many requests, or one operation with many aliased fields)
// share the reads of the checkpoints: PostgreSQL is asked about once per
// poll, not once per waiter per poll (a review measured 11,664
// transactions for one operation of 2,000 aliases waiting a second).
func TestWaitersShareReadsOfTheCheckpoints(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.start(t, projections.Options{}, projections.Accounts{})
	head := e.exec(t, domain.OpenAccount{AccountID: "w", Owner: "o", Currency: "EUR"}).Position

	cfg := e.pool.Config().Copy()
	reads := &countReads{}
	cfg.ConnConfig.Tracer = reads
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	positions := projections.NewPositions(pool, nil) // another process's view: polls only
	if err := positions.WaitFor(ctx, []string{"accounts"}, head, 10*time.Second); err != nil {
		t.Fatalf("waiting for a position reached: %v", err)
	}

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
