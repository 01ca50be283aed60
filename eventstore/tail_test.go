package eventstore_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cqrsgate/domain"
	"cqrsgate/eventstore"
	"cqrsgate/eventstore/eventstoretest"
	"cqrsgate/internal/pgtest"
)

// primed returns a tail over s whose window opens at the start of the log,
// so that every later read of the log is answered from memory.
func primed(t *testing.T, s eventstore.Store, opts eventstore.TailOptions) *eventstore.Tail {
	tail := eventstore.NewTail(s, opts)
	if _, err := tail.ReadAll(context.Background(), eventstore.AllQuery{}); err != nil {
		t.Fatal(err)
	}
	return tail
}

// The tail answers reads (filters, paging, heads) exactly as the store
// does, over PostgreSQL and in memory; a small window makes some reads fall
// before it and go to the store.
func TestTailConformance(t *testing.T) {
	for _, window := range []int{4096, 3} {
		t.Run(fmt.Sprintf("Postgres/window%d", window), func(t *testing.T) {
			eventstoretest.Run(t, func(t *testing.T) eventstore.Store {
				return primed(t, newPostgres(t, pgtest.NewPool(t)), eventstore.TailOptions{Window: window})
			})
		})
		t.Run(fmt.Sprintf("Memory/window%d", window), func(t *testing.T) {
			eventstoretest.Run(t, func(t *testing.T) eventstore.Store {
				return primed(t, eventstore.NewMemory(eventstore.Limits{}, time.Now), eventstore.TailOptions{Window: window})
			})
		})
	}
}

// countingReads counts the reads of the log that reach the store.
type countingReads struct {
	eventstore.Store
	reads atomic.Int64
}

func (c *countingReads) ReadAll(ctx context.Context, q eventstore.AllQuery) (eventstore.Page, error) {
	c.reads.Add(1)
	return c.Store.ReadAll(ctx, q)
}

func appendOne(t *testing.T, s eventstore.Store, stream, typ string) int64 {
	t.Helper()
	res, err := s.Append(context.Background(), stream, domain.ExpectAny, eventstoretest.Ev(typ, 1))
	if err != nil {
		t.Fatal(err)
	}
	return res.Events[0].Position
}

// Followers that read the same new stretch of the log read it from the
// store once between them.
func TestTailFollowersReadTheStoreOnce(t *testing.T) {
	ctx := context.Background()
	store := &countingReads{Store: newPostgres(t, pgtest.NewPool(t))}
	tail := primed(t, store, eventstore.TailOptions{MaxAge: time.Hour})
	const followers = 8
	types := [][]string{nil, {"Deposited"}, {"Opened"}, {"Opened", "Deposited"}}
	for round := 1; round <= 3; round++ {
		head := appendOne(t, tail, fmt.Sprintf("acc-%d", round), "Opened")
		appendOne(t, tail, fmt.Sprintf("acc-%d", round), "Deposited")
		before := store.reads.Load()
		var wg sync.WaitGroup
		for f := 0; f < followers; f++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				q := eventstore.AllQuery{After: head - 1, Types: types[f%len(types)]}
				p, err := tail.ReadAll(ctx, q)
				if err != nil {
					t.Error(err)
					return
				}
				want := 0
				for _, typ := range []string{"Opened", "Deposited"} {
					if q.Types == nil || slices.Contains(q.Types, typ) {
						want++
					}
				}
				if len(p.Events) != want || p.Head != head+1 || p.Next != head+1 {
					t.Errorf("round %d, types %v: %d events, head %d, next %d; want %d, %d, %d", round, q.Types, len(p.Events), p.Head, p.Next, want, head+1, head+1)
				}
			}()
		}
		wg.Wait()
		if n := store.reads.Load() - before; n != 1 {
			t.Errorf("round %d: %d followers made %d reads of the store, want 1", round, followers, n)
		}
		// Caught up and nothing committed since: no read at all.
		if _, err := tail.ReadAll(ctx, eventstore.AllQuery{After: head + 1}); err != nil {
			t.Fatal(err)
		}
		if n := store.reads.Load() - before; n != 1 {
			t.Errorf("round %d: a caught-up reader read the store again (%d reads)", round, n)
		}
	}
}

// A commit the tail hears nothing of (another process's, its notification
// lost) is read once MaxAge has passed, as a follower's own poll would.
func TestTailRereadsAfterMaxAge(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	tail := primed(t, newPostgres(t, pool), eventstore.TailOptions{MaxAge: 200 * time.Millisecond})
	elsewhere := newPostgres(t, pool) // its own broadcaster: the tail is not told
	pos := appendOne(t, elsewhere, "acc-1", "Opened")
	deadline := time.Now().Add(5 * time.Second)
	for {
		p, err := tail.ReadAll(ctx, eventstore.AllQuery{})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Events) == 1 && p.Events[0].Position == pos {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the tail never read an event committed unannounced: %+v", p)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Reads before the window go to the store; the window keeps the newest
// events.
func TestTailWindowSlides(t *testing.T) {
	ctx := context.Background()
	store := &countingReads{Store: eventstore.NewMemory(eventstore.Limits{}, time.Now)}
	tail := primed(t, store, eventstore.TailOptions{Window: 4, MaxAge: time.Hour})
	var positions []int64
	for i := 0; i < 20; i++ {
		positions = append(positions, appendOne(t, tail, fmt.Sprintf("s-%d", i), "Opened"))
		if _, err := tail.ReadAll(ctx, eventstore.AllQuery{After: positions[len(positions)-1] - 1}); err != nil {
			t.Fatal(err)
		}
	}
	before := store.reads.Load()
	p, err := tail.ReadAll(ctx, eventstore.AllQuery{After: positions[17]})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Events) != 2 || store.reads.Load() != before {
		t.Fatalf("read inside the window: %d events, %d store reads; want 2, 0", len(p.Events), store.reads.Load()-before)
	}
	p, err = tail.ReadAll(ctx, eventstore.AllQuery{After: 0, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Events) != 20 || store.reads.Load() != before+1 {
		t.Fatalf("read before the window: %d events, %d store reads; want 20, 1", len(p.Events), store.reads.Load()-before)
	}
}
