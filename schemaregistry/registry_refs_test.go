package schemaregistry_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"cqrsgate/domain"
	"cqrsgate/schemaregistry"
)

// storeSchema writes a schema version straight into the registry's tables,
// as a registration made before a check existed did, and bumps the
// revision so that processes reload.
func storeSchema(t *testing.T, pool *pgxpool.Pool, eventType string, version int, schema string) {
	t.Helper()
	ctx := context.Background()
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO schema_types (event_type, compatibility) VALUES ($1, 'BACKWARD') ON CONFLICT DO NOTHING`, []any{eventType}},
		{`INSERT INTO schema_versions (event_type, version, schema, fingerprint) VALUES ($1, $2, $3, 'stored by the test')`, []any{eventType, version, schema}},
		{`UPDATE schema_registry_revision SET revision = revision + 1`, nil},
	} {
		if _, err := pool.Exec(ctx, q.sql, q.args...); err != nil {
			t.Fatal(err)
		}
	}
}

// fetchCounter is a web server that serves a schema document and counts
// the requests it gets: the registry must never make one.
func fetchCounter(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"definitions": {"a": {"type": "string"}}}`)
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

// TestRefLoopsAreRefused: a $ref that leads back to itself through $refs
// and keywords that apply to the same value (allOf, not, if, ...) made
// gojsonschema recurse until the process crashed with a stack overflow on
// the first event appended. Such schemas are refused at registration; a
// loop that descends into the data (a recursive type) is fine.
func TestRefLoopsAreRefused(t *testing.T) {
	e := newEnv(t, schemaregistry.Options{})
	loops := []struct{ name, schema string }{
		{"a property referring to itself", `{"type": "object", "properties": {"p": {"$ref": "#/properties/p"}}}`},
		{"definitions referring to each other", `{"type": "object", "definitions": {"a": {"$ref": "#/definitions/b"}, "b": {"$ref": "#/definitions/a"}}, "properties": {"p": {"$ref": "#/definitions/a"}}}`},
		{"the root through allOf", `{"type": "object", "allOf": [{"$ref": "#"}]}`},
		{"through not and anyOf", `{"type": "object", "properties": {"p": {"$ref": "#/definitions/a"}}, "definitions": {"a": {"not": {"anyOf": [{"$ref": "#/definitions/a"}]}}}}`},
		{"through if and then", `{"type": "object", "if": {"required": ["x"]}, "then": {"$ref": "#"}}`},
		{"through a schema dependency", `{"type": "object", "dependencies": {"x": {"$ref": "#"}}}`},
		{"a reference to a reference to itself", `{"type": "object", "properties": {"p": {"$ref": "#/definitions/a"}}, "definitions": {"a": {"$ref": "#/definitions/a"}}}`},
	}
	for i, tt := range loops {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.register(fmt.Sprintf("Loop%d", i), tt.schema, "", "")
			if code(err) != schemaregistry.CodeInvalid || !strings.Contains(err.Error(), "loop") {
				t.Fatalf("err = %v, want VALIDATION naming the loop", err)
			}
		})
	}
	// A tree: the loop passes through properties and items, so it ends
	// with the data.
	tree := `{"type": "object", "properties": {"node": {"$ref": "#/definitions/node"}}, "definitions": {"node": {"type": "object",
		"properties": {"children": {"type": "array", "items": {"$ref": "#/definitions/node"}}, "value": {"type": "integer"}}}}}`
	e.mustRegister("Tree", tree, "")
	ctx := context.Background()
	if _, err := e.store.Append(ctx, "t-1", domain.ExpectAny, domain.EventData{Type: "Tree", SchemaVersion: 1,
		Data: json.RawMessage(`{"node": {"value": 1, "children": [{"value": 2, "children": [{"value": 3}]}]}}`)}); err != nil {
		t.Fatalf("a valid tree: %v", err)
	}
	err := e.reg.Validate(ctx, "Tree", 1, []byte(`{"node": {"children": [{"children": [{"value": "x"}]}]}}`))
	if !errors.Is(err, schemaregistry.ErrInvalidEvent) || !strings.Contains(err.Error(), "/node/children/0/children/0/value") {
		t.Fatalf("an invalid tree: %v", err)
	}
}

