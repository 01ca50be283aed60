package graph_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"cqrsgate/domain"
)

// domainSchemasBefore returns the domain's shipped schemas without
// OrderSubmitted v2 and its migration: the registry of an earlier release.
func domainSchemasBefore(t *testing.T) fs.FS {
	t.Helper()
	out := fstest.MapFS{}
	err := fs.WalkDir(domain.EventSchemas(), ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasPrefix(path, "OrderSubmitted.v2") {
			return err
		}
		b, err := fs.ReadFile(domain.EventSchemas(), path)
		out[path] = &fstest.MapFile{Data: b}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSchemaEvolutionWorkedExample is the README's worked example, end to
// end: OrderSubmitted v1 (total only) gets v2 (subtotal, tax, currency with
// a default) through registerEventSchema with a declarative migration; the
// v1 events stored before are read as v2 by the aggregate, the orders
// projection, queries and subscriptions; a v3 that would break them is
// refused with their ids.
func TestSchemaEvolutionWorkedExample(t *testing.T) {
	ctx := context.Background()
	g := newFullGatewayWith(t, fullOptions{readTimeout: 5 * time.Second, seed: domainSchemasBefore(t)})

	// An earlier release submitted orders as v1.
	var storedIDs []string
	for i, total := range []int64{300, 450} {
		id := fmt.Sprintf("o-%d", i)
		g.mustMutate("placeOrder", map[string]any{"orderId": id, "customerId": "c1", "currency": "USD"})
		added := g.mustMutate("addOrderItem", map[string]any{"orderId": id, "sku": "w", "quantity": 3, "unitPrice": total / 3})
		res, err := g.validated.Append(ctx, "order-"+id, domain.ExpectedVersion(added.Version), domain.EventData{
			Type: "OrderSubmitted", SchemaVersion: 1, Data: json.RawMessage(fmt.Sprintf(`{"total": %d, "itemCount": 3, "submittedAt": "2026-11-20T10:00:00Z"}`, total)),
		})
		if err != nil {
			t.Fatalf("a v1 event, valid under v1: %v", err)
		}
		storedIDs = append(storedIDs, res.Events[0].ID)
	}
	// Until v2 is registered, the current code's v2 events are refused:
	// the gateway, whose build lacks the schema, is at fault, not the
	// client (INTERNAL, naming the schema), and nothing is written.
	g.mustMutate("placeOrder", map[string]any{"orderId": "o-new", "customerId": "c1", "currency": "EUR"})
	g.mustMutate("addOrderItem", map[string]any{"orderId": "o-new", "sku": "w", "quantity": 1, "unitPrice": 10})
	_, gqlErr := g.mutate("submitOrder", map[string]any{"orderId": "o-new"})
	wantError(t, "submitting before v2 exists", gqlErr, "INTERNAL", "schemaVersion", "2")
	if !strings.Contains(gqlErr.Message, "OrderSubmitted.v2.json") {
		t.Fatalf("submitting before v2 exists: %s, want the missing schema named", gqlErr.Message)
	}

	// The new release registers v2 with its migration, as shipped.
	v2, _ := fs.ReadFile(domain.EventSchemas(), "OrderSubmitted.v2.json")
	migration, _ := fs.ReadFile(domain.EventSchemas(), "OrderSubmitted.v2.migration.json")
	var ops []map[string]any
	if err := json.Unmarshal(migration, &ops); err != nil {
		t.Fatal(err)
	}
	for _, op := range ops { // the GraphQL enum spells operations in capitals
		op["op"] = strings.ToUpper(op["op"].(string))
	}
	var reg struct {
		RegisterEventSchema struct {
			Version    int
			Compatible bool
			Replayed   []struct{ Version, Checked int }
			Schema     struct{ Migration json.RawMessage }
		}
	}
	g.mustPost(`mutation($s: JSON!, $m: [MigrationOperationInput!]) { registerEventSchema(type: "OrderSubmitted", schema: $s, migration: $m) {
		version compatible replayed { version checked } schema { migration } } }`, map[string]any{"s": json.RawMessage(v2), "m": ops}, &reg)
	r := reg.RegisterEventSchema
	if r.Version != 2 || !r.Compatible || len(r.Replayed) != 1 || r.Replayed[0].Checked != 2 || len(r.Schema.Migration) == 0 {
		t.Fatalf("registering v2: %+v", r)
	}
	submitted := g.mustMutate("submitOrder", map[string]any{"orderId": "o-new"})

	// Aggregates: the order's total is rebuilt from subtotal + tax, which
	// only the migration provides for v1 events; confirming works.
	var state struct {
		OrderAt struct {
			Status string
			Total  int64
		}
	}
	g.mustPost(`{ orderAt(id: "o-1") { status total } }`, nil, &state)
	if state.OrderAt.Status != "SUBMITTED" || state.OrderAt.Total != 450 {
		t.Fatalf("the aggregate read the v1 event as %+v", state.OrderAt)
	}
	confirmed := g.mustMutate("confirmOrder", map[string]any{"orderId": "o-1"})

	// Projections: the new release's orders projection (version 2, with
	// subtotal and tax) rebuilds from the log, reading the v1 events as v2.
	// Here the projection code is already new, so rebuild it as the
	// release's version bump would.
	servingGeneration := func() int {
		var ps struct {
			Projections []struct {
				Name       string
				Generation int
				Serving    bool
			}
		}
		g.mustPost(`{ projections { name generation serving } }`, nil, &ps)
		for _, p := range ps.Projections {
			if p.Name == "orders" && p.Serving {
				return p.Generation
			}
		}
		return 0
	}
	waitFor(t, "the orders projection to serve", func() bool { return servingGeneration() > 0 })
	var rebuilt struct{ RebuildProjection struct{ Generation int } }
	g.mustPost(`mutation { rebuildProjection(name: "orders") { generation } }`, nil, &rebuilt)
	waitFor(t, "the rebuilt orders projection to serve", func() bool { return servingGeneration() == rebuilt.RebuildProjection.Generation })
	// Queries: the read model has the subtotal and tax.
	var orders struct {
		A, B struct {
			Status        string
			Subtotal, Tax int64
			Total         int64
		}
	}
	g.mustPost(`query($p: Position) { a: order(id: "o-0", atLeast: $p) { status subtotal tax total } b: order(id: "o-new", atLeast: $p) { status subtotal tax total } }`,
		map[string]any{"p": max(confirmed.Position, submitted.Position)}, &orders)
	if orders.A.Status != "SUBMITTED" || orders.A.Subtotal != 300 || orders.A.Tax != 0 || orders.A.Total != 300 || orders.B.Subtotal != 10 {
		t.Fatalf("read model: %+v", orders)
	}

	// The event log: v2 by default, v1 on request, as stored on disk.
	var log struct {
		Events struct {
			Events []struct {
				ID                  string
				SchemaVersion       int
				StoredSchemaVersion int
				Data                map[string]any
				V1                  map[string]any
			}
		}
	}
	g.mustPost(`{ events(types: ["OrderSubmitted"], stream: "order-o-0") { events { id schemaVersion storedSchemaVersion data v1: data(asVersion: 1) } } }`, nil, &log)
	evs := log.Events.Events
	if len(evs) != 1 || evs[0].SchemaVersion != 2 || evs[0].StoredSchemaVersion != 1 ||
		evs[0].Data["subtotal"] != float64(300) || evs[0].Data["currency"] != "XXX" || evs[0].V1["total"] != float64(300) || evs[0].V1["subtotal"] != nil {
		t.Fatalf("events query: %+v", evs)
	}
	out, _ := g.post(`{ events(types: ["OrderSubmitted"], stream: "order-o-new") { events { data(asVersion: 1) } } }`, nil)
	if len(out.Errors) != 1 || !strings.Contains(out.Errors[0].Message, "only go forward") {
		t.Fatalf("a v2 event as v1: %+v", out.Errors)
	}

	// Subscriptions: a replay from the start delivers v2 data.
	c := dialAuth(t, g.url, nil)
	c.init()
	c.send(subscribeMsg("1", `subscription { events(types: ["OrderSubmitted"], streamPrefix: "order-o-", after: 0) { schemaVersion storedSchemaVersion data } }`, nil))
	for i := range 3 {
		var p struct {
			Data struct {
				Events struct {
					SchemaVersion, StoredSchemaVersion int
					Data                               map[string]any
				}
			}
		}
		m := c.expect("next")
		if err := json.Unmarshal(m.Payload, &p); err != nil {
			t.Fatal(err)
		}
		if p.Data.Events.SchemaVersion != 2 || p.Data.Events.Data["subtotal"] == nil || (i < 2) != (p.Data.Events.StoredSchemaVersion == 1) {
			t.Fatalf("subscription event %d: %s", i, m.Payload)
		}
	}
	// ... and, asked for, v1: the first two events as stored.
	c.send(subscribeMsg("2", `subscription { events(types: ["OrderSubmitted"], after: 0) { data(asVersion: 1) } }`, nil))
	for range 2 {
		if m := c.expect("next"); !strings.Contains(string(m.Payload), `"total"`) || strings.Contains(string(m.Payload), "subtotal") {
			t.Fatalf("as v1: %s", m.Payload)
		}
	}

	// A v3 the code does not ship is refused, by a dry run as well: the
	// domain could not decode it.
	v3 := strings.Replace(string(v2), `"submittedAt"
  ],`, `"submittedAt", "discount"
  ],`, 1)
	v3 = strings.Replace(v3, `"properties": {`, `"properties": {"discount": {"type": "integer"},`, 1)
	for _, m := range []string{"registerEventSchema", "checkEventSchema"} {
		out, _ = g.post(`mutation($s: JSON!) { `+m+`(type: "OrderSubmitted", schema: $s, compatibility: NONE) { version } }`, map[string]any{"s": json.RawMessage(v3)})
		if len(out.Errors) != 1 || out.Errors[0].Extensions["rule"] != "DOMAIN_EVENT_TYPE" || !strings.Contains(out.Errors[0].Message, "ships no version 3") {
			t.Fatalf("%s v3: %+v", m, out)
		}
	}
	// The shipped v2 again is unchanged (its compatibility is set).
	var again struct {
		RegisterEventSchema struct {
			Version   int
			Unchanged bool
		}
	}
	g.mustPost(`mutation($s: JSON!) { registerEventSchema(type: "OrderSubmitted", schema: $s, compatibility: FULL) { version unchanged } }`, map[string]any{"s": json.RawMessage(v2)}, &again)
	if again.RegisterEventSchema.Version != 2 || !again.RegisterEventSchema.Unchanged {
		t.Fatalf("the shipped v2 again: %+v", again)
	}
	// The next start-up finds the shipped v2 as it ships it.
	if err := g.schemas.Seed(ctx, domain.EventSchemas()); err != nil {
		t.Fatalf("start-up after the shipped v2 was registered through the API: %v", err)
	}
	if g.schemas.Latest("OrderSubmitted") != 2 {
		t.Fatal("the refused v3 was registered")
	}
	// So is another version 2 than the shipped one, before it is registered.
	g2 := newFullGatewayWith(t, fullOptions{readTimeout: 5 * time.Second, seed: domainSchemasBefore(t)})
	other := strings.Replace(string(v2), `"properties": {`, `"properties": {"note": {"type": "string"},`, 1)
	out, _ = g2.post(`mutation($s: JSON!) { registerEventSchema(type: "OrderSubmitted", schema: $s) { version } }`, map[string]any{"s": json.RawMessage(other)})
	if len(out.Errors) != 1 || out.Errors[0].Extensions["rule"] != "DOMAIN_EVENT_TYPE" || !strings.Contains(out.Errors[0].Message, "differs from the version 2") {
		t.Fatalf("another v2: %+v", out)
	}
}

func TestSchemaRegistryOverGraphQL(t *testing.T) {
	g := newFullGatewayWith(t, fullOptions{readTimeout: 5 * time.Second})
	schema := json.RawMessage(`{"type": "object", "properties": {"note": {"type": "string", "maxLength": 20}}, "required": ["note"], "additionalProperties": false}`)
	var reg struct{ RegisterEventSchema struct{ Version int } }
	g.mustPost(`mutation($s: JSON!) { registerEventSchema(type: "NoteTaken", schema: $s, compatibility: FULL) { version } }`, map[string]any{"s": schema}, &reg)
	if reg.RegisterEventSchema.Version != 1 {
		t.Fatalf("%+v", reg)
	}

	// Generic appends are validated; a refusal names the path and writes nothing.
	out, _ := g.post(`mutation { appendEvents(stream: "notes-1", events: [{type: "NoteTaken", data: {note: "ok"}}, {type: "NoteTaken", data: {note: 5}}]) { position } }`, nil)
	if len(out.Errors) != 1 || out.Errors[0].Extensions["code"] != "VALIDATION" || out.Errors[0].Extensions["rule"] != "SCHEMA_VALIDATION" ||
		out.Errors[0].Extensions["field"] != "events.1.data" || !strings.Contains(fmt.Sprint(out.Errors[0].Extensions["problems"]), "/note") {
		t.Fatalf("invalid event: %+v", out.Errors)
	}
	out, _ = g.post(`mutation { appendEvents(stream: "notes-1", events: [{type: "NoSuchType", data: {}}]) { position } }`, nil)
	if len(out.Errors) != 1 || out.Errors[0].Extensions["rule"] != "UNKNOWN_EVENT_TYPE" {
		t.Fatalf("unknown type: %+v", out.Errors)
	}
	if v, _ := g.store.StreamVersion(context.Background(), "notes-1"); v != 0 {
		t.Fatalf("refused appends wrote %d events", v)
	}
	g.mustPost(`mutation { appendEvents(stream: "notes-1", events: [{type: "NoteTaken", data: {note: "first"}}]) { position } }`, nil, &struct{}{})

	// A dry run reports and writes nothing; FULL refuses a widening that FORWARD forbids.
	var check struct {
		CheckEventSchema struct {
			Version           int
			Compatible        bool
			Incompatibilities []struct{ Direction, Path, Reason string }
			Schema            *struct{ Version int }
		}
	}
	wider := json.RawMessage(`{"type": "object", "properties": {"note": {"type": "string", "maxLength": 40}}, "required": ["note"], "additionalProperties": false}`)
	g.mustPost(`mutation($s: JSON!) { checkEventSchema(type: "NoteTaken", schema: $s) { version compatible incompatibilities { direction path reason } schema { version } } }`, map[string]any{"s": wider}, &check)
	ck := check.CheckEventSchema
	if ck.Compatible || ck.Version != 2 || ck.Schema != nil || len(ck.Incompatibilities) != 1 || ck.Incompatibilities[0].Direction != "FORWARD" || ck.Incompatibilities[0].Path != "/note" {
		t.Fatalf("check: %+v", ck)
	}
	var types struct {
		EventTypes []struct {
			Name          string
			Compatibility string
			LatestVersion int
		}
		EventSchema        *struct{ Version int }
		Missing            *struct{ Version int }
		EventSchemaHistory []struct{ Version int }
	}
	g.mustPost(`{ eventTypes { name compatibility latestVersion } eventSchema(type: "NoteTaken") { version } missing: eventSchema(type: "NoteTaken", version: 5) { version } eventSchemaHistory(type: "NoteTaken") { version } }`, nil, &types)
	found := false
	for _, et := range types.EventTypes {
		if et.Name == "NoteTaken" {
			found = et.Compatibility == "FULL" && et.LatestVersion == 1
		}
	}
	if !found || types.EventSchema == nil || types.EventSchema.Version != 1 || types.Missing != nil || len(types.EventSchemaHistory) != 1 {
		t.Fatalf("queries: %+v", types)
	}
	if len(types.EventTypes) < 22 {
		t.Errorf("%d event types, want the domain's 21 and NoteTaken", len(types.EventTypes))
	}

	// With the mode relaxed to BACKWARD, the wider schema is accepted.
	g.mustPost(`mutation { setEventCompatibility(type: "NoteTaken", mode: BACKWARD) { compatibility } }`, nil, &struct{}{})
	g.mustPost(`mutation($s: JSON!) { registerEventSchema(type: "NoteTaken", schema: $s) { version } }`, map[string]any{"s": wider}, &reg)
	if reg.RegisterEventSchema.Version != 2 {
		t.Fatalf("v2: %+v", reg)
	}
	var dep struct{ DeprecateEventSchema struct{ Deprecated bool } }
	g.mustPost(`mutation { deprecateEventSchema(type: "NoteTaken", version: 1) { deprecated } }`, nil, &dep)
	out, _ = g.post(`mutation { appendEvents(stream: "notes-1", events: [{type: "NoteTaken", version: 1, data: {note: "old"}}]) { position } }`, nil)
	if !dep.DeprecateEventSchema.Deprecated || len(out.Errors) != 1 || !strings.Contains(out.Errors[0].Message, "deprecated") {
		t.Fatalf("deprecated v1: %+v", out.Errors)
	}
	var appended struct {
		AppendEvents struct{ Events []struct{ SchemaVersion int } }
	}
	g.mustPost(`mutation { appendEvents(stream: "notes-1", events: [{type: "NoteTaken", data: {note: "no version: the latest"}}]) { events { schemaVersion } } }`, nil, &appended)
	if appended.AppendEvents.Events[0].SchemaVersion != 2 {
		t.Fatalf("an event without version: %+v", appended)
	}

	// Bad input: each gets a clear error and changes nothing.
	bad := []struct {
		name, query string
		vars        map[string]any
		code, want  string
	}{
		{"invalid JSON Schema", `mutation($s: JSON!) { registerEventSchema(type: "NoteTaken", schema: $s) { version } }`,
			map[string]any{"s": json.RawMessage(`{"type": "object", "properties": {"note": {"type": "text"}}}`)}, "VALIDATION", "draft-07"},
		{"not draft-07", `mutation($s: JSON!) { registerEventSchema(type: "NoteTaken", schema: $s) { version } }`,
			map[string]any{"s": json.RawMessage(`{"$schema": "http://json-schema.org/draft-04/schema#", "type": "object"}`)}, "VALIDATION", "only JSON Schema draft-07"},
		{"schema not an object", `mutation { registerEventSchema(type: "NoteTaken", schema: [1]) { version } }`, nil, "VALIDATION", "must be a JSON object"},
		{"unknown migration operation", `mutation { registerEventMigration(type: "NoteTaken", fromVersion: 1, operations: [{op: EXPLODE, path: "/a"}]) { version } }`, nil,
			"GRAPHQL_VALIDATION_FAILED", "EXPLODE"},
		{"operation missing a field", `mutation { registerEventMigration(type: "NoteTaken", fromVersion: 1, operations: [{op: RENAME, path: "/a"}]) { version } }`, nil,
			"VALIDATION", `needs "from"`},
		{"a cycle", `mutation { registerEventMigration(type: "NoteTaken", fromVersion: 1, operations: [{op: MOVE, from: "/note", path: "/note/inner"}]) { version } }`, nil,
			"VALIDATION", "into itself"},
		{"a version gap", `mutation { registerEventMigration(type: "NoteTaken", fromVersion: 2, operations: [{op: REMOVE, path: "/a"}]) { version } }`, nil,
			"VALIDATION", "does not exist"},
		{"unknown type", `{ eventSchemaHistory(type: "Nope") { version } }`, nil, "NOT_FOUND", "no schema"},
		{"bad version", `{ eventSchema(type: "NoteTaken", version: 0) { version } }`, nil, "VALIDATION", "1 or more"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			out, _ := g.post(tt.query, tt.vars)
			if len(out.Errors) == 0 || out.Errors[0].Extensions["code"] != tt.code || !strings.Contains(out.Errors[0].Message, tt.want) {
				t.Fatalf("errors %+v, want %s mentioning %q", out.Errors, tt.code, tt.want)
			}
		})
	}
	if g.schemas.Latest("NoteTaken") != 2 {
		t.Errorf("bad input changed the registry: latest %d", g.schemas.Latest("NoteTaken"))
	}
}

func TestSchemaAdministrationNeedsAdmin(t *testing.T) {
	g := newFullGatewayWith(t, fullOptions{readTimeout: 5 * time.Second, auth: newAuthenticator(t)})
	for _, q := range []string{
		`mutation { registerEventSchema(type: "X", schema: {type: "object"}) { version } }`,
		`mutation { checkEventSchema(type: "X", schema: {type: "object"}) { version } }`,
		`mutation { registerEventMigration(type: "OrderPlaced", fromVersion: 1, operations: [{op: REMOVE, path: "/a"}]) { version } }`,
		`mutation { setEventCompatibility(type: "OrderPlaced", mode: NONE) { name } }`,
		`mutation { deprecateEventSchema(type: "OrderPlaced", version: 1) { version } }`,
	} {
		out, _ := g.post(q, nil, "X-API-Key", writerKey)
		if len(out.Errors) != 1 || out.Errors[0].Extensions["code"] != "FORBIDDEN" || out.Errors[0].Extensions["requiredRole"] != "ADMIN" {
			t.Errorf("%s as a writer: %+v", q, out.Errors)
		}
	}
	out, _ := g.post(`{ eventTypes { name } }`, nil, "X-API-Key", readerKey)
	if len(out.Errors) != 0 {
		t.Errorf("a reader reading the registry: %+v", out.Errors)
	}
	out, _ = g.post(`mutation { registerEventSchema(type: "X", schema: {type: "object"}) { version } }`, nil, "X-API-Key", adminKey)
	if len(out.Errors) != 0 {
		t.Errorf("an admin registering: %+v", out.Errors)
	}
}

// A version of one of the domain's event types that its code does not ship
// is refused: the domain decodes strictly, so an AccountFrozen v2 with a
// field it has no place for stopped the accounts read model, and after a
// restart every command on an account that had been frozen.
func TestDomainEventTypesGetOnlyShippedVersions(t *testing.T) {
	g := newFullGateway(t, 2*time.Second)
	g.mustMutate("openAccount", map[string]any{"accountId": "a1", "owner": "ada", "currency": "EUR"})
	g.mustMutate("freezeAccount", map[string]any{"accountId": "a1", "reason": "audit"})
	out, _ := g.post(`mutation { registerEventSchema(type: "AccountFrozen",
		schema: {type: "object", properties: {reason: {type: "string"}, note: {type: "string"}}, required: ["reason", "note"]},
		migration: [{op: DEFAULT, path: "/note", value: ""}]) { version } }`, nil)
	if len(out.Errors) != 1 || out.Errors[0].Extensions["code"] != "RULE_VIOLATION" || out.Errors[0].Extensions["rule"] != "DOMAIN_EVENT_TYPE" {
		t.Fatalf("AccountFrozen v2: %+v", out.Errors)
	}
	if v := g.schemas.Latest("AccountFrozen"); v != 1 {
		t.Fatalf("AccountFrozen is at v%d", v)
	}
}

// TestMigrationValueNull: a SET or DEFAULT operation's `value: null` writes
// a JSON null, inline or in variables (it was taken for a missing value);
// leaving the value out is still refused.
func TestMigrationValueNull(t *testing.T) {
	g := newFullGateway(t, 5*time.Second)
	g.mustPost(`mutation { registerEventSchema(type: "Cleared", schema: {type: "object", properties: {note: {type: "string"}}}) { version } }`, nil, &struct{}{})
	g.mustPost(`mutation { appendEvents(stream: "cleared-1", events: [{type: "Cleared", data: {note: "draft"}}]) { position } }`, nil, &struct{}{})
	var out struct{ RegisterEventSchema struct{ Version int } }
	g.mustPost(`mutation { registerEventSchema(type: "Cleared", schema: {type: "object", properties: {note: {type: ["string", "null"]}}},
		migration: [{op: SET, path: "/note", value: null}]) { version } }`, nil, &out)
	if out.RegisterEventSchema.Version != 2 {
		t.Fatalf("registered version %d, want 2", out.RegisterEventSchema.Version)
	}
	var read struct {
		Stream struct {
			Events []struct{ Data map[string]any }
		}
	}
	g.mustPost(`{ stream(id: "cleared-1") { events { data } } }`, nil, &read)
	if evs := read.Stream.Events; len(evs) != 1 || evs[0].Data["note"] != nil || len(evs[0].Data) != 1 {
		t.Fatalf("the v1 event reads as %+v, want {note: null}", evs)
	}

	const q = `mutation($m: [MigrationOperationInput!]) { checkEventSchema(type: "Cleared", schema: {type: "object", properties: {note: {type: ["string", "null"]}, seen: {type: "null"}}}, migration: $m) { compatible } }`
	var check struct{ CheckEventSchema struct{ Compatible bool } }
	g.mustPost(q, map[string]any{"m": []any{map[string]any{"op": "DEFAULT", "path": "/seen", "value": nil}}}, &check)
	if !check.CheckEventSchema.Compatible {
		t.Error("DEFAULT with value null in variables: not compatible")
	}
	resp, _ := g.post(q, map[string]any{"m": []any{map[string]any{"op": "DEFAULT", "path": "/seen"}}})
	if len(resp.Errors) == 0 || resp.Errors[0].Extensions["code"] != "VALIDATION" || !strings.Contains(resp.Errors[0].Message, `needs "value"`) {
		t.Errorf("DEFAULT without a value: %+v, want VALIDATION saying it needs a value", resp.Errors)
	}
}
