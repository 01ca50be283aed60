package eventstore

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"cqrsgate/domain"
	"cqrsgate/schemaregistry"
)

// Group commit. Concurrent appends in one process are written together:
// one transaction, one INSERT and one commit for a whole batch, in the same
// round trips a single append takes (see the package documentation),
// so that the allocation lock and the commit's WAL flush are paid once per
// batch rather than once per append. There is no timer and no background
// goroutine while idle: an append that finds no batch being written writes
// one itself (its own and whatever else is queued); appends that arrive
// meanwhile queue for the next batch, which the first of their writers to
// be done with its own hands to a goroutine that lives until the queue is
// empty. Each append's outcome is its own: a wrong expected version or an
// idempotent retry answers that append and leaves the others in the batch.
// When a batch as a whole fails before its commit (say two appends of the
// batch carry the same event id), each of its appends is retried alone.

// Batch bounds: a batch never holds more appends or events than these, nor
// more bytes of data and metadata (an append larger than that goes alone:
// what PostgreSQL and pgx take in one message is 1 GiB, and appends that
// are valid alone must not fail together), nor two appends to one stream
// (the later one waits for the next batch, so appends to a stream keep
// their order).
const (
	maxGroupAppends = 256
	maxGroupEvents  = 5000
	maxGroupBytes   = 32 << 20
)

// batchTimeout bounds the writing of a batch, and of each append tried
// again alone after its batch failed.
const batchTimeout = 30 * time.Second

// maxGroupWriters is how many batches may be in flight at once: while one
// waits for its commit to reach the disk, the next is being written. Batches
// in flight together may hold appends to one stream: its lock orders them,
// and every batch takes its stream locks in one order, so none waits for
// another in a cycle.
const maxGroupWriters = 4

type groupRequest struct {
	stream    string
	expected  domain.ExpectedVersion
	schemaRev int64              // the registry revision it was validated against, or noRevision
	original  []domain.EventData // as given, to tell client ids from generated ones
	events    []domain.EventData // prepared: ids and metadata filled in
	clientIDs bool
	bytes     int              // of the events' data and metadata
	done      chan groupResult // buffered: the writer never blocks on it
}

type groupResult struct {
	res domain.AppendResult
	err error
}

// grouper queues appends and elects the writers of batches.
type grouper struct {
	mu      sync.Mutex
	queue   []*groupRequest
	writers int
}

// appendGrouped queues the append and waits for its batch. The caller whose
// append finds no writer becomes it.
func (s *Postgres) appendGrouped(ctx context.Context, stream string, expected domain.ExpectedVersion, schemaRev int64, original, events []domain.EventData) (domain.AppendResult, error) {
	if err := ctx.Err(); err != nil {
		// The caller has gone already: write nothing for it.
		return domain.AppendResult{}, err
	}
	r := &groupRequest{stream: stream, expected: expected, schemaRev: schemaRev, original: original, events: events, done: make(chan groupResult, 1)}
	for _, e := range original {
		r.clientIDs = r.clientIDs || e.ID != ""
	}
	for _, e := range events {
		r.bytes += len(e.Data) + len(e.Metadata)
	}
	g := &s.group
	g.mu.Lock()
	g.queue = append(g.queue, r)
	lead := g.writers < maxGroupWriters
	if lead {
		g.writers++
	}
	g.mu.Unlock()
	if lead {
		// Write until this append is answered, then hand what is left to a
		// goroutine (which ends when the queue is empty), so that no caller
		// serves the others for long.
		for !s.writeNextBatch(ctx) {
			if len(r.done) > 0 {
				go func() {
					for !s.writeNextBatch(context.WithoutCancel(ctx)) {
					}
				}()
				break
			}
		}
	}
	select {
	case out := <-r.done:
		return out.res, out.err
	case <-ctx.Done():
		return s.abandon(ctx, r)
	}
}

