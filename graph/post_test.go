package graph_test

import (
	"bytes"
	"context"
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
	"testing"
	"time"

	"cqrsgate/domain"
	"cqrsgate/eventstore"
	"cqrsgate/graph"
)

// rawPost posts body as it is, with headers (name, value pairs), and
// returns the status, the headers and the body.
func (c *client) rawPost(body string, headers ...string) (int, http.Header, []byte) {
	c.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, c.url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, raw
}

func TestPostTransport(t *testing.T) {
	c := newServer(t, memStore(), nil)

	t.Run("the response is the data as encoded, with its length", func(t *testing.T) {
		status, h, body := c.rawPost(`{"query":"{ __typename }"}`)
		if status != 200 || string(body) != `{"data":{"__typename":"Query"}}` {
			t.Fatalf("%d %s", status, body)
		}
		if h.Get("Content-Length") != strconv.Itoa(len(body)) || h.Get("Content-Type") != "application/json" {
			t.Fatalf("headers %v", h)
		}
	})

	t.Run("variables keep numbers exact", func(t *testing.T) {
		// 2^53+1 is not a float64: decoded as one, it would come back as 2^53.
		status, _, body := c.rawPost(`{"query":"mutation($e: [EventInput!]!) { appendEvents(stream: \"exact-1\", events: $e) { events { data } } }",
			"variables": {"e": [{"type": "Exact", "data": {"n": 9007199254740993, "f": 0.1}}]}}`)
		if status != 200 || !bytes.Contains(body, []byte(`9007199254740993`)) || !bytes.Contains(body, []byte(`0.1`)) {
			t.Fatalf("%d %s", status, body)
		}
	})

	t.Run("member names match as encoding/json matches them", func(t *testing.T) {
		status, _, body := c.rawPost(`{"Query":"{ __typename }","variables":null,"extensions":null}`)
		if status != 200 || string(body) != `{"data":{"__typename":"Query"}}` {
			t.Fatalf("%d %s", status, body)
		}
	})

	t.Run("extensions and an operation name are read", func(t *testing.T) {
		status, _, body := c.rawPost(`{"query":"query A { __typename } query B { b: __typename }","operationName":"B","extensions":{"x":1}}`)
		if status != 200 || string(body) != `{"data":{"b":"Query"}}` {
			t.Fatalf("%d %s", status, body)
		}
	})

	for _, tc := range []struct {
		name, body, accept string
		status             int
		data               bool // the response has a data entry
	}{
		{"a validation error under application/json", `{"query":"{ nope }"}`, "", 200, true},
		{"a validation error under the GraphQL media type", `{"query":"{ nope }"}`, "application/graphql-response+json", 400, false},
		{"a parse error under a media range", `{"query":"{"}`, "text/html, application/*;q=0.5", 200, true},
		{"no query", `{"variables":{}}`, "", 400, true},
		{"a query that is not a string", `{"query":1}`, "", 400, true},
		{"variables that are not an object", `{"query":"{ __typename }","variables":[1]}`, "", 400, true},
		{"extensions that are not an object", `{"query":"{ __typename }","extensions":"x"}`, "", 400, true},
		{"not JSON", `{"query":`, "", 400, true},
		{"something after the object", `{"query":"{ __typename }"} {}`, "", 400, true},
		{"an operation name that is not a string", `{"query":"{ __typename }","operationName":["A"]}`, "", 400, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var headers []string
			if tc.accept != "" {
				headers = []string{"Accept", tc.accept}
			}
			status, h, body := c.rawPost(tc.body, headers...)
			var out map[string]json.RawMessage
			if err := json.Unmarshal(body, &out); err != nil {
				t.Fatalf("%d %s: %v", status, body, err)
			}
			_, hasData := out["data"]
			if status != tc.status || hasData != tc.data || len(out["errors"]) == 0 {
				t.Fatalf("status %d, data %v, body %s; want %d, data %v, errors", status, hasData, body, tc.status, tc.data)
			}
			if bytes.Contains(body, []byte(tc.body)) && len(tc.body) > 12 {
				t.Errorf("the error repeats the body: %s", body)
			}
			if l := h.Get("Content-Length"); l != strconv.Itoa(len(body)) {
				t.Errorf("Content-Length %q for %d bytes", l, len(body))
			}
		})
	}
}

