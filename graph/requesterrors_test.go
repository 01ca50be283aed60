package graph_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"cqrsgate/domain"
	"cqrsgate/graph"
)

// manyTypes returns n distinct valid event type names of three letters.
func manyTypes(n int) []string {
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%c%c%c", letters[i/(52*52)%52], letters[i/52%52], letters[i%52])
	}
	return out
}

// A read of the log filters by at most 100 event types: thousands (a 60 KB
// request) took PostgreSQL seconds to plan, or failed as INTERNAL (its
// stack depth), over HTTP and websockets alike.
func TestReadsFilterByAtMost100Types(t *testing.T) {
	s := newWSServer(t, &graph.Websocket{})
	c := &client{t: t, url: "http" + strings.TrimPrefix(s.url, "ws")}
	out, _ := c.post(`query($t: [String!]) { events(types: $t) { next } }`, map[string]any{"t": manyTypes(101)})
	if len(out.Errors) != 1 || out.Errors[0].Extensions["code"] != "VALIDATION" || out.Errors[0].Extensions["field"] != "types" {
		t.Errorf("events(types: 101 types): %+v", out.Errors)
	}
	c.mustPost(`query($t: [String!]) { events(types: $t) { next } }`, map[string]any{"t": manyTypes(100)}, &struct{}{})

	ws := s.dial(t, graph.ProtocolTransportWS)
	ws.init()
	ws.send(subscribeMsg("1", `subscription($t: [String!]) { events(types: $t) { id } }`, map[string]any{"t": manyTypes(101)}))
	if m := ws.read(); !strings.Contains(string(m.Payload), `"VALIDATION"`) {
		t.Errorf("subscription events(types: 101 types): %s %s", m.Type, m.Payload)
	}
}

// A migration of one of the domain's event types is the one its code
// ships, or none: one whose results fit the schema but not the code
// ("tax": 1.0 where the code reads an integer) was accepted, and every
// read of an order holding a v1 event then failed as INTERNAL.
func TestDomainMigrationsAreTheShippedOnes(t *testing.T) {
	ctx := context.Background()
	g := newFullGateway(t, 5*time.Second)
	g.mustMutate("placeOrder", map[string]any{"orderId": "o-1", "customerId": "c1", "currency": "EUR"})
	added := g.mustMutate("addOrderItem", map[string]any{"orderId": "o-1", "sku": "w", "quantity": 3, "unitPrice": 100})
	// An OrderSubmitted of an earlier release (v1), as stored then.
	if _, err := g.validated.Append(ctx, "order-o-1", domain.ExpectedVersion(added.Version), domain.EventData{
		Type: "OrderSubmitted", SchemaVersion: 1, Data: json.RawMessage(`{"total": 300, "itemCount": 3, "submittedAt": "2026-11-20T10:00:00Z"}`),
	}); err != nil {
		t.Fatal(err)
	}
	const q = `mutation($ty: String!, $m: [MigrationOperationInput!]!) { registerEventMigration(type: $ty, fromVersion: 1, operations: $m) { version } }`
	for _, tc := range []struct {
		typ, ops, says string
	}{
		{"OrderSubmitted", `[{"op": "COPY", "from": "/total", "path": "/subtotal"}, {"op": "DEFAULT", "path": "/tax", "value": 1.0}, {"op": "DEFAULT", "path": "/currency", "value": "XXX"}]`,
			"the migration differs from the one it ships to version 2"},
		{"MoneyDeposited", `[{"op": "DEFAULT", "path": "/note", "value": ""}]`, "this gateway ships no migration to version 2"},
	} {
		out, _ := g.post(q, map[string]any{"ty": tc.typ, "m": json.RawMessage(tc.ops)})
		if len(out.Errors) != 1 || out.Errors[0].Extensions["rule"] != "DOMAIN_EVENT_TYPE" || !strings.Contains(out.Errors[0].Message, tc.says) {
			t.Errorf("%s: %+v", tc.typ, out.Errors)
		}
	}
	// The shipped one is taken (it is registered already: unchanged).
	g.mustPost(q, map[string]any{"ty": "OrderSubmitted", "m": json.RawMessage(`[{"op": "COPY", "from": "/total", "path": "/subtotal"}, {"op": "DEFAULT", "path": "/tax", "value": 0}, {"op": "DEFAULT", "path": "/currency", "value": "XXX"}]`)}, &struct{}{})
	var order struct{ OrderAt struct{ Status string } }
	g.mustPost(`{ orderAt(id: "o-1") { status } }`, nil, &order)
	if order.OrderAt.Status != "SUBMITTED" {
		t.Errorf("orderAt after: %+v", order)
	}
}

