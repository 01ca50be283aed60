package graph

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"weak"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/formatter"

	"cqrsgate/domain"
	"cqrsgate/eventstore"
)

// Log subscriptions over websockets.
//
// A subscription to the log (`events`) is fed by the hub without a
// goroutine of its own: the hub's worker queues each batch of events on
// the subscription's logStream (the hub's own batch, shared by every
// subscriber that takes it, not a copy per subscriber), and the transport
// takes queued events one at a time on a
// goroutine that runs only while there are some. Taking an event executes
// the operation for it, unless a subscription with the same selection and
// caller scope (logShareKey) has already done so for that position: the
// payload is then the one encoded for it (payloadCache), so a thousand
// dashboards following the log cost one execution per event, not a
// thousand.

// logStreamQueue is how many events may wait on a log stream before the
// hub's worker waits to queue another batch (and, if that lasts, the hub
// drops the subscriber from its live feed, to catch up from the store).
const logStreamQueue = 64

// logStream is the queue between a log subscription's hub worker and the
// transport.
type logStream struct {
	cache *payloadCache // shared by the subscriptions with the same share key

	mu       sync.Mutex
	attached bool                       // the resolver feeds this stream
	feed     func(domain.RecordedEvent) // hands an event to the operation's channel (which has room)
	// The events not yet taken: head, then the batches in rest, each as
	// the hub delivered it (shared with other subscribers: read only).
	// head is empty only when all are.
	head    []domain.RecordedEvent
	rest    [][]domain.RecordedEvent
	queued  int                             // events in head and rest
	closed  bool                            // the hub has ended the subscription
	space   chan struct{}                   // closed when the taker brings queued under logStreamQueue; nil unless the hub waits
	running bool                            // a goroutine is taking events
	ended   bool                            // the operation has finished
	take    func(domain.RecordedEvent) bool // set by the transport: handles one event; false: finished
	end     func()
}

type logStreamKey struct{}

func withLogStream(ctx context.Context, s *logStream) context.Context {
	return context.WithValue(ctx, logStreamKey{}, s)
}

// subscribeLog subscribes the operation in ctx to the hub: with a
// logStream when the websocket transport runs it, else (and for any other
// transport) with a channel fed by the hub.
func subscribeLog[T any](ctx context.Context, hub *eventstore.Hub, q eventstore.AllQuery, convert func(domain.RecordedEvent) T) (<-chan T, error) {
	s, _ := ctx.Value(logStreamKey{}).(*logStream)
	if s == nil {
		return eventstore.SubscribeAs(ctx, hub, q, convert)
	}
	out := make(chan T, 1) // filled by the taker, right before gqlgen takes it
	feed := func(e domain.RecordedEvent) { out <- convert(e) }
	if err := hub.SubscribeBatches(ctx, q, func(events []domain.RecordedEvent) bool { return s.push(ctx, events) }, s.close); err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.attached, s.feed = true, feed
	s.mu.Unlock()
	return out, nil
}

// push queues a batch of events (read only: it is not copied), waiting
// while logStreamQueue events or more wait; false: ctx ended.
func (s *logStream) push(ctx context.Context, events []domain.RecordedEvent) bool {
	s.mu.Lock()
	for s.queued >= logStreamQueue && !s.ended {
		if s.space == nil {
			s.space = make(chan struct{})
		}
		space := s.space
		s.mu.Unlock()
		select {
		case <-space:
		case <-ctx.Done():
			return false
		}
		s.mu.Lock()
	}
	defer s.mu.Unlock()
	if s.ended {
		return false
	}
	if len(events) == 0 {
		return true
	}
	if s.queued == 0 {
		s.head = events
	} else {
		s.rest = append(s.rest, events)
	}
	s.queued += len(events)
	s.wakeLocked()
	return true
}

// close records that no more events come.
func (s *logStream) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.wakeLocked()
}

func (s *logStream) wakeLocked() {
	if s.take != nil && !s.running && !s.ended && (s.queued > 0 || s.closed) {
		s.running = true
		go s.run()
	}
}

// isAttached reports whether the operation's resolver feeds this stream
// (otherwise the transport reads the operation's results itself).
func (s *logStream) isAttached() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.attached
}