// abandon answers an append whose caller's ctx ended while it waited: with
// ctx's error when it was still queued (it is taken out of the queue,
// under the lock writeNextBatch takes it under, so nothing of it is
// written), with its outcome if it has one by now, and otherwise, its
// batch being written, as of unknown outcome (UNAVAILABLE).
func (s *Postgres) abandon(ctx context.Context, r *groupRequest) (domain.AppendResult, error) {
	g := &s.group
	g.mu.Lock()
	i := slices.Index(g.queue, r)
	if i >= 0 {
		g.queue = slices.Delete(g.queue, i, i+1)
	}
	g.mu.Unlock()
	if i >= 0 {
		return domain.AppendResult{}, ctx.Err()
	}
	select {
	case out := <-r.done:
		return out.res, out.err
	default:
		return domain.AppendResult{}, unknownOutcome(r.stream, "the wait for the append ended while it was being written", ctx.Err())
	}
}

// unknownOutcome answers an append that may or may not have committed
// (UNAVAILABLE), why saying what happened, wrapping err.
func unknownOutcome(stream, why string, err error) error {
	return &domain.Error{Code: domain.Unavailable,
		Message: why + ", so whether it committed is unknown: read the stream to find out, or retry with the same event ids (a retry of a stored append is answered as a duplicate)",
		Err:     fmt.Errorf("append %s: %w", stream, err)}
}

// writeNextBatch writes the next batch from the queue; it reports true, and
// gives up the writer role, when the queue is empty.
func (s *Postgres) writeNextBatch(ctx context.Context) bool {
	g := &s.group
	g.mu.Lock()
	if len(g.queue) == 0 {
		g.writers--
		g.mu.Unlock()
		return true
	}
	var batch, rest []*groupRequest
	streams := map[string]bool{}
	events, bytes := 0, 0
	for _, r := range g.queue {
		if streams[r.stream] || len(batch) == maxGroupAppends ||
			len(batch) > 0 && (events+len(r.events) > maxGroupEvents || bytes+r.bytes > maxGroupBytes) {
			rest = append(rest, r)
			continue
		}
		streams[r.stream] = true
		events += len(r.events)
		bytes += r.bytes
		batch = append(batch, r)
	}
	g.queue = rest
	g.mu.Unlock()

	// The batch serves several callers: no one caller's cancellation may
	// break it.
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), batchTimeout)
	defer cancel()
	if len(batch) == 1 {
		s.appendOne(bctx, batch[0])
		return false
	}
	pending, err := s.writeBatch(bctx, batch)
	if err != nil {
		s.log.DebugContext(ctx, "eventstore: a grouped append failed as a whole; appending one by one", "appends", len(pending), "err", err)
		for _, r := range pending {
			// Each with a timeout of its own: the batch may have spent its.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), batchTimeout)
			s.appendOne(rctx, r)
			cancel()
		}
	}
	return false
}

// errSchemasChanged answers an append validated against a revision of the
// schema registry that is no longer the database's: nothing of it is
// written, and it is validated again (Schematized.Append).
var errSchemasChanged = errors.New("the schema registry changed after the append was validated")

// errTypeLocked answers an append of an event type that a change to the
// schema registry holds (while it replays the stored events): nothing of
// it is written, and it is tried again once the change is done
// (Schematized.Append).
var errTypeLocked = errors.New("a change to the schema registry holds an event type of the append")

// Errors of a batch's INSERT that say another writer got there first.
var (
	errEventIDRace       = errors.New("event id inserted concurrently")
	errStreamVersionRace = errors.New("stream version inserted concurrently")
)

// appendOne writes r in a batch of its own and answers it. A concurrent
// append of the same event ids elsewhere can make the insert fail on the
// unique event id; the retry then finds the stored events and answers as an
// idempotent duplicate or a conflict.
func (s *Postgres) appendOne(ctx context.Context, r *groupRequest) {
	for attempt := 0; ; attempt++ {
		_, err := s.writeBatch(ctx, []*groupRequest{r})
		switch {
		case err == nil:
			return // answered
		case errors.Is(err, errEventIDRace) && attempt < 2:
			continue
		case errors.Is(err, errEventIDRace):
			err = duplicateID("append to %q: event ids were appended concurrently elsewhere", r.stream)
		case errors.Is(err, errStreamVersionRace):
			// A writer that does not take the stream lock; the unique index caught it.
			actual, verr := s.StreamVersion(ctx, r.stream)
			if err = verr; err == nil {
				err = wrongVersion(r.stream, r.expected, actual)
			}
		}
		r.done <- groupResult{err: err}
		return
	}
}