// Request errors carry a code: GET's variables and extensions that are not
// JSON objects, a query string that cannot be decoded, and a persisted
// query's hash that does not match, extensions it cannot read or a
// version it does not know.
func TestRequestErrorsHaveACode(t *testing.T) {
	c := newServer(t, memStore(), nil)
	q := url.QueryEscape(`{ __typename }`)
	for _, path := range []string{
		"?query=" + q + "&variables=" + url.QueryEscape(`{`),
		"?query=" + q + "&variables=" + url.QueryEscape(`[]`),
		"?query=" + q + "&extensions=" + url.QueryEscape(`5`),
		"?query=" + q + "&extensions=" + url.QueryEscape(`{"persistedQuery":{"version":1,"sha256Hash":"zz"}}`),
		"?query=%zz",
	} {
		resp, err := http.Get(c.url + "/" + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 500 || !strings.Contains(string(body), `"code":"BAD_REQUEST"`) {
			t.Errorf("GET %s: %d %s, want BAD_REQUEST", path, resp.StatusCode, body)
		}
	}
	if resp, err := http.Get(c.url + "/?query=" + q + "&variables=null"); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("GET with variables=null: %v %v", resp, err)
	}
	for _, ext := range []string{
		`{"persistedQuery":{"version":1,"sha256Hash":"not-the-hash"}}`,
		`{"persistedQuery":5}`,
		`{"persistedQuery":{"version":2,"sha256Hash":"7f56e67dd21ab3f30d1ff8b7bed08893f0a0db86449836189b361dd1e56ddb4b"}}`,
	} {
		out, _ := c.postBody(map[string]any{"query": `{ __typename }`, "extensions": json.RawMessage(ext)})
		if len(out.Errors) != 1 || out.Errors[0].Extensions["code"] != "BAD_REQUEST" {
			t.Errorf("POST with extensions %s: %+v, want BAD_REQUEST", ext, out.Errors)
		}
	}
}

// A persisted mutation asked for with GET is refused before anything of it
// runs, also when text follows its extensions (gqlgen's decoder ignored
// it, the transport's check did not see the mutation, and the refusal came
// after the mutation rate had counted it).
func TestPersistedMutationsOverGETSpendNoMutationBudget(t *testing.T) {
	c := newLimitedServer(t, graph.Limits{MutationsPerSecond: 0.01, MutationBurst: 3}, nil)
	m := `mutation { appendEvents(stream: "s", events: [{type: "A", data: {}}]) { position } }`
	sum := sha256.Sum256([]byte(m))
	ext := `{"persistedQuery":{"version":1,"sha256Hash":"` + hex.EncodeToString(sum[:]) + `"}}`
	if out, _ := c.postBody(map[string]any{"query": m, "extensions": json.RawMessage(ext)}); len(out.Errors) > 0 { // 1 of 3
		t.Fatal(out.Errors)
	}
	for want, e := range map[int]string{http.StatusBadRequest: ext + " x", http.StatusMethodNotAllowed: ext} {
		for range 2 {
			resp, err := http.Get(c.url + "/?extensions=" + url.QueryEscape(e))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Errorf("GET of a persisted mutation (extensions %s): %d %s, want %d", e, resp.StatusCode, body, want)
			}
		}
	}
	if out, _ := c.post(m, nil); len(out.Errors) > 0 { // 2 of 3
		t.Errorf("a POST mutation after refused GETs: %+v", out.Errors)
	}
}

