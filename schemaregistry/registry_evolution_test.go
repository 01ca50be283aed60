package schemaregistry_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/fstest"

	"cqrsgate/domain"
	"cqrsgate/eventstore"
	"cqrsgate/schemaregistry"
)

const (
	shippedV1 = `{"type": "object", "properties": {"total": {"type": "integer"}}}`
	// v2 requires subtotal, which the migration makes of total: a v1 event
	// without total matches v1 but does not read as v2.
	shippedV2     = `{"type": "object", "properties": {"subtotal": {"type": "integer"}}, "required": ["subtotal"]}`
	shippedV1toV2 = `[{"op": "rename", "from": "/total", "path": "/subtotal"}]`
)

// TestOldVersionAppendMustReadAsLatest: an older version may still be
// appended (during a rolling deploy), but an event of it that would not
// read as the latest version made every read of its stream, and of the
// log, fail. Such an append is refused, naming the problems; one that
// migrates cleanly is accepted and reads.
func TestOldVersionAppendMustReadAsLatest(t *testing.T) {
	e := newEnv(t, schemaregistry.Options{})
	ctx := context.Background()
	e.mustRegister("Shipped", shippedV1, "")
	e.mustRegister("Shipped", shippedV2, shippedV1toV2)

	_, err := e.store.Append(ctx, "s-1", domain.ExpectAny, domain.EventData{Type: "Shipped", SchemaVersion: 1, Data: json.RawMessage(`{}`)})
	var de *domain.Error
	if !errors.As(err, &de) || de.Code != domain.Invalid || de.Rule != "SCHEMA_VALIDATION" || de.Field != "events.0.data" ||
		!strings.Contains(de.Message, "would not read as the latest version, v2") || !strings.Contains(de.Message, "/subtotal") {
		t.Fatalf("append of a v1 event that does not read as v2: %v, want VALIDATION naming /subtotal", err)
	}
	var ve *schemaregistry.ValidationError
	if !errors.As(err, &ve) || ve.Version != 1 || ve.ReadAs != 2 {
		t.Fatalf("the error: %#v", ve)
	}
	if v, _ := e.raw.StreamVersion(ctx, "s-1"); v != 0 {
		t.Fatalf("the refused append wrote %d events", v)
	}

	// A migration that fails on the data is refused too, saying why.
	e.mustRegister("Priced", `{"type": "object", "properties": {"net": {"type": "integer"}}}`, "")
	e.mustRegister("Priced", `{"type": "object", "properties": {"net": {"type": "integer"}, "gross": {"type": "integer"}}}`,
		`[{"op": "compute", "path": "/gross", "expr": "net * 2"}]`)
	_, err = e.store.Append(ctx, "s-1", domain.ExpectAny, domain.EventData{Type: "Priced", SchemaVersion: 1, Data: json.RawMessage(`{"net": 9223372036854775807}`)})
	if !errors.As(err, &de) || de.Code != domain.Invalid || !strings.Contains(de.Message, "migration v1 to v2") {
		t.Fatalf("append of a v1 event whose migration fails: %v", err)
	}

	// A v1 event that migrates cleanly is accepted, and the stream reads.
	if _, err := e.store.Append(ctx, "s-1", domain.ExpectAny,
		domain.EventData{Type: "Shipped", SchemaVersion: 2, Data: json.RawMessage(`{"subtotal": 5}`)},
		domain.EventData{Type: "Shipped", SchemaVersion: 1, Data: json.RawMessage(`{"total": 7}`)}); err != nil {
		t.Fatal(err)
	}
	events, err := e.store.ReadStream(ctx, "s-1", eventstore.StreamQuery{})
	if err != nil {
		t.Fatalf("reading the stream: %v", err)
	}
	if len(events) != 2 || string(events[1].Data) != `{"subtotal":7}` || events[1].SchemaVersion != 2 {
		t.Fatalf("events = %+v", events)
	}
}

// TestCopyIntoItselfIsRefused: copying a value into itself, as moving one
// already was, is refused: a hundred such copies of /a into /a/kN double
// the data each (2^100 objects of {"a": {}}), and every read of an old
// event exhausted memory.
func TestCopyIntoItselfIsRefused(t *testing.T) {
	var ops []string
	for i := range 100 {
		ops = append(ops, fmt.Sprintf(`{"op": "copy", "from": "/a", "path": "/a/k%d"}`, i))
	}
	for _, migration := range []string{"[" + strings.Join(ops, ",") + "]", `[{"op": "copy", "from": "/a", "path": "/a"}]`} {
		_, err := schemaregistry.ParseOps([]byte(migration))
		if code(err) != schemaregistry.CodeInvalid || !strings.Contains(err.Error(), "cannot copy /a into itself") {
			t.Errorf("ParseOps(%.60s...) = %v, want VALIDATION", migration, err)
		}
	}
}