func TestRequestAndCorrelationIDs(t *testing.T) {
	c := newServer(t, memStore(), nil)
	for _, tc := range []struct {
		name              string
		headers           []string
		request, corr     string // "" for generated; "=request" for the request id
		generatedRequests bool
	}{
		{name: "none given: the correlation id is the request id", corr: "=request"},
		{name: "a request id given", headers: []string{"X-Request-ID", "req-1"}, request: "req-1", corr: "req-1"},
		{name: "both given", headers: []string{"X-Request-ID", "req-2", "X-Correlation-ID", "corr-2"}, request: "req-2", corr: "corr-2"},
		{name: "a correlation id with a space is replaced", headers: []string{"X-Correlation-ID", "a b"}, corr: "=request"},
		{name: "a request id too long is replaced", headers: []string{"X-Request-ID", strings.Repeat("r", 129), "X-Correlation-ID", "corr-3"}, corr: "corr-3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, h, _ := c.rawPost(`{"query":"{ __typename }"}`, tc.headers...)
			req, corr := h.Get("X-Request-ID"), h.Get("X-Correlation-ID")
			switch {
			case tc.request == "" && (len(req) != 36 || strings.Count(req, "-") != 4):
				t.Errorf("request id %q, want a generated one", req)
			case tc.request != "" && req != tc.request:
				t.Errorf("request id %q, want %q", req, tc.request)
			}
			want := tc.corr
			if want == "=request" {
				want = req
			}
			if corr != want {
				t.Errorf("correlation id %q, want %q", corr, want)
			}
		})
	}
	// Two requests without ids get two ids.
	_, h1, _ := c.rawPost(`{"query":"{ __typename }"}`)
	_, h2, _ := c.rawPost(`{"query":"{ __typename }"}`)
	if h1.Get("X-Request-ID") == h2.Get("X-Request-ID") {
		t.Fatal("two requests got the same id")
	}
}

func TestInexactNumberLiteralsAreRefused(t *testing.T) {
	c := newServer(t, memStore(), nil)
	for _, tc := range []struct{ name, query string }{
		{"in event data", `mutation { appendEvents(stream: "lit-1", events: [{type: "Exact", data: {f: 0.30000000000000001}}]) { position } }`},
		{"in a list", `mutation { appendEvents(stream: "lit-1", events: [{type: "Exact", data: {f: [1, {g: 1.00000000000000000001}]}}]) { position } }`},
		{"in a fragment", `mutation { ...F } fragment F on Mutation { appendEvents(stream: "lit-1", events: [{type: "Exact", data: {f: 12345678901234567.89}}]) { position } }`},
		{"in a variable's default", `mutation($d: JSON = {f: 9007199254740993.0}) { appendEvents(stream: "lit-1", events: [{type: "Exact", data: $d}]) { position } }`},
		{"for a Long", `mutation { depositMoney(input: {accountId: "a-1", amount: 9007199254740993.0}) { position } }`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, _ := c.post(tc.query, nil)
			if len(out.Errors) != 1 || out.Errors[0].Extensions["code"] != "GRAPHQL_VALIDATION_FAILED" ||
				!strings.Contains(out.Errors[0].Message, "in a variable") {
				t.Fatalf("errors %+v, want one GRAPHQL_VALIDATION_FAILED pointing to variables", out.Errors)
			}
		})
	}
	// gqlparser's validation refuses a literal beyond a float on its own.
	if out, _ := c.post(`mutation { appendEvents(stream: "lit-1", events: [{type: "Exact", data: {f: 1e400}}]) { position } }`, nil); len(out.Errors) == 0 || out.Errors[0].Extensions["code"] != "GRAPHQL_VALIDATION_FAILED" {
		t.Fatalf("1e400: %+v", out.Errors)
	}
	// Nothing was written, and literals read as written pass.
	status, _, body := c.rawPost(`{"query":"mutation { appendEvents(stream: \"lit-1\", events: [{type: \"Exact\", data: {f: 0.1, g: 1.50, h: 2.5e-3}}]) { events { streamVersion data } } }"}`)
	if status != 200 || !bytes.Contains(body, []byte(`"streamVersion":1`)) || !bytes.Contains(body, []byte(`"f":0.1`)) || !bytes.Contains(body, []byte(`"g":1.5`)) {
		t.Fatalf("%d %s", status, body)
	}
}

