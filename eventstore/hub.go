package eventstore

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"cqrsgate/domain"
)

// Hub fans the global log out to any number of in-process subscribers
// while reading it once: one follower reads each new page and hands every
// subscriber the events it asked for. A subscriber that starts behind (a
// resumed client) first catches up from the store on its own, then joins
// the live feed at exactly its position, so it sees every event once, in
// order, with no gap and no duplicate at the seam. A subscriber that does
// not keep up is dropped from the feed and catches up from the store again,
// never slowing the others.
type Hub struct {
	store Store
	log   *slog.Logger
	poll  time.Duration

	seen atomic.Int64 // events handed to the live feed since Run started

	mu      sync.Mutex
	started bool  // Run has read the head: subscribers may join
	live    int64 // every event up to here has been handed to the live subscribers
	subs    map[*HubSubscription]struct{}
	wake    chan struct{} // closed when live moves, for subscribers catching up
	back    chan struct{} // closed when the hub reads the log again after failing to
}

// NewHub returns a Hub over store; Run must be running for subscribers to
// go live (until then they keep catching up from the store).
func NewHub(store Store, log *slog.Logger) *Hub {
	return &Hub{store: store, log: log, poll: time.Second, subs: map[*HubSubscription]struct{}{}, wake: make(chan struct{}), back: make(chan struct{})}
}

// Run follows the log and feeds the subscribers until ctx ends; it returns
// nil then. Read errors are retried (each poll interval, a second) from
// the last position handed to the live subscribers, and logged once per
// outage; once a read succeeds again, Back wakes whoever waits to try
// again.
func (h *Hub) Run(ctx context.Context) error {
	start, err := h.store.ReadAll(ctx, AllQuery{After: 0, Limit: 1})
	for attempt := 0; err != nil; attempt++ {
		level := slog.LevelWarn
		if attempt > 0 {
			level = slog.LevelDebug // said once per outage
		}
		h.log.Log(ctx, level, "eventstore hub: reading the head failed; retrying", "err", err, "in", h.poll)
		if !sleepCtx(ctx, h.poll) {
			return nil
		}
		if start, err = h.store.ReadAll(ctx, AllQuery{After: 0, Limit: 1}); err == nil {
			h.readable(ctx, 0, attempt+1)
		}
	}
	h.mu.Lock()
	h.live, h.started = start.Head, true
	close(h.wake)
	h.wake = make(chan struct{})
	h.mu.Unlock()
	for {
		// Follow from what the live subscribers have been handed: after a
		// failed read (the database restarting, a connection reset) the
		// hub reads again from there, so they miss nothing.
		h.mu.Lock()
		after := h.live
		h.mu.Unlock()
		err = Follow(ctx, h.store, AllQuery{After: after, Limit: MaxLimit}, h.poll, func(p Page) error {
			h.advance(p.Next, p.Events)
			return nil
		})
		if ctx.Err() != nil {
			return nil
		}
		h.log.WarnContext(ctx, "eventstore hub: reading the log failed; retrying", "err", err, "after", after, "in", h.poll)
		for attempt := 1; ; attempt++ {
			if !sleepCtx(ctx, h.poll) {
				return nil
			}
			h.mu.Lock()
			after = h.live
			h.mu.Unlock()
			p, err := h.store.ReadAll(ctx, AllQuery{After: after, Limit: MaxLimit})
			if err == nil {
				h.advance(p.Next, p.Events)
				h.readable(ctx, after, attempt)
				break
			}
			if ctx.Err() != nil {
				return nil
			}
			h.log.DebugContext(ctx, "eventstore hub: reading the log failed; retrying", "err", err, "after", after, "in", h.poll)
		}
	}
}

// readable logs that the hub reads the log again, after attempts failed
// reads, and wakes those that wait for it (Back).
func (h *Hub) readable(ctx context.Context, after int64, attempts int) {
	h.log.InfoContext(ctx, "eventstore hub: reading the log again", "after", after, "failedReads", attempts)
	h.mu.Lock()
	defer h.mu.Unlock()
	close(h.back)
	h.back = make(chan struct{})
}