// start hands an attached stream to the transport once the operation is
// set up: take handles one event, end runs once when the operation has
// finished.
func (s *logStream) start(take func(domain.RecordedEvent) bool, end func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.take, s.end = take, end
	s.wakeLocked()
}

// run takes the queued events, then stops; after the last, once the hub
// has closed the stream, the operation ends.
func (s *logStream) run() {
	for {
		s.mu.Lock()
		if s.queued == 0 {
			if !s.closed {
				s.running = false
				s.mu.Unlock()
				return
			}
			s.ended = true
			s.mu.Unlock()
			s.end()
			return
		}
		e := s.head[0]
		s.head = s.head[1:]
		s.queued--
		if len(s.head) == 0 {
			s.head = nil // an idle stream holds no batch
			if len(s.rest) > 0 {
				s.head = s.rest[0]
				s.rest[0] = nil
				s.rest = s.rest[1:]
			}
			if len(s.rest) == 0 {
				s.rest = nil
			}
		}
		if s.space != nil && s.queued < logStreamQueue {
			close(s.space)
			s.space = nil
		}
		s.mu.Unlock()
		if !s.take(e) {
			s.mu.Lock()
			s.ended = true
			s.head, s.rest, s.queued = nil, nil, 0
			if s.space != nil {
				close(s.space)
				s.space = nil
			}
			s.mu.Unlock()
			s.end()
			return
		}
	}
}

// logShareKey names what a log subscription's payload for an event
// depends on: the caller's scope, and the root field's alias and
// selection, with the variables when the selection uses any. The root
// field's own arguments (where the stream starts, which events it
// carries) choose events, not how an event is rendered, so subscribers
// resuming from different positions share their payloads.
func (t *Websocket) logShareKey(ctx context.Context, rc *graphql.OperationContext) string {
	op := rc.Operation
	if op == nil || len(op.SelectionSet) != 1 {
		return t.shareKey(ctx, rc)
	}
	f, ok := op.SelectionSet[0].(*ast.Field)
	if !ok {
		return t.shareKey(ctx, rc)
	}
	sel := t.selections.of(f, rc.Doc)
	var vars map[string]any
	if strings.IndexByte(sel, '$') >= 0 {
		vars = rc.Variables
	}
	scope := ""
	if t.ShareScope != nil {
		scope = t.ShareScope(ctx)
	}
	return t.keyOf([]any{scope, f.Alias, sel, vars})
}

// selectionTexts remembers the text of root fields' selections, by field:
// a document is parsed once and cached (gqlgen's query cache), so every
// subscription of one query has the same field, and its selection is
// formatted once rather than for each subscriber. The fields are held
// weakly: a document gqlgen's cache let go is not kept for this.
type selectionTexts struct {
	mu   sync.Mutex
	text map[weak.Pointer[ast.Field]]string
}

// selectionTextsMax bounds the fields remembered: beyond it the entries
// of fields collected since (which can never match again) are dropped,
// and, if that frees nothing, the memory starts again. It is above the
// number of documents gqlgen's query cache keeps (1,000; see NewHandler),
// so that fields in use are not forgotten for the sake of others in use.
const selectionTextsMax = 1024

func (s *selectionTexts) of(f *ast.Field, doc *ast.QueryDocument) string {
	key := weak.Make(f)
	s.mu.Lock()
	text, ok := s.text[key]
	s.mu.Unlock()
	if ok {
		return text
	}
	var sel bytes.Buffer
	formatter.NewFormatter(&sel).FormatQueryDocument(&ast.QueryDocument{
		Operations: ast.OperationList{{Operation: ast.Query, SelectionSet: f.SelectionSet}},
		Fragments:  doc.Fragments,
	})
	text = sel.String()
	s.mu.Lock()
	if len(s.text) >= selectionTextsMax {
		for k := range s.text {
			if k.Value() == nil {
				delete(s.text, k)
			}
		}
	}
	if s.text == nil || len(s.text) >= selectionTextsMax {
		s.text = map[weak.Pointer[ast.Field]]string{}
	}
	s.text[key] = text
	s.mu.Unlock()
	return text
}

