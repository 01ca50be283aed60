package graph_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"cqrsgate/domain"
	"cqrsgate/eventstore"
	"cqrsgate/graph"
	"cqrsgate/internal/auth"
)

func newLimitedServer(t *testing.T, limits graph.Limits, a *auth.Authenticator) *client {
	t.Helper()
	return newLimitedServerOn(t, memStore(), limits, a)
}

// newLimitedServerOn is newLimitedServer on store, for tests that look at
// what was written.
func newLimitedServerOn(t *testing.T, store *eventstore.Memory, limits graph.Limits, a *auth.Authenticator) *client {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	srv := httptest.NewServer(graph.NewHandler(graph.Config{Store: store, Commands: domain.NewService(store, log, time.Now, domain.ServiceOptions{}),
		Log: log, Limits: limits, Auth: a}))
	t.Cleanup(srv.Close)
	return &client{t: t, url: srv.URL}
}

func wantCode(t *testing.T, what string, out gqlResponse, code string) gqlError {
	t.Helper()
	if len(out.Errors) == 0 || out.Errors[0].Extensions["code"] != code {
		t.Fatalf("%s: errors %+v, want %s", what, out.Errors, code)
	}
	return out.Errors[0]
}

func TestQueryComplexityAndDepthLimits(t *testing.T) {
	c := newLimitedServer(t, graph.Limits{MaxDepth: 3}, nil)
	if out, _ := c.post(`{ events(first: 10) { events { id type data metadata } head } }`, nil); len(out.Errors) > 0 {
		t.Fatalf("a small page: %+v", out.Errors)
	}
	out, _ := c.post(`{ events(first: 10000) { events { id type data metadata streamId position } head } }`, nil)
	e := wantCode(t, "10,000 events with six fields", out, "COMPLEXITY_LIMIT_EXCEEDED")
	if !strings.Contains(e.Message, "exceeds the limit of 20000") {
		t.Errorf("message %q", e.Message)
	}
	// Depth: 4 levels, directly and through a fragment.
	out, _ = c.post(`{ stream(id: "s") { events { id } } events { events { id } } }`, nil)
	if len(out.Errors) > 0 {
		t.Fatalf("depth 3: %+v", out.Errors)
	}
	for _, q := range []string{
		`{ order(id: "o") { items { sku } statusHistory { status } } }`,
		`query { ...F } fragment F on Query { order(id: "o") { ...G } } fragment G on Order { items { sku } }`,
	} {
		c2 := newLimitedServer(t, graph.Limits{MaxDepth: 2}, nil)
		out, _ = c2.post(q, nil)
		e := wantCode(t, "depth 3 with a limit of 2", out, "DEPTH_LIMIT_EXCEEDED")
		if e.Extensions["maxDepth"] != float64(2) {
			t.Errorf("extensions %v", e.Extensions)
		}
	}
	// Introspection does not count.
	if out, _ := c.post(`{ __schema { types { name fields { name type { name ofType { name ofType { name } } } } } } }`, nil); len(out.Errors) > 0 {
		t.Fatalf("introspection under a depth limit: %+v", out.Errors)
	}
}

func TestIntrospectionCanBeDisabled(t *testing.T) {
	c := newLimitedServer(t, graph.Limits{DisableIntrospection: true}, nil)
	out, _ := c.post(`{ __schema { queryType { name } } }`, nil)
	if e := wantCode(t, "introspection while disabled", out, "INTROSPECTION_DISABLED"); out.Data != nil || !strings.Contains(e.Message, "disabled") {
		t.Fatalf("introspection while disabled: %+v", out)
	}
	if out, _ := c.post(`{ __typename }`, nil); len(out.Errors) > 0 {
		t.Fatalf("__typename: %+v", out.Errors)
	}
}

