package eventstore

import (
	"context"
	"sort"
	"sync"
	"time"

	"cqrsgate/domain"
)

// Tail serves reads of the newest part of the log from memory, so that the
// followers of the log in one process (the projections, the process
// managers, the subscription hub, GraphQL queries of recent events) read
// each new stretch of it from the store once between them rather than
// once each. Everything but ReadAll goes to the store it wraps.
//
// The tail holds every event in a window: those it read after the head
// of its first read, the newest Window of them at least (at most twice as
// many), unless they hold more than MaxBytes of data and metadata. A read
// after a position inside the window is answered from it, filtered in
// memory exactly as the store filters; a read before the window (a
// projection catching up, a client resuming from long ago) goes to the
// store. When a reader has seen the whole window, the tail reads the store
// after it, once for every reader waiting then (the first reads, the
// others wait for its page), at most Window events or MaxBytes at a time:
// after a longer burst of commits it reads on as its readers reach the end
// of what it holds. A reader past the window's head (one that caught up
// through the store while commits went on) also makes it read on, so that
// such readers come back to sharing its reads. It reads again only when
// the store has reported a commit since its last read began (Changed), or
// when that read is older than MaxAge (the same safety net against lost
// notifications the followers' own polls are). So a page from the tail
// holds every event whose commit was announced before the read began (a
// commit announced later wakes a reader that took Changed before reading,
// as the Store contract asks), and it is as gap-safe as the store's pages,
// since every event the tail holds was read from the store.
type Tail struct {
	Store
	opts TailOptions

	mu      sync.Mutex
	started bool
	events  []domain.RecordedEvent // every event in (from, head], in position order
	bytes   int                    // their data and metadata
	from    int64
	head    int64
	more    bool            // the last read of the store stopped at the window's size (or MaxBytes), not at its head
	seen    int64           // the store's head as the last read of it saw it: head, or beyond while more
	changed <-chan struct{} // taken before the last read of the store began
	readAt  time.Time       // when it began
	reading chan struct{}   // non-nil while a read of the store runs; closed when done
	begun   uint64          // reads of the store begun (each numbered)
	done    uint64          // the number of the last one that succeeded
}

// TailOptions tune a Tail.
type TailOptions struct {
	// Window is the fewest events held once that many were read; at most
	// twice as many are (default 4096).
	Window int
	// MaxBytes bounds the events' data and metadata held (default 64 MiB):
	// once the window holds more, its oldest events go, even below Window.
	// A read of the store stops once it has read MaxBytes, in pages sized
	// by the mean size of the events before them, so that it reads little
	// more (more only when events are far larger than those before them).
	// Readers before the window read the store.
	MaxBytes int
	// MaxAge is how long a read of the store answers for the newest part
	// of the log when the store reports no commit (default 1s).
	MaxAge time.Duration
}

// NewTail returns a Tail over store.
func NewTail(store Store, opts TailOptions) *Tail {
	if opts.Window <= 0 {
		opts.Window = 4096
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = 64 << 20
	}
	if opts.MaxAge <= 0 {
		opts.MaxAge = time.Second
	}
	return &Tail{Store: store, opts: opts}
}

// appendChecked forwards a checked append (see Schematized.Append) to the
// store under the tail, which must be able to check it: the schema
// registry's checks are not to be lost to the wrapping.
func (t *Tail) appendChecked(ctx context.Context, stream string, expected domain.ExpectedVersion, schemaRev int64, events ...domain.EventData) (domain.AppendResult, error) {
	c, ok := t.Store.(checkedAppender)
	if !ok {
		return t.Store.Append(ctx, stream, expected, events...)
	}
	return c.appendChecked(ctx, stream, expected, schemaRev, events...)
}

// ReadAll implements Store.
func (t *Tail) ReadAll(ctx context.Context, q AllQuery) (Page, error) {
	limit, err := checkAllQuery(q)
	if err != nil {
		return Page{}, err
	}
	t.mu.Lock()
	called := t.begun // reads of the store begun before this call
	for {
		if !t.started || q.After < t.from {
			started := t.started
			t.mu.Unlock()
			if started {
				return t.Store.ReadAll(ctx, q) // before the window
			}
			return t.start(ctx, q)
		}
		if q.After > t.head {
			// After the window: the reader read the store past its head
			// (catching up from before the window while commits went on),
			// or asks for a position no event has reached. The tail reads
			// on when there is more to read, so that the followers there
			// share its reads again; otherwise the store answers.
			if t.upToDate(called) {
				t.mu.Unlock()
				return t.Store.ReadAll(ctx, q)
			}
		} else if page := t.serve(q, limit); len(page.Events) == limit || t.upToDate(called) {
			// A full page, or a short one that says the reader is caught up.
			t.mu.Unlock()
			return page, nil
		}
		if wait := t.reading; wait != nil {
			t.mu.Unlock()
			select {
			case <-wait:
			case <-ctx.Done():
				return Page{}, ctx.Err()
			}
			t.mu.Lock()
			continue
		}
		done := make(chan struct{})
		t.reading = done
		t.begun++
		n, after, mean := t.begun, t.head, t.mean()
		t.mu.Unlock()
		err := t.extend(ctx, after, n, mean)
		t.mu.Lock()
		t.reading = nil
		close(done)
		if err != nil {
			t.mu.Unlock()
			return Page{}, err
		}
	}
}