// Odd input named in the client's terms: stream(first:) names first, a
// Position of the wrong kind names a JSON kind, and a connection_init
// payload that is an object is not refused as not one.
func TestOddInputIsNamedInTheClientsTerms(t *testing.T) {
	g := newPGGateway(t)
	out, _ := g.post(`{ stream(id: "s", first: 10001) { version } }`, nil)
	if len(out.Errors) != 1 || out.Errors[0].Extensions["field"] != "first" || !strings.HasPrefix(out.Errors[0].Message, "first 10001 is out of range") {
		t.Errorf("stream(first: 10001): %+v", out.Errors)
	}
	for _, v := range []any{map[string]any{"x": 1}, []any{1}, true} {
		out, _ := g.post(`query($a: Position) { events(after: $a) { next } }`, map[string]any{"a": v})
		if len(out.Errors) != 1 || out.Errors[0].Extensions["code"] != "VALIDATION" || strings.Contains(out.Errors[0].Message, "interface {}") {
			t.Errorf("after: %v: %+v", v, out.Errors)
		}
	}
	s := newWSServer(t, &graph.Websocket{})
	c := s.dial(t, graph.ProtocolTransportWS)
	c.send(`{"type":"connection_init","payload":{"claim":"x","n":1e400}}`)
	c.expect("connection_ack")
}

// A persisted query's hash given twice in different cases, neither exactly
// sha256Hash, is refused: gqlgen takes either at random, and the GET check
// for a mutation could look at another query than gqlgen runs.
func TestAmbiguousPersistedHashesAreRefused(t *testing.T) {
	c := newLimitedServer(t, graph.Limits{MutationsPerSecond: 0.01, MutationBurst: 3}, nil)
	m := `mutation { appendEvents(stream: "s", events: [{type: "A", data: {}}]) { position } }`
	sum := sha256.Sum256([]byte(m))
	h := hex.EncodeToString(sum[:])
	if out, _ := c.postBody(map[string]any{"query": m, "extensions": json.RawMessage(`{"persistedQuery":{"version":1,"sha256Hash":"` + h + `"}}`)}); len(out.Errors) > 0 {
		t.Fatal(out.Errors)
	}
	ext := `{"persistedQuery":{"version":1,"sha256hash":"` + h + `","SHA256HASH":"0000"}}`
	for range 20 {
		resp, err := http.Get(c.url + "/?extensions=" + url.QueryEscape(ext))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "given twice") {
			t.Fatalf("GET with the hash given twice: %d %s", resp.StatusCode, body)
		}
	}
	if out, _ := c.post(m, nil); len(out.Errors) > 0 {
		t.Errorf("a POST mutation after refused GETs: %+v", out.Errors)
	}
}

// Over POST (and websockets, through the same extension) a hash given
// twice in different cases, neither spelled exactly, is refused as over
// GET: gqlgen took one of them at random, so that one request was answered
// from the cache or PERSISTED_QUERY_NOT_FOUND by chance.
func TestAmbiguousPersistedHashesAreRefusedOverPOST(t *testing.T) {
	c := newServer(t, memStore(), nil)
	q := `{ __typename }`
	sum := sha256.Sum256([]byte(q))
	h := hex.EncodeToString(sum[:])
	if out, _ := c.postBody(map[string]any{"query": q, "extensions": json.RawMessage(`{"persistedQuery":{"version":1,"sha256Hash":"` + h + `"}}`)}); len(out.Errors) > 0 {
		t.Fatal(out.Errors)
	}
	ext := json.RawMessage(`{"persistedQuery":{"version":1,"Sha256Hash":"` + h + `","SHA256HASH":"0000"}}`)
	for _, body := range []map[string]any{{"extensions": ext}, {"query": q, "extensions": ext}} {
		for range 20 {
			out, _ := c.postBody(body)
			if len(out.Errors) != 1 || out.Errors[0].Extensions["code"] != "BAD_REQUEST" || !strings.Contains(out.Errors[0].Message, "given twice") || out.Data != nil {
				t.Fatalf("POST %v: %+v", body, out)
			}
		}
	}
}

