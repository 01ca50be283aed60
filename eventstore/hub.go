package eventstore

import (
	"context"
	"errors"
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
}

// NewHub returns a Hub over store; Run must be running for subscribers to
// go live (until then they keep catching up from the store).
func NewHub(store Store, log *slog.Logger) *Hub {
	return &Hub{store: store, log: log, poll: time.Second, subs: map[*HubSubscription]struct{}{}, wake: make(chan struct{})}
}

// Run follows the log and feeds the subscribers until ctx ends; it returns
// nil then. Read errors are logged and retried.
func (h *Hub) Run(ctx context.Context) error {
	start, err := h.store.ReadAll(ctx, AllQuery{After: 0, Limit: 1})
	for err != nil {
		h.log.WarnContext(ctx, "eventstore hub: reading the head", "err", err)
		if !sleepCtx(ctx, time.Second) {
			return nil
		}
		start, err = h.store.ReadAll(ctx, AllQuery{After: 0, Limit: 1})
	}
	h.mu.Lock()
	h.live, h.started = start.Head, true
	close(h.wake)
	h.wake = make(chan struct{})
	h.mu.Unlock()
	err = Follow(ctx, h.store, AllQuery{After: start.Head, Limit: MaxLimit}, h.poll, func(p Page) error {
		h.advance(p.Next, p.Events)
		return nil
	})
	if err != nil && !errors.Is(err, context.Canceled) && ctx.Err() == nil {
		h.log.ErrorContext(ctx, "eventstore hub stopped", "err", err)
		return err
	}
	return nil
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
	for s := range h.subs {
		if !s.offer(events, next) {
			delete(h.subs, s) // too slow: it catches up from the store
			s.lagged()
		}
	}
	h.live = next
	close(h.wake)
	h.wake = make(chan struct{})
}

// join registers s as live if it has caught up with the hub; otherwise it
// returns the channel that is closed when the hub next moves.
func (h *Hub) join(s *HubSubscription) (bool, <-chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.started && s.pos >= h.live {
		s.floor = s.pos
		h.subs[s] = struct{}{}
		return true, nil
	}
	return false, h.wake
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

// Subscribers returns how many subscriptions are on the live feed.
func (h *Hub) Subscribers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

// HubSubscription is one subscriber's view of the log.
type HubSubscription struct {
	hub    *Hub
	filter AllQuery
	pos    int64 // last position this subscriber has been given (or skipped); its own goroutine's
	floor  int64 // the position it joined the live feed at; guarded by the hub's lock
	live   chan liveBatch
	out    chan domain.RecordedEvent
	lag    chan struct{}
	lagged func()
}

type liveBatch struct {
	events []domain.RecordedEvent
	next   int64
}

// Subscribe returns a channel of the events after position q.After that
// match q's filters (Types, StreamPrefix, Stream, Tenant), in position order,
// until ctx ends (the channel is then closed). The first page is read
// before Subscribe returns, so invalid filters fail here.
func (h *Hub) Subscribe(ctx context.Context, q AllQuery) (<-chan domain.RecordedEvent, error) {
	q.Limit = 500
	first, err := h.store.ReadAll(ctx, q)
	if err != nil {
		return nil, err
	}
	s := &HubSubscription{hub: h, filter: q, pos: q.After, live: make(chan liveBatch, 64), out: make(chan domain.RecordedEvent, 64)}
	lag := make(chan struct{}, 1)
	s.lagged = func() {
		select {
		case lag <- struct{}{}:
		default:
		}
	}
	go s.run(ctx, first, lag)
	return s.out, nil
}

// offer queues a live batch for the subscriber without blocking; false
// means its queue is full. Called with the hub's lock held; events at or
// below the position it joined at were already read from the store.
func (s *HubSubscription) offer(events []domain.RecordedEvent, next int64) bool {
	var mine []domain.RecordedEvent
	for _, e := range events {
		if e.Position > s.floor && s.matches(e) {
			mine = append(mine, e)
		}
	}
	select {
	case s.live <- liveBatch{events: mine, next: next}:
		return true
	default:
		return false
	}
}

func (s *HubSubscription) matches(e domain.RecordedEvent) bool { return s.filter.Matches(e) }

func (s *HubSubscription) run(ctx context.Context, first Page, lag chan struct{}) {
	defer close(s.out)
	defer s.hub.leave(s)
	send := func(events []domain.RecordedEvent) bool {
		for _, e := range events {
			select {
			case s.out <- e:
			case <-ctx.Done():
				return false
			}
		}
		return true
	}
	page := first
	for {
		// Catching up from the store.
		for {
			if !send(page.Events) {
				return
			}
			s.pos = page.Next
			joined, wake := s.hub.join(s)
			if joined {
				break
			}
			if len(page.Events) < s.filter.Limit {
				select {
				case <-ctx.Done():
					return
				case <-wake:
				case <-time.After(s.hub.poll):
				}
			}
			q := s.filter
			q.After = s.pos
			var err error
			if page, err = s.hub.store.ReadAll(ctx, q); err != nil {
				if ctx.Err() == nil {
					s.hub.log.WarnContext(ctx, "hub subscriber: catching up", "err", err)
				}
				return
			}
		}
		// Live, until the subscriber lags.
	live:
		for {
			select {
			case <-ctx.Done():
				return
			case b := <-s.live:
				if !send(b.events) {
					return
				}
				s.pos = b.next
			case <-lag:
				// Dropped from the feed: drain what was queued, then catch up.
				for {
					select {
					case b := <-s.live:
						if !send(b.events) {
							return
						}
						s.pos = b.next
						continue
					default:
					}
					break
				}
				break live
			}
		}
		q := s.filter
		q.After = s.pos
		var err error
		if page, err = s.hub.store.ReadAll(ctx, q); err != nil {
			return
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