// Variables over the websocket keep their numbers as written, as over
// HTTP: decoded as floats, every Int variable was INTERNAL and a Long
// beyond 2^53 was stored rounded.
func TestWebsocketVariablesKeepTheirNumbers(t *testing.T) {
	g := newFullGateway(t, 5*time.Second)
	g.mustMutate("openAccount", map[string]any{"accountId": "a1", "owner": "ada", "currency": "EUR"})
	g.mustPost(`mutation { registerEventSchema(type: "NoteTaken", schema: {type: "object"}) { version } }`, nil, &struct{}{})
	c := dialAuth(t, g.url, nil)
	c.init()
	c.send(subscribeMsg("1", `mutation($in: DepositMoneyInput!) { depositMoney(input: $in) { version } }`,
		map[string]any{"in": map[string]any{"accountId": "a1", "amount": 5, "expectedVersion": 1}}))
	if m := c.expect("next"); string(m.Payload) != `{"data":{"depositMoney":{"version":2}}}` {
		t.Errorf("a deposit with expectedVersion over the websocket: %s", m.Payload)
	}
	c.expect("complete")
	c.send(subscribeMsg("2", `mutation($a: Long!, $e: [EventInput!]!) {
		depositMoney(input: {accountId: "a1", amount: $a}) { events { data } }
		appendEvents(stream: "ws-exact", events: $e) { events { data } } }`,
		map[string]any{"a": json.Number("9007199254740993"), "e": []any{map[string]any{"type": "NoteTaken", "data": map[string]any{"n": json.Number("9007199254740993"), "f": json.Number("0.1")}}}}))
	m := c.expect("next")
	if !bytes.Contains(m.Payload, []byte(`"amount":9007199254740993`)) || !bytes.Contains(m.Payload, []byte(`{"f":0.1,"n":9007199254740993}`)) {
		t.Errorf("numbers beyond 2^53 over the websocket came back as %s", m.Payload)
	}
}

// TestSubscriptionsAreNotServedOverHTTP: a subscription sent over POST or
// GET is refused at once (400, subscriptions are served over websockets);
// over POST it waited, with no bound, for its first event, and held the
// server's graceful shutdown until its deadline.
func TestSubscriptionsAreNotServedOverHTTP(t *testing.T) {
	store := memStore()
	log := slog.New(slog.DiscardHandler)
	hub := eventstore.NewHub(store, log)
	hubCtx, stopHub := context.WithCancel(context.Background())
	defer stopHub()
	go func() { _ = hub.Run(hubCtx) }()
	srv := httptest.NewServer(graph.NewHandler(graph.Config{Store: store, Log: log, Hub: hub,
		Commands: domain.NewService(store, log, time.Now, domain.ServiceOptions{})}))
	defer srv.Close()
	const sub = `subscription { events { position } }`
	body, _ := json.Marshal(map[string]any{"query": sub})
	for _, req := range []*http.Request{
		func() *http.Request {
			r, _ := http.NewRequest(http.MethodPost, srv.URL, bytes.NewReader(body))
			r.Header.Set("Content-Type", "application/json")
			return r
		}(),
		func() *http.Request {
			r, _ := http.NewRequest(http.MethodGet, srv.URL+"?query="+url.QueryEscape(sub), nil)
			return r
		}(),
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		resp, err := http.DefaultClient.Do(req.WithContext(ctx))
		if err != nil {
			cancel()
			t.Fatalf("subscription over %s: no answer: %v", req.Method, err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(raw), "websockets") {
			t.Errorf("subscription over %s: %d %s, want 400 saying subscriptions are served over websockets", req.Method, resp.StatusCode, raw)
		}
	}
	// Nothing of them is left running: the server shuts down at once.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Config.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown after subscriptions over HTTP: %v", err)
	}
}

// TestGETMutationIs405AndCostsNothing: GET does not run a mutation and, as
// GraphQL over HTTP has it, answers 405 Method Not Allowed (Allow: POST);
// gqlgen's answer was 406, after the mutation had been counted against the
// caller's MUTATIONS_PER_SECOND.
func TestGETMutationIs405AndCostsNothing(t *testing.T) {
	srv := newLimitedServer(t, graph.Limits{MutationsPerSecond: 0.01, MutationBurst: 2}, nil).url
	const m = `mutation { appendEvents(stream: "s", events: [{type: "A", data: {}}]) { position } }`
	for i := 0; i < 3; i++ {
		resp, err := http.Get(srv + "?query=" + url.QueryEscape(m))
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "POST" || !strings.Contains(string(raw), "METHOD_NOT_ALLOWED") {
			t.Fatalf("GET mutation: %d (Allow %q) %s, want 405 with Allow: POST", resp.StatusCode, resp.Header.Get("Allow"), raw)
		}
	}
	if raw := postQuery(t, srv, m); strings.Contains(raw, "errors") {
		t.Errorf("the first POST mutation after three refused GET mutations: %s, want it run (the GETs spent nothing)", raw)
	}
	// A query over GET still runs.
	if resp, err := http.Get(srv + "?query=" + url.QueryEscape(`{ __typename }`)); err != nil || resp.StatusCode != 200 {
		t.Errorf("GET query: %v %v", resp, err)
	}
}