// writeBatch writes batch in one transaction and answers its appends. On an
// error before the commit it answers none of those still pending and
// returns them, for the caller to append one by one.
//
// A batch whose appends bring no event ids of their own takes one round
// trip: its INSERT reads each stream's version and checks each append's
// expected version itself. One that does (an idempotent retry is possible)
// takes two: the stored ids are looked up first.
func (s *Postgres) writeBatch(ctx context.Context, batch []*groupRequest) (pending []*groupRequest, err error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return batch, unavailable("append", err)
	}
	dirty, mayHoldLock := true, false
	defer func() {
		if dirty {
			s.cleanUp(conn, mayHoldLock)
		}
		conn.Release()
	}()

	keys := make([]int64, 0, len(batch))
	lookup := false
	var checkedTypes []string // of the appends validated against the registry
	for _, r := range batch {
		keys = append(keys, streamLockKey(r.stream))
		lookup = lookup || r.clientIDs
		if r.schemaRev != noRevision {
			for _, e := range r.events {
				checkedTypes = append(checkedTypes, e.Type)
			}
		}
	}
	// Stream locks in one order everywhere, so that two batches never wait
	// for each other in a cycle.
	slices.Sort(keys)
	keys = slices.Compact(keys)
	const lockStreams = "SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[]) AS t(k)" // in array order

	insert := batch
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(lockStreams, keys)
	if lookup {
		// Round trip 1: lock the streams, read their versions, look up the
		// stored ids; answer what needs no insert.
		if insert, err = s.checkBatch(ctx, conn, b, batch); err != nil {
			return batch, err
		}
		if len(insert) == 0 {
			return nil, nil // the deferred clean-up rolls back
		}
		b = &pgx.Batch{}
	}

	// The INSERT, with each append's expected version checked against its
	// stream's version as read in the INSERT's own snapshot: after the
	// stream locks, so no append of these streams can commit in between.
	var (
		reqs                           []int32
		ords                           []int64
		ids, typs, datas, metas, reqSt []string
		svs                            []int32
		expected, revs                 []int64
	)
	for i, r := range insert {
		reqSt, expected, revs = append(reqSt, r.stream), append(expected, int64(r.expected)), append(revs, r.schemaRev)
		for j, e := range r.events {
			reqs, ords = append(reqs, int32(i)), append(ords, int64(j+1))
			ids, typs, datas, metas = append(ids, e.ID), append(typs, e.Type), append(datas, string(e.Data)), append(metas, string(e.Metadata))
			svs = append(svs, int32(e.SchemaVersion))
		}
	}
	// The allocation lock is held from before the transaction's first
	// write while its transaction id is assigned and its positions are
	// reserved, and released before the INSERT, which places the events at
	// those positions: batches in flight together insert side by side. The
	// event types' locks are tried with it (see lockTypesSQL).
	text := textArrays(conn.Conn().Config().DefaultQueryExecMode)
	if len(checkedTypes) > 0 {
		b.Queue(allocLockCheckedSQL, allocLockClass, allocLockID, text(checkedTypes))
	} else {
		b.Queue(allocLockSQL, allocLockClass, allocLockID)
	}
	insertSQL := insertBatchSQL
	if len(checkedTypes) > 0 {
		insertSQL = insertCheckedBatchSQL
	}
	b.Queue("SELECT pg_current_xact_id_if_assigned() IS NULL")
	b.Queue(reservePositionsSQL, len(ids))
	b.Queue("SELECT pg_advisory_unlock($1, $2)", allocLockClass, allocLockID)
	b.Queue(insertSQL, text(reqSt), expected, reqs, ords, text(ids), text(typs), svs, text(datas), text(metas), revs)
	commit := &pgx.Batch{}
	commit.Queue("COMMIT")
	commit.Queue(notifySQL, NotifyChannel, s.wake.Origin())
	if s.beforeCommit == nil {
		b.QueuedQueries = append(b.QueuedQueries, commit.QueuedQueries...)
	}
	type placed struct {
		version, position int64
		at                time.Time
	}
	written := map[int32][]placed{} // by append, in version order
	actual := map[int32]int64{}     // the stream versions of appends whose expected version was wrong
	stale := map[int32]bool{}       // appends validated against another registry revision
	locked := map[int32]bool{}      // appends of a type a registry change holds
	var last int64
	mayHoldLock = true
	committed := false
	commitSent := s.beforeCommit == nil // the COMMIT goes in the same round trip
	br := conn.SendBatch(ctx, b)
	err = func() error {
		defer func() { _ = br.Close() }() // br is replaced when the commit is sent separately
		if !lookup {
			for range 2 { // BEGIN, the stream locks
				if _, err := br.Exec(); err != nil {
					return err
				}
			}
		}
		if _, err := br.Exec(); err != nil {
			return err
		}
		var fresh bool
		if err := br.QueryRow().Scan(&fresh); err != nil {
			return err
		}
		if !fresh {
			return errors.New("invariant broken: transaction id assigned before the allocation lock")
		}
		for range 2 { // the reservation, the unlock
			if _, err := br.Exec(); err != nil {
				return err
			}
		}
		rows, err := br.Query()
		if err != nil {
			return err
		}
		for rows.Next() {
			var req int32
			var wrong, isStale, isLocked bool
			var p placed
			if err := rows.Scan(&req, &wrong, &isStale, &isLocked, &p.version, &p.position, &p.at); err != nil {
				rows.Close()
				return err
			}
			if isLocked {
				locked[req] = true
				continue
			}
			if isStale {
				stale[req] = true
				continue
			}
			if wrong {
				actual[req] = p.version
				continue
			}
			written[req] = append(written[req], p)
			last = max(last, p.position)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if s.beforeCommit != nil { // tests hold the transaction open, or roll it back
			if err := br.Close(); err != nil {
				return err
			}
			for _, r := range insert {
				if err := s.beforeCommit(ctx, r.stream); err != nil {
					return err
				}
			}
			commitSent = true
			br = conn.SendBatch(ctx, commit)
		}
		if _, err := br.Exec(); err != nil {
			return fmt.Errorf("commit: %w", err)
		}
		committed = true
		if _, err := br.Exec(); err != nil {
			// The events are committed; other processes find them on their next poll.
			s.log.WarnContext(ctx, "eventstore: notify after commit failed", "err", err)
		}
		return nil
	}()
	if err != nil && !committed && !commitOutcomeUnknown(err, commitSent) {
		// Nothing is committed: the appends may be tried again.
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == "events_event_id_key" {
			return insert, errEventIDRace
		}
		if errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == "events_stream_version_key" {
			return insert, errStreamVersionRace
		}
		return insert, s.dbError("append", err)
	}
	if err != nil {
		// The commit's outcome is unknown: each append is answered so, and
		// none is tried again (a retry alone would find its own events and
		// answer a conflict, or write them twice).
		s.wake.Notify(0) // the events may be there; the Listener skips this process's notification
		for _, r := range insert {
			r.done <- groupResult{err: unknownOutcome(r.stream, "the append's commit was sent to the database but no reply came (the connection broke or the wait timed out)", err)}
		}
		return nil, nil
	}
	dirty = conn.Conn().PgConn().TxStatus() != 'I'
	if last > 0 {
		s.wake.Notify(last)
	}
	for i, r := range insert {
		if locked[int32(i)] {
			r.done <- groupResult{err: errTypeLocked}
			continue
		}
		if stale[int32(i)] {
			r.done <- groupResult{err: errSchemasChanged}
			continue
		}
		if v, wrong := actual[int32(i)]; wrong {
			r.done <- groupResult{err: wrongVersion(r.stream, r.expected, v)}
			continue
		}
		got := written[int32(i)]
		if len(got) != len(r.events) {
			r.done <- groupResult{err: s.dbError("append "+r.stream, fmt.Errorf("insert returned %d rows for %d events", len(got), len(r.events)))}
			continue
		}
		slices.SortFunc(got, func(a, b placed) int { return cmp.Compare(a.version, b.version) })
		res := domain.AppendResult{StreamID: r.stream, Events: make([]domain.RecordedEvent, len(r.events))}
		for j, e := range r.events {
			res.Events[j] = domain.RecordedEvent{EventData: e, StreamID: r.stream, StreamVersion: got[j].version, Position: got[j].position, RecordedAt: got[j].at}
		}
		fillResult(&res)
		r.done <- groupResult{res: res}
	}
	return nil, nil
}