// TestStoredRefLoopDoesNotCrashTheProcess: a schema with a $ref loop
// stored before registration refused them must not take a gateway down:
// it starts, logs the schema as unusable, refuses events of that version
// with a problem saying so, and the type can be mended with a new version.
func TestStoredRefLoopDoesNotCrashTheProcess(t *testing.T) {
	e := newEnv(t, schemaregistry.Options{})
	ctx := context.Background()
	storeSchema(t, e.pool, "Cyclic", 1, `{"type": "object", "properties": {"p": {"$ref": "#/properties/p"}}}`)
	e.mustRegister("Fine", `{"type": "object"}`, "")
	reg := e.second(schemaregistry.Options{}) // a gateway starting
	err := reg.Validate(ctx, "Cyclic", 1, []byte(`{"p": 1}`))
	var ve *schemaregistry.ValidationError
	if !errors.As(err, &ve) || !strings.Contains(err.Error(), "cannot be used") || !strings.Contains(err.Error(), "loop") {
		t.Fatalf("validating against the stored loop: %v, want a problem saying the schema cannot be used", err)
	}
	if err := reg.Validate(ctx, "Fine", 1, []byte(`{}`)); err != nil {
		t.Fatalf("another type: %v", err)
	}
	if _, err := reg.Register(ctx, schemaregistry.Registration{Type: "Cyclic", Schema: json.RawMessage(`{"type": "object", "properties": {"p": {"type": "integer"}}}`),
		Compatibility: schemaregistry.None}); err != nil {
		t.Fatalf("mending the type with v2: %v", err)
	}
	if err := reg.Validate(ctx, "Cyclic", 2, []byte(`{"p": 1}`)); err != nil {
		t.Fatalf("v2: %v", err)
	}
}

// TestSchemaIdentifiersAreRefused: an $id (or id) makes gojsonschema
// resolve the "#/..." references inside it against the identifier's
// document, which it fetched over HTTP or read from a file, at
// registration and at every start. Schemas being registered may not carry
// one; nothing is fetched.
func TestSchemaIdentifiersAreRefused(t *testing.T) {
	srv, hits := fetchCounter(t)
	e := newEnv(t, schemaregistry.Options{})
	schemas := []struct{ name, schema string }{
		{"nested $id with an anchor", `{"type": "object", "properties": {"p": {"$id": "` + srv.URL + `/x.json#anchor", "$ref": "#/definitions/a"}}}`},
		{"root $id with an anchor", `{"$id": "` + srv.URL + `/o.json#v1", "type": "object", "definitions": {"a": {"type": "integer"}}, "properties": {"p": {"$ref": "#/definitions/a"}}}`},
		{"root $id", `{"$id": "` + srv.URL + `/o.json", "type": "object"}`},
		{"a file", `{"type": "object", "properties": {"p": {"$id": "file:///etc/passwd#x", "$ref": "#/definitions/a"}}}`},
		{"draft-04 id", `{"type": "object", "properties": {"p": {"id": "` + srv.URL + `/x.json#anchor", "$ref": "#/definitions/a"}}}`},
	}
	for i, tt := range schemas {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.register(fmt.Sprintf("Ided%d", i), tt.schema, "", "")
			// Refused by the identifier rule, or before it, as a reference
			// that may not name what it says, or one outside the schema.
			if code(err) != schemaregistry.CodeInvalid || !strings.Contains(err.Error(), "identifiers are not supported") &&
				!strings.Contains(err.Error(), "base URI") && !strings.Contains(err.Error(), "never fetches") {
				t.Fatalf("err = %v, want VALIDATION refusing the identifier", err)
			}
		})
	}
	if n := hits.Load(); n > 0 {
		t.Errorf("registration fetched %d documents", n)
	}
	// A property named id, and ids in data values, are no identifiers.
	e.mustRegister("Named", `{"type": "object", "properties": {"id": {"type": "string", "enum": ["x"]}, "$id": {"const": {"id": "y"}}}, "required": ["id"]}`, "")
	// Declaring draft-07 by its https address fetches nothing either
	// (gojsonschema keeps only the http one in memory).
	e.mustRegister("Https", `{"$schema": "https://json-schema.org/draft-07/schema#", "type": "object"}`, "")
}

// TestStoredSchemasAreNeverFetched: a stored schema whose references
// resolve outside it (registered before identifiers were refused) is not
// fetched when a gateway starts: it is unusable, and the gateway starts
// even when the remote is slow or gone.
func TestStoredSchemasAreNeverFetched(t *testing.T) {
	srv, hits := fetchCounter(t)
	e := newEnv(t, schemaregistry.Options{})
	storeSchema(t, e.pool, "Fetchy", 1, `{"type": "object", "properties": {"p": {"$id": "`+srv.URL+`/x.json#anchor", "$ref": "#/definitions/a"}}}`)
	storeSchema(t, e.pool, "RootFetchy", 1, `{"$id": "`+srv.URL+`/o.json#v1", "type": "object", "definitions": {"a": {"type": "integer"}}, "properties": {"p": {"$ref": "#/definitions/a"}}}`)
	// A root $id that the references resolve against locally keeps working.
	storeSchema(t, e.pool, "Local", 1, `{"$id": "`+srv.URL+`/local.json", "type": "object", "definitions": {"a": {"type": "integer"}}, "properties": {"p": {"$ref": "#/definitions/a"}}}`)
	reg := e.second(schemaregistry.Options{})
	if n := hits.Load(); n > 0 {
		t.Fatalf("starting fetched %d documents", n)
	}
	ctx := context.Background()
	for _, typ := range []string{"Fetchy", "RootFetchy"} {
		if err := reg.Validate(ctx, typ, 1, []byte(`{"p": "x"}`)); err == nil || !strings.Contains(err.Error(), "cannot be used") {
			t.Errorf("%s: %v, want a problem saying the schema cannot be used", typ, err)
		}
	}
	if err := reg.Validate(ctx, "Local", 1, []byte(`{"p": 5}`)); err != nil {
		t.Errorf("a local reference: %v", err)
	}
	if err := reg.Validate(ctx, "Local", 1, []byte(`{"p": "x"}`)); !errors.Is(err, schemaregistry.ErrInvalidEvent) {
		t.Errorf("a local reference, bad data: %v", err)
	}
	if n := hits.Load(); n > 0 {
		t.Errorf("validating fetched %d documents", n)
	}
}

