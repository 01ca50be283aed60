package eventstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cqrsgate/domain"
	"cqrsgate/eventstore"
	"cqrsgate/eventstore/eventstoretest"
	"cqrsgate/internal/pgtest"
)

func startHub(t *testing.T, s eventstore.Store) *eventstore.Hub {
	t.Helper()
	h := eventstore.NewHub(s, quietLogger())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return h
}

// collect reads n events from ch, failing after a timeout.
func collect(t *testing.T, ch <-chan domain.RecordedEvent, n int) []int64 {
	t.Helper()
	var out []int64
	timeout := time.After(30 * time.Second)
	for len(out) < n {
		select {
		case e, ok := <-ch:
			if !ok {
				t.Fatalf("subscription closed after %d of %d events", len(out), n)
			}
			out = append(out, e.Position)
		case <-timeout:
			t.Fatalf("received %d of %d events", len(out), n)
		}
	}
	return out
}

// TestHubFansOutToManySubscribers: 1,000 subscribers on one hub all receive
// every event of a write burst, in position order, none missing or doubled.
func TestHubFansOutToManySubscribers(t *testing.T) {
	s := newPostgres(t, pgtest.NewPool(t))
	h := startHub(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const subscribers, writers, appends = 1000, 8, 25
	subs := make([]<-chan domain.RecordedEvent, subscribers)
	for i := range subs {
		ch, err := h.Subscribe(ctx, eventstore.AllQuery{})
		if err != nil {
			t.Fatal(err)
		}
		subs[i] = ch
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var written []int64
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < appends; i++ {
				res, err := s.Append(ctx, fmt.Sprintf("fan-%d", w), domain.ExpectAny, eventstoretest.Ev("Tick", i))
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				written = append(written, res.LastPosition)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	want := map[int64]bool{}
	for _, p := range written {
		want[p] = true
	}
	var check sync.WaitGroup
	for i, ch := range subs {
		check.Add(1)
		go func() {
			defer check.Done()
			got := collect(t, ch, len(written))
			for j, p := range got {
				if !want[p] || j > 0 && p <= got[j-1] {
					t.Errorf("subscriber %d: got %v", i, got)
					return
				}
			}
		}()
	}
	check.Wait()
}

// TestHubResumesWithoutGapOrDuplicate: a subscriber that starts far behind,
// while writes go on, catches up from the store and joins the live feed
// with every event exactly once.
func TestHubResumesWithoutGapOrDuplicate(t *testing.T) {
	s := newPostgres(t, pgtest.NewPool(t))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var all []int64
	for i := 0; i < 300; i++ {
		res, _ := s.Append(ctx, "r-1", domain.ExpectAny, eventstoretest.Ev("Tick", i))
		all = append(all, res.LastPosition)
	}
	h := startHub(t, s)
	stop := make(chan struct{})
	writes := make(chan int64, 1000)
	go func() {
		defer close(writes)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			res, err := s.Append(ctx, "r-1", domain.ExpectAny, eventstoretest.Ev("Tick", i))
			if err != nil {
				return
			}
			writes <- res.LastPosition
			time.Sleep(time.Millisecond)
		}
	}()
	after := all[49]
	ch, err := h.Subscribe(ctx, eventstore.AllQuery{After: after, StreamPrefix: "r-"})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	for p := range writes {
		all = append(all, p)
	}
	want := all[50:]
	got := collect(t, ch, len(want))
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("resumed subscriber got %d events, want %d; first difference at %v", len(got), len(want), firstDiff(got, want))
	}
}

func firstDiff(a, b []int64) string {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return fmt.Sprintf("index %d: %d vs %d", i, a[i], b[i])
		}
	}
	return "none"
}