// TestMigrationOutputIsCapped: copies between two values double them
// every other operation without copying anything into itself; the data a
// migration makes is capped (Options.MaxEventBytes, by default the event
// store's 1 MiB), so reading such an event fails with a clear error
// instead of exhausting memory (28 operations make about 5 MB of
// {"a": {}, "b": {}}; a hundred would make some 10^20 bytes).
func TestMigrationOutputIsCapped(t *testing.T) {
	e := newEnv(t, schemaregistry.Options{})
	ctx := context.Background()
	e.mustRegister("Growing", `{"type": "object"}`, "")
	var ops []string
	for i := range 28 {
		from, to := "/a", "/b"
		if i%2 == 1 {
			from, to = "/b", "/a"
		}
		ops = append(ops, fmt.Sprintf(`{"op": "copy", "from": "%s", "path": "%s/k%d"}`, from, to, i))
	}
	e.mustRegister("Growing", `{"type": "object", "description": "v2"}`, "["+strings.Join(ops, ",")+"]")
	_, _, err := e.reg.Upcast(ctx, "Growing", 1, json.RawMessage(`{"a": {}, "b": {}}`), 0)
	if !errors.Is(err, schemaregistry.ErrMigration) || !strings.Contains(err.Error(), "larger than 1048576 bytes") {
		t.Fatalf("upcast = %v, want ErrMigration saying the data is too large", err)
	}
	// Appending such an old event is refused (it would not read).
	_, err = e.store.Append(ctx, "g-1", domain.ExpectAny, domain.EventData{Type: "Growing", SchemaVersion: 1, Data: json.RawMessage(`{"a": {}, "b": {}}`)})
	if err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("append = %v, want a refusal", err)
	}
	// Data that stays small migrates.
	if _, _, err := e.reg.Upcast(ctx, "Growing", 1, json.RawMessage(`{"x": 1}`), 0); err != nil {
		t.Fatal(err)
	}
}

// The cap measures a migrated event as the store keeps it: an event of
// 200,000 '<' (which json.Marshal writes as \u003c, six bytes each) reads
// as its next version; measured escaped, it passed the cap and every read
// of it failed.
func TestMigrationCapMeasuresUnescapedJSON(t *testing.T) {
	e := newEnv(t, schemaregistry.Options{})
	ctx := context.Background()
	e.mustRegister("Markup", `{"type": "object", "properties": {"html": {"type": "string"}}}`, "")
	e.mustRegister("Markup", `{"type": "object", "properties": {"html": {"type": "string"}, "v": {"type": "integer"}}}`, `[{"op": "default", "path": "/v", "value": 1}]`)
	html := strings.Repeat("<&>", 70_000)
	out, _, err := e.reg.Upcast(ctx, "Markup", 1, json.RawMessage(`{"html": "`+html+`"}`), 0)
	if err != nil || !strings.Contains(string(out), "<&><&>") {
		t.Fatalf("upcast of %d bytes of markup: %.60s, %v", len(html), out, err)
	}
}

