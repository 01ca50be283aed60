package eventstore

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"cqrsgate/domain"
)

// eventColumns are the columns every read of events selects, in the order
// collectEvents decodes them.
const eventColumns = `event_id::text, event_type, schema_version, data::text, metadata::text, stream_id, stream_version, position, recorded_at`

// streamRoom is the room a read of a stream or of a correlation makes for
// its events before the first row: most are a few events (an aggregate
// after its snapshot, one request's effects). Longer ones grow.
const streamRoom = 16

// collectEvents reads the rows of a query of eventColumns and closes rows.
// room is the events it makes room for before the first row: the most the
// read can return, when the caller knows it (a read of the log ahead of
// the head returns at most the positions between), so that a full page is
// not copied as it grows and a short one does not hold room it never
// uses.
//
// Reads of the log are the busiest path in the gateway (every follower's
// catch-up, every projection's rebuild), so rows in pgx's usual binary
// formats are decoded here rather than through Scan: two allocations per
// event (its id and stream share one string, its data and metadata one
// array) and the type names shared across the page, where Scan made five
// and planned each column. Rows in other formats (a pool configured for
// the simple protocol), and rows of a connection whose pgx reads times in
// a zone of its own, go through Scan.
func collectEvents(rows pgx.Rows, room int) ([]domain.RecordedEvent, error) {
	defer rows.Close()
	events := make([]domain.RecordedEvent, 0, max(room, 0))
	raw := rawEventFormats(rows.FieldDescriptions()) && localTimes(rows.Conn())
	var types map[string]string
	for rows.Next() {
		var e domain.RecordedEvent
		var err error
		if raw {
			if types == nil {
				types = map[string]string{}
			}
			err = decodeEvent(rows.RawValues(), &e, types)
		} else {
			err = rows.Scan(&e.ID, &e.Type, &e.SchemaVersion, (*[]byte)(&e.Data), (*[]byte)(&e.Metadata), &e.StreamID, &e.StreamVersion, &e.Position, &e.RecordedAt)
		}
		if err != nil {
			return nil, err
		}
		events = append(events, e)
	}
	return events, rows.Err()
}

// collectEvent reads the one row of a query of eventColumns; pgx.ErrNoRows
// when there is none.
func collectEvent(rows pgx.Rows) (domain.RecordedEvent, error) {
	events, err := collectEvents(rows, 1)
	switch {
	case err != nil:
		return domain.RecordedEvent{}, err
	case len(events) == 0:
		return domain.RecordedEvent{}, pgx.ErrNoRows
	}
	return events[0], nil
}

// rawEventFormats reports whether decodeEvent can read rows described by
// fields: eventColumns' types, with the numbers and the time in binary.
// (Text reads the same in either format.)
func rawEventFormats(fields []pgconn.FieldDescription) bool {
	want := [...]struct {
		oid    uint32
		binary bool
	}{
		{pgtype.TextOID, false}, {pgtype.TextOID, false}, {pgtype.Int4OID, true}, {pgtype.TextOID, false}, {pgtype.TextOID, false},
		{pgtype.TextOID, false}, {pgtype.Int8OID, true}, {pgtype.Int8OID, true}, {pgtype.TimestamptzOID, true},
	}
	if len(fields) != len(want) {
		return false
	}
	for i, f := range fields {
		if f.DataTypeOID != want[i].oid || want[i].binary && f.Format != pgtype.BinaryFormatCode {
			return false
		}
	}
	return true
}

// localTimes reports whether conn's pgx reads timestamptz in the local
// zone, as decodeEvent does: a pool may be configured otherwise (a
// TimestamptzCodec with a ScanLocation), and its reads then go through
// Scan.
func localTimes(conn *pgx.Conn) bool {
	if conn == nil {
		return false
	}
	t, ok := conn.TypeMap().TypeForOID(pgtype.TimestamptzOID)
	if !ok {
		return false
	}
	c, ok := t.Codec.(*pgtype.TimestamptzCodec)
	return ok && c.ScanLocation == nil
}

// decodeEvent decodes one row of eventColumns in the formats
// rawEventFormats accepts into e. types holds the type names seen so far.
func decodeEvent(values [][]byte, e *domain.RecordedEvent, types map[string]string) error {
	id, typ, version, data, meta, stream := values[0], values[1], values[2], values[3], values[4], values[5]
	if id == nil || typ == nil || version == nil || data == nil || stream == nil || values[6] == nil || values[7] == nil || values[8] == nil {
		return fmt.Errorf("event row: a column that cannot be null is null")
	}
	if len(version) != 4 || len(values[6]) != 8 || len(values[7]) != 8 || len(values[8]) != 8 {
		return fmt.Errorf("event row: a number or time of the wrong size")
	}
	ids := string(id) + string(stream) // one string for both
	e.ID, e.StreamID = ids[:len(id)], ids[len(id):]
	t, ok := types[string(typ)]
	if !ok {
		t = string(typ)
		types[t] = t
	}
	e.Type = t
	e.SchemaVersion = int(int32(binary.BigEndian.Uint32(version)))
	// Data and metadata share one array; each slice is capped at its end so
	// that appending to one never writes over the other.
	payload := make([]byte, len(data)+len(meta))
	copy(payload, data)
	copy(payload[len(data):], meta)
	e.Data = payload[:len(data):len(data)]
	if meta != nil {
		e.Metadata = payload[len(data):]
	}
	e.StreamVersion = int64(binary.BigEndian.Uint64(values[6]))
	e.Position = int64(binary.BigEndian.Uint64(values[7]))
	at, err := timestamptz(values[8])
	e.RecordedAt = at
	return err
}

// timestamptz decodes a binary timestamptz as pgx does (in the local zone),
// refusing the infinities, which time.Time cannot hold.
func timestamptz(b []byte) (time.Time, error) {
	const y2k = 946_684_800 // 2000-01-01 in Unix seconds
	us := int64(binary.BigEndian.Uint64(b))
	if us == math.MaxInt64 || us == math.MinInt64 {
		return time.Time{}, fmt.Errorf("event row: recorded_at is infinite")
	}
	return time.Unix(y2k+us/1_000_000, us%1_000_000*1_000), nil
}
