package schemaregistry_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"cqrsgate/domain"
	"cqrsgate/eventstore"
	"cqrsgate/internal/pgtest"
	"cqrsgate/schemaregistry"
)

func TestMain(m *testing.M) {
	pgtest.Main(m, pgtest.Options{Migrate: pgtest.OnConn(func(ctx context.Context, conn *pgx.Conn) error {
		if err := eventstore.Migrate(ctx, conn); err != nil {
			return err
		}
		return schemaregistry.Migrate(ctx, conn)
	})})
}

// env is a registry over a fresh database with its event store, raw (as
// stored) and schematized.
type env struct {
	t     testing.TB
	pool  *pgxpool.Pool
	reg   *schemaregistry.Registry
	raw   *eventstore.Postgres
	store *eventstore.Schematized
}

func newEnv(t *testing.T, opts schemaregistry.Options) *env { return newEnvTB(t, opts) }

func newEnvTB(t testing.TB, opts schemaregistry.Options) *env {
	t.Helper()
	pool := pgtest.NewPool(t)
	log := slog.New(slog.DiscardHandler)
	raw := eventstore.NewPostgres(pool, log, eventstore.Limits{}, eventstore.NewBroadcaster())
	reg, err := schemaregistry.New(context.Background(), pool, raw, log, opts)
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, pool: pool, reg: reg, raw: raw, store: eventstore.WithSchemas(raw, reg)}
}

// second is another process's registry over the same database.
func (e *env) second(opts schemaregistry.Options) *schemaregistry.Registry {
	e.t.Helper()
	reg, err := schemaregistry.New(context.Background(), e.pool, e.raw, slog.New(slog.DiscardHandler), opts)
	if err != nil {
		e.t.Fatal(err)
	}
	return reg
}

func (e *env) register(typ, schema string, migration string, mode schemaregistry.Mode) (schemaregistry.Verdict, error) {
	e.t.Helper()
	reg := schemaregistry.Registration{Type: typ, Schema: json.RawMessage(schema), Compatibility: mode}
	if migration != "" {
		ops, err := schemaregistry.ParseOps([]byte(migration))
		if err != nil {
			e.t.Fatal(err)
		}
		reg.Migration = ops
	}
	return e.reg.Register(context.Background(), reg)
}

func (e *env) mustRegister(typ, schema, migration string) schemaregistry.Verdict {
	e.t.Helper()
	v, err := e.register(typ, schema, migration, "")
	if err != nil {
		e.t.Fatalf("register %s: %v", typ, err)
	}
	return v
}

// appendRaw stores events as they are, bypassing validation (as events
// written before a schema change were).
func (e *env) appendRaw(stream, typ string, version int, data ...string) []string {
	e.t.Helper()
	evs := make([]domain.EventData, len(data))
	for i, d := range data {
		evs[i] = domain.EventData{Type: typ, SchemaVersion: version, Data: json.RawMessage(d)}
	}
	res, err := e.raw.Append(context.Background(), stream, domain.ExpectAny, evs...)
	if err != nil {
		e.t.Fatal(err)
	}
	ids := make([]string, len(res.Events))
	for i, ev := range res.Events {
		ids[i] = ev.ID
	}
	return ids
}

const (
	placedV1 = `{"type": "object", "properties": {"total": {"type": "integer"}}, "required": ["total"], "additionalProperties": false}`
	placedV2 = `{"type": "object", "properties": {
		"subtotal": {"type": "integer"}, "tax": {"type": "integer"}, "currency": {"type": "string", "enum": ["EUR", "USD"]}},
		"required": ["subtotal", "tax", "currency"], "additionalProperties": false}`
	placedV1toV2 = `[{"op": "rename", "from": "/total", "path": "/subtotal"}, {"op": "default", "path": "/tax", "value": 0}, {"op": "default", "path": "/currency", "value": "EUR"}]`
	// v3 needs a discount that neither old events nor the migration provide.
	placedV3 = `{"type": "object", "properties": {
		"subtotal": {"type": "integer"}, "tax": {"type": "integer"}, "currency": {"type": "string"}, "discount": {"type": "integer"}},
		"required": ["subtotal", "tax", "currency", "discount"], "additionalProperties": false}`
)

