package eventstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"cqrsgate/domain"
)

// NotifyChannel is the PostgreSQL channel on which the store announces
// commits. The payload is only the highest position committed, as text.
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
	// beforeCommit, set only by tests, runs after the insert with the
	// transaction still open; an error rolls the append back.
	beforeCommit func(ctx context.Context, stream string) error
	// group batches concurrent appends (see group.go).
	group grouper
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
// positions gap-safe.
func (s *Postgres) Append(ctx context.Context, stream string, expected domain.ExpectedVersion, events ...domain.EventData) (domain.AppendResult, error) {
	prepared, err := prepareAppend(s.limits, stream, expected, events, s.newID)
	if err != nil {
		return domain.AppendResult{}, err
	}
	if s.beforeCommit != nil { // tests that hold a transaction open append alone
		return s.appendAlone(ctx, stream, expected, events, prepared)
	}
	return s.appendGrouped(ctx, stream, expected, events, prepared)
}

// appendAlone appends in a transaction of its own.
func (s *Postgres) appendAlone(ctx context.Context, stream string, expected domain.ExpectedVersion, events, prepared []domain.EventData) (domain.AppendResult, error) {
	// A concurrent append of the same event ids to another stream can make
	// ours fail on the unique event id; the retry then sees the stored
	// events and answers as an idempotent duplicate or a conflict.
	for attempt := 0; ; attempt++ {
		res, err := s.appendOnce(ctx, stream, expected, events, prepared)
		if errors.Is(err, errEventIDRace) && attempt < 2 {
			continue
		}
		if errors.Is(err, errEventIDRace) {
			return domain.AppendResult{}, duplicateID("append to %q: event ids were appended concurrently elsewhere", stream)
		}
		if err != nil {
			return domain.AppendResult{}, err
		}
		if !res.Duplicate {
			s.wake.Notify(res.LastPosition)
		}
		return res, nil
	}
}

var errEventIDRace = errors.New("event id inserted concurrently")

