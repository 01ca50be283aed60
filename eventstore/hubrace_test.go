package eventstore_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"cqrsgate/domain"
	"cqrsgate/eventstore"
	"cqrsgate/eventstore/eventstoretest"
)

// staleRead holds back the result of the first filtered read it serves
// until released: the read began before a commit, its page reaches the
// subscriber after the hub has handed that commit to the live feed (as a
// read racing a commit does).
type staleRead struct {
	eventstore.Store
	once    sync.Once
	read    chan struct{} // closed when the first filtered read has read
	release chan struct{}
}

func (s *staleRead) ReadAll(ctx context.Context, q eventstore.AllQuery) (eventstore.Page, error) {
	p, err := s.Store.ReadAll(ctx, q)
	if len(q.Types) > 0 {
		s.once.Do(func() { close(s.read); <-s.release })
	}
	return p, err
}

// A subscriber whose catch-up read raced a commit (the hub handed the
// commit to the live feed while the read was on its way) gets that event
// at once, not after the hub's next move or its poll interval.
func TestHubJoinAfterARacingCommitIsNotDelayed(t *testing.T) {
	mem := eventstore.NewMemory(eventstore.Limits{}, time.Now)
	store := &staleRead{Store: mem, read: make(chan struct{}), release: make(chan struct{})}
	h := startHub(t, store) // the production hub: poll 1s
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := mem.Append(ctx, "x-1", domain.ExpectAny, eventstoretest.Ev("X", 0)); err != nil {
		t.Fatal(err)
	}
	for live, _ := h.Stats(); live < 1; live, _ = h.Stats() {
		time.Sleep(5 * time.Millisecond)
	}
	subscribed := make(chan (<-chan domain.RecordedEvent), 1)
	go func() {
		ch, err := h.Subscribe(ctx, eventstore.AllQuery{Types: []string{"X"}, After: 1})
		if err != nil {
			t.Error(err)
		}
		subscribed <- ch
	}()
	<-store.read // the subscriber's first page is read: empty, next = 1
	res, err := mem.Append(ctx, "x-1", domain.ExpectAny, eventstoretest.Ev("X", 1))
	if err != nil {
		t.Fatal(err)
	}
	for live, _ := h.Stats(); live < res.LastPosition; live, _ = h.Stats() {
		time.Sleep(time.Millisecond)
	}
	close(store.release)
	start := time.Now()
	ch := <-subscribed
	select {
	case e := <-ch:
		if e.Position != res.LastPosition {
			t.Fatalf("got %d, want %d", e.Position, res.LastPosition)
		}
		if d := time.Since(start); d > 300*time.Millisecond {
			t.Fatalf("the event committed during the subscriber's first read arrived %v late (the hub had it at once)", d.Round(time.Millisecond))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("never arrived")
	}
}