// textArray is a text[] parameter that pgx encodes without boxing each
// string into an interface (as it does a []string's, one allocation per
// element): its elements are handed over as pointers, which box for free,
// to a type pgx encodes as text (pgtype.TextValuer). Appends send five of
// these per batch, four with one element per event. pgx can encode it only
// for a parameter whose type it learnt from the statement's description:
// see textArrays.
type textArray []string

// textArrays returns how to pass text[] parameters on a connection in
// mode: as textArrays in the modes that describe statements (the default
// among them), as the []string itself in the others (Exec, the simple
// protocol), where pgx finds an encoding by the value's Go type.
func textArrays(mode pgx.QueryExecMode) func([]string) any {
	switch mode {
	case pgx.QueryExecModeCacheStatement, pgx.QueryExecModeCacheDescribe, pgx.QueryExecModeDescribeExec:
		return func(s []string) any { return textArray(s) }
	}
	return func(s []string) any { return s }
}

var _ pgtype.ArrayGetter = textArray(nil)

func (a textArray) Dimensions() []pgtype.ArrayDimension {
	if a == nil {
		return nil
	}
	return []pgtype.ArrayDimension{{Length: int32(len(a)), LowerBound: 1}}
}

func (a textArray) Index(i int) any { return (*textElement)(&a[i]) }

