package graph_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"cqrsgate/eventstore"
	"cqrsgate/graph"
	"cqrsgate/internal/auth"
)

// MUTATIONS_PER_SECOND is "mutations each client may send per second";
// the limiter takes one token per operation, however many mutation fields
// the operation holds, so aliases multiply the allowed rate without bound.
func TestMutationRateLimitCountsAliasedMutations(t *testing.T) {
	a, err := auth.New(auth.Config{APIKeys: []auth.APIKey{
		{Name: "one", Key: "client-one-key-0123", Roles: []auth.Role{auth.Writer}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	store := memStore()
	c := newLimitedServerOn(t, store, graph.Limits{MutationsPerSecond: 0.5, MutationBurst: 2}, a)
	var q strings.Builder
	q.WriteString("mutation {")
	const n = 50
	for i := range n {
		fmt.Fprintf(&q, ` m%d: appendEvents(stream: "note-%d", events: [{type: "Noted", data: {}}]) { position }`, i, i)
	}
	q.WriteString(" }")
	out, _ := c.post(q.String(), nil, "X-API-Key", "client-one-key-0123")
	page, err := store.ReadAll(context.Background(), eventstore.AllQuery{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Events) > 2 {
		t.Fatalf("a client limited to 0.5 mutations per second (bursts of 2) ran %d mutations in one request (errors: %d)", len(page.Events), len(out.Errors))
	}
}

// Introspection counted nothing towards MAX_QUERY_COMPLEXITY (gqlgen's
// walker skips __Schema) nor towards MAX_QUERY_DEPTH, and gqlparser's
// introspection-depth rule does not limit aliases: a 1 KB query made a
// response of 15 MB, growing with the square of the aliases. Aliases
// inside introspection are refused now, and each introspection root
// counts; the standard introspection query (GraphiQL's) is still answered.
func TestIntrospectionIsBounded(t *testing.T) {
	c := newLimitedServer(t, graph.Limits{}, nil) // MaxComplexity 20000
	post := func(q string) []byte {
		body, _ := json.Marshal(map[string]any{"query": q})
		resp, err := http.Post(c.url, "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return raw
	}
	const k = 20
	var a, b strings.Builder
	for i := range k {
		fmt.Fprintf(&a, " a%d: fields { ...F }", i)
		fmt.Fprintf(&b, " b%d: fields { name description }", i)
	}
	q := "{ __schema { types { ...A } } } fragment A on __Type {" + a.String() +
		" } fragment F on __Field { name type { ofType { ...B } } } fragment B on __Type {" + b.String() + " }"
	if raw := post(q); len(raw) > 1000 || !bytes.Contains(raw, []byte("GRAPHQL_VALIDATION_FAILED")) || !bytes.Contains(raw, []byte("introspection")) {
		t.Errorf("a %d-byte introspection query of aliases was answered with %d bytes (%.200s...), want a validation error", len(q), len(raw), raw)
	}
	var roots strings.Builder
	for i := range 5 {
		fmt.Fprintf(&roots, " s%d: __schema { types { name fields { name } } }", i)
	}
	if raw := post("{" + roots.String() + " }"); !bytes.Contains(raw, []byte("COMPLEXITY_LIMIT_EXCEEDED")) {
		t.Errorf("five aliased __schema roots: %.200s, want COMPLEXITY_LIMIT_EXCEEDED", raw)
	}
	var out struct {
		Data struct {
			Schema struct{ Types []struct{ Name string } } `json:"__schema"`
		}
		Errors []any
	}
	if err := json.Unmarshal(post(graphiqlIntrospection), &out); err != nil || len(out.Errors) > 0 || len(out.Data.Schema.Types) < 20 {
		t.Errorf("GraphiQL's introspection query: %d types, errors %v (%v)", len(out.Data.Schema.Types), out.Errors, err)
	}
}

// graphiqlIntrospection is the introspection query GraphiQL (and
// graphql-js's getIntrospectionQuery) sends.
const graphiqlIntrospection = `query IntrospectionQuery { __schema { queryType { name } mutationType { name } subscriptionType { name } types { ...FullType } directives { name description locations args { ...InputValue } } } }
fragment FullType on __Type { kind name description fields(includeDeprecated: true) { name description args { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason } inputFields { ...InputValue } interfaces { ...TypeRef } enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason } possibleTypes { ...TypeRef } }
fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue }
fragment TypeRef on __Type { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } }`

// events(correlationId:) reads the first `first` events of the correlation
// across every tenant and only then drops other tenants' events: a tenant
// whose page was filled by another tenant's events gets an empty page with
// hasMore false (its own events are never read), and `next` tells it the
// positions of another tenant's events with that correlation id.
func TestCorrelationReadsAreTenantScoped(t *testing.T) {
	a, err := auth.New(auth.Config{APIKeys: []auth.APIKey{
		{Name: "a", Key: "tenant-a-key-0123456", Roles: []auth.Role{auth.Writer}, Tenant: "acme"},
		{Name: "b", Key: "tenant-b-key-0123456", Roles: []auth.Role{auth.Writer}, Tenant: "globex"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	c := newLimitedServerOn(t, memStore(), graph.Limits{}, a)
	appendAs := func(key, stream, corr string) {
		out, _ := c.post(`mutation($s: String!) { appendEvents(stream: $s, events: [{type: "Noted", data: {}}]) { position } }`,
			map[string]any{"s": stream}, "X-API-Key", key, "X-Correlation-ID", corr)
		if len(out.Errors) > 0 {
			t.Fatalf("append: %+v", out.Errors)
		}
	}
	for i := range 3 {
		appendAs("tenant-a-key-0123456", fmt.Sprintf("note-a%d", i), "shared-1")
	}
	appendAs("tenant-b-key-0123456", "note-b", "shared-1")
	appendAs("tenant-a-key-0123456", "note-secret", "acme-only")

	var page struct {
		Events struct {
			Events  []struct{ StreamID string }
			Next    int64
			HasMore bool
		}
	}
	c.mustPost(`{ events(correlationId: "shared-1", first: 2) { events { streamId } next hasMore } }`, nil, &page, "X-API-Key", "tenant-b-key-0123456")
	if len(page.Events.Events) == 0 && !page.Events.HasMore {
		t.Errorf("tenant globex reading its correlation shared-1 (first: 2): no events and hasMore false, next %d: its own event note-b is never read", page.Events.Next)
	}
	c.mustPost(`{ events(correlationId: "acme-only") { events { streamId } next hasMore } }`, nil, &page, "X-API-Key", "tenant-b-key-0123456")
	if page.Events.Next != 0 {
		t.Errorf("tenant globex reading acme's correlation acme-only: next = %d, the position of acme's event", page.Events.Next)
	}
}

// The rate limits' client key is the credential's method and subject: an
// API key's name without its tenant, a JWT's sub without its tenant (or ""
// for every token without sub). Clients of different tenants with the same
// name, or any two tokens without sub, share one bucket: one of them
// spends the other's mutations.
func TestRateLimitBucketsAreNotSharedAcrossTenants(t *testing.T) {
	a, err := auth.New(auth.Config{APIKeys: []auth.APIKey{
		{Name: "shop", Key: "acme-shop-key-01234", Roles: []auth.Role{auth.Writer}, Tenant: "acme"},
		{Name: "shop", Key: "globex-shop-key-0123", Roles: []auth.Role{auth.Writer}, Tenant: "globex"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	c := newLimitedServerOn(t, memStore(), graph.Limits{MutationsPerSecond: 0.5, MutationBurst: 2}, a)
	m := func(key string, i int) gqlResponse {
		out, _ := c.post(`mutation($s: String!) { appendEvents(stream: $s, events: [{type: "Noted", data: {}}]) { position } }`,
			map[string]any{"s": fmt.Sprintf("note-%d", i)}, "X-API-Key", key)
		return out
	}
	for i := range 2 {
		if out := m("acme-shop-key-01234", i); len(out.Errors) > 0 {
			t.Fatalf("acme's mutation %d: %+v", i, out.Errors)
		}
	}
	if out := m("globex-shop-key-0123", 0); len(out.Errors) > 0 {
		t.Errorf("globex's first mutation, after acme spent its own burst: %v", out.Errors[0].Extensions)
	}
}
