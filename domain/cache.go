package domain

import (
	"container/list"
	"context"
	"fmt"
	"sync"
)

// stateCache keeps the state of recently commanded aggregates, by stream,
// with the version it reflects, so that a command on one of them reads
// nothing before deciding: it decides on the cached state and appends
// expecting the cached version. Should another process have written to the
// stream meanwhile, that append fails on the expected version, nothing is
// written, and the retry catches up on the events appended since (usually
// a few) rather than loading a snapshot and up to SnapshotEvery events.
// Decisions are pure, so one made on a stale state is simply discarded. An
// entry is read and replaced only under its stream's keyLock, by the
// command that holds it.
type stateCache struct {
	mu    sync.Mutex
	max   int
	order *list.List // front: most recently used
	items map[string]*list.Element
}

type cacheEntry struct {
	stream      string
	agg         any // the kind's aggregate type
	version     int64
	snapVersion int64 // the latest snapshot's version, for maybeSnapshot
	// current is false when an append at version failed: the stream may
	// have moved on, so the next command catches up before deciding.
	current bool
}

func newStateCache(max int) *stateCache {
	if max <= 0 {
		return nil
	}
	return &stateCache{max: max, order: list.New(), items: map[string]*list.Element{}}
}

// take removes and returns the stream's entry: the command holding the
// stream's lock owns the state until it puts it back.
func (c *stateCache) take(stream string) (cacheEntry, bool) {
	if c == nil {
		return cacheEntry{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[stream]
	if !ok {
		return cacheEntry{}, false
	}
	c.order.Remove(el)
	delete(c.items, stream)
	return el.Value.(cacheEntry), true
}

// put stores the state of stream at version, evicting the least recently
// used entry beyond the size.
func (c *stateCache) put(e cacheEntry) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[e.stream]; ok {
		c.order.Remove(el)
	}
	c.items[e.stream] = c.order.PushFront(e)
	for c.order.Len() > c.max {
		old := c.order.Back()
		c.order.Remove(old)
		delete(c.items, old.Value.(cacheEntry).stream)
	}
}

// loadForCommand returns the aggregate's state for a command: the cached
// state when there is one (caught up with newer events when it may be
// behind, or when the client expects another version than it holds), else
// a load from the snapshot and events.
// It also reports whether the state was verified current by reading the
// stream (false for a cached state used as it is).
func loadForCommand[A Aggregate](ctx context.Context, s *Service, k *Kind[A], id, stream string, expected *int64) (A, int64, int64, bool, error) {
	if e, ok := s.cache.take(stream); ok {
		if agg, ok := e.agg.(A); ok {
			if e.current && (expected == nil || *expected == e.version) {
				return agg, e.version, e.snapVersion, false, nil
			}
			version, err := replay(ctx, s, k, id, stream, agg, e.version)
			if err == nil {
				return agg, version, e.snapVersion, true, nil
			}
			// The state may be half caught up: load afresh.
			s.log.WarnContext(ctx, "domain: catching up a cached aggregate failed", "stream", stream, "err", err)
		}
	}
	agg, version, snapVersion, err := load(ctx, s, k, id, stream)
	return agg, version, snapVersion, true, err
}

// replay applies the stream's events after version to agg, in pages, and
// returns the version reached.
func replay[A Aggregate](ctx context.Context, s *Service, k *Kind[A], id, stream string, agg A, version int64) (int64, error) {
	const page = 1000
	for {
		evs, err := s.store.ReadStream(ctx, stream, StreamQuery{From: version + 1, Limit: page})
		if err != nil {
			return version, err
		}
		for _, re := range evs {
			e, err := k.Decode(re.Type, re.SchemaVersion, re.Data)
			if err != nil {
				return version, fmt.Errorf("%s %s: event %d: %w", k.Name, id, re.StreamVersion, err)
			}
			agg.Apply(e)
			version = re.StreamVersion
		}
		if len(evs) < page {
			return version, nil
		}
	}
}
