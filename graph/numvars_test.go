package graph_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"cqrsgate/graph"
)

// A number an Int cannot take is named as the client sent it, with what is
// wrong with it and where it is: in a variable of its own, in an input
// object, in a list (a long one, which listVariables checks first,
// included) and in a single value given for a list. gqlparser said
// "cannot use value 0 as Int" of 1.5 in a variable of its own and "cannot
// use string as Int" of the same 1.5 elsewhere. The code stays
// GRAPHQL_VALIDATION_FAILED, the path gqlparser's; integers still pass.
func TestIntVariablesAreRefusedInTheClientsTerms(t *testing.T) {
	c := newServer(t, memStore(), nil)
	c.mustPost(`mutation { addProduct(input: {sku: "p1", name: "w", price: 1, currency: "EUR"}) { version } }`, nil, &struct{}{})
	num := func(s string) json.Number { return json.Number(s) }
	ev := func(version any) map[string]any {
		e := map[string]any{"type": "NoteTaken", "data": map[string]any{}}
		if version != nil {
			e["version"] = version
		}
		return e
	}
	long := make([]any, 20)
	for i := range long {
		long[i] = ev(nil)
	}
	long[17] = ev(num("2.5"))
	const (
		top    = `mutation($q: Int!) { restockProduct(input: {sku: "p1", quantity: $q}) { version } }`
		object = `mutation($i: RestockProductInput!) { restockProduct(input: $i) { version } }`
		list   = `mutation($e: [EventInput!]!) { appendEvents(stream: "notes", events: $e) { streamId } }`
	)
	for _, tc := range []struct {
		name, query string
		vars        map[string]any
		path, msg   string
	}{
		{"a fraction", top, map[string]any{"q": num("1.5")}, "[variable q]", `variable "q": 1.5 is not an integer`},
		{"an exponent", top, map[string]any{"q": num("1e3")}, "[variable q]", `variable "q": 1e3 has a fraction or an exponent: send the integer in digits alone (1000)`},
		{"a whole fraction", top, map[string]any{"q": num("2.0")}, "[variable q]", `variable "q": 2.0 has a fraction or an exponent: send the integer in digits alone (2)`},
		{"beyond 64 bits", top, map[string]any{"q": num("99999999999999999999")}, "[variable q]", `variable "q": 99999999999999999999 is out of range: at most 9223372036854775807`},
		{"a string", top, map[string]any{"q": "1.5"}, "[variable q]", `variable "q": "1.5" is not an integer`},
		{"a boolean", top, map[string]any{"q": true}, "[variable q]", `variable "q": true is not an integer`},
		{"in an input object", object, map[string]any{"i": map[string]any{"sku": "p1", "quantity": num("1.5")}},
			"[variable i quantity]", `variable "i" at quantity: 1.5 is not an integer`},
		{"a number for an input object", object, map[string]any{"i": num("5")}, "[variable i]", `variable "i": a RestockProductInput is an object, not 5`},
		{"in a list", list, map[string]any{"e": []any{ev(1), ev(num("1.5"))}}, "[variable e 1 version]", `variable "e" at [1].version: 1.5 is not an integer`},
		{"in a long list", list, map[string]any{"e": long}, "[variable e 17 version]", `variable "e" at [17].version: 2.5 is not an integer`},
		{"in a single value for a list", list, map[string]any{"e": ev(num("-0.5"))}, "[variable e 0 version]", `variable "e" at [0].version: -0.5 is not an integer`},
		{"a Boolean of another kind", `query($b: Boolean) { stream(id: "s", backwards: $b) { version } }`, map[string]any{"b": "yes"},
			"[variable b]", `variable "b": "yes" is not a Boolean (true or false)`},
	} {
		out, _ := c.post(tc.query, tc.vars)
		if len(out.Errors) != 1 || out.Errors[0].Message != tc.msg || fmt.Sprint(out.Errors[0].Path) != tc.path ||
			out.Errors[0].Extensions["code"] != "GRAPHQL_VALIDATION_FAILED" {
			t.Errorf("%s: %+v, want %s at %s", tc.name, out.Errors, tc.msg, tc.path)
		}
	}
	// What gqlparser says of a missing or null value, or an unknown field,
	// stays as it was.
	for _, vars := range []map[string]any{{}, {"q": nil}} {
		if out, _ := c.post(top, vars); len(out.Errors) != 1 || strings.HasPrefix(out.Errors[0].Message, "variable") {
			t.Errorf("%v: %+v", vars, out.Errors)
		}
	}
	// Integers pass, as numbers and as decimal strings.
	for _, q := range []any{num("3"), "4"} {
		if out, _ := c.post(top, map[string]any{"q": q}); len(out.Errors) > 0 {
			t.Errorf("quantity %v: %+v", q, out.Errors)
		}
	}
}