// start answers the first read from the store and opens the window at the
// head that read saw: the tail holds only what is read after that.
func (t *Tail) start(ctx context.Context, q AllQuery) (Page, error) {
	changed := t.Store.Changed()
	at := time.Now()
	page, err := t.Store.ReadAll(ctx, q)
	if err != nil {
		return Page{}, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.started {
		t.started = true
		t.from, t.head, t.seen = page.Head, page.Head, page.Head
		t.changed, t.readAt = changed, at
	}
	return page, nil
}

// upToDate reports whether the window holds everything a call that began
// when called reads of the store had begun may be told of: its last read
// of the store did not stop at the window's size (more), and it began after
// every commit announced before the call (the caller takes Changed before
// it reads, so it hears of the later ones). t.mu is held.
func (t *Tail) upToDate(called uint64) bool {
	return !t.more && (!t.stale() || t.done > called)
}

// stale reports whether a read of the store may find events after the
// window. t.mu is held.
func (t *Tail) stale() bool {
	select {
	case <-t.changed:
		return true
	default:
		return time.Since(t.readAt) >= t.opts.MaxAge
	}
}

// firstPage is the size of a read of the store when nothing tells the
// events' size (the window is empty): a short read sizes the next pages.
const firstPage = 64

// mean is the mean size of the events held (data and metadata; 0 for
// none). t.mu is held.
func (t *Tail) mean() int {
	if len(t.events) == 0 {
		return 0
	}
	return max(1, t.bytes/len(t.events))
}

// extend reads the store after position after (the window's head) and adds
// what it finds to the window; n numbers the read, and mean is the mean
// size of the events held (0: unknown), which sizes its first page.
func (t *Tail) extend(ctx context.Context, after int64, n uint64, mean int) error {
	changed := t.Store.Changed() // before the read: a commit during it makes the window stale again
	at := time.Now()
	var read []domain.RecordedEvent
	size := 0 // of read's data and metadata
	next, seen, more := after, after, false
	for !more {
		want := min(MaxLimit, t.opts.Window-len(read))
		if len(read) > 0 {
			mean = max(1, size/len(read))
		}
		if mean == 0 {
			want = min(want, firstPage)
		} else if fit := (t.opts.MaxBytes - size) / mean; fit < want {
			if fit < 1 && len(read) > 0 {
				more = true // MaxBytes is read
				break
			}
			want = max(1, fit)
		}
		page, err := t.Store.ReadAll(ctx, AllQuery{After: next, Limit: want})
		if err != nil {
			return err
		}
		if read == nil {
			read = page.Events // most reads take one page: no copy of it
		} else {
			read = append(read, page.Events...)
		}
		for _, e := range page.Events {
			size += eventBytes(e)
		}
		next, seen = page.Next, page.Head
		if len(page.Events) < want {
			break // everything up to the store's head is read
		}
		more = len(read) >= t.opts.Window || size >= t.opts.MaxBytes
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.events = append(t.events, read...)
	t.bytes += size
	// Keep the newest Window events once twice as many are held: dropping
	// only then keeps the moving to once per Window events read, and once
	// the array has grown to hold a window and a read (at most 3*Window) it
	// is never replaced. And keep no more than MaxBytes: the oldest go
	// until the rest fits.
	drop, dropped := 0, 0
	if len(t.events) > 2*t.opts.Window {
		drop = len(t.events) - t.opts.Window
		for _, e := range t.events[:drop] {
			dropped += eventBytes(e)
		}
	}
	for ; t.bytes-dropped > t.opts.MaxBytes; drop++ {
		dropped += eventBytes(t.events[drop])
	}
	if drop > 0 {
		// The newest events move to the front of the same array (serve
		// copies what it returns, so nothing else refers to it).
		t.from = t.events[drop-1].Position
		kept := copy(t.events, t.events[drop:])
		clear(t.events[kept:]) // let the dropped events' data go
		t.events = t.events[:kept]
		t.bytes -= dropped
	}
	t.head, t.seen, t.more = next, max(seen, next), more
	t.changed, t.readAt, t.done = changed, at, n
	return nil
}

// serve answers q from the window (q.After is in [from, head]). t.mu is
// held.
func (t *Tail) serve(q AllQuery, limit int) Page {
	i := sort.Search(len(t.events), func(i int) bool { return t.events[i].Position > q.After })
	// Count the matches first, so that the page is allocated once at its
	// size: most reads by the followers match few of the events they pass.
	end, n := i, 0
	if q.filtered() {
		for ; end < len(t.events) && n < limit; end++ {
			if q.Matches(t.events[end]) {
				n++
			}
		}
	} else {
		n = min(limit, len(t.events)-i)
		end = i + n
	}
	page := Page{Events: make([]domain.RecordedEvent, 0, n), Head: t.head}
	for _, e := range t.events[i:end] {
		if n == end-i || q.Matches(e) {
			page.Events = append(page.Events, e)
		}
	}
	page.Next = nextPosition(q.After, limit, page) // a short page: on to the window's head, no further
	page.Head = t.seen
	return page
}

// eventBytes is the size the tail counts an event at: its data and
// metadata.
func eventBytes(e domain.RecordedEvent) int { return len(e.Data) + len(e.Metadata) }
