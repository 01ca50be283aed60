package eventstore

import (
	"context"
	"encoding/json"
	"hash/fnv"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"cqrsgate/domain"
)

// NotifyChannel is the PostgreSQL channel on which the store announces
// commits. The payload is the highest position committed, as text, then a
// space and the origin of the committing process's Broadcaster, so that
// its own Listener can ignore it. A payload of a position alone (say "0"
// from an administrator's nudge) wakes every process.
const NotifyChannel = "cqrsgate_events"

// The allocation lock: a session-level advisory lock in the two-int4 key
// space (so it cannot collide with the bigint stream locks).
const (
	allocLockClass int32 = 0x63716773 // "cqgs"
	allocLockID    int32 = 1
)

// Postgres is the PostgreSQL event store. It is safe for concurrent use by
// any number of goroutines and processes sharing one database.
type Postgres struct {
	pool   *pgxpool.Pool
	log    *slog.Logger
	limits Limits
	wake   *Broadcaster
	newID  func() string
	// beforeCommit, set only by tests, runs for each stream of a batch
	// after the insert, with the transaction still open; an error rolls the
	// batch back.
	beforeCommit func(ctx context.Context, stream string) error
	// group batches concurrent appends (see group.go).
	group grouper
	// heldBack is set while a watcher waits for announced events that
	// reads found hidden (see heldback.go).
	heldBack atomic.Bool
}

var _ Store = (*Postgres)(nil)

// NewPostgres returns an event store on pool, whose database must have been
// migrated with Migrate. wake is the Broadcaster that Changed exposes: the
// store notifies it after each of its own commits, and a Listener on the
// same Broadcaster adds the commits of other processes.
func NewPostgres(pool *pgxpool.Pool, log *slog.Logger, limits Limits, wake *Broadcaster) *Postgres {
	return &Postgres{pool: pool, log: log, limits: limits.withDefaults(), wake: wake, newID: domain.NewID}
}

// Changed implements Store.
func (s *Postgres) Changed() <-chan struct{} { return s.wake.Changed() }

// Broadcaster returns the Broadcaster the store wakes after commits.
func (s *Postgres) Broadcaster() *Broadcaster { return s.wake }

// Append implements Store. See the package documentation for how it keeps
// positions gap-safe, and group.go for how concurrent appends share a
// transaction.
func (s *Postgres) Append(ctx context.Context, stream string, expected domain.ExpectedVersion, events ...domain.EventData) (domain.AppendResult, error) {
	prepared, err := s.prepare(ctx, stream, expected, events)
	if err != nil {
		return domain.AppendResult{}, err
	}
	return s.appendGrouped(ctx, stream, expected, noRevision, events, prepared)
}

// appendChecked is Append for an append validated against revision
// schemaRev of the schema registry: it writes nothing, and answers
// errSchemasChanged, when the registry's revision is another by the time
// the events would be inserted (see schemaregistry.Revision).
func (s *Postgres) appendChecked(ctx context.Context, stream string, expected domain.ExpectedVersion, schemaRev int64, events ...domain.EventData) (domain.AppendResult, error) {
	prepared, err := s.prepare(ctx, stream, expected, events)
	if err != nil {
		return domain.AppendResult{}, err
	}
	return s.appendGrouped(ctx, stream, expected, schemaRev, events, prepared)
}

// prepare validates an append (see prepareAppend) and returns the events to
// write. An append with ExpectAny to an id that new streams may not have
// takes one more round trip, to find the stream: it is written if the
// stream exists (streams are never removed, so it still does when the
// append is), and refused (ErrInvalidInput) if not.
func (s *Postgres) prepare(ctx context.Context, stream string, expected domain.ExpectedVersion, events []domain.EventData) ([]domain.EventData, error) {
	prepared, err := prepareAppend(s.limits, stream, expected, events, s.newID)
	if err != nil {
		return nil, err
	}
	if refusal := newStreamRefusal(stream, expected); refusal != nil {
		v, err := s.StreamVersion(ctx, stream)
		if err != nil {
			return nil, err
		}
		if v == 0 {
			return nil, refusal
		}
	}
	return prepared, nil
}

type storedEvent struct {
	ord        int64
	stream     string
	version    int64
	position   int64
	recordedAt time.Time
	same       bool
	data, meta json.RawMessage
}

// idempotentResult decides what an append whose event ids are (partly)
// stored means: the original result when it is an exact retry, otherwise a
// conflict explaining why.
func idempotentResult(stream string, events []domain.EventData, stored []storedEvent) (domain.AppendResult, error) {
	if len(stored) != len(events) {
		return domain.AppendResult{}, duplicateID("append to %q: %d of its %d event ids are already stored and the others are not; retry the original append unchanged or use new ids", stream, len(stored), len(events))
	}
	res := domain.AppendResult{StreamID: stream, Duplicate: true, Events: make([]domain.RecordedEvent, len(events))}
	for i, se := range stored {
		e := events[se.ord-1]
		switch {
		case se.stream != stream:
			return domain.AppendResult{}, duplicateID("event id %s is taken: event ids are unique across the whole store, every stream and tenant; give the event another (a random UUID v4 or v7)", e.ID)
		case !se.same:
			return domain.AppendResult{}, duplicateID("event id %s is already stored in %q with other content", e.ID, stream)
		case i > 0 && se.version != res.Events[i-1].StreamVersion+1:
			return domain.AppendResult{}, duplicateID("event ids of this append are stored, but not as one append in this order")
		}
		e.Data, e.Metadata = se.data, se.meta
		res.Events[i] = domain.RecordedEvent{EventData: e, StreamID: stream, StreamVersion: se.version, Position: se.position, RecordedAt: se.recordedAt}
	}
	fillResult(&res)
	return res, nil
}

func fillResult(res *domain.AppendResult) {
	first, last := res.Events[0], res.Events[len(res.Events)-1]
	res.FirstVersion, res.LastVersion = first.StreamVersion, last.StreamVersion
	res.FirstPosition, res.LastPosition = first.Position, last.Position
}

// cleanUp returns a connection to a clean state (no transaction, no
// allocation lock) or closes it so that the pool discards it.
func (s *Postgres) cleanUp(conn *pgxpool.Conn, mayHoldLock bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pc := conn.Conn()
	if pc.IsClosed() {
		return
	}
	if _, err := pc.Exec(ctx, "ROLLBACK"); err == nil {
		if !mayHoldLock {
			return
		}
		if _, err = pc.Exec(ctx, "SELECT pg_advisory_unlock_all()"); err == nil {
			return
		}
	}
	_ = pc.Close(ctx) // the server then ends the session, releasing its locks
}

// streamLockKey maps a stream id to the bigint key of its advisory lock.
// Two streams sharing a key only serialise each other's appends.
func streamLockKey(stream string) int64 {
	h := fnv.New64a()
	h.Write([]byte("cqrsgate/stream/"))
	h.Write([]byte(stream))
	return int64(h.Sum64())
}

// StreamVersion implements Store.
func (s *Postgres) StreamVersion(ctx context.Context, stream string) (int64, error) {
	if err := validateStreamID("stream", stream); err != nil {
		return 0, err
	}
	var v int64
	err := s.pool.QueryRow(ctx, "SELECT coalesce(max(stream_version), 0) FROM events WHERE stream_id = $1", stream).Scan(&v)
	if err != nil {
		return 0, s.dbError("stream version "+stream, err)
	}
	return v, nil
}
