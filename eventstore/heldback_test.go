package eventstore_test

import (
	"context"
	"testing"
	"time"

	"cqrsgate/domain"
	"cqrsgate/eventstore"
	"cqrsgate/eventstore/eventstoretest"
	"cqrsgate/internal/pgtest"
)

// An older transaction that is not an append (a projection's batch, a
// checkpoint's move) hides an append's event from readers after the append
// has announced it; when it ends, nothing is announced. A follower woken by
// the append, which found nothing, still gets the event as soon as the
// older transaction ends, not at its next poll: on the store itself and
// through a Tail (whose MaxAge would otherwise hold it for a second).
func TestFollowersGetEventsHeldBackByAnOlderTransaction(t *testing.T) {
	for _, viaTail := range []bool{false, true} {
		pool := pgtest.NewPool(t)
		raw := newPostgres(t, pool)
		var s eventstore.Store = raw
		if viaTail {
			s = eventstore.NewTail(raw, eventstore.TailOptions{MaxAge: time.Minute})
		}
		first := appendOne(t, s, "acc-0", "Opened")
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		got := make(chan time.Time, 10)
		reads := make(chan struct{}, 100)
		counting := &readNotifier{Store: s, reads: reads}
		go func() {
			// A poll far longer than the test: only a wake-up brings the event.
			_ = eventstore.Follow(ctx, counting, eventstore.AllQuery{After: first}, time.Hour, func(p eventstore.Page) error {
				got <- time.Now()
				return nil
			})
		}()
		<-reads // the follower has read once and waits
		blocker, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := blocker.Exec(ctx, "SELECT pg_current_xact_id()"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Append(ctx, "acc-1", domain.ExpectAny, eventstoretest.Ev("Opened", 1)); err != nil {
			t.Fatal(err)
		}
		<-reads // woken by the append: it reads, and finds the event hidden
		select {
		case <-got:
			t.Fatalf("viaTail=%v: the event was read while an older transaction was open", viaTail)
		case <-time.After(300 * time.Millisecond):
		}
		if err := blocker.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		ended := time.Now()
		select {
		case at := <-got:
			if d := at.Sub(ended); d > 2*time.Second {
				t.Errorf("viaTail=%v: the event reached the follower %v after the older transaction ended", viaTail, d)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("viaTail=%v: the event never reached the follower after the older transaction ended", viaTail)
		}
		cancel()
	}
}

// readNotifier tells of each read of the log it passes on.
type readNotifier struct {
	eventstore.Store
	reads chan<- struct{}
}

func (r *readNotifier) ReadAll(ctx context.Context, q eventstore.AllQuery) (eventstore.Page, error) {
	p, err := r.Store.ReadAll(ctx, q)
	select {
	case r.reads <- struct{}{}:
	default:
	}
	return p, err
}
