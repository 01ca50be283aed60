package graph_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"cqrsgate/domain"
)

// registerShipped registers Shipped v1 (total) and v2 (subtotal, required,
// renamed from total by its migration) over GraphQL.
func registerShipped(g *pgGateway) {
	g.mustPost(`mutation { registerEventSchema(type: "Shipped", schema: {type: "object", properties: {total: {type: "integer"}}}) { version } }`, nil, &struct{}{})
	g.mustPost(`mutation { registerEventSchema(type: "Shipped", schema: {type: "object", properties: {subtotal: {type: "integer"}}, required: ["subtotal"]},
		migration: [{op: RENAME, from: "/total", path: "/subtotal"}]) { version } }`, nil, &struct{}{})
}

// TestRegistryOldVersionAppendKeepsReadsWorking: appendEvents of a v1
// event that matches v1 but does not read as v2 was accepted, and then
// the events query and the stream failed on it. It is refused with
// VALIDATION on the event's data, and the log stays readable.
func TestRegistryOldVersionAppendKeepsReadsWorking(t *testing.T) {
	g := newFullGatewayWith(t, fullOptions{readTimeout: 5 * time.Second})
	registerShipped(g)
	g.mustPost(`mutation { appendEvents(stream: "ship-1", events: [{type: "Shipped", data: {subtotal: 1}}, {type: "Shipped", version: 1, data: {total: 2}}]) { position } }`, nil, &struct{}{})

	out, _ := g.post(`mutation { appendEvents(stream: "ship-1", events: [{type: "Shipped", version: 1, data: {}}]) { position } }`, nil)
	if len(out.Errors) != 1 || out.Errors[0].Extensions["code"] != "VALIDATION" || out.Errors[0].Extensions["field"] != "events.0.data" ||
		out.Errors[0].Extensions["rule"] != "SCHEMA_VALIDATION" || !strings.Contains(out.Errors[0].Message, "would not read as the latest version, v2") {
		t.Fatalf("append of a v1 event that does not read as v2: %+v", out.Errors)
	}
	for _, q := range []string{`{ events(after: 0, first: 100) { events { type data } } }`, `{ stream(id: "ship-1") { events { type data } } }`} {
		out, _ := g.post(q, nil)
		if len(out.Errors) > 0 {
			t.Errorf("%s: %+v", q, out.Errors)
		}
	}
}

// TestRegistryMigrationFailureNamesItsCause: an event stored before the
// append check that does not read as the latest version failed with
// "could not be migrated: <nil>". The error says why.
func TestRegistryMigrationFailureNamesItsCause(t *testing.T) {
	g := newFullGatewayWith(t, fullOptions{readTimeout: 5 * time.Second})
	registerShipped(g)
	// As stored before: straight into the log, unvalidated.
	if _, err := g.store.Append(context.Background(), "ship-1", domain.ExpectAny,
		domain.EventData{Type: "Shipped", SchemaVersion: 1, Data: json.RawMessage(`{}`)}); err != nil {
		t.Fatal(err)
	}
	out, _ := g.post(`{ stream(id: "ship-1") { events { data } } }`, nil)
	if len(out.Errors) != 1 || out.Errors[0].Extensions["code"] != "INTERNAL" {
		t.Fatalf("errors %+v", out.Errors)
	}
	if msg := out.Errors[0].Message; !strings.Contains(msg, "could not be migrated: Shipped v2 does not match its schema: /subtotal") || strings.Contains(msg, "<nil>") {
		t.Errorf("message %q, want the cause", msg)
	}
}

// TestRegistryRefusesSchemasTheValidatorCannotRun: a schema gojsonschema
// panicked on (a multipleOf of 1e-9999999) was an internal error, and one
// with a $ref loop was accepted and crashed the process on the first
// event. Both are VALIDATION errors.
func TestRegistryRefusesSchemasTheValidatorCannotRun(t *testing.T) {
	g := newFullGatewayWith(t, fullOptions{readTimeout: 5 * time.Second})
	for _, tt := range []struct{ schema, want string }{
		{`{"type": "object", "properties": {"n": {"multipleOf": 1e-9999999}}}`, "1e-9999999"},
		{`{"type": "object", "properties": {"p": {"$ref": "#/properties/p"}}}`, "loop"},
		{`{"type": "object", "properties": {"p": {"$id": "http://127.0.0.1:1/x.json#a", "$ref": "#/definitions/a"}}}`, "base URI"},
		{`{"$id": "http://127.0.0.1:1/x.json", "type": "object"}`, "identifiers are not supported"},
	} {
		out, _ := g.post(`mutation($s: JSON!) { registerEventSchema(type: "Bad", schema: $s) { version } }`, map[string]any{"s": json.RawMessage(tt.schema)})
		if len(out.Errors) != 1 || out.Errors[0].Extensions["code"] != "VALIDATION" || !strings.Contains(out.Errors[0].Message, tt.want) {
			t.Errorf("%s: %+v, want VALIDATION mentioning %q", tt.schema, out.Errors, tt.want)
		}
	}
}
