package eventstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"cqrsgate/domain"
)

// ReadStream implements Store.
func (s *Postgres) ReadStream(ctx context.Context, stream string, q StreamQuery) ([]domain.RecordedEvent, error) {
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
	var rows pgx.Rows
	switch {
	case !q.Backward:
		rows, err = s.pool.Query(ctx, `SELECT `+eventColumns+` FROM events
			WHERE stream_id = $1 AND stream_version >= $2 ORDER BY stream_version LIMIT $3`, stream, q.From, limit)
	case q.From == 0:
		rows, err = s.pool.Query(ctx, `SELECT `+eventColumns+` FROM events
			WHERE stream_id = $1 ORDER BY stream_version DESC LIMIT $2`, stream, limit)
	default:
		rows, err = s.pool.Query(ctx, `SELECT `+eventColumns+` FROM events
			WHERE stream_id = $1 AND stream_version <= $2 ORDER BY stream_version DESC LIMIT $3`, stream, q.From, limit)
	}
	if err != nil {
		return nil, s.dbError("read stream "+stream, err)
	}
	events, err := collectEvents(rows, min(limit, streamRoom))
	if err != nil {
		return nil, s.dbError("read stream "+stream, err)
	}
	return events, nil
}

// headSQL finds the highest position that is safe to read: every event at
// or below it is committed (or rolled back) for good.
const headSQL = `SELECT coalesce((SELECT position FROM events
	WHERE tx_id < (SELECT pg_snapshot_xmin(pg_current_snapshot())) ORDER BY position DESC LIMIT 1), 0)`

// orderedReadsSQL makes the read that follows it in its batch (one implicit
// transaction) walk an index in position order. Right after the log has
// grown (a bulk load, a busy minute) the planner's statistics believe few
// events follow the position, and it plans "every remaining event (of the
// types), from a bitmap, sorted": a read of N events then costs all the
// events after the position, sorted, which is N² over a catch-up. An
// ordered index scan costs what it returns, whatever the statistics say.
const orderedReadsSQL = `SELECT set_config('enable_sort', 'off', true), set_config('enable_bitmapscan', 'off', true)`

// walksInOrder reports whether q's read is made to walk an index in
// position order (orderedReadsSQL). Not a read of one stream: its events
// are best found by the stream's own index and sorted (they are few), where
// walking the log in order would pass every other stream's events.
func walksInOrder(q AllQuery) bool { return q.Stream == "" }

// genericReadSQL is orderedReadsSQL for a read of the whole log (no filter
// but the position): it also has the read run on its prepared statement's
// generic plan. The followers of a busy log make this read hundreds of
// times a second, and PostgreSQL planned about a third of them afresh
// (pg_stat_statements, in the bench command's mutations: 2,249 plans in
// 6,276 calls, as much time planning as executing) for the same plan, the
// walk of the position index that the settings leave as the only way. A
// read with a filter keeps its custom plans: generic ones read the type,
// tenant or prefix from the rows of that walk rather than from their own
// index.
const genericReadSQL = orderedReadsSQL + `, set_config('plan_cache_mode', 'force_generic_plan', true)`

// readSettings returns the settings sent before q's read, if any.
func readSettings(q AllQuery) string {
	switch {
	case !walksInOrder(q):
		return ""
	case !q.filtered():
		return genericReadSQL
	}
	return orderedReadsSQL
}

// ReadAll implements Store. An event is returned only once the transaction
// that wrote it is older than every transaction still running
// (tx_id < pg_snapshot_xmin(pg_current_snapshot())); see the package
// documentation for why this makes reading by position gap-safe. The
// snapshot's xmin is a sub-select, computed once per query rather than
// once per row.
func (s *Postgres) ReadAll(ctx context.Context, q AllQuery) (Page, error) {
	limit, err := checkAllQuery(q)
	if err != nil {
		return Page{}, err
	}
	sql, args := readAllSQL(q, limit)
	announced := s.wake.Latest() // committed before the read began

	// The head is read first: everything at or below it is settled, so a
	// page that comes back short has seen all of it.
	b := &pgx.Batch{}
	settings := readSettings(q)
	if settings != "" {
		b.Queue(settings)
	}
	b.Queue(headSQL)
	b.Queue(sql, args...)
	br := s.pool.SendBatch(ctx, b)
	defer br.Close()
	if settings != "" {
		if _, err := br.Exec(); err != nil {
			return Page{}, s.dbError("read all", err)
		}
	}
	var page Page
	if err := br.QueryRow().Scan(&page.Head); err != nil {
		return Page{}, s.dbError("read all", err)
	}
	rows, err := br.Query()
	if err != nil {
		return Page{}, s.dbError("read all", err)
	}
	// At most one event per position up to the head (the read may pass
	// it by the events committed since: those grow the slice).
	page.Events, err = collectEvents(rows, int(min(int64(limit), max(page.Head-q.After, 0))))
	if err != nil {
		return Page{}, s.dbError("read all", err)
	}
	page.Next = nextPosition(q.After, limit, page)
	if n := len(page.Events); n > 0 && page.Head < page.Events[n-1].Position {
		// The events were read after the head, so they may pass it. (Not
		// Next: read after a position past the log's end, Next is that
		// position, and a reader that overshot would be told it is at
		// the head.)
		page.Head = page.Events[n-1].Position
	}
	if page.Head < announced {
		// An older transaction hides events that committed before this
		// read: wake the readers when they can be read (heldback.go).
		s.wakeWhenReadable()
	}
	return page, nil
}