func (s *Postgres) appendOnce(ctx context.Context, stream string, expected domain.ExpectedVersion, original, events []domain.EventData) (res domain.AppendResult, err error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return res, unavailable("append", err)
	}
	dirty := true        // the connection may hold an open transaction
	mayHoldLock := false // ... and the allocation lock
	defer func() {
		if dirty {
			s.cleanUp(conn, mayHoldLock)
		}
		conn.Release()
	}()

	ids := make([]string, len(events))
	types := make([]string, len(events))
	versions := make([]int32, len(events))
	datas := make([]string, len(events))
	metas := make([]string, len(events))
	for i, e := range events {
		ids[i], types[i], versions[i], datas[i], metas[i] = e.ID, e.Type, int32(e.SchemaVersion), string(e.Data), string(e.Metadata)
	}

	// Round trip 1: open the transaction, serialise writers of this stream
	// (a transaction-level lock: it assigns no transaction id), read the
	// stream's version and look for already stored event ids.
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue("SELECT pg_advisory_xact_lock($1)", streamLockKey(stream))
	b.Queue("SELECT coalesce(max(stream_version), 0) FROM events WHERE stream_id = $1", stream)
	// Ids the store generated itself cannot be stored yet: only appends
	// that bring their own ids need the idempotency look-up.
	clientIDs := false
	for _, e := range original {
		clientIDs = clientIDs || e.ID != ""
	}
	lookup := []any{ids, types, versions, datas}
	if !clientIDs {
		lookup = []any{[]string{}, []string{}, []int32{}, []string{}}
	}
	b.Queue(`SELECT i.ord, e.stream_id, e.stream_version, e.position, e.recorded_at,
	        (e.event_type = i.typ AND e.schema_version = i.ver AND e.data = i.dat::jsonb), e.data::text, e.metadata::text
	   FROM unnest($1::uuid[], $2::text[], $3::int[], $4::text[]) WITH ORDINALITY AS i(id, typ, ver, dat, ord)
	   JOIN events e ON e.event_id = i.id
	  ORDER BY i.ord`, lookup...)
	br := conn.SendBatch(ctx, b)
	var current int64
	stored, err := func() ([]storedEvent, error) {
		defer br.Close()
		if _, err := br.Exec(); err != nil {
			return nil, err
		}
		if _, err := br.Exec(); err != nil {
			return nil, err
		}
		if err := br.QueryRow().Scan(&current); err != nil {
			return nil, err
		}
		rows, err := br.Query()
		if err != nil {
			return nil, err
		}
		return pgx.CollectRows(rows, func(r pgx.CollectableRow) (storedEvent, error) {
			var se storedEvent
			var data, meta string
			err := r.Scan(&se.ord, &se.stream, &se.version, &se.position, &se.recordedAt, &se.same, &data, &meta)
			se.data, se.meta = json.RawMessage(data), json.RawMessage(meta)
			return se, err
		})
	}()
	if err != nil {
		return res, s.dbError("append "+stream, err)
	}

	if len(stored) > 0 {
		res, err := idempotentResult(stream, events, stored)
		return res, err // the deferred clean-up rolls back and unlocks
	}
	if !expectedMatches(expected, current) {
		return res, wrongVersion(stream, expected, current)
	}

	streamVersions := make([]int64, len(events))
	for i := range events {
		streamVersions[i] = current + int64(i) + 1
	}

	// Round trip 2: take the allocation lock, insert (which assigns this
	// transaction's id and the positions, both under the lock), release the
	// lock, commit, and wake listeners in other processes. NOTIFY runs after
	// COMMIT, in its own implicit transaction, so that PostgreSQL's
	// notification queue lock is never held across our commit's WAL flush.
	b = &pgx.Batch{}
	b.Queue("SELECT pg_advisory_lock($1, $2)", allocLockClass, allocLockID)
	b.Queue("SELECT pg_current_xact_id_if_assigned() IS NULL")
	b.Queue(`INSERT INTO events (event_id, stream_id, stream_version, event_type, schema_version, data, metadata)
	         SELECT id, $1, ver, typ, sv, dat::jsonb, meta::jsonb
	           FROM unnest($2::uuid[], $3::bigint[], $4::text[], $5::int[], $6::text[], $7::text[]) AS i(id, ver, typ, sv, dat, meta)
	         RETURNING stream_version, position, recorded_at`,
		stream, ids, streamVersions, types, versions, datas, metas)
	b.Queue("SELECT pg_advisory_unlock($1, $2)", allocLockClass, allocLockID)
	commit := &pgx.Batch{}
	commit.Queue("COMMIT")
	commit.Queue("SELECT pg_notify($1, (SELECT max(position) FROM events WHERE event_id = ANY($2::uuid[]))::text)", NotifyChannel, ids)
	if s.beforeCommit == nil {
		b.QueuedQueries = append(b.QueuedQueries, commit.QueuedQueries...)
	}
	mayHoldLock = true
	br = conn.SendBatch(ctx, b)
	type placed struct {
		position int64
		at       time.Time
	}
	byVersion := make(map[int64]placed, len(events))
	committed := false
	err = func() error {
		defer func() { _ = br.Close() }() // br is replaced when the commit is sent separately
		if _, err := br.Exec(); err != nil {
			return err
		}
		var fresh bool
		if err := br.QueryRow().Scan(&fresh); err != nil {
			return err
		}
		if !fresh {
			// Cannot happen with this code path; guards the invariant that
			// the package documentation relies on.
			return errors.New("invariant broken: transaction id assigned before the allocation lock")
		}
		rows, err := br.Query()
		if err != nil {
			return err
		}
		for rows.Next() {
			var v int64
			var p placed
			if err := rows.Scan(&v, &p.position, &p.at); err != nil {
				rows.Close()
				return err
			}
			byVersion[v] = p
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if _, err := br.Exec(); err != nil {
			return err
		}
		if s.beforeCommit != nil {
			if err := br.Close(); err != nil {
				return err
			}
			if err := s.beforeCommit(ctx, stream); err != nil {
				return err
			}
			br = conn.SendBatch(ctx, commit)
		}
		if _, err := br.Exec(); err != nil {
			return fmt.Errorf("commit: %w", err)
		}
		committed = true
		if _, err := br.Exec(); err != nil {
			// The events are committed; other processes will find them on
			// their next poll.
			s.log.WarnContext(ctx, "eventstore: notify after commit failed", "stream", stream, "err", err)
		}
		return nil
	}()
	if err != nil && !committed {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == "events_event_id_key" {
			return res, errEventIDRace
		}
		if errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == "events_stream_version_key" {
			actual, verr := s.StreamVersion(ctx, stream)
			if verr != nil {
				return res, verr
			}
			return res, wrongVersion(stream, expected, actual)
		}
		return res, s.dbError("append "+stream, err)
	}
	dirty = !committed || conn.Conn().PgConn().TxStatus() != 'I'

	res = domain.AppendResult{StreamID: stream, Events: make([]domain.RecordedEvent, len(events))}
	for i, e := range events {
		v := streamVersions[i]
		p, ok := byVersion[v]
		if !ok {
			return res, s.dbError("append "+stream, fmt.Errorf("insert returned no row for version %d", v))
		}
		res.Events[i] = domain.RecordedEvent{EventData: e, StreamID: stream, StreamVersion: v, Position: p.position, RecordedAt: p.at}
	}
	fillResult(&res)
	return res, nil
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
			return domain.AppendResult{}, duplicateID("event id %s is already stored in another stream", e.ID)
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