// TestSeedRegistersOrRefusesShippedMigrations: a migration shipped for a
// version already registered without one was silently ignored (v1 events
// kept reading unmigrated). Seed registers it now, checked against the
// stored events. A shipped migration that differs from the registered one
// (an administrator replaced it) leaves the registered one in place.
func TestSeedRegistersOrRefusesShippedMigrations(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, schemaregistry.Options{})
	v1 := `{"type": "object", "properties": {"total": {"type": "integer"}}, "additionalProperties": false}`
	v2 := `{"type": "object", "properties": {"total": {"type": "integer"}, "subtotal": {"type": "integer"}}}`
	release := func(migration string) fstest.MapFS {
		fsys := fstest.MapFS{"Paid.v1.json": {Data: []byte(v1)}, "Paid.v2.json": {Data: []byte(v2)}}
		if migration != "" {
			fsys["Paid.v2.migration.json"] = &fstest.MapFile{Data: []byte(migration)}
		}
		return fsys
	}
	if err := e.reg.Seed(ctx, release("")); err != nil {
		t.Fatal(err)
	}
	e.appendRaw("p-1", "Paid", 1, `{"total": 7}`)

	copyTotal := `[{"op": "copy", "from": "/total", "path": "/subtotal"}]`
	if err := e.reg.Seed(ctx, release(copyTotal)); err != nil {
		t.Fatalf("seeding the migration: %v", err)
	}
	h, err := e.reg.History(ctx, "Paid")
	if err != nil || len(h) != 2 || len(h[1].Migration) != 1 {
		t.Fatalf("history = %+v, %v: want v2's migration registered", h, err)
	}
	out, _, err := e.reg.Upcast(ctx, "Paid", 1, json.RawMessage(`{"total": 7}`), 0)
	if err != nil || string(out) != `{"subtotal":7,"total":7}` {
		t.Fatalf("a v1 event reads as %s, %v", out, err)
	}
	// The usual start: the same files again change nothing.
	if err := e.second(schemaregistry.Options{}).Seed(ctx, release(copyTotal)); err != nil {
		t.Fatalf("seeding the same files again: %v", err)
	}
	// An administrator replaces the migration: the next start keeps it.
	replaced, err := schemaregistry.ParseOps([]byte(`[{"op": "default", "path": "/subtotal", "value": 0}]`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.reg.RegisterMigration(ctx, "Paid", 1, replaced); err != nil {
		t.Fatal(err)
	}
	if err := e.second(schemaregistry.Options{}).Seed(ctx, release(copyTotal)); err != nil {
		t.Fatalf("starting after the shipped migration was replaced: %v", err)
	}
	if out, _, err := e.second(schemaregistry.Options{}).Upcast(ctx, "Paid", 1, json.RawMessage(`{"total": 7}`), 0); err != nil || string(out) != `{"subtotal":0,"total":7}` {
		t.Fatalf("after a start, a v1 event reads as %s, %v; want the replacement's result", out, err)
	}
	// A shipped migration that stored events do not survive is refused.
	e2 := newEnv(t, schemaregistry.Options{})
	if err := e2.reg.Seed(ctx, release("")); err != nil {
		t.Fatal(err)
	}
	e2.appendRaw("p-1", "Paid", 1, `{"total": 7}`)
	err = e2.reg.Seed(ctx, release(`[{"op": "set", "path": "/subtotal", "value": "seven"}]`))
	if code(err) != schemaregistry.CodeIncompatible || !strings.Contains(err.Error(), "Paid.v2.migration.json") {
		t.Fatalf("seeding a migration stored events fail: %v", err)
	}
}

// TestLatestVersionCannotBeDeprecated: deprecating the latest version
// left nothing of the type appendable; it is refused, and an older
// version may still be deprecated.
func TestLatestVersionCannotBeDeprecated(t *testing.T) {
	e := newEnv(t, schemaregistry.Options{})
	ctx := context.Background()
	e.mustRegister("Dep", `{"type": "object"}`, "")
	e.mustRegister("Dep", `{"type": "object", "description": "v2"}`, "")
	if err := e.reg.Deprecate(ctx, "Dep", 2, true); code(err) != schemaregistry.CodeInvalid || !strings.Contains(err.Error(), "latest version") {
		t.Fatalf("deprecating the latest version: %v, want VALIDATION", err)
	}
	if _, err := e.store.Append(ctx, "d-1", domain.ExpectAny, domain.EventData{Type: "Dep", SchemaVersion: 2, Data: json.RawMessage(`{}`)}); err != nil {
		t.Fatalf("appending the latest version: %v", err)
	}
	if err := e.reg.Deprecate(ctx, "Dep", 1, true); err != nil {
		t.Fatalf("deprecating v1: %v", err)
	}
	if err := e.reg.Deprecate(ctx, "Dep", 2, false); err != nil {
		t.Fatalf("undeprecating the latest version (a no-op): %v", err)
	}
}

// TestReregisteringSetsTheMode: registering the latest schema again with
// another compatibility mode reported the new mode while the type kept
// its old one. The mode is set (a dry run only reports it).
func TestReregisteringSetsTheMode(t *testing.T) {
	e := newEnv(t, schemaregistry.Options{})
	ctx := context.Background()
	e.mustRegister("Mode", `{"type": "object"}`, "")
	v, err := e.reg.Check(ctx, schemaregistry.Registration{Type: "Mode", Schema: json.RawMessage(`{"type": "object"}`), Compatibility: schemaregistry.Full})
	if err != nil || !v.Unchanged || v.Mode != schemaregistry.Full || e.reg.Compatibility("Mode") != schemaregistry.Backward {
		t.Fatalf("dry run: %+v, %v; mode %s", v, err, e.reg.Compatibility("Mode"))
	}
	v, err = e.register("Mode", `{"type": "object"}`, "", schemaregistry.None)
	if err != nil || !v.Unchanged || v.Version != 1 || v.Mode != schemaregistry.None {
		t.Fatalf("verdict %+v, %v", v, err)
	}
	if got := e.reg.Compatibility("Mode"); got != schemaregistry.None {
		t.Fatalf("the verdict says NONE but the type is %s", got)
	}
	if got := e.second(schemaregistry.Options{}).Compatibility("Mode"); got != schemaregistry.None {
		t.Fatalf("another process sees %s", got)
	}
}

// TestOldVersionAppendReadsAsEveryLaterVersion: Event.data(asVersion: N)
// reads an event as any version N after its own, running the migrations up
// to N and validating against N's schema. An append of an older version
// was checked only against the latest: a v1 event that reads as v3 but not
// as v2 was accepted, and reading it as v2 failed, although every v1 event
// stored before v3 was registered read as v2 (registering v2 replayed
// them). It is refused, naming v2.
func TestOldVersionAppendReadsAsEveryLaterVersion(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, schemaregistry.Options{})
	e.mustRegister("Renamed", `{"type": "object", "properties": {"a": {"type": "integer"}}}`, "")
	e.mustRegister("Renamed", `{"type": "object", "properties": {"b": {"type": "integer"}}, "required": ["b"]}`, `[{"op": "rename", "from": "/a", "path": "/b"}]`)
	// While v2 is the latest, a v1 event without a is refused: it does not read as v2.
	if _, err := e.store.Append(ctx, "r-1", domain.ExpectAny, domain.EventData{Type: "Renamed", SchemaVersion: 1, Data: json.RawMessage(`{}`)}); err == nil {
		t.Fatal("a v1 event that does not read as v2 was accepted")
	}
	e.mustRegister("Renamed", `{"type": "object", "properties": {"c": {"type": "integer"}}}`, `[{"op": "rename", "from": "/b", "path": "/c"}]`)
	_, err := e.store.Append(ctx, "r-1", domain.ExpectAny, domain.EventData{Type: "Renamed", SchemaVersion: 1, Data: json.RawMessage(`{}`)})
	var ve *schemaregistry.ValidationError
	if !errors.As(err, &ve) || ve.Version != 1 || ve.ReadAs != 2 || ve.Latest != 3 ||
		!strings.Contains(err.Error(), "would not read as v2, a version before the latest, v3") || !strings.Contains(err.Error(), "/b") {
		t.Fatalf("append of a v1 event that reads as v3 but not as v2: %v, want it refused naming v2 and /b", err)
	}
	// One that reads as both is accepted, and reads as v2.
	if _, err := e.store.Append(ctx, "r-1", domain.ExpectAny, domain.EventData{Type: "Renamed", SchemaVersion: 1, Data: json.RawMessage(`{"a": 1}`)}); err != nil {
		t.Fatalf("append of a v1 event that reads as v2 and v3: %v", err)
	}
	evs, err := e.raw.ReadStream(ctx, "r-1", eventstore.StreamQuery{})
	if err != nil || len(evs) != 1 {
		t.Fatalf("read: %d events, %v", len(evs), err)
	}
	if data, _, err := e.reg.Upcast(ctx, "Renamed", evs[0].SchemaVersion, evs[0].Data, 2); err != nil || string(data) != `{"b":1}` {
		t.Errorf("an accepted v1 event as v2 (data(asVersion: 2)): %s, %v", data, err)
	}
}