// TestHugeNumbersInSchemasAreRefused: gojsonschema panicked on a
// multipleOf of 1e-9999999 (it could not make a rational of it), which
// surfaced as an internal error; it is a VALIDATION error now, like other
// numbers no event could be stored with.
func TestHugeNumbersInSchemasAreRefused(t *testing.T) {
	e := newEnv(t, schemaregistry.Options{})
	for i, kw := range []string{`"multipleOf": 1e-9999999`, `"minimum": 1e-9999999`, `"maxLength": 1e9999999`} {
		t.Run(kw, func(t *testing.T) {
			defer func() {
				if p := recover(); p != nil {
					t.Fatalf("Register panics: %v", p)
				}
			}()
			_, err := e.register(fmt.Sprintf("Huge%d", i), `{"type": "object", "properties": {"n": {`+kw+`}}}`, "", "")
			if code(err) != schemaregistry.CodeInvalid {
				t.Fatalf("err = %v, want VALIDATION", err)
			}
		})
	}
	// A small multipleOf that gojsonschema handles stays accepted.
	e.mustRegister("Tiny", `{"type": "object", "properties": {"n": {"multipleOf": 1e-400}}}`, "")
}

// Plain-name fragments ("$id": "#address", named by "$ref": "#address")
// resolve within the schema and change no base URI: stored schemas that use
// them keep working, and new ones may. Ids in the values of examples and
// default are data (an example event with an id field), not identifiers.
// A schema registered before the identifier rule may be submitted again
// unchanged.
func TestPlainNamesAndIDsInDataAreFine(t *testing.T) {
	e := newEnv(t, schemaregistry.Options{})
	ctx := context.Background()
	named := `{"type": "object", "definitions": {"addr": {"$id": "#address", "type": "string"}}, "properties": {"a": {"$ref": "#address"}}}`
	storeSchema(t, e.pool, "Shipped", 1, named)
	if err := e.reg.Validate(ctx, "Shipped", 1, []byte(`{"a": "Main St 1"}`)); err != nil {
		t.Errorf("an event of a stored schema with a plain-name reference: %v", err)
	}
	if err := e.reg.Validate(ctx, "Shipped", 1, []byte(`{"a": 5}`)); err == nil {
		t.Error("an event the plain-name reference refuses was accepted")
	}
	for _, tt := range []struct{ name, schema string }{
		{"PlainNamed", named},
		{"Exampled", `{"type": "object", "properties": {"id": {"type": "string"}}, "examples": [{"id": "ord-1"}]}`},
		{"Defaulted", `{"type": "object", "properties": {"line": {"type": "object", "properties": {"id": {"type": "string"}}, "default": {"id": "none"}}}}`},
	} {
		if _, err := e.register(tt.name, tt.schema, "", ""); err != nil {
			t.Errorf("registering %s: %v", tt.name, err)
		}
	}
	// A new version of a schema with a plain-name reference is checked for
	// compatibility like any other.
	if v, err := e.register("PlainNamed", `{"type": "object", "description": "v2", "definitions": {"addr": {"$id": "#address", "type": "string"}}, "properties": {"a": {"$ref": "#address"}}}`, "", ""); err != nil || v.Version != 2 {
		t.Errorf("v2 of PlainNamed, a description added: %+v, %v", v, err)
	}
	if _, err := e.register("Looped", `{"type": "object", "definitions": {"a": {"$id": "#a", "$ref": "#a"}}, "properties": {"p": {"$ref": "#a"}}}`, "", ""); code(err) != schemaregistry.CodeInvalid || !strings.Contains(err.Error(), "loop") {
		t.Errorf("a plain-name loop: %v, want it refused as a loop", err)
	}
	withID := `{"$id": "https://example.com/order.json", "type": "object", "properties": {"n": {"type": "integer"}}}`
	storeSchema(t, e.pool, "Ided", 1, withID)
	if v, err := e.register("Ided", withID, "", ""); err != nil || !v.Unchanged {
		t.Errorf("submitting a stored schema with an $id again: %+v, %v; want unchanged", v, err)
	}
	if _, err := e.register("Ided", `{"$id": "https://example.com/order2.json", "type": "object"}`, "", ""); code(err) != schemaregistry.CodeInvalid {
		t.Errorf("a new version with an absolute $id: %v, want it refused", err)
	}
}