// Back returns a channel closed when the hub next reads the log after
// failing to (the database is back): a reader whose own read failed
// meanwhile, and that waits to try again, takes it before that read and
// tries again at once when it closes.
func (h *Hub) Back() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.back
}

// advance hands events (all after the current live position, up to next)
// to the live subscribers and moves the live position to next.
func (h *Hub) advance(next int64, events []domain.RecordedEvent) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if next <= h.live {
		return
	}
	h.seen.Add(int64(len(events)))
	var page hubPage
	if len(h.subs) > 0 {
		page = newHubPage(events, next)
	}
	for s := range h.subs {
		if !s.offer(&page) {
			delete(h.subs, s) // too slow: it catches up from the store
			s.lagged()
		}
	}
	h.live = next
	close(h.wake)
	h.wake = make(chan struct{})
}

// join registers s as live if it has caught up with the hub; otherwise it
// returns the channel that is closed when the hub next moves, and whether
// the hub has handed out more than s has read (a commit landed during its
// read).
func (h *Hub) join(s *HubSubscription) (joined, behind bool, wake <-chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.started && s.pos >= h.live {
		s.mu.Lock()
		stopped := s.stopped
		s.mu.Unlock()
		if !stopped { // a stopped subscriber has left for good
			s.floor = s.pos
			h.subs[s] = struct{}{}
		}
		return true, false, nil
	}
	return false, h.started, h.wake
}

func (h *Hub) leave(s *HubSubscription) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.subs, s)
}

// Stats returns the live position (every event up to it has been handed
// to the live feed) and how many events the hub has seen since it started:
// sampled twice, their difference is the rate of commits.
func (h *Hub) Stats() (live, events int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.live, h.seen.Load()
}

// WaitPast waits until the hub has handed out the log up to position:
// every event at or below it is readable (ReadAll returns it). It returns
// ctx's error if ctx ends first. Waiters cost the database nothing: they
// wake when the hub moves.
func (h *Hub) WaitPast(ctx context.Context, position int64) error {
	for {
		h.mu.Lock()
		reached := h.started && h.live >= position
		wake := h.wake
		h.mu.Unlock()
		if reached {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wake:
		}
	}
}

// Subscribers returns how many subscriptions are on the live feed.
func (h *Hub) Subscribers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

// HubSubscription is one subscriber's view of the log. It has a goroutine
// only while it has work: catching up from the store, or delivering live
// batches the hub has queued for it. An idle live subscriber (most of a
// dashboard's life) costs its queue's bookkeeping and nothing else.
type HubSubscription struct {
	hub    *Hub
	ctx    context.Context // the subscriber's
	filter AllQuery
	pos    int64 // last position this subscriber has been given (or skipped); its worker's
	floor  int64 // the position it joined the live feed at; guarded by the hub's lock

	deliver  func([]domain.RecordedEvent) bool // blocks; false: the subscriber has gone (see SubscribeBatches)
	closeOut func()                            // the subscription has ended

	mu      sync.Mutex
	queue   []liveBatch // live batches not yet delivered
	queued  int         // events in queue
	qbytes  int         // their size (see eventBytes)
	running bool        // a worker goroutine is delivering
	lagging bool        // dropped from the live feed: catch up from the store
	stopped bool        // the subscriber's context has ended
	closed  bool        // closeOut has been called
}

// A subscriber is dropped from the live feed, to catch up from the store,
// when the live batches waiting for it would be more than hubQueue
// batches, or hold more than hubQueueEvents events or hubQueueBytes bytes
// (see eventBytes, the Tail's measure): a subscriber that reads nothing during a bulk import
// (batches of up to MaxLimit events) held 64 of them, 640,000 events, and
// kept alive event data that the Tail had let go. A batch larger than
// that alone still waits for a subscriber whose queue is empty.
const hubQueue = 64