func (a textArray) IndexType() any { return new(textElement) }

type textElement string

func (e *textElement) TextValue() (pgtype.Text, error) {
	return pgtype.Text{String: string(*e), Valid: true}, nil
}

// commitOutcomeUnknown reports whether err, met by a batch whose COMMIT had
// been sent when commitSent, leaves it unknown whether the batch committed:
// PostgreSQL said nothing (the connection broke, the context ended) after
// the COMMIT may have reached it. An error PostgreSQL reported (to the
// INSERT, say, or to the COMMIT itself) means the transaction did not
// commit, and so does one pgx met before sending anything.
func commitOutcomeUnknown(err error, commitSent bool) bool {
	var pgErr *pgconn.PgError
	return commitSent && !errors.As(err, &pgErr) && !pgconn.SafeToRetry(err)
}

// reservePositionsSQL assigns the transaction its id and reserves $1
// positions, the next ones of the events' identity sequence (one nextval,
// one setval: every allocation of positions takes the allocation lock, so
// no other can come between the two). It records the first in the
// transaction's setting cqrsgate.first_position, where insertBatchSQL,
// sent in the same round trip, reads it.
const reservePositionsSQL = `SELECT pg_current_xact_id(),
       set_config('cqrsgate.first_position', (setval(s::regclass, nextval(s::regclass) + $1 - 1) - $1 + 1)::text, true)
  FROM pg_get_serial_sequence('events', 'position') AS s`

// notifySQL announces a commit on channel $1 (see NotifyChannel), after
// it: in a transaction of its own, since a NOTIFY inside the appending
// transaction would hold PostgreSQL's notification lock through that
// transaction's commit, one committing appender at a time. The highest
// position written is the one insertBatchSQL kept in the session (0 when
// it wrote nothing); it is set back to 0, so that a later transaction that
// rolls back leaves nothing to announce. This relies on the append and its
// NOTIFY running in one session, as they do on a connection of the pool
// (not through a proxy that pools transactions, where a lost wake-up would
// leave other processes to their followers' polls).
const notifySQL = `SELECT pg_notify($1, p || ' ' || $2), set_config('cqrsgate.last_position', '0', false)
  FROM (SELECT coalesce(current_setting('cqrsgate.last_position', true), '') AS p) AS m
 WHERE p NOT IN ('', '0')`

