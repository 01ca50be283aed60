package eventstore

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"cqrsgate/domain"
	"cqrsgate/internal/jsonvalue"
)

// Memory is an in-memory event store for fast unit tests. It passes the same
// conformance suite as Postgres but keeps nothing across restarts.
type Memory struct {
	mu        sync.Mutex
	log       []domain.RecordedEvent
	streams   map[string][]int // stream id -> indexes into log
	byID      map[string]int   // event id -> index into log
	snapshots map[string]domain.Snapshot
	limits    Limits
	wake      *Broadcaster
	now       func() time.Time
	newID     func() string
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty in-memory store; now supplies recorded times.
func NewMemory(limits Limits, now func() time.Time) *Memory {
	return &Memory{
		streams:   map[string][]int{},
		byID:      map[string]int{},
		snapshots: map[string]domain.Snapshot{},
		limits:    limits.withDefaults(),
		wake:      NewBroadcaster(),
		now:       now,
		newID:     domain.NewID,
	}
}

// Changed implements Store.
func (m *Memory) Changed() <-chan struct{} { return m.wake.Changed() }

// Append implements Store.
func (m *Memory) Append(ctx context.Context, stream string, expected domain.ExpectedVersion, events ...domain.EventData) (domain.AppendResult, error) {
	prepared, err := prepareAppend(m.limits, stream, expected, events, m.newID)
	if err != nil {
		return domain.AppendResult{}, err
	}
	if err := ctx.Err(); err != nil {
		return domain.AppendResult{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.streams[stream]) == 0 {
		if err := newStreamRefusal(stream, expected); err != nil {
			return domain.AppendResult{}, err
		}
	}

	var stored []storedEvent
	for i, e := range prepared {
		idx, ok := m.byID[e.ID]
		if !ok {
			continue
		}
		se := m.log[idx]
		stored = append(stored, storedEvent{
			ord: int64(i + 1), stream: se.StreamID, version: se.StreamVersion, position: se.Position,
			recordedAt: se.RecordedAt, data: se.Data, meta: se.Metadata,
			same: se.Type == e.Type && se.SchemaVersion == e.SchemaVersion && jsonEqual(se.Data, e.Data),
		})
	}
	if len(stored) > 0 {
		return idempotentResult(stream, prepared, stored)
	}
	current := int64(len(m.streams[stream]))
	if !expectedMatches(expected, current) {
		return domain.AppendResult{}, wrongVersion(stream, expected, current)
	}
	res := domain.AppendResult{StreamID: stream, Events: make([]domain.RecordedEvent, len(prepared))}
	at := m.now()
	for i, e := range prepared {
		e.Data, e.Metadata = compactJSON(e.Data), compactJSON(e.Metadata)
		re := domain.RecordedEvent{EventData: e, StreamID: stream, StreamVersion: current + int64(i) + 1, Position: int64(len(m.log)) + 1, RecordedAt: at}
		m.byID[e.ID] = len(m.log)
		m.streams[stream] = append(m.streams[stream], len(m.log))
		m.log = append(m.log, re)
		res.Events[i] = re
	}
	fillResult(&res)
	m.wake.Notify(res.LastPosition)
	return res, nil
}

// StreamVersion implements Store.
func (m *Memory) StreamVersion(ctx context.Context, stream string) (int64, error) {
	if err := validateStreamID("stream", stream); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return int64(len(m.streams[stream])), nil
}

// ReadStream implements Store.
func (m *Memory) ReadStream(ctx context.Context, stream string, q StreamQuery) ([]domain.RecordedEvent, error) {
	if err := validateStreamID("stream", stream); err != nil {
		return nil, err
	}
	limit, err := resolveLimit("first", q.Limit)
	if err != nil {
		return nil, err
	}
	if q.From < 0 {
		return nil, invalid("from", "version %d is negative", q.From)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	idxs := m.streams[stream]
	out := []domain.RecordedEvent{}
	if !q.Backward {
		start := max(q.From, 1) - 1
		for i := start; i < int64(len(idxs)) && len(out) < limit; i++ {
			out = append(out, m.log[idxs[i]])
		}
		return out, nil
	}
	start := int64(len(idxs))
	if q.From > 0 && q.From < start {
		start = q.From
	}
	for i := start - 1; i >= 0 && len(out) < limit; i-- {
		out = append(out, m.log[idxs[i]])
	}
	return out, nil
}

// ReadAll implements Store.
func (m *Memory) ReadAll(ctx context.Context, q AllQuery) (Page, error) {
	limit, err := checkAllQuery(q)
	if err != nil {
		return Page{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	page := Page{Events: []domain.RecordedEvent{}, Head: int64(len(m.log))}
	for i := q.After; i < int64(len(m.log)) && len(page.Events) < limit; i++ {
		e := m.log[i]
		if !q.Matches(e) {
			continue
		}
		page.Events = append(page.Events, e)
	}
	page.Next = nextPosition(q.After, limit, page)
	return page, nil
}

// ReadEvent implements Store.
func (m *Memory) ReadEvent(ctx context.Context, eventID string) (domain.RecordedEvent, error) {
	if !domain.ValidID(eventID) {
		return domain.RecordedEvent{}, invalid("id", "event id %q is not a UUID", domain.CutText(eventID, 64))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	idx, ok := m.byID[lowerASCII(eventID)]
	if !ok {
		return domain.RecordedEvent{}, eventNotFound(eventID)
	}
	return m.log[idx], nil
}

// ReadByCorrelation implements Store.
func (m *Memory) ReadByCorrelation(ctx context.Context, correlationID string, tenant *string, after int64, limit int) ([]domain.RecordedEvent, error) {
	if correlationID == "" {
		return nil, invalid("correlationId", "correlation id is empty")
	}
	limit, err := resolveLimit("first", limit)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []domain.RecordedEvent{}
	for i := max(after, 0); i < int64(len(m.log)) && len(out) < limit; i++ {
		var meta map[string]any
		if tenant != nil && domain.TenantOf(m.log[i].StreamID) != *tenant {
			continue
		}
		if json.Unmarshal(m.log[i].Metadata, &meta) == nil && meta[domain.MetaCorrelationID] == correlationID {
			out = append(out, m.log[i])
		}
	}
	return out, nil
}

// SaveSnapshot implements Store.
func (m *Memory) SaveSnapshot(ctx context.Context, snap domain.Snapshot) error {
	if err := validateSnapshot(snap); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if snap.Version > int64(len(m.streams[snap.StreamID])) {
		return invalid("version", "stream %q has no version %d to snapshot", snap.StreamID, snap.Version)
	}
	if old, ok := m.snapshots[snap.StreamID]; ok && old.Version > snap.Version {
		return nil
	}
	snap.State = compactJSON(snap.State)
	snap.CreatedAt = m.now()
	m.snapshots[snap.StreamID] = snap
	return nil
}

// LoadSnapshot implements Store.
func (m *Memory) LoadSnapshot(ctx context.Context, stream string) (domain.Snapshot, error) {
	if err := validateStreamID("stream", stream); err != nil {
		return domain.Snapshot{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	snap, ok := m.snapshots[stream]
	if !ok {
		return domain.Snapshot{}, &domain.Error{Code: domain.NotFound, Message: fmt.Sprintf("stream %q has no snapshot", stream), Err: ErrSnapshotNotFound}
	}
	return snap, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// jsonEqual compares two JSON documents by value, as jsonb equality does
// (numbers compared exactly, not as float64).
func jsonEqual(a, b json.RawMessage) bool {
	x, errX := jsonvalue.DecodeAll(a)
	y, errY := jsonvalue.DecodeAll(b)
	return errX == nil && errY == nil && jsonvalue.Equal(x, y)
}

// compactJSON returns a copy of raw without insignificant white space, so
// that callers cannot change stored events through a shared slice. Numbers
// stay as written (jsonb keeps them exactly too).
func compactJSON(raw json.RawMessage) json.RawMessage {
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return append(json.RawMessage(nil), raw...)
	}
	return json.RawMessage(b.Bytes())
}