func code(err error) schemaregistry.Code {
	var e *schemaregistry.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// TestWorkedExample is the README's example: OrderPlaced v1 (total only)
// gets v2 (subtotal, tax, currency with a default) with a declarative
// migration; v1 events stored before read as v2; a v3 that stored events
// cannot satisfy is refused with their ids.
func TestWorkedExample(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, schemaregistry.Options{})
	if v := e.mustRegister("OrderPlaced", placedV1, ""); v.Version != 1 || !v.Compatible {
		t.Fatalf("v1: %+v", v)
	}
	stored := e.appendRaw("shop-1", "OrderPlaced", 1, `{"total": 100}`, `{"total": 250}`)

	v2 := e.mustRegister("OrderPlaced", placedV2, placedV1toV2)
	if v2.Version != 2 || len(v2.Replayed) != 1 || v2.Replayed[0].Checked != 2 {
		t.Fatalf("v2 verdict: %+v", v2)
	}
	// Read through the store (aggregates and projections read this way).
	evs, err := e.store.ReadStream(ctx, "shop-1", eventstore.StreamQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 || evs[0].SchemaVersion != 2 || string(evs[0].Data) != `{"currency":"EUR","subtotal":100,"tax":0}` {
		t.Fatalf("read as v2: %+v", evs)
	}
	// As stored, and as v1 on request.
	raw, _ := e.raw.ReadEvent(ctx, stored[1])
	if raw.SchemaVersion != 1 || string(raw.Data) != `{"total": 250}` {
		t.Fatalf("stored event changed: %+v", raw)
	}
	if data, v, err := e.reg.Upcast(ctx, "OrderPlaced", 1, raw.Data, 1); err != nil || v != 1 || string(data) != `{"total": 250}` {
		t.Fatalf("as v1: %s %d %v", data, v, err)
	}
	// New appends at v2 are validated; v1 is still accepted unless deprecated.
	if _, err := e.store.Append(ctx, "shop-2", domain.ExpectAny, domain.EventData{Type: "OrderPlaced", SchemaVersion: 2, Data: json.RawMessage(`{"subtotal": 1, "tax": 0, "currency": "GBP"}`)}); err == nil ||
		!strings.Contains(err.Error(), "/currency") {
		t.Fatalf("v2 event with a currency outside the enum: %v", err)
	}
	e.appendRaw("shop-2", "OrderPlaced", 2, `{"subtotal": 5, "tax": 1, "currency": "USD"}`)

	_, err = e.register("OrderPlaced", placedV3, "", schemaregistry.None)
	var regErr *schemaregistry.Error
	if !errors.As(err, &regErr) || regErr.Rule != schemaregistry.RuleStoredEvents {
		t.Fatalf("v3: %v, want STORED_EVENTS_FAIL", err)
	}
	ids, _ := regErr.Details["failingEventIds"].([]string)
	if len(ids) != 3 || ids[0] != stored[0] || ids[1] != stored[1] {
		t.Fatalf("failing ids %v, want the 3 stored events starting %v", ids, stored)
	}
	if regErr.Details["failedEvents"] != 3 || !strings.Contains(regErr.Message, "/discount") {
		t.Errorf("refusal: %s %v", regErr.Message, regErr.Details)
	}
	if e.reg.Latest("OrderPlaced") != 2 {
		t.Error("the refused v3 was registered")
	}
	// With a migration that provides the discount, v3 is accepted.
	if _, err := e.register("OrderPlaced", placedV3, `[{"op": "default", "path": "/discount", "value": 0}]`, ""); err != nil {
		t.Fatalf("v3 with its migration: %v", err)
	}
	evs, _ = e.store.ReadStream(ctx, "shop-1", eventstore.StreamQuery{})
	if evs[1].SchemaVersion != 3 || string(evs[1].Data) != `{"currency":"EUR","discount":0,"subtotal":250,"tax":0}` {
		t.Fatalf("v1 read as v3: %+v", evs[1])
	}
	if _, _, err := e.reg.Upcast(ctx, "OrderPlaced", 3, evs[1].Data, 2); err == nil || !strings.Contains(err.Error(), "only go forward") {
		t.Errorf("downcast: %v", err)
	}
}

// TestLegacyVersionsWithoutASchemaGetOneInTurn: a type stored without a
// schema at versions 1 and 3 (as a type without a schema could be before
// version 1 became the only version it takes) gets its schemas one version
// at a time. Registering v1 checks the v1 events and reports the v3 ones
// stored and not checked; v3's own schema must fit them: one that does
// not is refused with them as its failures, one that does is registered.
// Until then the v3 events read as they are stored. They could not be
// given a schema at all: v1 was refused, "stored as version 3, which has
// no schema".
func TestLegacyVersionsWithoutASchemaGetOneInTurn(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, schemaregistry.Options{})
	e.appendRaw("legacy-1", "LegacyPlaced", 1, `{"total": 5}`)
	v3ids := e.appendRaw("legacy-2", "LegacyPlaced", 3, `{"subtotal": 7, "tax": 1, "currency": "USD"}`)

	v1 := e.mustRegister("LegacyPlaced", placedV1, "")
	if len(v1.Replayed) != 2 || v1.Replayed[0] != (schemaregistry.Replayed{Version: 1, Stored: 1, Checked: 1}) ||
		v1.Replayed[1] != (schemaregistry.Replayed{Version: 3, Stored: 1, Checked: 0}) {
		t.Fatalf("v1 replayed %+v, want v1 checked and v3 stored, not checked", v1.Replayed)
	}
	evs, err := e.store.ReadStream(ctx, "legacy-2", eventstore.StreamQuery{})
	if err != nil || len(evs) != 1 || evs[0].SchemaVersion != 3 || string(evs[0].Data) != `{"tax": 1, "currency": "USD", "subtotal": 7}` {
		t.Fatalf("a v3 event with v1 the latest schema read as %+v, %v; want it as stored (as jsonb gives it back)", evs, err)
	}
	e.mustRegister("LegacyPlaced", placedV2, placedV1toV2)

	// v3 wants a discount the stored v3 event lacks: refused, naming it.
	_, err = e.register("LegacyPlaced", placedV3, `[{"op": "default", "path": "/discount", "value": 0}]`, "")
	var regErr *schemaregistry.Error
	if !errors.As(err, &regErr) || regErr.Rule != schemaregistry.RuleStoredEvents {
		t.Fatalf("v3 that the stored v3 event fails: %v, want STORED_EVENTS_FAIL", err)
	}
	if ids, _ := regErr.Details["failingEventIds"].([]string); len(ids) != 1 || ids[0] != v3ids[0] {
		t.Fatalf("failing ids %v, want the stored v3 event %v", ids, v3ids)
	}
	if e.reg.Latest("LegacyPlaced") != 2 {
		t.Fatal("the refused v3 was registered")
	}
	// A v3 whose discount is optional fits it.
	optional := strings.Replace(placedV3, `"required": ["subtotal", "tax", "currency", "discount"]`, `"required": ["subtotal", "tax", "currency"]`, 1)
	v3, err := e.register("LegacyPlaced", optional, `[{"op": "default", "path": "/discount", "value": 0}]`, "")
	if err != nil {
		t.Fatalf("v3 that fits the stored v3 event: %v", err)
	}
	if len(v3.Replayed) != 2 || v3.Replayed[1] != (schemaregistry.Replayed{Version: 3, Stored: 1, Checked: 1}) {
		t.Fatalf("v3 replayed %+v, want the v3 event checked", v3.Replayed)
	}
	evs, err = e.store.ReadStream(ctx, "legacy-1", eventstore.StreamQuery{})
	if err != nil || len(evs) != 1 || evs[0].SchemaVersion != 3 || string(evs[0].Data) != `{"currency":"EUR","discount":0,"subtotal":5,"tax":0}` {
		t.Fatalf("the v1 event read as %+v, %v; want it as v3", evs, err)
	}
}

