package eventstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
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
// does, over PostgreSQL and in memory; a small window, in events or in
// bytes, makes some reads fall before it and go to the store.
func TestTailConformance(t *testing.T) {
	for _, opts := range []eventstore.TailOptions{{Window: 4096}, {Window: 3}, {MaxBytes: 100}} {
		name := fmt.Sprintf("window%d", opts.Window)
		if opts.MaxBytes > 0 {
			name = fmt.Sprintf("maxbytes%d", opts.MaxBytes)
		}
		t.Run("Postgres/"+name, func(t *testing.T) {
			eventstoretest.Run(t, func(t *testing.T) eventstore.Store {
				return primed(t, newPostgres(t, pgtest.NewPool(t)), opts)
			})
		})
		t.Run("Memory/"+name, func(t *testing.T) {
			eventstoretest.Run(t, func(t *testing.T) eventstore.Store {
				return primed(t, eventstore.NewMemory(eventstore.Limits{}, time.Now), opts)
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

// As the window slides over many reads of the store, of every size up to
// several windows at once, the tail answers each read, filtered or not, as
// the store does, and a page it handed out earlier keeps its events: the
// window reuses its memory, so a page must never share it.
func TestTailPagesOutliveTheWindow(t *testing.T) {
	ctx := context.Background()
	store := eventstore.NewMemory(eventstore.Limits{}, time.Now)
	const window = 8
	tail := primed(t, store, eventstore.TailOptions{Window: window, MaxAge: time.Hour})
	types := []string{"Opened", "Deposited", "Closed"}
	queries := func(after int64) []eventstore.AllQuery {
		return []eventstore.AllQuery{
			{After: after, Limit: 1000},
			{After: after, Limit: 3},
			{After: after, Limit: 1000, Types: []string{"Deposited"}},
			{After: after, Limit: 2, Types: []string{"Opened", "Closed"}},
			{After: after, Limit: 1000, StreamPrefix: "s-1"},
		}
	}
	type kept struct {
		page eventstore.Page
		want []domain.RecordedEvent
	}
	var pages []kept
	var seen int64 // how far a follower reading everything has read
	n := 0
	for burst := 0; burst < 120; burst++ {
		for range burst * 7 % 19 { // 0 to 18 events: up to more than two windows between reads
			n++
			appendOne(t, store, fmt.Sprintf("s-%d", n%17), types[n%len(types)])
		}
		next := seen
		for _, back := range []int64{0, 1, 3, window} {
			for j, q := range queries(max(0, seen-back)) {
				got, err := tail.ReadAll(ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				want, err := store.ReadAll(ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				// A full page from the window tells the head the tail last
				// read, which may be behind the store's.
				if !slices.EqualFunc(got.Events, want.Events, sameEvent) || got.Next != want.Next || got.Head > want.Head || got.Head < got.Next {
					t.Fatalf("burst %d, %+v: the tail read %d events (next %d, head %d), the store %d (next %d, head %d)",
						burst, q, len(got.Events), got.Next, got.Head, len(want.Events), want.Next, want.Head)
				}
				pages = append(pages, kept{got, slices.Clone(want.Events)})
				if back == 0 && j == 0 {
					next = got.Next // the follower keeps up
				}
			}
		}
		seen = next
	}
	for i, k := range pages {
		if !slices.EqualFunc(k.page.Events, k.want, sameEvent) {
			t.Fatalf("page %d changed after it was returned: %v, want %v", i, positionsOf(k.page.Events), positionsOf(k.want))
		}
	}
}

func sameEvent(a, b domain.RecordedEvent) bool {
	return a.ID == b.ID && a.Position == b.Position && a.StreamID == b.StreamID && a.Type == b.Type && string(a.Data) == string(b.Data)
}

func positionsOf(evs []domain.RecordedEvent) []int64 {
	out := make([]int64, len(evs))
	for i, e := range evs {
		out[i] = e.Position
	}
	return out
}

// A burst of commits longer than the window (a large import, or followers
// held up for a moment under load) is read in window-sized stretches, and
// afterwards the tail serves the followers again: they do not each go on
// reading the store for ever.
func TestTailServesAgainAfterABurstLongerThanItsWindow(t *testing.T) {
	ctx := context.Background()
	store := &countingReads{Store: eventstore.NewMemory(eventstore.Limits{}, time.Now)}
	const window = 4
	tail := primed(t, store, eventstore.TailOptions{Window: window, MaxAge: time.Hour})
	var head int64
	for i := range 3*window + 1 {
		head = appendOne(t, tail, fmt.Sprintf("s-%d", i), "Opened")
	}
	// A follower reads through the burst, a page at a time.
	var after int64
	for pages := 0; after < head; pages++ {
		if pages > 3*window+1 {
			t.Fatalf("the follower is stuck at %d of %d", after, head)
		}
		p, err := tail.ReadAll(ctx, eventstore.AllQuery{After: after, Limit: 2})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Events) == 0 {
			t.Fatalf("an empty page at %d of %d: %+v", after, head, p)
		}
		after = p.Events[len(p.Events)-1].Position
	}
	// Caught up. One more commit: followers reading after the head share
	// one read of the store again.
	head = appendOne(t, tail, "s-last", "Opened")
	before := store.reads.Load()
	for f := range 3 {
		p, err := tail.ReadAll(ctx, eventstore.AllQuery{After: after})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Events) != 1 || p.Events[0].Position != head {
			t.Fatalf("follower %d read %d events after %d; want the one at %d", f, len(p.Events), after, head)
		}
	}
	if n := store.reads.Load() - before; n != 1 {
		t.Errorf("3 followers made %d reads of the store for the commit after the burst; want 1", n)
	}
}

// Followers that catch up through the store and come out past the
// window's head (commits went on meanwhile) are served by the tail again
// once it reads on to them: they do not each go on reading the store.
func TestTailCatchesUpWithFollowersAheadOfIt(t *testing.T) {
	ctx := context.Background()
	store := &countingReads{Store: eventstore.NewMemory(eventstore.Limits{}, time.Now)}
	for i := range 10 {
		appendOne(t, store, fmt.Sprintf("s-%d", i), "Opened")
	}
	tail := primed(t, store, eventstore.TailOptions{Window: 8, MaxAge: time.Hour}) // the window opens at 10
	var head int64
	for i := range 5 {
		head = appendOne(t, tail, fmt.Sprintf("t-%d", i), "Opened")
	}
	// Each follower reads from before the window, through the store, to
	// the head, past the tail's.
	const followers = 3
	for f := range followers {
		p, err := tail.ReadAll(ctx, eventstore.AllQuery{After: 5})
		if err != nil {
			t.Fatal(err)
		}
		if p.Next != head {
			t.Fatalf("follower %d: next %d after a read to the head, want %d", f, p.Next, head)
		}
	}
	head = appendOne(t, tail, "t-last", "Opened")
	before := store.reads.Load()
	for f := range followers {
		p, err := tail.ReadAll(ctx, eventstore.AllQuery{After: head - 1})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Events) != 1 || p.Events[0].Position != head {
			t.Fatalf("follower %d read %d events; want the one at %d", f, len(p.Events), head)
		}
	}
	if n := store.reads.Load() - before; n != 1 {
		t.Errorf("%d followers ahead of the window made %d reads of the store for one commit; want 1", followers, n)
	}
	// A position no event has reached yet is the store's to answer (an
	// empty page), and the tail does not chase it.
	before = store.reads.Load()
	p, err := tail.ReadAll(ctx, eventstore.AllQuery{After: head + 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Events) != 0 || store.reads.Load()-before != 1 {
		t.Errorf("a read far past the head: %d events, %d reads of the store; want 0, 1", len(p.Events), store.reads.Load()-before)
	}
}

// pageBytes records the most data and metadata one read of the log
// returned.
type pageBytes struct {
	eventstore.Store
	most atomic.Int64
}

func (p *pageBytes) ReadAll(ctx context.Context, q eventstore.AllQuery) (eventstore.Page, error) {
	page, err := p.Store.ReadAll(ctx, q)
	n := 0
	for _, e := range page.Events {
		n += len(e.Data) + len(e.Metadata)
	}
	if int64(n) > p.most.Load() {
		p.most.Store(int64(n))
	}
	return page, err
}

// The tail's window is bounded in bytes as well as in events: events of
// 1 MB each (within the default limits), far fewer than a window, are not
// all held, nor read from the store in one page; a reader before the
// window is answered by the store, as before a window bounded by count.
func TestTailHoldsAtMostMaxBytes(t *testing.T) {
	ctx := context.Background()
	store := &pageBytes{Store: eventstore.NewMemory(eventstore.Limits{}, time.Now)}
	tail := primed(t, store, eventstore.TailOptions{})
	const maxBytes = 64 << 20 // the default
	blob := json.RawMessage(`{"blob":"` + strings.Repeat("x", 1_000_000-11) + `"}`)
	var head int64
	for i := range 5 {
		evs := make([]domain.EventData, 16)
		for j := range evs {
			evs[j] = domain.EventData{Type: "Blob", SchemaVersion: 1, Data: blob}
		}
		res, err := tail.Append(ctx, fmt.Sprintf("blob-%d", i), domain.ExpectNoStream, evs...)
		if err != nil {
			t.Fatal(err)
		}
		head = res.LastPosition
	}
	// A follower reads the new stretch through the tail, keeping nothing.
	p, err := tail.ReadAll(ctx, eventstore.AllQuery{Types: []string{"Other"}})
	if err != nil {
		t.Fatal(err)
	}
	if p.Next != head {
		t.Fatalf("a follower read to %d; want the head, %d", p.Next, head)
	}
	if n := tail.HeldBytes(); n > maxBytes {
		t.Errorf("the tail holds %d bytes of events; want at most %d", n, maxBytes)
	}
	if n := store.most.Load(); n > maxBytes {
		t.Errorf("the tail read %d bytes of events in one page; want at most %d", n, maxBytes)
	}
	p, err = tail.ReadAll(ctx, eventstore.AllQuery{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Events) != 80 || p.Events[0].Position != 1 || p.Next != head {
		t.Errorf("a read from the start: %d events, next %d; want 80 from position 1 to %d", len(p.Events), p.Next, head)
	}
}