// readAllSQL is ReadAll's query. With several event types it is one
// branch per type, each reading its type's (event_type, position) index in
// order, merged by position: its cost follows the events it returns, where
// a filter on the whole log pays for every event of other types on the way
// (after a bulk load that is most of the log).
func readAllSQL(q AllQuery, limit int) (string, []any) {
	args := []any{q.After, limit}
	where := `position > $1 AND tx_id < (SELECT pg_snapshot_xmin(pg_current_snapshot()))`
	if q.StreamPrefix != "" {
		args = append(args, q.StreamPrefix)
		where += fmt.Sprintf(" AND starts_with(stream_id, $%d)", len(args))
	}
	if q.Stream != "" {
		args = append(args, q.Stream)
		where += fmt.Sprintf(" AND stream_id = $%d", len(args))
	}
	if q.Tenant != nil {
		// The expression of index events_tenant_position.
		args = append(args, *q.Tenant)
		where += fmt.Sprintf(" AND (CASE WHEN strpos(stream_id, '~') > 0 THEN split_part(stream_id, '~', 1) ELSE '' END) = $%d", len(args))
	}
	types := slices.Clone(q.Types)
	slices.Sort(types)
	types = slices.Compact(types) // a type named twice must not be read twice
	switch len(types) {
	case 0:
		return `SELECT ` + eventColumns + ` FROM events WHERE ` + where + ` ORDER BY position LIMIT $2`, args
	case 1:
		args = append(args, types[0])
		return fmt.Sprintf(`SELECT %s FROM events WHERE %s AND event_type = $%d ORDER BY position LIMIT $2`, eventColumns, where, len(args)), args
	}
	var b strings.Builder
	b.WriteString(`SELECT * FROM (`)
	for i, t := range types {
		args = append(args, t)
		if i > 0 {
			b.WriteString(` UNION ALL `)
		}
		fmt.Fprintf(&b, `(SELECT %s FROM events WHERE %s AND event_type = $%d ORDER BY position LIMIT $2)`, eventColumns, where, len(args))
	}
	b.WriteString(`) AS e ORDER BY position LIMIT $2`)
	return b.String(), args
}

// nextPosition is where a reader continues after page: after its last event
// when the page is full, otherwise after everything known to be settled.
func nextPosition(after int64, limit int, page Page) int64 {
	next := after
	if n := len(page.Events); n > 0 {
		next = page.Events[n-1].Position
	}
	if len(page.Events) < limit && page.Head > next {
		next = page.Head
	}
	return next
}

// ReadEvent implements Store.
func (s *Postgres) ReadEvent(ctx context.Context, eventID string) (domain.RecordedEvent, error) {
	if !domain.ValidID(eventID) {
		return domain.RecordedEvent{}, invalid("id", "event id %q is not a UUID", domain.CutText(eventID, 64))
	}
	rows, err := s.pool.Query(ctx, `SELECT `+eventColumns+` FROM events WHERE event_id = $1`, eventID)
	if err != nil {
		return domain.RecordedEvent{}, s.dbError("read event", err)
	}
	e, err := collectEvent(rows)
	if errors.Is(err, pgx.ErrNoRows) {
		return domain.RecordedEvent{}, eventNotFound(eventID)
	}
	if err != nil {
		return domain.RecordedEvent{}, s.dbError("read event", err)
	}
	return e, nil
}