func TestAppendValidation(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, schemaregistry.Options{PermissiveTypes: []string{"Audit*"}})
	e.mustRegister("OrderPlaced", placedV1, "")
	appendOne := func(typ string, version int, data string) error {
		_, err := e.store.Append(ctx, "s-1", domain.ExpectAny,
			domain.EventData{Type: "OrderPlaced", SchemaVersion: 1, Data: json.RawMessage(`{"total": 1}`)},
			domain.EventData{Type: typ, SchemaVersion: version, Data: json.RawMessage(data)})
		return err
	}
	tests := []struct {
		name, typ string
		version   int
		data      string
		wantRule  string
		wantText  string
	}{
		{"wrong type", "OrderPlaced", 1, `{"total": "x"}`, "SCHEMA_VALIDATION", "/total"},
		{"missing field", "OrderPlaced", 1, `{}`, "SCHEMA_VALIDATION", "/total"},
		{"extra field", "OrderPlaced", 1, `{"total": 1, "x": 2}`, "SCHEMA_VALIDATION", "OrderPlaced v1"},
		{"unknown version", "OrderPlaced", 7, `{"total": 1}`, "UNKNOWN_SCHEMA_VERSION", "no schema version 7"},
		{"unknown type", "OrderShipped", 1, `{}`, "UNKNOWN_EVENT_TYPE", "register its schema"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := appendOne(tt.typ, tt.version, tt.data)
			var de *domain.Error
			if !errors.As(err, &de) || de.Code != domain.Invalid || de.Rule != tt.wantRule || !strings.Contains(de.Message, tt.wantText) {
				t.Fatalf("err = %v, want VALIDATION %s mentioning %q", err, tt.wantRule, tt.wantText)
			}
			if !strings.HasPrefix(de.Field, "events.1.") || de.Details["eventType"] != tt.typ {
				t.Errorf("field %q details %v", de.Field, de.Details)
			}
			if v, _ := e.raw.StreamVersion(ctx, "s-1"); v != 0 {
				t.Fatalf("a refused append wrote %d events", v)
			}
		})
	}
	if err := appendOne("AuditLogged", 1, `{"anything": true}`); err != nil {
		t.Fatalf("a permissive type: %v", err)
	}
	// Without a schema there is only version 1: an event stored at 2 would
	// keep the type from ever getting one (its first schema is v1, and
	// registering it finds an event of a version without a schema).
	for _, v := range []int{2, 7} {
		err := appendOne("AuditLogged", v, `{"anything": true}`)
		var de *domain.Error
		if !errors.As(err, &de) || de.Code != domain.Invalid || de.Rule != "UNKNOWN_SCHEMA_VERSION" || !strings.Contains(de.Message, "schema version 1") {
			t.Fatalf("a permissive type at version %d: %v", v, err)
		}
	}
	if v, _ := e.raw.StreamVersion(ctx, "s-1"); v != 2 {
		t.Fatalf("stream version %d after refused appends, want 2", v)
	}
	// A deprecated version is refused (the latest cannot be deprecated:
	// see TestLatestVersionCannotBeDeprecated).
	e.mustRegister("OrderPlaced", placedV2, placedV1toV2)
	if err := e.reg.Deprecate(ctx, "OrderPlaced", 1, true); err != nil {
		t.Fatal(err)
	}
	if err := appendOne("AuditLogged", 1, `{}`); err == nil || !strings.Contains(err.Error(), "deprecated") {
		t.Fatalf("append of a deprecated version: %v", err)
	}
	if err := e.reg.Deprecate(ctx, "OrderPlaced", 1, false); err != nil {
		t.Fatal(err)
	}
	if err := appendOne("AuditLogged", 1, `{}`); err != nil {
		t.Fatalf("after undeprecating: %v", err)
	}
	// The permissive type's events, all at version 1, let it get a schema.
	e.mustRegister("AuditLogged", `{"type": "object"}`, "")
}