// TestOldVersionAppendPassesAnUnusableVersion: a stored schema that no
// longer compiles is unusable (no event reads as it) while the rest of
// the type works: an append of a version before it is checked against the
// versions after it, not refused for it.
func TestOldVersionAppendPassesAnUnusableVersion(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, schemaregistry.Options{})
	storeSchema(t, e.pool, "Gapped", 1, `{"type": "object", "properties": {"p": {"type": "integer"}}}`)
	storeSchema(t, e.pool, "Gapped", 2, `{"type": "object", "properties": {"p": {"$ref": "#/properties/p"}}}`)
	reg := e.second(schemaregistry.Options{})
	if _, err := reg.Register(ctx, schemaregistry.Registration{Type: "Gapped", Schema: json.RawMessage(`{"type": "object", "properties": {"p": {"type": "integer"}}, "required": ["p"]}`),
		Compatibility: schemaregistry.None}); err != nil {
		t.Fatalf("mending the type with v3: %v", err)
	}
	if err := reg.Validate(ctx, "Gapped", 1, []byte(`{"p": 1}`)); err != nil {
		t.Errorf("a v1 event that reads as v3: %v", err)
	}
	var ve *schemaregistry.ValidationError
	if err := reg.Validate(ctx, "Gapped", 1, []byte(`{}`)); !errors.As(err, &ve) || ve.ReadAs != 3 {
		t.Errorf("a v1 event that does not read as v3: %v", err)
	}
}