// ReadByCorrelation implements Store.
func (s *Postgres) ReadByCorrelation(ctx context.Context, correlationID string, tenant *string, after int64, limit int) ([]domain.RecordedEvent, error) {
	if correlationID == "" {
		return nil, invalid("correlationId", "correlation id is empty")
	}
	if err := domain.CheckStorable("correlationId", correlationID); err != nil {
		return nil, err
	}
	limit, err := resolveLimit("first", limit)
	if err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT `+eventColumns+` FROM events
		WHERE metadata ? 'correlationId' AND metadata ->> 'correlationId' = $1 AND position > $2
		  AND tx_id < (SELECT pg_snapshot_xmin(pg_current_snapshot()))
		  AND ($4::text IS NULL OR (CASE WHEN strpos(stream_id, '~') > 0 THEN split_part(stream_id, '~', 1) ELSE '' END) = $4)
		ORDER BY position LIMIT $3`, correlationID, after, limit, tenant)
	if err != nil {
		return nil, s.dbError("read by correlation", err)
	}
	events, err := collectEvents(rows, min(limit, streamRoom))
	if err != nil {
		return nil, s.dbError("read by correlation", err)
	}
	return events, nil
}

// SaveSnapshot implements Store.
func (s *Postgres) SaveSnapshot(ctx context.Context, snap domain.Snapshot) error {
	if err := validateSnapshot(snap); err != nil {
		return err
	}
	tag, err := s.pool.Exec(ctx, `INSERT INTO snapshots (stream_id, stream_version, schema_version, state)
		SELECT $1, $2, $3, $4::jsonb
		 WHERE EXISTS (SELECT 1 FROM events WHERE stream_id = $1 AND stream_version = $2)
		ON CONFLICT (stream_id) DO UPDATE
		   SET stream_version = excluded.stream_version, schema_version = excluded.schema_version,
		       state = excluded.state, created_at = clock_timestamp()
		 WHERE snapshots.stream_version <= excluded.stream_version`,
		snap.StreamID, snap.Version, snap.SchemaVersion, string(snap.State))
	if err != nil {
		return s.dbError("save snapshot "+snap.StreamID, err)
	}
	if tag.RowsAffected() == 0 {
		// Either a newer snapshot is stored (fine) or the version does not exist.
		var exists bool
		err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM events WHERE stream_id = $1 AND stream_version = $2)`,
			snap.StreamID, snap.Version).Scan(&exists)
		if err != nil {
			return s.dbError("save snapshot "+snap.StreamID, err)
		}
		if !exists {
			return invalid("version", "stream %q has no version %d to snapshot", snap.StreamID, snap.Version)
		}
	}
	return nil
}

// LoadSnapshot implements Store.
func (s *Postgres) LoadSnapshot(ctx context.Context, stream string) (domain.Snapshot, error) {
	if err := validateStreamID("stream", stream); err != nil {
		return domain.Snapshot{}, err
	}
	snap := domain.Snapshot{StreamID: stream}
	var state string
	err := s.pool.QueryRow(ctx, `SELECT stream_version, schema_version, state::text, created_at FROM snapshots WHERE stream_id = $1`, stream).
		Scan(&snap.Version, &snap.SchemaVersion, &state, &snap.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return domain.Snapshot{}, &domain.Error{Code: domain.NotFound, Message: fmt.Sprintf("stream %q has no snapshot", stream), Err: ErrSnapshotNotFound}
	}
	if err != nil {
		return domain.Snapshot{}, s.dbError("load snapshot "+stream, err)
	}
	snap.State = json.RawMessage(state)
	return snap, nil
}

func validateSnapshot(snap domain.Snapshot) error {
	if err := validateStreamID("streamId", snap.StreamID); err != nil {
		return err
	}
	if snap.Version < 1 {
		return invalid("version", "snapshot version %d is invalid: versions start at 1", snap.Version)
	}
	if snap.SchemaVersion < 1 {
		return invalid("schemaVersion", "snapshot schema version %d is invalid: versions start at 1", snap.SchemaVersion)
	}
	state := trimJSONSpace(snap.State)
	if len(state) == 0 {
		return invalid("state", "snapshot state is missing: it is a JSON document")
	}
	// What jsonb refuses (a NUL, half a surrogate pair, a number beyond
	// numeric) is the caller's error, not the database's.
	if problem := unstorable(state, false); problem != "" {
		return invalid("state", "%s", problem)
	}
	return nil
}

// dbError classifies a database failure: the context's own error is returned
// as is, an unreachable server becomes Unavailable, anything else is
// wrapped with what was being done (and reported as Internal).
func (s *Postgres) dbError(op string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", op, err)
	}
	var de *domain.Error
	if errors.As(err, &de) {
		return err
	}
	if IsConnectionError(err) {
		return unavailable(op, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

func unavailable(op string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", op, err)
	}
	return &domain.Error{Code: domain.Unavailable, Message: "the event store is unavailable, retry later", Err: fmt.Errorf("%s: %w", op, err)}
}

// IsConnectionError reports whether err says that the database connection
// was lost or could not be had (the server ended it, is shutting down or
// starting, or the network failed), rather than that a statement failed.
func IsConnectionError(err error) bool {
	var netErr net.Error
	var connectErr *pgconn.ConnectError
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &connectErr), errors.As(err, &netErr):
		return true
	case errors.As(err, &pgErr):
		// Class 08: connection exception; 57P01-03: admin shutdown, crash shutdown, cannot connect now.
		return pgErr.Code[:2] == "08" || pgErr.Code == "57P01" || pgErr.Code == "57P02" || pgErr.Code == "57P03"
	}
	return false
}