func TestRegistrationBadInputChangesNothing(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, schemaregistry.Options{})
	e.mustRegister("OrderPlaced", placedV1, "")
	revision := func() int64 {
		var r int64
		if err := e.pool.QueryRow(ctx, `SELECT revision FROM schema_registry_revision`).Scan(&r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	before := revision()
	tests := []struct {
		name string
		do   func() error
		code schemaregistry.Code
		want string
	}{
		{"invalid JSON Schema", func() error {
			_, err := e.register("OrderPlaced", `{"type": "object", "properties": {"a": {"type": 1}}}`, "", "")
			return err
		},
			schemaregistry.CodeInvalid, "draft-07"},
		{"not draft-07", func() error {
			_, err := e.register("OrderPlaced", `{"$schema": "https://json-schema.org/draft/2019-09/schema", "type": "object"}`, "", "")
			return err
		}, schemaregistry.CodeInvalid, "only JSON Schema draft-07"},
		{"bad type name", func() error { _, err := e.register("Order Placed", placedV1, "", ""); return err }, schemaregistry.CodeInvalid, "not a valid name"},
		{"bad mode", func() error { _, err := e.register("OrderPlaced", placedV2, placedV1toV2, "SIDEWAYS"); return err }, schemaregistry.CodeInvalid, "SIDEWAYS"},
		{"migration for a first version", func() error {
			_, err := e.register("NewThing", placedV1, `[{"op": "remove", "path": "/a"}]`, "")
			return err
		},
			schemaregistry.CodeInvalid, "first version takes no migration"},
		{"migration to a version that does not exist (a gap)", func() error {
			_, err := e.reg.RegisterMigration(ctx, "OrderPlaced", 1, []schemaregistry.Op{{Op: "remove", Path: "/a"}})
			return err
		}, schemaregistry.CodeInvalid, "does not exist"},
		{"migration with an unknown operation", func() error {
			_, err := e.reg.RegisterMigration(ctx, "OrderPlaced", 1, []schemaregistry.Op{{Op: "explode", Path: "/a"}})
			return err
		}, schemaregistry.CodeInvalid, "unknown operation"},
		{"migration of an unknown type", func() error {
			_, err := e.reg.RegisterMigration(ctx, "Nope", 1, []schemaregistry.Op{{Op: "remove", Path: "/a"}})
			return err
		}, schemaregistry.CodeNotFound, "no schema"},
		{"incompatible change", func() error {
			_, err := e.register("OrderPlaced", `{"type": "object", "properties": {"total": {"type": "string"}}, "required": ["total"]}`, "", schemaregistry.Backward)
			return err
		}, schemaregistry.CodeIncompatible, "BACKWARD"},
		{"compatibility of an unknown type", func() error { return e.reg.SetCompatibility(ctx, "Nope", schemaregistry.Full) }, schemaregistry.CodeNotFound, "no schema"},
		{"deprecate a version that does not exist", func() error { return e.reg.Deprecate(ctx, "OrderPlaced", 9, true) }, schemaregistry.CodeNotFound, "no schema version 9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.do()
			if code(err) != tt.code || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v (code %q), want %s mentioning %q", err, code(err), tt.code, tt.want)
			}
		})
	}
	if after := revision(); after != before {
		t.Errorf("refused changes moved the revision from %d to %d", before, after)
	}
	if e.reg.Latest("OrderPlaced") != 1 || e.reg.Latest("NewThing") != 0 {
		t.Error("a refused change was registered")
	}
}