var (
	hubQueueEvents = 16384
	hubQueueBytes  = 64 << 20
)

type liveBatch struct {
	events []domain.RecordedEvent // read-only: may be shared with other subscribers (see hubPage)
	bytes  int                    // of events (see eventBytes)
	next   int64
}

// hubQueueKept is the largest queue array an idle subscriber keeps for its
// next batches: a subscriber on a steady feed queues a batch or two at a
// time, and allocating its queue anew for each would cost a fan-out to
// thousands of subscribers an allocation per subscriber per page.
const hubQueueKept = 2

// hubPage is a page of the log the hub hands to its live subscribers. Its
// events are shared by every subscriber that takes a long enough run of
// them (see take) and are never written to after newHubPage.
type hubPage struct {
	events []domain.RecordedEvent
	upTo   []int // upTo[i]: the bytes (see eventBytes) of events[:i]
	next   int64
}

func newHubPage(events []domain.RecordedEvent, next int64) hubPage {
	upTo := make([]int, len(events)+1)
	for i, e := range events {
		upTo[i+1] = upTo[i] + eventBytes(e)
	}
	return hubPage{events: events, upTo: upTo, next: next}
}

// take returns the events of p after position floor that match q, and
// their size. When they are a run of p's events that is at least half of
// them and holds at least half of their bytes (a subscriber to the whole
// log, or to most of it), the run is shared with the page, read-only and
// capped so that an append copies; otherwise they are copied. A shared run
// keeps the whole page alive while it waits for its subscriber, so the
// hub's limits on what waits (hubQueueEvents, hubQueueBytes), which count
// the run, bound that to twice as much: a subscriber that takes a few
// events of a large page, or one large event, keeps only those alive.
func (p *hubPage) take(floor int64, q AllQuery) ([]domain.RecordedEvent, int) {
	lo := 0
	for lo < len(p.events) && p.events[lo].Position <= floor {
		lo++ // events at or below floor were read from the store
	}
	first, last, n := -1, -1, 0
	if !q.filtered() {
		first, last, n = lo, len(p.events)-1, len(p.events)-lo
	} else {
		for i := lo; i < len(p.events); i++ {
			if q.Matches(p.events[i]) {
				if first < 0 {
					first = i
				}
				last, n = i, n+1
			}
		}
	}
	if n == 0 {
		return nil, 0
	}
	if run := p.upTo[last+1] - p.upTo[first]; n == last+1-first && 2*n >= len(p.events) && 2*run >= p.upTo[len(p.events)] {
		return p.events[first : last+1 : last+1], run
	}
	mine := make([]domain.RecordedEvent, 0, n)
	size := 0
	for i := first; i <= last; i++ {
		if e := &p.events[i]; q.Matches(*e) {
			mine = append(mine, *e)
			size += eventBytes(*e)
		}
	}
	return mine, size
}

// Subscribe returns a channel of the events after position q.After that
// match q's filters (Types, StreamPrefix, Stream, Tenant), in position order,
// until ctx ends (the channel is then closed). The first page is read
// before Subscribe returns, so invalid filters fail here.
func (h *Hub) Subscribe(ctx context.Context, q AllQuery) (<-chan domain.RecordedEvent, error) {
	return SubscribeAs(ctx, h, q, func(e domain.RecordedEvent) domain.RecordedEvent { return e })
}

// SubscribeAs is Subscribe delivering convert(e) for each event e: the
// subscription's worker converts, so a consumer needs no goroutine of its
// own to turn events into what it sends (a subscription's GraphQL
// objects), and the channel's buffer holds the converted values (a pointer
// is far smaller than a RecordedEvent: this matters with 10,000 idle
// subscribers).
func SubscribeAs[T any](ctx context.Context, h *Hub, q AllQuery, convert func(domain.RecordedEvent) T) (<-chan T, error) {
	out := make(chan T, 16)
	err := h.SubscribeFunc(ctx, q, func(e domain.RecordedEvent) bool {
		select {
		case out <- convert(e):
			return true
		case <-ctx.Done():
			return false
		}
	}, func() { close(out) })
	if err != nil {
		return nil, err
	}
	return out, nil
}