// A string literal in the query holding half a surrogate pair is refused
// as JSON's are (gqlparser read it as U+FFFD: two different literal keys
// were one, and the second deposit was answered duplicate).
func TestLoneSurrogateLiteralsAreRefused(t *testing.T) {
	c := newServer(t, memStore(), nil)
	c.mustPost(`mutation { openAccount(input: {accountId: "a1", owner: "ada", currency: "EUR"}) { version } }`, nil, &struct{}{})
	for _, key := range []string{`\\ud800`, `\\udbff`} { // GraphQL escapes, once the JSON body is decoded
		status, _, raw := c.rawPost(`{"query": "mutation { depositMoney(input: {accountId: \"a1\", amount: 5, idempotencyKey: \"` + key + `\"}) { version } }"}`)
		if status != http.StatusBadRequest || !strings.Contains(string(raw), "a string in the query holds the escape") {
			t.Errorf("key %s: %d %s", key, status, raw)
		}
	}
	resp, err := http.Get(c.url + "/?query=" + url.QueryEscape(`{ account(id: "\uD800") { id } }`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("GET: %d", resp.StatusCode)
	}
	var at struct{ AccountAt struct{ Balance int } }
	c.mustPost(`{ accountAt(id: "a1") { balance } }`, nil, &at)
	if at.AccountAt.Balance != 0 {
		t.Errorf("balance %d after refused deposits", at.AccountAt.Balance)
	}
}

// A skipped data(asVersion: 0) refuses nothing: it never runs.
func TestSkippedAsVersionRefusesNothing(t *testing.T) {
	c := newServer(t, memStore(), nil)
	c.mustPost(`mutation { openAccount(input: {accountId: "a1", owner: "ada", currency: "EUR"}) { version } }`, nil, &struct{}{})
	for _, q := range []string{
		`mutation($full: Boolean = false, $v: Int = 0) { depositMoney(input: {accountId: "a1", amount: 1}) { version events { data(asVersion: $v) @include(if: $full) } } }`,
		`mutation { depositMoney(input: {accountId: "a1", amount: 1}) { version ... @skip(if: true) { events { data(asVersion: 0) } } } }`,
	} {
		if out, _ := c.post(q, nil); len(out.Errors) > 0 {
			t.Errorf("%s: %+v", q, out.Errors)
		}
	}
	out, _ := c.post(`mutation { depositMoney(input: {accountId: "a1", amount: 1}) { version events { data(asVersion: 0) @include(if: true) } } }`, nil)
	if len(out.Errors) != 1 || out.Errors[0].Extensions["code"] != "VALIDATION" {
		t.Errorf("an included data(asVersion: 0): %+v", out.Errors)
	}
}

// A document of several operations sent without an operationName, or with
// one it does not hold, is refused saying what it holds: gqlgen's message
// was "operation  not found", naming nothing.
func TestOperationNameErrorsSayWhatTheDocumentHolds(t *testing.T) {
	c := newServer(t, memStore(), nil)
	for _, tc := range []struct {
		body map[string]any
		want string
	}{
		{map[string]any{"query": `query A { __typename } query B { __typename }`},
			`the document holds 2 operations ("A", "B"): name the one to run in operationName`},
		{map[string]any{"query": `query A { __typename } query B { __typename }`, "operationName": "C"},
			`the document holds no operation named "C" (it holds "A", "B"): operationName names one of them`},
	} {
		out, _ := c.postBody(tc.body)
		if len(out.Errors) != 1 || out.Errors[0].Message != tc.want || out.Errors[0].Extensions["code"] != "GRAPHQL_VALIDATION_FAILED" {
			t.Errorf("%v: %+v, want %q", tc.body, out.Errors, tc.want)
		}
	}
	// A document that names the operation runs it.
	var ok struct {
		Typename string `json:"__typename"`
	}
	c.mustPost(`query A { __typename }`, nil, &ok)
}