// TestPersistedGETMutationIs405AndCostsNothing: a persisted mutation over
// GET (its hash alone, in extensions) is refused as a written-out one is
// (405, nothing counted); gqlgen's GET answered 406 after it had counted
// against MUTATIONS_PER_SECOND.
func TestPersistedGETMutationIs405AndCostsNothing(t *testing.T) {
	srv := newLimitedServer(t, graph.Limits{MutationsPerSecond: 0.01, MutationBurst: 3}, nil).url
	const m = `mutation { appendEvents(stream: "s", events: [{type: "A", data: {}}]) { position } }`
	sum := sha256.Sum256([]byte(m))
	ext := map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": hex.EncodeToString(sum[:])}}
	register := map[string]any{"query": m, "extensions": ext} // registers it (1 token)
	if raw := postRequest(t, srv, register); strings.Contains(raw, "errors") {
		t.Fatalf("register: %s", raw)
	}
	extJSON, _ := json.Marshal(ext)
	for i := 0; i < 2; i++ {
		resp, err := http.Get(srv + "?extensions=" + url.QueryEscape(string(extJSON)))
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("persisted GET mutation: %d %s, want 405", resp.StatusCode, raw)
		}
	}
	if raw := postRequest(t, srv, register); strings.Contains(raw, "RATE_LIMITED") {
		t.Errorf("second POST mutation (burst 3) after two refused GETs: %s; the GETs were counted", raw)
	}
}

// Quality values in Accept are honoured, over POST and GET: a type given
// q=0 is never served, and the highest q wins. gqlgen's negotiation, which
// the gateway followed, took the first type named whatever its q.
func TestAcceptQualityValues(t *testing.T) {
	c := newServer(t, memStore(), nil)
	const gqlType, jsonType = "application/graphql-response+json", "application/json"
	for _, tc := range []struct{ accept, want string }{
		{"", jsonType},
		{"application/json;q=0, application/graphql-response+json", gqlType},
		{"application/graphql-response+json;q=0, application/json", jsonType},
		{"application/graphql-response+json;q=0, */*", jsonType},
		{"application/graphql-response+json;q=0", jsonType},
		{"application/json;q=0.5, application/graphql-response+json;q=0.9", gqlType},
		{"application/graphql-response+json;q=0.4, application/json;q=0.8", jsonType},
		{"application/json, application/graphql-response+json", jsonType},
		{"application/graphql-response+json, application/json", gqlType},
		{"text/html", gqlType},
		// The most specific range decides: a wildcard does not serve a type given q=0.
		{"application/json;q=0, */*", gqlType},
		{"application/json;q=0, application/*", gqlType},
		{"*/*", jsonType},
		// On a tie the type named wins over one a wildcard takes.
		{"*/*, application/json", jsonType},
		{"application/*, application/json", jsonType},
		{"*/*, application/graphql-response+json", gqlType},
		{"application/*;q=0.5, application/graphql-response+json", gqlType},
		{"*/*;q=0", jsonType}, // refuses both: the legacy type, as for any refusal of the GraphQL one
		// The parameter's name is case-insensitive, over GET as over POST.
		{"application/graphql-response+json;Q=0, application/json", jsonType},
	} {
		status, h, body := c.rawPost(`{"query":"{ __typename }"}`, "Accept", tc.accept)
		if status != 200 || h.Get("Content-Type") != tc.want {
			t.Errorf("POST, Accept %q: %d %s %s; want %s", tc.accept, status, h.Get("Content-Type"), body, tc.want)
		}
		req, _ := http.NewRequest(http.MethodGet, c.url+"?query=%7B__typename%7D", nil)
		if tc.accept != "" {
			// Over GET, as repeated lines: one list.
			for part := range strings.SplitSeq(tc.accept, ",") {
				req.Header.Add("Accept", part)
			}
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), tc.want) {
			t.Errorf("GET, Accept %q: %d %s; want %s", tc.accept, resp.StatusCode, resp.Header.Get("Content-Type"), tc.want)
		}
	}
}
