package eventstore

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"cqrsgate/domain"
)

// SetBeforeCommit installs a hook that runs inside each append's open
// transaction after its insert; an error rolls the append back. Tests use it
// to hold transactions open and to roll some back.
func (s *Postgres) SetBeforeCommit(hook func(ctx context.Context, stream string) error) {
	s.beforeCommit = hook
}

// ReadAllSQL is ReadAll's query for q, and OrderedReadsSQL the settings
// sent before it when WalksInOrder(q).
func ReadAllSQL(q AllQuery, limit int) (string, []any) { return readAllSQL(q, limit) }

func WalksInOrder(q AllQuery) bool { return walksInOrder(q) }

const OrderedReadsSQL = orderedReadsSQL

// ReadSettings are the settings sent before q's read.
func ReadSettings(q AllQuery) string { return readSettings(q) }

// The allocation lock's advisory lock key.
const AllocLockClass, AllocLockID = allocLockClass, allocLockID

// RawEventFormats reports whether reads of events with these columns are
// decoded without Scan.
func RawEventFormats(fields []pgconn.FieldDescription) bool { return rawEventFormats(fields) }

const EventColumns = eventColumns

// TextArrays is how appends pass text[] parameters on a connection in mode.
func TextArrays(mode pgx.QueryExecMode) func([]string) any { return textArrays(mode) }

// NewHubPolling is NewHub with its poll interval (and so its pause before
// reading again after a failed read) set to poll.
func NewHubPolling(store Store, log *slog.Logger, poll time.Duration) *Hub {
	h := NewHub(store, log)
	h.poll = poll
	return h
}

// GroupState reports how many appends wait in the group-commit queue and
// how many batch writers are at work.
func (s *Postgres) GroupState() (queued, writers int) {
	s.group.mu.Lock()
	defer s.group.mu.Unlock()
	return len(s.group.queue), s.group.writers
}

// HeldBytes is the data and metadata of the events the tail holds.
func (t *Tail) HeldBytes() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, e := range t.events {
		n += len(e.Data) + len(e.Metadata)
	}
	return n
}

// SetHubQueueLimits sets the events and bytes a hub subscriber's queue may
// hold, and returns what puts the defaults back.
func SetHubQueueLimits(events, bytes int) (restore func()) {
	e, b := hubQueueEvents, hubQueueBytes
	hubQueueEvents, hubQueueBytes = events, bytes
	return func() { hubQueueEvents, hubQueueBytes = e, b }
}

// SubscribeFuncQueued is SubscribeFunc, and returns what reports the
// batches, events and bytes queued for the subscriber.
func (h *Hub) SubscribeFuncQueued(ctx context.Context, q AllQuery, deliver func(domain.RecordedEvent) bool, ended func()) (func() (batches, events, bytes int), error) {
	s, err := h.subscribe(ctx, q, eachEvent(deliver), ended)
	if err != nil {
		return nil, err
	}
	return func() (int, int, int) {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.queue), s.queued, s.qbytes
	}, nil
}
