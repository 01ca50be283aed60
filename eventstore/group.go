package eventstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"cqrsgate/domain"
)

// Group commit. Concurrent appends in one process are written together:
// one transaction, one INSERT and one commit for a whole batch, in the same
// two round trips a single append takes (see the package documentation),
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
// two appends to one stream (the later one waits for the next batch, so
// appends to a stream keep their order).
const (
	maxGroupAppends = 256
	maxGroupEvents  = 5000
)

// maxGroupWriters is how many batches may be in flight at once: while one
// waits for its commit to reach the disk, the next is being written. Batches
// in flight together may hold appends to one stream: its lock orders them,
// and every batch takes its stream locks in one order, so none waits for
// another in a cycle.
const maxGroupWriters = 4

type groupRequest struct {
	stream    string
	expected  domain.ExpectedVersion
	original  []domain.EventData // as given, to tell client ids from generated ones
	events    []domain.EventData // prepared: ids and metadata filled in
	clientIDs bool
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
func (s *Postgres) appendGrouped(ctx context.Context, stream string, expected domain.ExpectedVersion, original, events []domain.EventData) (domain.AppendResult, error) {
	r := &groupRequest{stream: stream, expected: expected, original: original, events: events, done: make(chan groupResult, 1)}
	for _, e := range original {
		r.clientIDs = r.clientIDs || e.ID != ""
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
		// The append may still be written: as with a lost connection, the
		// caller cannot know (an idempotent retry tells).
		return domain.AppendResult{}, ctx.Err()
	}
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
	events := 0
	for _, r := range g.queue {
		if streams[r.stream] || len(batch) == maxGroupAppends || len(batch) > 0 && events+len(r.events) > maxGroupEvents {
			rest = append(rest, r)
			continue
		}
		streams[r.stream] = true
		events += len(r.events)
		batch = append(batch, r)
	}
	g.queue = rest
	g.mu.Unlock()

	// The batch serves several callers: no one caller's cancellation may
	// break it.
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if len(batch) == 1 {
		s.appendOne(bctx, batch[0])
		return false
	}
	pending, err := s.writeBatch(bctx, batch)
	if err != nil {
		s.log.DebugContext(ctx, "eventstore: a grouped append failed as a whole; appending one by one", "appends", len(pending), "err", err)
		for _, r := range pending {
			s.appendOne(bctx, r)
		}
	}
	return false
}

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

	streams := make([]string, len(batch))
	keys := make([]int64, 0, len(batch))
	var (
		lookupReq             []int32
		lookupOrd             []int64
		lookupIDs, lookupTyps []string
		lookupVers            []int32
		lookupData            []string
	)
	for i, r := range batch {
		streams[i] = r.stream
		keys = append(keys, streamLockKey(r.stream))
		if r.clientIDs {
			for j, e := range r.events {
				lookupReq, lookupOrd = append(lookupReq, int32(i)), append(lookupOrd, int64(j+1))
				lookupIDs, lookupTyps = append(lookupIDs, e.ID), append(lookupTyps, e.Type)
				lookupVers, lookupData = append(lookupVers, int32(e.SchemaVersion)), append(lookupData, string(e.Data))
			}
		}
	}
	// Stream locks in one order everywhere, so that two batches never wait
	// for each other in a cycle.
	slices.Sort(keys)
	keys = slices.Compact(keys)

	// Round trip 1: lock the streams, read their versions, look up stored ids.
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue("SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[]) AS t(k)", keys) // in array order
	// One max per stream, so that each is read from the end of the
	// (stream_id, stream_version) index rather than aggregated over the stream.
	b.Queue("SELECT s, coalesce((SELECT max(stream_version) FROM events WHERE stream_id = s), 0) FROM unnest($1::text[]) AS s", streams)
	// Ids the store generated itself cannot be stored yet: only appends
	// that bring their own ids need the idempotency look-up.
	lookup := len(lookupIDs) > 0
	if lookup {
		b.Queue(`SELECT i.req, i.ord, e.stream_id, e.stream_version, e.position, e.recorded_at,
	        (e.event_type = i.typ AND e.schema_version = i.ver AND e.data = i.dat::jsonb), e.data::text, e.metadata::text
	   FROM unnest($1::int[], $2::bigint[], $3::uuid[], $4::text[], $5::int[], $6::text[]) AS i(req, ord, id, typ, ver, dat)
	   JOIN events e ON e.event_id = i.id
	  ORDER BY i.req, i.ord`, lookupReq, lookupOrd, lookupIDs, lookupTyps, lookupVers, lookupData)
	}
	current := map[string]int64{}
	stored := map[int][]storedEvent{}
	br := conn.SendBatch(ctx, b)
	err = func() error {
		defer br.Close()
		if _, err := br.Exec(); err != nil {
			return err
		}
		if _, err := br.Exec(); err != nil {
			return err
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
		if !lookup {
			return nil
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
		return batch, s.dbError("append", err)
	}

	// Answer what needs no insert; lay out the rest.
	var (
		insert                       []*groupRequest
		firstVersion                 = map[*groupRequest]int64{}
		ids, typs, datas, metas, sid []string
		svs                          []int32
		versions                     []int64
	)
	for i, r := range batch {
		if found := stored[i]; len(found) > 0 {
			res, err := idempotentResult(r.stream, r.events, found)
			r.done <- groupResult{res, err}
			continue
		}
		cur := current[r.stream]
		if !expectedMatches(r.expected, cur) {
			r.done <- groupResult{err: wrongVersion(r.stream, r.expected, cur)}
			continue
		}
		insert = append(insert, r)
		firstVersion[r] = cur + 1
		for j, e := range r.events {
			ids, typs, datas, metas = append(ids, e.ID), append(typs, e.Type), append(datas, string(e.Data)), append(metas, string(e.Metadata))
			sid, svs, versions = append(sid, r.stream), append(svs, int32(e.SchemaVersion)), append(versions, cur+int64(j)+1)
		}
	}
	if len(insert) == 0 {
		return nil, nil // the deferred clean-up rolls back
	}

	// Round trip 2: as for one append, the allocation lock is held from
	// before the transaction's first write to after its INSERT.
	b = &pgx.Batch{}
	b.Queue("SELECT pg_advisory_lock($1, $2)", allocLockClass, allocLockID)
	b.Queue("SELECT pg_current_xact_id_if_assigned() IS NULL")
	b.Queue(`INSERT INTO events (event_id, stream_id, stream_version, event_type, schema_version, data, metadata)
	         SELECT id, sid, ver, typ, sv, dat::jsonb, meta::jsonb
	           FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::text[], $5::int[], $6::text[], $7::text[]) AS i(id, sid, ver, typ, sv, dat, meta)
	         RETURNING stream_id, stream_version, position, recorded_at`,
		ids, sid, versions, typs, svs, datas, metas)
	b.Queue("SELECT pg_advisory_unlock($1, $2)", allocLockClass, allocLockID)
	commit := &pgx.Batch{}
	commit.Queue("COMMIT")
	commit.Queue("SELECT pg_notify($1, (SELECT max(position) FROM events WHERE event_id = ANY($2::uuid[]))::text)", NotifyChannel, ids)
	if s.beforeCommit == nil {
		b.QueuedQueries = append(b.QueuedQueries, commit.QueuedQueries...)
	}
	type key struct {
		stream  string
		version int64
	}
	type placed struct {
		position int64
		at       time.Time
	}
	byKey := make(map[key]placed, len(ids))
	var last int64
	mayHoldLock = true
	committed := false
	br = conn.SendBatch(ctx, b)
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
			return errors.New("invariant broken: transaction id assigned before the allocation lock")
		}
		rows, err := br.Query()
		if err != nil {
			return err
		}
		for rows.Next() {
			var k key
			var p placed
			if err := rows.Scan(&k.stream, &k.version, &p.position, &p.at); err != nil {
				rows.Close()
				return err
			}
			byKey[k] = p
			last = max(last, p.position)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if _, err := br.Exec(); err != nil {
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
	if err != nil && !committed {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == "events_event_id_key" {
			return insert, errEventIDRace
		}
		if errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == "events_stream_version_key" {
			return insert, errStreamVersionRace
		}
		return insert, s.dbError("append", err)
	}
	if err != nil { // the commit's outcome is unknown
		for _, r := range insert {
			r.done <- groupResult{err: s.dbError("append "+r.stream, err)}
		}
		return nil, nil
	}
	dirty = conn.Conn().PgConn().TxStatus() != 'I'
	s.wake.Notify(last)
	for _, r := range insert {
		res := domain.AppendResult{StreamID: r.stream, Events: make([]domain.RecordedEvent, len(r.events))}
		var missing error
		for j, e := range r.events {
			v := firstVersion[r] + int64(j)
			p, ok := byKey[key{r.stream, v}]
			if !ok {
				missing = s.dbError("append "+r.stream, fmt.Errorf("insert returned no row for version %d", v))
				break
			}
			res.Events[j] = domain.RecordedEvent{EventData: e, StreamID: r.stream, StreamVersion: v, Position: p.position, RecordedAt: p.at}
		}
		if missing != nil {
			r.done <- groupResult{err: missing}
			continue
		}
		fillResult(&res)
		r.done <- groupResult{res: res}
	}
	return nil, nil
}