// insertBatchSQL inserts a batch's events. Its input is one row per append
// ($1 stream, $2 expected version, numbered from 0 in array order) and one
// per event ($3 its append's number, $4 its place in the append from 1,
// then its columns). Each append whose expected version matches its
// stream's version is inserted after that version, in order, at the
// positions reservePositionsSQL reserved (in array order: the appends
// refused leave the end of the reservation unused, a hole); the statement
// returns (append, false, version, position, recorded_at) for each event
// inserted and (append, true, the stream's version, 0, now) for each append
// whose expected version is wrong. It keeps the highest position inserted
// (0 for none) in the session's setting cqrsgate.last_position, for
// notifySQL: a session setting made in a transaction lasts past its commit.
var (
	insertBatchSQL = fmt.Sprintf(insertBatchSQLFormat, "false", "false")
	// insertCheckedBatchSQL also answers stale each append whose registry
	// revision ($10) is not the database's, as the INSERT's snapshot sees
	// it, and locked out each whose event types lockTypesSQL could not lock.
	insertCheckedBatchSQL = fmt.Sprintf(insertBatchSQLFormat,
		"a.rev <> "+noRevisionSQL+" AND a.rev IS DISTINCT FROM ("+schemaregistry.RevisionSQL+")",
		"CASE WHEN a.rev = "+noRevisionSQL+" OR coalesce(current_setting('cqrsgate.locked_out', true), '') = '' THEN false "+ // the common case, at no cost
			"ELSE EXISTS (SELECT 1 FROM unnest($3::int[], $6::text[]) AS e(req, typ) WHERE e.req = a.n - 1 AND "+
			fmt.Sprintf(schemaregistry.TypeLockKeySQL, "e.typ")+"::text = ANY (string_to_array(current_setting('cqrsgate.locked_out', true), ','))) END")
	// allocLockSQL takes the allocation lock; allocLockCheckedSQL also
	// tries the event types' locks (lockTypesSQL) of the batch's checked
	// appends, in the same statement.
	allocLockSQL        = "SELECT pg_advisory_lock($1, $2)"
	allocLockCheckedSQL = allocLockSQL + ", (" + lockTypesSQL + ")"
	// lockTypesSQL takes the advisory locks of the event types in $3
	// shared, without waiting (in one order; see
	// schemaregistry.TypeLockKeySQL): a registry change holds its type's
	// for as long as its replay of the stored events takes, and a batch
	// waiting for it would hold up appends of every other type with it.
	// It keeps the keys it could not take in cqrsgate.locked_out, for the
	// INSERT, which writes nothing of the appends of those types.
	lockTypesSQL = "SELECT set_config('cqrsgate.locked_out', coalesce(string_agg(u.k::text, ','), ''), true) FROM (SELECT s.k FROM (SELECT DISTINCT " +
		fmt.Sprintf(schemaregistry.TypeLockKeySQL, "t.typ") + " AS k FROM unnest($3::text[]) AS t(typ) ORDER BY 1) AS s WHERE NOT pg_try_advisory_xact_lock_shared(s.k)) AS u"
)

// noRevision is an append's schema revision when it was not validated
// against the registry (or need not be checked against its changes).
const (
	noRevision    = -1
	noRevisionSQL = "-1"
)

// insertBatchSQLFormat is the batch INSERT, with the two %s the
// expressions that say whether an append is stale and whether it is
// locked out (appends that are, or whose expected version is wrong, are
// answered with a row of their own and insert nothing).
const insertBatchSQLFormat = `WITH req AS MATERIALIZED (
	SELECT a.n - 1 AS req, a.stream, a.expected,
	       coalesce((SELECT max(stream_version) FROM events WHERE stream_id = a.stream), 0) AS cur,
	       %s AS stale, %s AS locked
	  FROM unnest($1::text[], $2::bigint[], $10::bigint[]) WITH ORDINALITY AS a(stream, expected, rev, n)
), ok AS (
	SELECT * FROM req WHERE NOT stale AND NOT locked AND CASE expected WHEN -1 THEN true WHEN -2 THEN cur > 0 ELSE cur = expected END
), ins AS (
	INSERT INTO events (position, event_id, stream_id, stream_version, event_type, schema_version, data, metadata)
	OVERRIDING SYSTEM VALUE
	SELECT current_setting('cqrsgate.first_position')::bigint + row_number() OVER (ORDER BY i.n) - 1,
	       i.id::uuid, ok.stream, ok.cur + i.ord, i.typ, i.sv, i.dat::jsonb, i.meta::jsonb
	  FROM unnest($3::int[], $4::bigint[], $5::text[], $6::text[], $7::int[], $8::text[], $9::text[]) WITH ORDINALITY AS i(req, ord, id, typ, sv, dat, meta, n)
	  JOIN ok ON ok.req = i.req
	 ORDER BY i.n
	RETURNING stream_id, stream_version, position, recorded_at
), mark AS MATERIALIZED (
	SELECT set_config('cqrsgate.last_position', coalesce(max(position), 0)::text, false) AS last FROM ins
)
SELECT ok.req::int, false, false, false, ins.stream_version, ins.position, ins.recorded_at FROM ins JOIN ok ON ok.stream = ins.stream_id
UNION ALL
SELECT req::int, true, stale, locked, cur, 0::bigint, now() FROM req
 WHERE stale OR locked OR NOT CASE expected WHEN -1 THEN true WHEN -2 THEN cur > 0 ELSE cur = expected END
UNION ALL
SELECT 0, true, false, false, 0::bigint, 0::bigint, now() FROM mark WHERE last IS NULL -- sets it; never a row`

