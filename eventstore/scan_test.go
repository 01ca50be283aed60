package eventstore_test

import (
	"bytes"
	"context"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"cqrsgate/domain"
	"cqrsgate/eventstore"
	"cqrsgate/internal/pgtest"
)

// Every read decodes events alike whatever the pool's query mode: rows in
// binary (the default, decoded without Scan) and rows in text (the simple
// protocol, through Scan).
func TestReadsDecodeAlikeInEveryQueryMode(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	modes, pools := everyQueryMode, poolPerQueryMode(t, url)
	stores := make([]*eventstore.Postgres, len(modes))
	raw := make([]bool, len(modes))
	for i, pool := range pools {
		stores[i] = newPostgres(t, pool)
		rows, err := pool.Query(ctx, `SELECT `+eventstore.EventColumns+` FROM events LIMIT 0`)
		if err != nil {
			t.Fatal(err)
		}
		raw[i] = eventstore.RawEventFormats(rows.FieldDescriptions())
		rows.Close()
	}
	if !raw[0] || raw[len(raw)-1] {
		t.Fatalf("decoded without Scan, by mode %v: %v; want the default mode decoded without Scan and the simple protocol through Scan", modes, raw)
	}

	meta := json.RawMessage(`{"correlationId": "c-1", "actor": "ä"}`)
	for _, a := range []struct {
		stream string
		events []domain.EventData
	}{
		{"tenant-a~acct-1", []domain.EventData{
			{Type: "Opened", SchemaVersion: 2, Data: json.RawMessage(`{"owner": "Zoë", "n": 9007199254740993}`), Metadata: meta},
			{Type: "Deposited", SchemaVersion: 1, Data: json.RawMessage(`{}`)}}},
		{"acct-2", []domain.EventData{{Type: "Opened", SchemaVersion: 2, Data: json.RawMessage(`{"owner": "x"}`), Metadata: meta}}},
	} {
		if _, err := stores[0].Append(ctx, a.stream, domain.ExpectNoStream, a.events...); err != nil {
			t.Fatal(err)
		}
	}

	type reads struct {
		all, stream, correlated []domain.RecordedEvent
		one                     domain.RecordedEvent
	}
	read := func(s *eventstore.Postgres) reads {
		var r reads
		p, err := s.ReadAll(ctx, eventstore.AllQuery{Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		r.all = p.Events
		if r.stream, err = s.ReadStream(ctx, "tenant-a~acct-1", eventstore.StreamQuery{Backward: true}); err != nil {
			t.Fatal(err)
		}
		if r.correlated, err = s.ReadByCorrelation(ctx, "c-1", nil, 0, 10); err != nil {
			t.Fatal(err)
		}
		if len(r.all) != 3 || len(r.stream) != 2 || len(r.correlated) != 2 {
			t.Fatalf("read %d, %d and %d events; want 3, 2 and 2", len(r.all), len(r.stream), len(r.correlated))
		}
		if r.one, err = s.ReadEvent(ctx, r.all[1].ID); err != nil {
			t.Fatal(err)
		}
		return r
	}
	// Times compare as instants: text and binary rows give different zones.
	same := func(a, b []domain.RecordedEvent) bool {
		if len(a) != len(b) {
			return false
		}
		for i := range a {
			x, y := a[i], b[i]
			if !x.RecordedAt.Equal(y.RecordedAt) {
				return false
			}
			x.RecordedAt = y.RecordedAt
			if !reflect.DeepEqual(x, y) {
				return false
			}
		}
		return true
	}
	want := read(stores[0])
	// The default mode's reads, decoded without Scan, must be what Scan
	// made of the same rows: the time in the same zone too.
	rows, err := pools[0].Query(ctx, `SELECT `+eventstore.EventColumns+` FROM events ORDER BY position`)
	if err != nil {
		t.Fatal(err)
	}
	scanned, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (domain.RecordedEvent, error) {
		var e domain.RecordedEvent
		err := r.Scan(&e.ID, &e.Type, &e.SchemaVersion, (*[]byte)(&e.Data), (*[]byte)(&e.Metadata), &e.StreamID, &e.StreamVersion, &e.Position, &e.RecordedAt)
		return e, err
	})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(want.all, scanned) {
		t.Fatalf("read without Scan:\n%+v\nthrough Scan:\n%+v", want.all, scanned)
	}
	if e := want.all[0]; e.StreamID != "tenant-a~acct-1" || e.Type != "Opened" || e.SchemaVersion != 2 || e.StreamVersion != 1 ||
		!bytes.Contains(e.Data, []byte("9007199254740993")) || !bytes.Contains(e.Metadata, []byte(`"ä"`)) || e.RecordedAt.IsZero() {
		t.Fatalf("first event read as %+v", e)
	}
	for i, s := range stores[1:] {
		got := read(s)
		if !same(got.all, want.all) || !same(got.stream, want.stream) || !same(got.correlated, want.correlated) ||
			!same([]domain.RecordedEvent{got.one}, []domain.RecordedEvent{want.one}) {
			t.Errorf("mode %v read\n%+v\nwhere the default mode read\n%+v", modes[i+1], got, want)
		}
	}

	// A pool whose pgx reads times in another zone reads events through
	// Scan, in that zone.
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.AfterConnect = func(_ context.Context, c *pgx.Conn) error {
		c.TypeMap().RegisterType(&pgtype.Type{Name: "timestamptz", OID: pgtype.TimestamptzOID, Codec: &pgtype.TimestamptzCodec{ScanLocation: time.UTC}})
		return nil
	}
	utcPool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(utcPool.Close)
	inUTC := read(newPostgres(t, utcPool))
	for i, e := range inUTC.all {
		if e.RecordedAt.Location() != time.UTC || !e.RecordedAt.Equal(want.all[i].RecordedAt) {
			t.Errorf("with times read in UTC, event %d was recorded at %v", i, e.RecordedAt)
		}
	}

	// A page short of its limit holds no room for the limit: the followers
	// read a few new events at a time with large limits.
	p, err := stores[0].ReadAll(ctx, eventstore.AllQuery{After: 1, Limit: 1000})
	if err != nil || len(p.Events) != 2 {
		t.Fatalf("read after 1 = %d events, %v; want 2", len(p.Events), err)
	}
	if cap(p.Events) > 16 {
		t.Errorf("a page of 2 events holds room for %d", cap(p.Events))
	}

	// An event's data and metadata share memory: appending to its data
	// must not write over its metadata.
	e := want.all[0]
	before := string(e.Metadata)
	_ = append(e.Data, bytes.Repeat([]byte("x"), len(e.Metadata))...)
	if string(e.Metadata) != before {
		t.Fatalf("appending to the data changed the metadata to %s", e.Metadata)
	}
}