// payloadCache holds the payloads recently encoded for the subscriptions
// that share a key (see logShareKey), by the position of the event they
// render. It keeps payloads only while two or more subscriptions hold it,
// at most payloadCacheSize of them and payloadCacheBytes in all, within
// the transport's budget of payloadCachesBytes for all caches: a cache is
// an optimisation, never a reason for memory to grow.
type payloadCache struct {
	key   string
	refs  atomic.Int32  // changed under the transport's cmu
	total *atomic.Int64 // the bytes held by all the transport's caches

	mu    sync.Mutex
	byPos map[int64][]byte
	order []int64 // positions in insertion order, oldest first, for eviction
	bytes int64
}

const (
	// payloadCacheSize is how many recent payloads a cache keeps:
	// subscribers further apart than that in the log execute their own.
	payloadCacheSize = 1024
	// payloadCacheBytes caps one cache's payloads.
	payloadCacheBytes = 8 << 20
	// payloadCachesBytes caps the payloads of all a transport's caches.
	payloadCachesBytes = 64 << 20
)

func (c *payloadCache) get(pos int64) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.byPos[pos]
	return p, ok
}

// CachedPayloadBytes returns the bytes of encoded payloads the transport
// keeps for subscriptions that share them (at most 64 MiB).
func (t *Websocket) CachedPayloadBytes() int64 { return t.cachedBytes.Load() }

// SharedPayloads returns how many log subscription payloads were sent
// without executing the operation, because a subscription with the same
// selection and scope had already encoded the same event.
func (t *Websocket) SharedPayloads() int64 { return t.sharedPayloads.Load() }

func (c *payloadCache) put(pos int64, payload []byte) {
	size := int64(len(payload))
	if c.refs.Load() < 2 || size > payloadCacheBytes {
		return // no one to share with, or too big to keep
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// Again under the lock that clear takes: a release that left one
	// holder either cleared before this or clears after it.
	if c.refs.Load() < 2 {
		return
	}
	if _, ok := c.byPos[pos]; ok {
		return
	}
	for len(c.order) > 0 && (len(c.order) >= payloadCacheSize || c.bytes+size > payloadCacheBytes) {
		c.evictOldest()
	}
	// Reserve the bytes in the transport's budget, evicting this cache's
	// oldest while the budget is short; other caches reserve at the same
	// time, so only a successful compare-and-swap holds them.
	for {
		total := c.total.Load()
		if total+size <= payloadCachesBytes {
			if c.total.CompareAndSwap(total, total+size) {
				break
			}
			continue
		}
		if len(c.order) == 0 {
			return // the other caches hold the budget
		}
		c.evictOldest()
	}
	if c.byPos == nil {
		c.byPos = make(map[int64][]byte)
	}
	c.byPos[pos] = payload
	c.order = append(c.order, pos)
	c.bytes += size
}

// evictOldest drops the oldest payload; c.mu is held.
func (c *payloadCache) evictOldest() {
	pos := c.order[0]
	c.order = c.order[1:]
	size := int64(len(c.byPos[pos]))
	delete(c.byPos, pos)
	c.bytes -= size
	c.total.Add(-size)
}

// clear drops every payload: fewer than two subscriptions hold the cache.
func (c *payloadCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.total.Add(-c.bytes)
	c.byPos, c.order, c.bytes = nil, nil, 0
}

// acquireCache returns the payload cache of key, shared with the other
// subscriptions that hold it; releaseCache gives it back.
func (t *Websocket) acquireCache(key string) *payloadCache {
	t.cmu.Lock()
	defer t.cmu.Unlock()
	c := t.caches[key]
	if c == nil {
		c = &payloadCache{key: key, total: &t.cachedBytes}
		t.caches[key] = c
	}
	c.refs.Add(1)
	return c
}

func (t *Websocket) releaseCache(c *payloadCache) {
	t.cmu.Lock()
	defer t.cmu.Unlock()
	switch c.refs.Add(-1) {
	case 0:
		delete(t.caches, c.key)
		c.clear()
	case 1:
		c.clear() // no one left to share with
	}
}