// TestHubSlowSubscriberLosesNothingAndDelaysNoOne: a subscriber that stops
// reading is dropped from the live feed (the others keep receiving), and
// when it reads again it still gets every event, from the store.
func TestHubSlowSubscriberLosesNothingAndDelaysNoOne(t *testing.T) {
	s := eventstore.NewMemory(eventstore.Limits{}, time.Now)
	h := startHub(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	slow, err := h.Subscribe(ctx, eventstore.AllQuery{})
	if err != nil {
		t.Fatal(err)
	}
	fast, err := h.Subscribe(ctx, eventstore.AllQuery{})
	if err != nil {
		t.Fatal(err)
	}
	const n = 3000
	done := make(chan []int64)
	go func() { done <- collect(t, fast, n) }()
	for i := 0; i < n; i++ {
		if _, err := s.Append(ctx, "slow-1", domain.ExpectAny, domain.EventData{Type: "Tick", SchemaVersion: 1, Data: json.RawMessage(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	if got := <-done; len(got) != n {
		t.Fatalf("the fast subscriber got %d of %d", len(got), n)
	}
	got := collect(t, slow, n)
	for i, p := range got {
		if p != int64(i+1) {
			t.Fatalf("the slow subscriber got position %d at index %d", p, i)
		}
	}
}

// TestHubKeepsTenantsApart: a tenant-scoped subscriber receives, from the
// store and live, only its tenant's events.
func TestHubKeepsTenantsApart(t *testing.T) {
	ctx := context.Background()
	s := eventstore.NewMemory(eventstore.Limits{}, time.Now)
	h := startHub(t, s)
	var acme []int64
	appendTo := func(stream string, i int) {
		res, err := s.Append(ctx, stream, domain.ExpectAny, eventstoretest.Ev("Tick", i))
		if err != nil {
			t.Fatal(err)
		}
		if domain.TenantOf(stream) == "acme" {
			acme = append(acme, res.LastPosition)
		}
	}
	streams := []string{"acme~r-1", "r-1", "globex~r-1", "acme~r-2"}
	for i, stream := range streams {
		appendTo(stream, i)
	}
	tenant := "acme"
	sub, cancel := context.WithCancel(ctx)
	defer cancel()
	ch, err := h.Subscribe(sub, eventstore.AllQuery{Tenant: &tenant})
	if err != nil {
		t.Fatal(err)
	}
	for i, stream := range streams {
		appendTo(stream, 10+i)
	}
	appendTo("acme~r-3", 99) // the last one, so that nothing else can follow it
	got := collect(t, ch, len(acme))
	if fmt.Sprint(got) != fmt.Sprint(acme) {
		t.Fatalf("acme's subscriber got %v, want %v", got, acme)
	}
	select {
	case e := <-ch:
		t.Fatalf("acme's subscriber also got %s", e.StreamID)
	case <-time.After(100 * time.Millisecond):
	}
}

// TestHubIdleSubscribersHoldNoGoroutine: a live subscriber with nothing to
// deliver has no goroutine (10,000 idle dashboards cost no stacks), yet it
// receives the next event at once, and its channel closes when its context
// ends, idle or not.
func TestHubIdleSubscribersHoldNoGoroutine(t *testing.T) {
	s := eventstore.NewMemory(eventstore.Limits{}, time.Now)
	h := startHub(t, s)
	ctx := context.Background()
	if _, err := s.Append(ctx, "idle-0", domain.ExpectAny, eventstoretest.Ev("Tick", 0)); err != nil {
		t.Fatal(err)
	}
	waitLive := func(n int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for h.Subscribers() != n {
			if time.Now().After(deadline) {
				t.Fatalf("%d live subscribers, want %d", h.Subscribers(), n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitLive(0)
	before := runtime.NumGoroutine()
	const n = 200
	subs := make([]<-chan domain.RecordedEvent, n)
	cancels := make([]context.CancelFunc, n)
	for i := range subs {
		sctx, cancel := context.WithCancel(ctx)
		cancels[i] = cancel
		ch, err := h.Subscribe(sctx, eventstore.AllQuery{})
		if err != nil {
			t.Fatal(err)
		}
		subs[i] = ch
	}
	for _, ch := range subs {
		collect(t, ch, 1) // the stored event, while catching up
	}
	waitLive(n)
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine()-before > 10 {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines more than before %d idle live subscribers", runtime.NumGoroutine()-before, n)
		}
		time.Sleep(5 * time.Millisecond)
	}

	res, err := s.Append(ctx, "idle-1", domain.ExpectAny, eventstoretest.Ev("Tick", 1))
	if err != nil {
		t.Fatal(err)
	}
	for i, ch := range subs {
		if got := collect(t, ch, 1); got[0] != res.LastPosition {
			t.Fatalf("subscriber %d got position %d, want %d", i, got[0], res.LastPosition)
		}
	}
	for i, cancel := range cancels {
		cancel()
		select {
		case e, ok := <-subs[i]:
			if ok {
				t.Fatalf("subscriber %d: event %d after its context ended", i, e.Position)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("subscriber %d: channel still open after its context ended", i)
		}
	}
	waitLive(0)
}

// TestSubscribeFuncDeliversInOrderAndEndsOnce: SubscribeFunc calls deliver
// for each event in order, one call at a time, and ended exactly once when
// the subscriber's context ends; nothing is delivered after that.
func TestSubscribeFuncDeliversInOrderAndEndsOnce(t *testing.T) {
	s := eventstore.NewMemory(eventstore.Limits{}, time.Now)
	h := startHub(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	var got []string
	inDeliver, ends := 0, 0
	endedCh := make(chan struct{})
	err := h.SubscribeFunc(ctx, eventstore.AllQuery{}, func(e domain.RecordedEvent) bool {
		mu.Lock()
		inDeliver++
		if inDeliver > 1 {
			t.Error("deliver called concurrently")
		}
		if ends > 0 {
			t.Error("deliver called after ended")
		}
		got = append(got, e.StreamID)
		mu.Unlock()
		time.Sleep(time.Millisecond)
		mu.Lock()
		inDeliver--
		mu.Unlock()
		return true
	}, func() {
		mu.Lock()
		ends++
		mu.Unlock()
		close(endedCh)
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if _, err := s.Append(ctx, fmt.Sprintf("f-%d", i), domain.ExpectAny, eventstoretest.Ev("Tick", i)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor := func(n int) {
		deadline := time.Now().Add(10 * time.Second)
		for {
			mu.Lock()
			l := len(got)
			mu.Unlock()
			if l >= n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("delivered %d of %d", l, n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitFor(5)
	cancel()
	select {
	case <-endedCh:
	case <-time.After(10 * time.Second):
		t.Fatal("ended not called after cancel")
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{"f-0", "f-1", "f-2", "f-3", "f-4"}
	if fmt.Sprint(got) != fmt.Sprint(want) || ends != 1 {
		t.Fatalf("delivered %v, ended %d times; want %v, once", got, ends, want)
	}
}

// TestHubLiveSubscribersShareBatches: subscribers to the whole log are
// handed the hub's own live batches, the same events in memory for each
// (a fan-out copies no event per subscriber), never an empty batch, and
// each one capped so that an append by one subscriber cannot write into
// what another reads.
func TestHubLiveSubscribersShareBatches(t *testing.T) {
	s := eventstore.NewMemory(eventstore.Limits{}, time.Now)
	h, ctx := startHub(t, s), t.Context()
	var mu sync.Mutex
	got := make([][][]domain.RecordedEvent, 2)
	counts := make([]int, 2)
	for i := range got {
		err := h.SubscribeBatches(ctx, eventstore.AllQuery{}, func(events []domain.RecordedEvent) bool {
			mu.Lock()
			defer mu.Unlock()
			got[i] = append(got[i], events)
			counts[i] += len(events)
			return true
		}, func() {})
		if err != nil {
			t.Fatal(err)
		}
	}
	for deadline := time.Now().Add(10 * time.Second); h.Subscribers() < 2; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the subscribers never joined the live feed")
		}
	}
	const appends, each = 5, 3
	for i := 0; i < appends; i++ {
		if _, err := s.Append(ctx, fmt.Sprintf("share-%d", i), domain.ExpectNoStream, eventstoretest.Ev("Tick", 1), eventstoretest.Ev("Tick", 2), eventstoretest.Ev("Tick", 3)); err != nil {
			t.Fatal(err)
		}
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		mu.Lock()
		done := counts[0] == appends*each && counts[1] == appends*each
		mu.Unlock()
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("delivered %v events, want %d each", counts, appends*each)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	first := map[int64]*domain.RecordedEvent{} // by the batch's first position: subscriber 0's batch
	for _, b := range got[0] {
		first[b[0].Position] = &b[0]
	}
	want := int64(1)
	for _, b := range got[1] {
		if len(b) == 0 {
			t.Fatal("an empty batch was delivered")
		}
		if cap(b) != len(b) {
			t.Fatalf("a batch of %d events has capacity %d: an append would write into the hub's page", len(b), cap(b))
		}
		for _, e := range b {
			if e.Position != want {
				t.Fatalf("subscriber 1 got position %d, want %d", e.Position, want)
			}
			want++
		}
		if p := first[b[0].Position]; p != &b[0] {
			t.Fatalf("the batch from position %d is a copy for each subscriber, not the hub's own (subscriber 0 got a batch from there: %v)", b[0].Position, p != nil)
		}
	}
}

// TestHubForgetsSubscribersCancelledWhileCatchingUp: a subscriber whose
// context ends before it has joined the live feed never joins it.
func TestHubForgetsSubscribersCancelledWhileCatchingUp(t *testing.T) {
	s := eventstore.NewMemory(eventstore.Limits{}, time.Now)
	h := startHub(t, s)
	for i := 0; i < 5; i++ {
		if _, err := s.Append(context.Background(), "gone-1", domain.ExpectAny, eventstoretest.Ev("Tick", i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 3000; i++ {
		ctx, cancel := context.WithCancel(context.Background())
		ch, err := h.Subscribe(ctx, eventstore.AllQuery{})
		if err != nil {
			t.Fatal(err)
		}
		if i%4 == 0 {
			runtime.Gosched() // let some get further before they are cancelled
		}
		cancel()
		for range ch { // the channel closes
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for h.Subscribers() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d cancelled subscribers are still on the live feed", h.Subscribers())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// failingReads fails the reads of the log it is told to fail, as a
// database that goes away for a moment does.
type failingReads struct {
	eventstore.Store
	fail atomic.Int64 // how many of the next reads fail
}

func (f *failingReads) ReadAll(ctx context.Context, q eventstore.AllQuery) (eventstore.Page, error) {
	if f.fail.Add(-1) >= 0 {
		return eventstore.Page{}, errors.New("connection reset by peer")
	}
	f.fail.Store(0)
	return f.Store.ReadAll(ctx, q)
}

// A failed read of the log (the database restarting, a connection reset)
// does not stop the hub: it reads again, and its live subscribers get the
// events committed meanwhile and after, none missing or doubled.
func TestHubOutlivesFailedReads(t *testing.T) {
	store := &failingReads{Store: eventstore.NewMemory(eventstore.Limits{}, time.Now)}
	h := eventstore.NewHubPolling(store, quietLogger(), 50*time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v, want nil when its context ends", err)
		}
	}()
	sub, err := h.Subscribe(ctx, eventstore.AllQuery{})
	if err != nil {
		t.Fatal(err)
	}
	var want []int64
	appendOne := func() {
		res, err := store.Append(ctx, fmt.Sprintf("s-%d", len(want)), domain.ExpectAny, eventstoretest.Ev("Noted", len(want)))
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, res.Events[0].Position)
	}
	appendOne()
	got := collect(t, sub, 1)
	for round := 0; round < 2; round++ {
		store.fail.Store(3) // the hub's next reads fail
		appendOne()
		appendOne()
		got = append(got, collect(t, sub, 2)...)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("the subscriber got %v, want %v", got, want)
	}
}

// catchingUpOverFailingReads appends 1,200 events (three pages of catching
// up) to a failingReads store, runs a hub over it polling every 20 ms and
// subscribes from the start: the subscriber catches up from the store. It
// returns the store, the subscription and the events' positions.
func catchingUpOverFailingReads(t *testing.T) (*failingReads, <-chan domain.RecordedEvent, []int64) {
	t.Helper()
	store := &failingReads{Store: eventstore.NewMemory(eventstore.Limits{}, time.Now)}
	ctx, cancel := context.WithCancel(context.Background())
	var want []int64
	for i := range 1200 {
		res, err := store.Append(ctx, fmt.Sprintf("s-%d", i), domain.ExpectAny, eventstoretest.Ev("Noted", i))
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		want = append(want, res.Events[0].Position)
	}
	h := eventstore.NewHubPolling(store, quietLogger(), 20*time.Millisecond)
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	sub, err := h.Subscribe(ctx, eventstore.AllQuery{})
	if err != nil {
		t.Fatal(err)
	}
	return store, sub, want
}

// A subscriber catching up from the store (a client resuming from long
// ago) outlives failed reads too: it tries again and gets every event once,
// in order, rather than end.
func TestHubSubscribersCatchUpThroughFailedReads(t *testing.T) {
	store, sub, want := catchingUpOverFailingReads(t)
	got := collect(t, sub, 100)
	store.fail.Store(3) // the next reads, the subscriber's among them, fail
	got = append(got, collect(t, sub, len(want)-100)...)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("the subscriber got %d events, want %d in order", len(got), len(want))
	}
}

// A subscriber catching up from the store when the database goes away
// reads again as soon as the hub can read the log again, not at its next
// try: those are further and further apart (up to 30 seconds), and it
// caught up that much later than the subscribers on the live feed.
func TestHubSubscribersCatchUpAsSoonAsTheStoreIsBack(t *testing.T) {
	store, sub, want := catchingUpOverFailingReads(t)
	got := collect(t, sub, 100)
	store.fail.Store(1 << 40)                  // away: every read fails
	got = append(got, collect(t, sub, 400)...) // the rest of the first page
	// Its tries, 20 ms apart and then twice as far each time, are 1.3 s
	// and then 2.6 s apart by now.
	time.Sleep(3 * time.Second)
	store.fail.Store(0) // back
	back := time.Now()
	got = append(got, collect(t, sub, 1)...)
	if took := time.Since(back); took > time.Second {
		t.Errorf("the subscriber read again %v after the store was back", took)
	}
	got = append(got, collect(t, sub, len(want)-len(got))...)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("the subscriber got %d events, want %d in order", len(got), len(want))
	}
}

// TestHubBoundsWhatASlowSubscriberHolds: the live batches queued for a
// subscriber that reads nothing hold at most hubQueueEvents events and
// hubQueueBytes bytes (one batch alone may be larger); beyond that the
// subscriber is dropped from the live feed and, once it reads again,
// catches up from the store with nothing missing or doubled. It held 64
// batches of any size: in a bulk import, 640,000 events, and the data of
// events the Tail had let go.
func TestHubBoundsWhatASlowSubscriberHolds(t *testing.T) {
	for _, tc := range []struct {
		name          string
		data          string
		events, bytes int
	}{
		{"events", `{}`, 300, 64 << 20},
		{"bytes", `{"pad":"` + strings.Repeat("x", 1000) + `"}`, 1 << 20, 100_000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer eventstore.SetHubQueueLimits(tc.events, tc.bytes)()
			s := eventstore.NewMemory(eventstore.Limits{}, time.Now)
			h := startHub(t, s)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			release := make(chan struct{})
			got := make(chan int64, 100_000)
			queued, err := h.SubscribeFuncQueued(ctx, eventstore.AllQuery{}, func(e domain.RecordedEvent) bool {
				<-release
				got <- e.Position
				return true
			}, func() {})
			if err != nil {
				t.Fatal(err)
			}
			const appends, each = 200, 10
			for i := 0; i < appends; i++ {
				batch := make([]domain.EventData, each)
				for j := range batch {
					batch[j] = domain.EventData{Type: "Tick", SchemaVersion: 1, Data: json.RawMessage(tc.data)}
				}
				if _, err := s.Append(ctx, fmt.Sprintf("bulk-%d", i), domain.ExpectNoStream, batch...); err != nil {
					t.Fatal(err)
				}
			}
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
				if live, _ := h.Stats(); live >= appends*each {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the hub never read the whole log")
				}
			}
			batches, events, bytes := queued()
			if batches > 1 && (events > tc.events || bytes > tc.bytes) {
				t.Fatalf("a subscriber that read nothing holds %d batches, %d events, %d bytes; at most %d events and %d bytes", batches, events, bytes, tc.events, tc.bytes)
			}
			close(release)
			for want := int64(1); want <= appends*each; want++ {
				select {
				case p := <-got:
					if p != want {
						t.Fatalf("got position %d, want %d", p, want)
					}
				case <-time.After(10 * time.Second):
					t.Fatalf("no event after position %d", want-1)
				}
			}
		})
	}
}