// SubscribeFunc is Subscribe calling deliver for each event, in position
// order, one call at a time (deliver may block; it returns false when the
// subscriber has gone), and ended once, when the subscription ends: ctx
// ended or deliver returned false. A read of the store that fails is tried
// again (see readAfter). Between events the subscription holds no
// goroutine.
func (h *Hub) SubscribeFunc(ctx context.Context, q AllQuery, deliver func(domain.RecordedEvent) bool, ended func()) error {
	return h.SubscribeBatches(ctx, q, eachEvent(deliver), ended)
}

// eachEvent turns a deliver of one event into a deliver of a batch.
func eachEvent(deliver func(domain.RecordedEvent) bool) func([]domain.RecordedEvent) bool {
	return func(events []domain.RecordedEvent) bool {
		for _, e := range events {
			if !deliver(e) {
				return false
			}
		}
		return true
	}
}

// SubscribeBatches is SubscribeFunc calling deliver with the events a
// batch at a time: a page read from the store while the subscription
// catches up, then each page of the live feed it takes events of (never
// an empty batch). A live batch is shared with the other subscribers that
// take the same events, so deliver must not modify the slice or its
// events; it may keep them. Feeding thousands of subscribers then copies
// no event for each.
func (h *Hub) SubscribeBatches(ctx context.Context, q AllQuery, deliver func([]domain.RecordedEvent) bool, ended func()) error {
	_, err := h.subscribe(ctx, q, deliver, ended)
	return err
}

func (h *Hub) subscribe(ctx context.Context, q AllQuery, deliver func([]domain.RecordedEvent) bool, ended func()) (*HubSubscription, error) {
	q.Limit = 500
	first, err := h.store.ReadAll(ctx, q)
	if err != nil {
		return nil, err
	}
	s := &HubSubscription{hub: h, ctx: ctx, filter: q, pos: q.After, running: true, deliver: deliver, closeOut: ended}
	context.AfterFunc(ctx, s.stop)
	go s.work(&first)
	return s, nil
}

// offer queues the subscriber's events of a live page without blocking,
// starting its worker if it has none; false means its queue is full.
// Called with the hub's lock held; events at or below the position it
// joined at were already read from the store.
func (s *HubSubscription) offer(p *hubPage) bool {
	mine, size := p.take(s.floor, s.filter)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return true // leaving: the hub forgets it as soon as stop runs
	}
	if len(s.queue) >= hubQueue || len(s.queue) > 0 && (s.queued+len(mine) > hubQueueEvents || s.qbytes+size > hubQueueBytes) {
		return false
	}
	s.queue = append(s.queue, liveBatch{events: mine, bytes: size, next: p.next})
	s.queued += len(mine)
	s.qbytes += size
	s.wakeLocked()
	return true
}

// lagged marks the subscriber as dropped from the live feed: once its
// queue is delivered, it catches up from the store. Called with the hub's
// lock held.
func (s *HubSubscription) lagged() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lagging = true
	s.wakeLocked()
}

// wakeLocked starts a worker unless one is running.
func (s *HubSubscription) wakeLocked() {
	if !s.running && !s.stopped {
		s.running = true
		go s.work(nil)
	}
}

// stop runs when the subscriber's context ends: it leaves the feed, and
// the channel is closed now (no worker) or by the worker as it ends.
func (s *HubSubscription) stop() {
	// Stopped before leaving: join (under the hub's lock) then never
	// registers it again.
	s.mu.Lock()
	s.stopped = true
	s.queue, s.queued, s.qbytes = nil, 0, 0
	if !s.running && !s.closed {
		s.closed = true
		s.closeOut()
	}
	s.mu.Unlock()
	s.hub.leave(s)
}