// TestAppendCheckMigratesTheDataAsItIsStored: an event of an older version
// is appended only when it reads as the later versions; the check must
// migrate the data as every read will, i.e. as PostgreSQL's jsonb keeps it. jsonb
// writes 1e16 as 10000000000000000, and the expression language computes
// that (an integer) exactly in int64, but 1e16 (an exponent) in float64.
func TestAppendCheckMigratesTheDataAsItIsStored(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, schemaregistry.Options{})
	e.mustRegister("Scaled", `{"type": "object", "properties": {"n": {"type": "number"}}, "required": ["n"]}`, "")
	e.mustRegister("Scaled", `{"type": "object", "properties": {"n": {"type": "number"}, "m": {"type": "number"}}, "required": ["n", "m"]}`,
		`[{"op": "compute", "path": "/m", "expr": "n * 1000"}]`)

	// Stored as 10000000000000000, n * 1000 overflows int64, and every
	// read would fail: the check, which computed 1e16 * 1000 in float64,
	// accepted it. It is refused.
	_, err := e.store.Append(ctx, "scaled-1", domain.ExpectAny,
		domain.EventData{Type: "Scaled", SchemaVersion: 1, Data: json.RawMessage(`{"n": 1e16}`)})
	if err == nil || !strings.Contains(err.Error(), "integer overflow") {
		t.Errorf("append of {\"n\": 1e16}, which as stored does not read as v2: %v, want integer overflow", err)
	}
	if _, err := e.store.ReadStream(ctx, "scaled-1", eventstore.StreamQuery{}); err != nil {
		t.Errorf("an event the append check accepted does not read: %v", err)
	}

	// And the other way: a v1 event that reads fine is refused.
	e.mustRegister("Halved", `{"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}`, "")
	e.mustRegister("Halved", `{"type": "object", "properties": {"n": {"type": "integer"}, "half": {"type": "integer"}}, "required": ["n", "half"]}`,
		`[{"op": "compute", "path": "/half", "expr": "n / 2"}]`)
	e.appendRaw("halved-1", "Halved", 1, `{"n": 1.5e1}`) // as stored: {"n": 15}
	evs, err := e.store.ReadStream(ctx, "halved-1", eventstore.StreamQuery{})
	if err != nil || len(evs) != 1 {
		t.Fatalf("read: %v", err)
	}
	t.Logf("stored {\"n\": 1.5e1} reads as %s", evs[0].Data)
	if _, err := e.store.Append(ctx, "halved-2", domain.ExpectAny,
		domain.EventData{Type: "Halved", SchemaVersion: 1, Data: json.RawMessage(`{"n": 1.5e1}`)}); err != nil {
		t.Errorf("the same event, appended, is refused: %v", err)
	}

	// mapValues looks numbers up by their text: 1e0 is not "1" at the
	// append check, but it is once stored.
	e.mustRegister("Levelled", `{"type": "object", "properties": {"level": {"type": "integer"}}, "required": ["level"]}`, "")
	e.mustRegister("Levelled", `{"type": "object", "properties": {"level": {"enum": ["LOW", "HIGH"]}}, "required": ["level"]}`,
		`[{"op": "mapValues", "path": "/level", "map": {"1": "LOW", "2": "HIGH"}}]`)
	e.appendRaw("levelled-1", "Levelled", 1, `{"level": 1e0}`)
	if evs, err := e.store.ReadStream(ctx, "levelled-1", eventstore.StreamQuery{}); err != nil || len(evs) != 1 {
		t.Fatalf("read: %v", err)
	} else {
		t.Logf("stored {\"level\": 1e0} reads as %s", evs[0].Data)
	}
	if _, err := e.store.Append(ctx, "levelled-2", domain.ExpectAny,
		domain.EventData{Type: "Levelled", SchemaVersion: 1, Data: json.RawMessage(`{"level": 1e0}`)}); err != nil {
		t.Errorf("the same event, appended, is refused: %v", err)
	}
}