func TestCheckIsADryRun(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, schemaregistry.Options{})
	e.mustRegister("OrderPlaced", placedV1, "")
	e.appendRaw("shop-1", "OrderPlaced", 1, `{"total": 1}`)
	ops, _ := schemaregistry.ParseOps([]byte(placedV1toV2))
	v, err := e.reg.Check(ctx, schemaregistry.Registration{Type: "OrderPlaced", Schema: json.RawMessage(placedV2), Migration: ops})
	if err != nil || !v.Compatible || v.Version != 2 {
		t.Fatalf("check of a good change: %+v %v", v, err)
	}
	v, err = e.reg.Check(ctx, schemaregistry.Registration{Type: "OrderPlaced", Schema: json.RawMessage(placedV2)})
	if err != nil || v.Compatible || v.FailedEvents != 1 || len(v.Incompatibilities) == 0 {
		t.Fatalf("check without the migration: %+v %v", v, err)
	}
	if e.reg.Latest("OrderPlaced") != 1 {
		t.Fatal("Check registered something")
	}
	// Registering the latest schema again is a no-op.
	if v := e.mustRegister("OrderPlaced", placedV1, ""); !v.Unchanged || v.Version != 1 {
		t.Fatalf("re-registering v1: %+v", v)
	}
}

func TestSampledReplay(t *testing.T) {
	e := newEnv(t, schemaregistry.Options{ReplaySample: 3})
	e.mustRegister("OrderPlaced", placedV1, "")
	var data []string
	for i := range 10 {
		data = append(data, fmt.Sprintf(`{"total": %d}`, i))
	}
	e.appendRaw("shop-1", "OrderPlaced", 1, data...)
	v := e.mustRegister("OrderPlaced", placedV2, placedV1toV2)
	if len(v.Replayed) != 1 || v.Replayed[0].Stored != 10 || v.Replayed[0].Checked != 3 {
		t.Fatalf("replayed %+v, want 3 of 10", v.Replayed)
	}
}

func TestMigrationReplacementIsReplayed(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, schemaregistry.Options{})
	e.mustRegister("OrderPlaced", placedV1, "")
	ids := e.appendRaw("shop-1", "OrderPlaced", 1, `{"total": 3}`)
	e.mustRegister("OrderPlaced", placedV2, placedV1toV2)
	// A replacement that forgets the currency breaks the stored event.
	_, err := e.reg.RegisterMigration(ctx, "OrderPlaced", 1, []schemaregistry.Op{{Op: "rename", From: "/total", Path: "/subtotal"}, {Op: "default", Path: "/tax", Value: json.RawMessage(`0`)}})
	var regErr *schemaregistry.Error
	if !errors.As(err, &regErr) || regErr.Rule != schemaregistry.RuleStoredEvents || fmt.Sprint(regErr.Details["failingEventIds"]) != fmt.Sprint(ids) {
		t.Fatalf("replacement: %v", err)
	}
	// One that sets USD instead is fine, and is used from then on.
	if _, err := e.reg.RegisterMigration(ctx, "OrderPlaced", 1, []schemaregistry.Op{{Op: "rename", From: "/total", Path: "/subtotal"},
		{Op: "default", Path: "/tax", Value: json.RawMessage(`0`)}, {Op: "set", Path: "/currency", Value: json.RawMessage(`"USD"`)}}); err != nil {
		t.Fatal(err)
	}
	ev, err := e.store.ReadEvent(ctx, ids[0])
	if err != nil || string(ev.Data) != `{"currency":"USD","subtotal":3,"tax":0}` {
		t.Fatalf("after the replacement: %s %v", ev.Data, err)
	}
	info, _ := e.reg.Schema(ctx, "OrderPlaced", 2)
	if len(info.Migration) != 3 {
		t.Errorf("stored migration %+v", info.Migration)
	}
}

func TestGoUpcaster(t *testing.T) {
	ctx := context.Background()
	up := func(d map[string]any) error {
		d["subtotal"], d["tax"], d["currency"] = d["total"], json.Number("0"), "USD"
		delete(d, "total")
		return nil
	}
	e := newEnv(t, schemaregistry.Options{Upcasters: map[schemaregistry.UpcasterKey]schemaregistry.Upcaster{{Type: "OrderPlaced", From: 1}: up}})
	e.mustRegister("OrderPlaced", placedV1, "")
	ids := e.appendRaw("shop-1", "OrderPlaced", 1, `{"total": 8}`)
	e.mustRegister("OrderPlaced", placedV2, "") // no declarative migration: the Go upcaster does it
	ev, err := e.store.ReadEvent(ctx, ids[0])
	if err != nil || string(ev.Data) != `{"currency":"USD","subtotal":8,"tax":0}` {
		t.Fatalf("upcast in Go: %s %v", ev.Data, err)
	}
	if info, _ := e.reg.Schema(ctx, "OrderPlaced", 2); !info.GoUpcaster {
		t.Error("the version does not say a Go upcaster migrates to it")
	}
}