func TestMutationRateLimitPerClient(t *testing.T) {
	a, err := auth.New(auth.Config{APIKeys: []auth.APIKey{
		{Name: "one", Key: "client-one-key-0123", Roles: []auth.Role{auth.Writer}},
		{Name: "two", Key: "client-two-key-0123", Roles: []auth.Role{auth.Writer}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	c := newLimitedServer(t, graph.Limits{MutationsPerSecond: 0.5, MutationBurst: 2}, a)
	m := func(key string, i int) gqlResponse {
		out, _ := c.post(`mutation($s: String!) { appendEvents(stream: $s, events: [{type: "Noted", data: {}}]) { position } }`,
			map[string]any{"s": key[:10] + "-" + string(rune('a'+i))}, "X-API-Key", key)
		return out
	}
	for i := range 2 {
		if out := m("client-one-key-0123", i); len(out.Errors) > 0 {
			t.Fatalf("mutation %d within the burst: %+v", i, out.Errors)
		}
	}
	e := wantCode(t, "a third mutation at once", m("client-one-key-0123", 2), "RATE_LIMITED")
	if after, _ := e.Extensions["retryAfterSeconds"].(float64); after <= 0 || after > 2 {
		t.Errorf("retryAfterSeconds %v", e.Extensions["retryAfterSeconds"])
	}
	if out := m("client-two-key-0123", 0); len(out.Errors) > 0 {
		t.Fatalf("another client: %+v", out.Errors)
	}
	if out, _ := c.post(`{ events { head } }`, nil, "X-API-Key", "client-one-key-0123"); len(out.Errors) > 0 {
		t.Fatalf("a query of the limited client: %+v", out.Errors)
	}
}

func TestAutomaticPersistedQueries(t *testing.T) {
	c := newLimitedServer(t, graph.Limits{}, nil)
	query := `{ events { head } }`
	sum := sha256.Sum256([]byte(query))
	ext := map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": hex.EncodeToString(sum[:])}}
	post := func(body map[string]any) gqlResponse {
		out, _ := c.postBody(body)
		return out
	}
	wantCode(t, "an unknown hash", post(map[string]any{"extensions": ext}), "PERSISTED_QUERY_NOT_FOUND")
	if out := post(map[string]any{"query": query, "extensions": ext}); len(out.Errors) > 0 {
		t.Fatalf("registering: %+v", out.Errors)
	}
	if out := post(map[string]any{"extensions": ext}); len(out.Errors) > 0 || out.Data["events"] == nil {
		t.Fatalf("by hash: %+v", out)
	}
}

func TestOneLogLinePerOperation(t *testing.T) {
	var buf strings.Builder
	var mu sync.Mutex
	log := slog.New(slog.NewJSONHandler(writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return buf.Write(p) }), nil))
	store := memStore()
	srv := httptest.NewServer(graph.NewHandler(graph.Config{Store: store, Commands: domain.NewService(store, log, time.Now, domain.ServiceOptions{}), Log: log}))
	defer srv.Close()
	c := &client{t: t, url: srv.URL}
	c.post(`query Head($secret: String) { events(stream: $secret) { head } }`, map[string]any{"secret": "s3cr3t-value"}, "X-Request-ID", "req-42", "Authorization", "Bearer tok3n-value")
	mu.Lock()
	defer mu.Unlock()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	var rec map[string]any
	if len(lines) != 1 || json.Unmarshal([]byte(lines[0]), &rec) != nil {
		t.Fatalf("log: %q", buf.String())
	}
	if rec["requestId"] != "req-42" || rec["operation"] != "query" || rec["name"] != "Head" || rec["durationMs"] == nil || rec["errors"] != float64(0) {
		t.Errorf("log line %v", rec)
	}
	if strings.Contains(buf.String(), "s3cr3t") || strings.Contains(buf.String(), "tok3n") {
		t.Errorf("the log has variables or the token: %s", buf.String())
	}
}

type writerFunc func(p []byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestBodySizeAndBatches(t *testing.T) {
	store := memStore()
	log := slog.New(slog.DiscardHandler)
	srv := httptest.NewServer(graph.NewHandler(graph.Config{Store: store, Commands: domain.NewService(store, log, time.Now, domain.ServiceOptions{}),
		Log: log, MaxBodyBytes: 4096}))
	defer srv.Close()
	c := &client{t: t, url: srv.URL}
	out, resp := c.postBody(map[string]any{"query": "{ __typename }", "padding": strings.Repeat("x", 5000)})
	if resp.StatusCode != http.StatusRequestEntityTooLarge || len(out.Errors) != 1 || out.Errors[0].Extensions["code"] != "REQUEST_TOO_LARGE" {
		t.Fatalf("a body over the limit: %d %+v", resp.StatusCode, out)
	}
	req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(`[{"query": "{ __typename }"}, {"query": "{ secret }"}]`))
	req.Header.Set("Content-Type", "application/json")
	out, resp = c.do(req)
	if resp.StatusCode != http.StatusBadRequest || len(out.Errors) != 1 || out.Errors[0].Extensions["code"] != "BAD_REQUEST" ||
		!strings.Contains(out.Errors[0].Message, "batched") || strings.Contains(out.Errors[0].Message, "secret") {
		t.Fatalf("a batch: %d %+v", resp.StatusCode, out)
	}
	if out, _ := c.postBody(map[string]any{"query": "{ __typename }", "padding": strings.Repeat("x", 3000)}); len(out.Errors) > 0 {
		t.Fatalf("a body under the limit: %+v", out.Errors)
	}
	// Without a Content-Length (chunked), the limit holds as the body is read.
	for _, tc := range []struct {
		padding int
		status  int
	}{{3000, http.StatusOK}, {5000, http.StatusRequestEntityTooLarge}} {
		body := `{"query": "{ __typename }", "padding": "` + strings.Repeat("x", tc.padding) + `"}`
		req, _ := http.NewRequest(http.MethodPost, srv.URL, io.MultiReader(strings.NewReader(body))) // length unknown: chunked
		req.Header.Set("Content-Type", "application/json")
		out, resp := c.do(req)
		if resp.StatusCode != tc.status || (tc.status == http.StatusOK) != (len(out.Errors) == 0) {
			t.Fatalf("a chunked body of %d bytes: %d %+v", len(body), resp.StatusCode, out)
		}
	}
}

// An integer literal beyond 64 bits inside a JSON argument made gqlparser
// panic while the operation's complexity was computed: the client got an
// internal error. It is the client's error, and says how to pass the value.
func TestOversizedIntegerLiteralsAreTheClientsError(t *testing.T) {
	g := newPGGateway(t)
	out, _ := g.post(`mutation { registerEventSchema(type: "Big", schema: {type: "object", properties: {n: {maximum: 123456789012345678901234567890}}}) { version } }`, nil)
	if len(out.Errors) != 1 || out.Errors[0].Extensions["code"] != "GRAPHQL_VALIDATION_FAILED" || !strings.Contains(out.Errors[0].Message, "variable") {
		t.Fatalf("an inline integer beyond 64 bits: %+v, want GRAPHQL_VALIDATION_FAILED naming variables", out.Errors)
	}
}

// An operation refused before it ran is a request error: under
// application/graphql-response+json it has a 4xx status and no data (it
// had 200 and "data": null), 429 with Retry-After for the mutation rate,
// 403 for a role; under application/json it stays 200.
func TestRefusedOperationsStatusUnderTheGraphQLMediaType(t *testing.T) {
	a, err := auth.New(auth.Config{APIKeys: []auth.APIKey{
		{Name: "writer", Key: "writer-key-0123456789", Roles: []auth.Role{auth.Writer}},
		{Name: "reader", Key: "reader-key-0123456789", Roles: []auth.Role{auth.Reader}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	c := newLimitedServer(t, graph.Limits{MutationsPerSecond: 0.5, MutationBurst: 1, MaxComplexity: 50}, a)
	const gqlType, jsonType = "application/graphql-response+json", "application/json"
	mutation := func(stream string) string {
		return `{"query":"mutation { appendEvents(stream: \"` + stream + `\", events: [{type: \"Noted\", data: {}}]) { position } }"}`
	}
	type want struct {
		status int
		data   bool
		code   string
	}
	check := func(what string, status int, h http.Header, body []byte, w want) {
		t.Helper()
		var out struct {
			Data   *json.RawMessage
			Errors []gqlError
		}
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(body, &raw); err != nil {
			t.Fatalf("%s: %d %s", what, status, body)
		}
		_ = json.Unmarshal(body, &out)
		_, hasData := raw["data"]
		if status != w.status || hasData != w.data || len(out.Errors) == 0 || out.Errors[0].Extensions["code"] != w.code {
			t.Fatalf("%s: %d %s; want %d, data %v, %s", what, status, body, w.status, w.data, w.code)
		}
	}
	if status, _, body := c.rawPost(mutation("s-1"), "X-API-Key", "writer-key-0123456789", "Accept", gqlType); status != 200 {
		t.Fatalf("the first mutation: %d %s", status, body)
	}
	status, h, body := c.rawPost(mutation("s-2"), "X-API-Key", "writer-key-0123456789", "Accept", gqlType)
	check("rate limited, GraphQL media type", status, h, body, want{429, false, "RATE_LIMITED"})
	if ra, err := strconv.Atoi(h.Get("Retry-After")); err != nil || ra < 1 || ra > 2 {
		t.Errorf("Retry-After %q, want 1 or 2 seconds", h.Get("Retry-After"))
	}
	status, h, body = c.rawPost(mutation("s-3"), "X-API-Key", "writer-key-0123456789", "Accept", jsonType)
	check("rate limited, application/json", status, h, body, want{200, true, "RATE_LIMITED"})
	if h.Get("Retry-After") != "" {
		t.Errorf("Retry-After under application/json: %q", h.Get("Retry-After"))
	}

	// More mutations at once than the burst never pass: not "retry".
	two := `{"query":"mutation { a: appendEvents(stream: \"s-5\", events: [{type: \"Noted\", data: {}}]) { position } b: appendEvents(stream: \"s-6\", events: [{type: \"Noted\", data: {}}]) { position } }"}`
	status, h, body = c.rawPost(two, "X-API-Key", "writer-key-0123456789", "Accept", gqlType)
	check("more mutations than the burst, GraphQL media type", status, h, body, want{400, false, "RATE_LIMITED"})
	if h.Get("Retry-After") != "" {
		t.Errorf("Retry-After %q for an operation that never passes", h.Get("Retry-After"))
	}
	status, h, body = c.rawPost(mutation("s-7"), "Accept", gqlType)
	check("a mutation without a credential, GraphQL media type", status, h, body, want{401, false, "UNAUTHORIZED"})
	if h.Get("WWW-Authenticate") == "" {
		t.Error("401 without WWW-Authenticate")
	}

	status, h, body = c.rawPost(mutation("s-4"), "X-API-Key", "reader-key-0123456789", "Accept", gqlType)
	check("a reader's mutation, GraphQL media type", status, h, body, want{403, false, "FORBIDDEN"})
	status, h, body = c.rawPost(mutation("s-4"), "X-API-Key", "reader-key-0123456789")
	check("a reader's mutation, no Accept", status, h, body, want{200, true, "FORBIDDEN"})

	complex := `{"query":"{ events(first: 1000) { events { position type } } }"}`
	status, h, body = c.rawPost(complex, "X-API-Key", "reader-key-0123456789", "Accept", gqlType)
	check("too complex, GraphQL media type", status, h, body, want{400, false, "COMPLEXITY_LIMIT_EXCEEDED"})

	// Over GET too.
	req, _ := http.NewRequest(http.MethodGet, c.url+"?query="+url.QueryEscape(`{ events(first: 1000) { events { position type } } }`), nil)
	req.Header.Set("Accept", gqlType)
	req.Header.Set("X-API-Key", "reader-key-0123456789")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	check("too complex over GET, GraphQL media type", resp.StatusCode, resp.Header, body, want{400, false, "COMPLEXITY_LIMIT_EXCEEDED"})

	// A query that runs and fails keeps 200 and its data.
	status, h, body = c.rawPost(`{"query":"{ stream(id: \"\", first: 1) { version } }"}`, "X-API-Key", "reader-key-0123456789", "Accept", gqlType)
	if status != 200 || !strings.Contains(string(body), `"data"`) {
		t.Fatalf("a field error: %d %s; want 200 with data", status, body)
	}
}