// GET and websockets explain a variable as POST does (one path, the
// executor's, serves them all).
func TestIntVariablesAreRefusedInTheClientsTermsOverEveryTransport(t *testing.T) {
	const query = `query($f: Int) { fulfilments(first: $f) { totalCount } }`
	const want = `variable "f": 1.5 is not an integer`
	s := newWSServer(t, &graph.Websocket{})
	httpURL := "http" + strings.TrimPrefix(s.url, "ws")
	resp, err := http.Get(httpURL + "?" + url.Values{"query": {query}, "variables": {`{"f": 1.5}`}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	var out gqlResponse
	err = json.NewDecoder(resp.Body).Decode(&out)
	resp.Body.Close()
	if err != nil || len(out.Errors) != 1 || out.Errors[0].Message != want || out.Errors[0].Extensions["code"] != "GRAPHQL_VALIDATION_FAILED" {
		t.Errorf("GET: %v %+v", err, out.Errors)
	}
	c := s.dial(t, graph.ProtocolTransportWS)
	c.init()
	c.send(map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{"query": query, "variables": map[string]any{"f": json.Number("1.5")}}})
	m := c.expect("error")
	var errs []gqlError
	if err := json.Unmarshal(m.Payload, &errs); err != nil || len(errs) != 1 || errs[0].Message != want || errs[0].Extensions["code"] != "GRAPHQL_VALIDATION_FAILED" {
		t.Errorf("websocket: %v %s", err, m.Payload)
	}
}

// A number a Long or a Position cannot take is VALIDATION on its field, as
// before, saying what is wrong with it (it was "value must be a 64-bit
// integer, got 1.5"); an Int literal in the query says what gqlparser
// says of it, but for one beyond 64 bits, which it said was beyond 32.
func TestIntegerScalarsAndLiteralsSayWhatIsWrong(t *testing.T) {
	c := newServer(t, memStore(), nil)
	c.mustPost(`mutation { openAccount(input: {accountId: "a1", owner: "ada", currency: "EUR"}) { version } }`, nil, &struct{}{})
	deposit := `mutation($a: Long!) { depositMoney(input: {accountId: "a1", amount: $a}) { version } }`
	for _, tc := range []struct {
		name, query      string
		vars             map[string]any
		field, msg, code string
	}{
		{"a Long of 1.5", deposit, map[string]any{"a": json.Number("1.5")}, "amount", "1.5 is not an integer", "VALIDATION"},
		{"a Long of 1e3", deposit, map[string]any{"a": json.Number("1e3")}, "amount", "1e3 has a fraction or an exponent: send the integer in digits alone (1000)", "VALIDATION"},
		{"a Long beyond 64 bits", deposit, map[string]any{"a": json.Number("-99999999999999999999")}, "amount", "-99999999999999999999 is out of range: at least -9223372036854775808", "VALIDATION"},
		{"a Long of ten", deposit, map[string]any{"a": "ten"}, "amount", `"ten" is not an integer`, "VALIDATION"},
		{"a Long literal of 1.5", `mutation { depositMoney(input: {accountId: "a1", amount: 1.5}) { version } }`, nil, "amount", "1.5 is not an integer", "VALIDATION"},
		{"a Position of 1.5", `query($p: Position) { events(after: $p) { next } }`, map[string]any{"p": json.Number("1.5")}, "after", "1.5 is not an integer", "VALIDATION"},
		{"an Int literal of 1.5", `mutation { restockProduct(input: {sku: "p1", quantity: 1.5}) { version } }`, nil, "", "Int cannot represent non-integer value: 1.5", "GRAPHQL_VALIDATION_FAILED"},
		// gqlparser adds that the input object is not one.
		{"an Int literal beyond 64 bits", `mutation { restockProduct(input: {sku: "p1", quantity: 99999999999999999999}) { version } }`, nil, "",
			"the Int literal 99999999999999999999 is out of range: at most 9223372036854775807", "GRAPHQL_VALIDATION_FAILED"},
	} {
		out, _ := c.post(tc.query, tc.vars)
		if len(out.Errors) == 0 || out.Errors[0].Message != tc.msg || out.Errors[0].Extensions["code"] != tc.code ||
			tc.field != "" && (len(out.Errors) != 1 || out.Errors[0].Extensions["field"] != tc.field) {
			t.Errorf("%s: %+v", tc.name, out.Errors)
		}
	}
}