func TestEveryProcessSeesAChange(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, schemaregistry.Options{})
	other := e.second(schemaregistry.Options{})
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = other.Run(runCtx) }()
	t.Cleanup(func() { stop(); <-done })

	e.mustRegister("OrderPlaced", placedV1, "")
	// Validation finds a type registered elsewhere at once (a miss reloads).
	if err := other.Validate(ctx, "OrderPlaced", 1, []byte(`{"total": 1}`)); err != nil {
		t.Fatalf("the other process: %v", err)
	}
	// Other changes arrive by notification.
	if err := e.reg.SetCompatibility(ctx, "OrderPlaced", schemaregistry.FullTransitive); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for other.Compatibility("OrderPlaced") != schemaregistry.FullTransitive {
		if time.Now().After(deadline) {
			t.Fatal("the other process did not see the compatibility change")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSeed(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, schemaregistry.Options{})
	files := fstest.MapFS{
		"OrderPlaced.v1.json":           {Data: []byte(placedV1)},
		"OrderPlaced.v2.json":           {Data: []byte(placedV2)},
		"OrderPlaced.v2.migration.json": {Data: []byte(placedV1toV2)},
		"Other.v1.json":                 {Data: []byte(`{"type": "object"}`)},
	}
	if err := e.reg.Seed(ctx, files); err != nil {
		t.Fatal(err)
	}
	// Seeding again (every gateway start does), or registering the latest
	// schema again, changes nothing, so it raises no revision: a raised one
	// makes every append in flight on every gateway validate again.
	rev := e.reg.Revision()
	if err := e.reg.Seed(ctx, files); err != nil {
		t.Fatalf("seeding twice: %v", err)
	}
	if v := e.mustRegister("Other", `{"type": "object"}`, ""); !v.Unchanged {
		t.Fatalf("the latest schema registered again: %+v, want unchanged", v)
	}
	var stored int64
	if err := e.pool.QueryRow(ctx, schemaregistry.RevisionSQL).Scan(&stored); err != nil || stored != rev || e.reg.Revision() != rev {
		t.Errorf("registering what is registered moved the revision from %d to %d (held %d), %v", rev, stored, e.reg.Revision(), err)
	}
	if e.reg.Latest("OrderPlaced") != 2 || e.reg.Latest("Other") != 1 {
		t.Fatalf("latest %d %d", e.reg.Latest("OrderPlaced"), e.reg.Latest("Other"))
	}
	bad := []struct {
		name  string
		files fstest.MapFS
		want  string
	}{
		{"a released schema changed", fstest.MapFS{"Other.v1.json": {Data: []byte(`{"type": "object", "required": ["x"]}`)}}, "must not change"},
		{"a gap", fstest.MapFS{"Gap.v1.json": {Data: []byte(placedV1)}, "Gap.v3.json": {Data: []byte(placedV1)}}, "Gap.v2.json is missing"},
		{"a bad name", fstest.MapFS{"readme.txt": {Data: []byte("x")}}, "<Type>.v<N>.json"},
		{"a bad migration", fstest.MapFS{"Mig.v1.json": {Data: []byte(placedV1)}, "Mig.v2.json": {Data: []byte(placedV2)}, "Mig.v2.migration.json": {Data: []byte(`[{"op": "x"}]`)}}, "Mig.v2.migration.json"},
	}
	for _, tt := range bad {
		if err := e.reg.Seed(ctx, tt.files); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want %q", tt.name, err, tt.want)
		}
	}
}

// TestSeedRefusesStoredVersionsTheReleaseCannotRead: seeding a type whose
// events are stored at a version above the latest the release ships fails
// (start-up fails), as nothing in the release could check them and the
// domain would decode them whatever their version; stored events of a
// shipped version above the one being seeded are checked by that
// version's seeding, which fails when they do not fit it.
func TestSeedRefusesStoredVersionsTheReleaseCannotRead(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, schemaregistry.Options{})
	e.appendRaw("s-1", "Shipped", 1, `{"total": 5}`)
	e.appendRaw("s-2", "Shipped", 3, `{"subtotal": 7, "tax": 1, "currency": "USD"}`)
	v1 := fstest.MapFS{"Shipped.v1.json": {Data: []byte(placedV1)}}
	if err := e.reg.Seed(ctx, v1); err == nil || !strings.Contains(err.Error(), "stored as version 3, which has no schema") {
		t.Fatalf("seeding v1 with events stored at v3: %v, want refused", err)
	}
	if e.reg.Latest("Shipped") != 0 {
		t.Fatal("the refused seed registered a version")
	}
	// A release that ships up to v3 seeds v1 and v2 (leaving the v3 event
	// to v3) and checks the v3 event with v3, which must fit it.
	upTo3 := fstest.MapFS{
		"Shipped.v1.json":           {Data: []byte(placedV1)},
		"Shipped.v2.json":           {Data: []byte(placedV2)},
		"Shipped.v2.migration.json": {Data: []byte(placedV1toV2)},
		"Shipped.v3.json":           {Data: []byte(placedV3)},
		"Shipped.v3.migration.json": {Data: []byte(`[{"op": "default", "path": "/discount", "value": 0}]`)},
	}
	if err := e.reg.Seed(ctx, upTo3); err == nil || !strings.Contains(err.Error(), "Shipped.v3.json") || !strings.Contains(err.Error(), "/discount") {
		t.Fatalf("seeding a v3 the stored v3 event does not fit: %v, want refused at v3", err)
	}
	if e.reg.Latest("Shipped") != 2 {
		t.Fatalf("latest %d after the refused v3, want 2 (v1 and v2 seeded)", e.reg.Latest("Shipped"))
	}
	upTo3["Shipped.v3.json"] = &fstest.MapFile{Data: []byte(strings.Replace(placedV3, `"required": ["subtotal", "tax", "currency", "discount"]`, `"required": ["subtotal", "tax", "currency"]`, 1))}
	if err := e.reg.Seed(ctx, upTo3); err != nil || e.reg.Latest("Shipped") != 3 {
		t.Fatalf("seeding a v3 the stored v3 event fits: %v, latest %d", err, e.reg.Latest("Shipped"))
	}
}