// idle ends the worker: false when there is more to do (it carries on).
// Once the worker has finished for good (its subscriber gone), it closes
// the channel.
func (s *HubSubscription) idle(finished bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !finished && !s.stopped && (len(s.queue) > 0 || s.lagging) {
		return false
	}
	s.running = false
	if finished || s.stopped {
		s.stopped = true
		if !s.closed {
			s.closed = true
			s.closeOut()
		}
	}
	return true
}

// work delivers the subscription's events until there is nothing left to
// do: catching up from page (when not nil) until it joins the live feed,
// then the live batches queued for it.
func (s *HubSubscription) work(page *Page) {
	for {
		if page != nil {
			if !s.catchUp(*page) {
				s.hub.leave(s)
				s.idle(true)
				return
			}
			page = nil
		}
		s.mu.Lock()
		if len(s.queue) == 0 {
			lagging := s.lagging
			s.lagging = false
			s.mu.Unlock()
			if lagging {
				p, ok := s.readAfter(s.pos)
				if !ok {
					s.hub.leave(s)
					s.idle(true)
					return
				}
				page = &p
				continue
			}
			if s.idle(false) {
				return
			}
			continue
		}
		b := s.queue[0]
		// Shift rather than reslice, so that the array is reused: it is
		// at most hubQueue long, and mostly one.
		n := copy(s.queue, s.queue[1:])
		s.queue[n] = liveBatch{}
		s.queue = s.queue[:n]
		s.queued -= len(b.events)
		s.qbytes -= b.bytes
		if n == 0 && cap(s.queue) > hubQueueKept {
			s.queue = nil // after a burst, an idle subscriber holds no long queue
		}
		s.mu.Unlock()
		if len(b.events) > 0 && !s.deliver(b.events) {
			s.idle(true)
			return
		}
		s.pos = b.next
	}
}

// catchUp delivers pages from the store until the subscriber has caught
// up with the hub and joined the live feed; false: it has gone.
func (s *HubSubscription) catchUp(page Page) bool {
	again := false // the last read was made at once, the subscriber being behind the hub
	for {
		if len(page.Events) > 0 && !s.deliver(page.Events) {
			return false
		}
		moved := page.Next > s.pos
		s.pos = page.Next
		joined, behind, wake := s.hub.join(s)
		if joined {
			return true
		}
		// Behind what the hub has handed out (a commit landed during the
		// read): read again at once, rather than at the hub's next move or
		// the poll; more than once in a row only while reads get somewhere.
		again = behind && (moved || !again)
		if len(page.Events) < s.filter.Limit && !again {
			select {
			case <-s.ctx.Done():
				return false
			case <-wake:
			case <-time.After(s.hub.poll):
			}
		}
		var ok bool
		if page, ok = s.readAfter(s.pos); !ok {
			return false
		}
	}
}

// readAfter reads the subscriber's events after position after from the
// store. While the store fails (the database restarting), it tries again,
// each poll interval (a second) at first and then less often, up to every
// 30 seconds, and at once when the hub reads the log again (Back): the
// subscription stays open, and catches up as soon as the database is
// back. false: the subscriber has gone.
func (s *HubSubscription) readAfter(after int64) (Page, bool) {
	q := s.filter
	q.After = after
	pause := s.hub.poll
	for attempt := 0; ; attempt++ {
		back := s.hub.Back()
		page, err := s.hub.store.ReadAll(s.ctx, q)
		if err == nil {
			return page, true
		}
		if s.ctx.Err() != nil {
			return Page{}, false
		}
		level := slog.LevelWarn
		if attempt > 0 {
			level = slog.LevelDebug // said once per outage
		}
		s.hub.log.Log(s.ctx, level, "hub subscriber: catching up from the store failed; trying again", "after", after, "err", err, "in", pause)
		t := time.NewTimer(pause)
		select {
		case <-s.ctx.Done():
			t.Stop()
			return Page{}, false
		case <-back:
			t.Stop()
			pause = s.hub.poll // the database is back: a failure now is another outage
		case <-t.C:
			pause = min(2*pause, 30*time.Second)
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