// checkBatch sends b (BEGIN and the stream locks) with the reads of the
// batch's stream versions and of its stored event ids, answers the appends
// that need no insert (idempotent retries, wrong expected versions) and
// returns the others.
func (s *Postgres) checkBatch(ctx context.Context, conn *pgxpool.Conn, b *pgx.Batch, batch []*groupRequest) ([]*groupRequest, error) {
	streams := make([]string, len(batch))
	var (
		lookupReq             []int32
		lookupOrd             []int64
		lookupIDs, lookupTyps []string
		lookupVers            []int32
		lookupData            []string
	)
	for i, r := range batch {
		streams[i] = r.stream
		if r.clientIDs {
			for j, e := range r.events {
				lookupReq, lookupOrd = append(lookupReq, int32(i)), append(lookupOrd, int64(j+1))
				lookupIDs, lookupTyps = append(lookupIDs, e.ID), append(lookupTyps, e.Type)
				lookupVers, lookupData = append(lookupVers, int32(e.SchemaVersion)), append(lookupData, string(e.Data))
			}
		}
	}
	// One max per stream, so that each is read from the end of the
	// (stream_id, stream_version) index rather than aggregated over the stream.
	b.Queue("SELECT s, coalesce((SELECT max(stream_version) FROM events WHERE stream_id = s), 0) FROM unnest($1::text[]) AS s", streams)
	b.Queue(`SELECT i.req, i.ord, e.stream_id, e.stream_version, e.position, e.recorded_at,
	        (e.event_type = i.typ AND e.schema_version = i.ver AND e.data = i.dat::jsonb), e.data::text, e.metadata::text
	   FROM unnest($1::int[], $2::bigint[], $3::text[], $4::text[], $5::int[], $6::text[]) AS i(req, ord, id, typ, ver, dat)
	   JOIN events e ON e.event_id = i.id::uuid
	  ORDER BY i.req, i.ord`, lookupReq, lookupOrd, lookupIDs, lookupTyps, lookupVers, lookupData)
	current := map[string]int64{}
	stored := map[int][]storedEvent{}
	br := conn.SendBatch(ctx, b)
	err := func() error {
		defer br.Close()
		for range 2 { // BEGIN, the stream locks
			if _, err := br.Exec(); err != nil {
				return err
			}
		}
		rows, err := br.Query()
		if err != nil {
			return err
		}
		for rows.Next() {
			var stream string
			var v int64
			if err := rows.Scan(&stream, &v); err != nil {
				rows.Close()
				return err
			}
			current[stream] = v
		}
		if err := rows.Err(); err != nil {
			return err
		}
		rows, err = br.Query()
		if err != nil {
			return err
		}
		for rows.Next() {
			var req int32
			var se storedEvent
			var data, meta string
			if err := rows.Scan(&req, &se.ord, &se.stream, &se.version, &se.position, &se.recordedAt, &se.same, &data, &meta); err != nil {
				rows.Close()
				return err
			}
			se.data, se.meta = json.RawMessage(data), json.RawMessage(meta)
			stored[int(req)] = append(stored[int(req)], se)
		}
		return rows.Err()
	}()
	if err != nil {
		return nil, s.dbError("append", err)
	}
	var insert []*groupRequest
	for i, r := range batch {
		if found := stored[i]; len(found) > 0 {
			res, err := idempotentResult(r.stream, r.events, found)
			r.done <- groupResult{res, err}
			continue
		}
		if cur := current[r.stream]; !expectedMatches(r.expected, cur) {
			r.done <- groupResult{err: wrongVersion(r.stream, r.expected, cur)}
			continue
		}
		insert = append(insert, r)
	}
	return insert, nil
}