// TestSeedConcurrently: gateways started together on a new database seed
// the same files at the same time. Each must start (no "out of sequence"
// from reading the registry while another process writes it), and each
// shipped version must be registered once (not a second time, as the next
// version, by a process that saw the registry before another wrote it).
func TestSeedConcurrently(t *testing.T) {
	ctx := context.Background()
	files := domain.EventSchemas()
	entries, err := fs.ReadDir(files, ".")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{} // the latest version of each type
	versions := 0
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || strings.HasSuffix(name, ".migration") {
			continue
		}
		typ, v, _ := strings.Cut(name, ".v")
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("seed %s: %v", e.Name(), err)
		}
		want[typ] = max(want[typ], n)
		versions++
	}
	for round := range 3 {
		e := newEnv(t, schemaregistry.Options{})
		regs := []*schemaregistry.Registry{e.reg}
		for range 3 { // other processes: each with a pool of its own
			pool, err := pgxpool.New(ctx, e.pool.Config().ConnString())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(pool.Close)
			log := slog.New(slog.DiscardHandler)
			reg, err := schemaregistry.New(ctx, pool, eventstore.NewPostgres(pool, log, eventstore.Limits{}, eventstore.NewBroadcaster()), log, schemaregistry.Options{})
			if err != nil {
				t.Fatal(err)
			}
			regs = append(regs, reg)
		}
		errs := make([]error, len(regs))
		var wg sync.WaitGroup
		for i, reg := range regs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = reg.Seed(ctx, files)
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d: process %d: %v", round, i, err)
			}
		}
		var stored int
		if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM schema_versions`).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		if stored != versions {
			t.Errorf("round %d: %d schema versions stored, want the %d shipped", round, stored, versions)
		}
		fresh := e.second(schemaregistry.Options{})
		for typ, n := range want {
			if got := fresh.Latest(typ); got != n {
				t.Errorf("round %d: %s at version %d, want %d", round, typ, got, n)
			}
		}
	}
}

// TestConcurrentChangesShareASmallPool: a change holds a connection while
// it reads the stored events on another, so changes running side by side in
// one process could take every connection of a small pool and wait for
// each other for ever; they run one at a time instead.
func TestConcurrentChangesShareASmallPool(t *testing.T) {
	e := newEnv(t, schemaregistry.Options{})
	cfg := e.pool.Config().Copy()
	cfg.MaxConns = 2 // DB_MAX_CONNS's least
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	log := slog.New(slog.DiscardHandler)
	reg, err := schemaregistry.New(context.Background(), pool, eventstore.NewPostgres(pool, log, eventstore.Limits{}, eventstore.NewBroadcaster()), log, schemaregistry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const changes = 8
	errs := make([]error, changes)
	var wg sync.WaitGroup
	for i := range changes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = reg.Register(ctx, schemaregistry.Registration{Type: fmt.Sprintf("Side%d", i%2), Compatibility: schemaregistry.None,
				Schema: json.RawMessage(fmt.Sprintf(`{"type": "object", "properties": {"f%d": {"type": "string"}}}`, i))})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("change %d: %v", i, err)
		}
	}
	if got := reg.Latest("Side0") + reg.Latest("Side1"); got != changes {
		t.Errorf("%d versions registered, want %d", got, changes)
	}
}

// TestDomainSchemasMatchTheDomain registers the shipped schemas and checks
// that every event the domain writes validates.
func TestDomainSchemasMatchTheDomain(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, schemaregistry.Options{})
	if err := e.reg.Seed(ctx, domain.EventSchemas()); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	events := []domain.Event{
		domain.AccountOpened{Owner: "Ann", Currency: "EUR", OverdraftLimit: 100, DailyWithdrawalLimit: 1000, OpenedAt: now},
		domain.MoneyDeposited{Amount: 5, BalanceAfter: 5}, domain.MoneyWithdrawn{Amount: 5, BalanceAfter: 0, At: now},
		domain.OverdraftOccurred{Balance: -1, OverdraftLimit: 100}, domain.AccountFrozen{Reason: "x"}, domain.AccountUnfrozen{},
		domain.AccountClosed{}, domain.InterestApplied{RateBasisPoints: 100, Amount: 1, BalanceAfter: 2}, domain.FeeCharged{Amount: 1, Reason: "x", BalanceAfter: 1},
		domain.ClosedAccountPaidOut{Amount: 3},
		domain.OrderPlaced{CustomerID: "c", Currency: "EUR", PlacedAt: now}, domain.OrderItemAdded{Sku: "a", Quantity: 1, UnitPrice: 2, LineTotal: 2, OrderTotal: 2},
		domain.OrderItemRemoved{Sku: "a", Quantity: 1, OrderTotal: 0}, domain.OrderSubmitted{Subtotal: 2, Total: 2, Currency: "EUR", ItemCount: 1, SubmittedAt: now},
		domain.OrderConfirmed{ConfirmedAt: now}, domain.OrderCancelled{Reason: "x", PreviousStatus: "OPEN", CancelledAt: now},
		domain.OrderShipped{TrackingNumber: "t", ShippedAt: now}, domain.ProductAdded{Name: "n", Price: 1, Currency: "EUR"},
		domain.ProductRestocked{Quantity: 1, OnHand: 1}, domain.StockReserved{OrderID: "o", Quantity: 1, Reserved: 1},
		domain.StockReleased{OrderID: "o", Quantity: 1, Reserved: 0}, domain.PriceChanged{OldPrice: 1, NewPrice: 2},
		domain.FulfilmentStarted{AccountID: "c", Currency: "EUR", Amount: 2, Items: []domain.FulfilmentItem{{Sku: "a", Quantity: 1}}, StartedAt: now},
		domain.FulfilmentStepSucceeded{Step: domain.StepReserveStock, Sku: "a", At: now},
		domain.FulfilmentStepSucceeded{Step: domain.StepReleaseStock, Sku: "a", Compensation: true, NothingToUndo: true, At: now},
		domain.FulfilmentStepFailed{Step: domain.StepRefund, Compensation: true, Reason: "x", At: now},
		domain.FulfilmentCompensationStarted{Reason: "x", TimedOut: true, At: now},
		domain.FulfilmentFinished{State: domain.FulfilmentCompensated, At: now}, domain.FulfilmentRetried{Attempt: 1, At: now},
	}
	seen := map[string]bool{}
	for _, ev := range events {
		d, err := domain.EncodeEvent(ev)
		if err != nil {
			t.Fatal(err)
		}
		data, version := d.Data, d.SchemaVersion
		if version != e.reg.Latest(ev.EventType()) {
			t.Errorf("%s: the domain writes v%d, the latest shipped schema is v%d", ev.EventType(), version, e.reg.Latest(ev.EventType()))
		}
		if err := e.reg.Validate(ctx, ev.EventType(), version, data); err != nil {
			t.Errorf("%s: %v", ev.EventType(), err)
		}
		seen[ev.EventType()] = true
	}
	for _, typ := range e.reg.Types() {
		if !seen[typ.Type] {
			t.Errorf("shipped schema %s is not exercised by this test", typ.Type)
		}
	}
}

// A new version that only adds an optional field ships without a
// migration, so that stored events are read as they were written: with
// one (FulfilmentStepSucceeded v2 first came with a migration adding
// "nothingToUndo": false), every process, the previous release's too in a
// rolling deploy or after a rollback, read its own v1 events with a field
// its strict decoding refuses, and its sagas stopped.
func TestAnOptionalFieldIsAddedWithoutAMigration(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, schemaregistry.Options{})
	if err := e.reg.Seed(ctx, domain.EventSchemas()); err != nil {
		t.Fatal(err)
	}
	const v1 = `{"step":"RESERVE_STOCK","sku":"p1","compensation":false,"at":"2026-01-01T00:00:00Z"}`
	e.appendRaw("fulfilment-o1", "FulfilmentStepSucceeded", 1, v1)
	evs, err := e.store.ReadStream(ctx, "fulfilment-o1", eventstore.StreamQuery{})
	if err != nil || len(evs) != 1 {
		t.Fatalf("%d events, %v", len(evs), err)
	}
	if strings.Contains(string(evs[0].Data), "nothingToUndo") {
		t.Fatalf("a v1 event is read as %s: a field its writers do not know was added", evs[0].Data)
	}
	e2, err := domain.Fulfilments.Decode(evs[0].Type, evs[0].SchemaVersion, evs[0].Data)
	if err != nil || e2.(domain.FulfilmentStepSucceeded).NothingToUndo {
		t.Fatalf("decoded %+v, %v", e2, err)
	}
}
