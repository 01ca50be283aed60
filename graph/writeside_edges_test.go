package graph_test

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestTenantAppendToEmptyStream: a tenant's appendEvents(stream: "") is
// VALIDATION on stream, as the default tenant's is; it wrote to the stream
// "<tenant>~".
func TestTenantAppendToEmptyStream(t *testing.T) {
	g, as := newTenantGateway(t)
	head := g.head()
	out, _ := g.post(`mutation { appendEvents(stream: "", events: [{type: "NoteTaken", data: {}}]) { streamId position } }`, nil, as["acme"]...)
	if len(out.Errors) != 1 || out.Errors[0].Extensions["code"] != "VALIDATION" || out.Errors[0].Extensions["field"] != "stream" {
		t.Errorf("acme appendEvents(stream: \"\"): data %s errors %+v; want VALIDATION on stream, as for the default tenant", out.Data["appendEvents"], out.Errors)
	}
	if g.head() != head {
		t.Errorf("the refused append wrote: head %d, was %d", g.head(), head)
	}
}

// TestDuplicateReportsStoredIDs: an idempotent retry (same key, another
// request) reports the original's correlation and causation ids, those
// stored with the events it returns; it reported its own.
func TestDuplicateReportsStoredIDs(t *testing.T) {
	g := newPGGateway(t)
	g.mustMutate("openAccount", map[string]any{"accountId": "a1", "owner": "ada", "currency": "EUR"})
	first := g.mustMutate("depositMoney", map[string]any{"accountId": "a1", "amount": 5, "idempotencyKey": "k1"}, "X-Correlation-ID", "corr-first")
	again := g.mustMutate("depositMoney", map[string]any{"accountId": "a1", "amount": 5, "idempotencyKey": "k1"}, "X-Correlation-ID", "corr-retry")
	var meta map[string]any
	_ = json.Unmarshal(again.Events[0].Metadata, &meta)
	if !again.Duplicate || again.CorrelationID != first.CorrelationID || again.CausationID != first.CausationID ||
		again.CorrelationID != meta["correlationId"] || again.CausationID != meta["causationId"] {
		t.Errorf("duplicate reports correlationId %q causationId %q; the original reported %q %q and the events it returns hold %v %v",
			again.CorrelationID, again.CausationID, first.CorrelationID, first.CausationID, meta["correlationId"], meta["causationId"])
	}
}

// TestTenantErrorsNameUnqualifiedStream: appendEvents errors name a
// tenant's stream as it gave it (ids and stream names go in and come back
// without a tenant prefix); they quoted the prefixed name, and its length.
func TestTenantErrorsNameUnqualifiedStream(t *testing.T) {
	g, as := newTenantGateway(t)
	for _, q := range []string{
		`mutation { appendEvents(stream: "n1", expectedVersion: 5, events: [{type: "NoteTaken", data: {}}]) { position } }`,
		`mutation { appendEvents(stream: "` + strings.Repeat("x", 199) + `", events: [{type: "NoteTaken", data: {}}]) { position } }`,
	} {
		out, _ := g.post(q, nil, as["acme"]...)
		b, _ := json.Marshal(out.Errors)
		if len(out.Errors) != 1 || strings.Contains(string(b), "acme~") || strings.Contains(string(b), "204 bytes") {
			t.Errorf("acme's error speaks of its qualified stream: %s", b)
		}
	}
}

// TestMutationListReportsWhatRan: several mutations in one operation, one
// refused: the others run and are reported beside its error (every
// mutation's result is nullable); the answer was data: null with the one
// error, and the client could not tell that the others had written.
func TestMutationListReportsWhatRan(t *testing.T) {
	g := newPGGateway(t)
	g.mustMutate("openAccount", map[string]any{"accountId": "a1", "owner": "ada", "currency": "EUR"})
	head := g.head()
	out, _ := g.post(`mutation {
		a: depositMoney(input: {accountId: "a1", amount: 1}) { position }
		b: depositMoney(input: {accountId: "a1", amount: -1}) { position }
		c: depositMoney(input: {accountId: "a1", amount: 2}) { position } }`, nil)
	wrote := g.head() - head
	if len(out.Errors) != 1 || string(out.Data["b"]) != "null" {
		t.Errorf("the refused mutation: data %s, errors %+v, want null and its one error", out.Data["b"], out.Errors)
	}
	if wrote != 2 || out.Data["a"] == nil || string(out.Data["a"]) == "null" || out.Data["c"] == nil || string(out.Data["c"]) == "null" {
		t.Errorf("%d events written (balance now %d) but the response is data %v, errors %+v: the executed mutations are not reported",
			wrote, g.balance("a1"), out.Data, out.Errors)
	}
}

// TestScalarErrorsNameTheField: a Long (or Position, JSON) the scalar
// cannot take is VALIDATION naming the field, as VALIDATION errors do; it
// named none.
func TestScalarErrorsNameTheField(t *testing.T) {
	g := newPGGateway(t)
	g.mustMutate("openAccount", map[string]any{"accountId": "a1", "owner": "ada", "currency": "EUR"})
	for _, amount := range []any{"ten", " 5", "1e3", 1.5} {
		_, err := g.mutate("depositMoney", map[string]any{"accountId": "a1", "amount": amount})
		if err == nil || err.Extensions["code"] != "VALIDATION" || err.Extensions["field"] != "amount" {
			t.Errorf("amount %#v: %+v, want VALIDATION with field amount", amount, err)
		}
	}
}
