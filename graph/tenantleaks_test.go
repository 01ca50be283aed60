package graph_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"cqrsgate/graph"
)

// A tenant's gatewayStats does not count every tenant's websocket
// connections and live subscriptions (acme learnt of globex's): the two
// figures are null for a tenant's caller.
func TestGatewayStatsDoNotCountOtherTenantsSubscriptions(t *testing.T) {
	g, as := newTenantGateway(t)
	dial := func(cred string) *wsClient {
		c := dialAuth(t, g.url, nil)
		c.send(map[string]any{"type": "connection_init", "payload": map[string]any{"authorization": cred}})
		c.expect("connection_ack")
		return c
	}
	// globex: three connections, each following the log.
	for i := 0; i < 3; i++ {
		c := dial(as["globex"][1])
		c.send(subscribeMsg("log", `subscription { events { id } }`, nil))
	}
	time.Sleep(300 * time.Millisecond)
	// acme: one connection, asking for the gateway's figures.
	a := dial(as["acme"][1])
	a.send(subscribeMsg("stats", `subscription { gatewayStats { websocketConnections liveSubscriptions } }`, nil))
	m := a.expect("next")
	var p struct {
		Data struct {
			GatewayStats struct{ WebsocketConnections, LiveSubscriptions *int }
		}
	}
	if err := json.Unmarshal(m.Payload, &p); err != nil {
		t.Fatal(err)
	}
	s := p.Data.GatewayStats
	if s.WebsocketConnections != nil || s.LiveSubscriptions != nil {
		t.Errorf("tenant acme's gatewayStats = %s: counts of every tenant's connections and subscriptions", m.Payload)
	}
}

// Persisted queries are kept per caller scope: with one cache for all,
// whoever could guess a document another tenant ran (an account id
// written into it, say) learnt that it was run by sending only its hash,
// even a caller with no credential.
func TestPersistedQueriesDoNotTellOfOtherTenantsDocuments(t *testing.T) {
	g, as := newTenantGateway(t)
	g.mustMutate("openAccount", map[string]any{"accountId": "vip-7", "owner": "ada", "currency": "EUR", "initialDeposit": 100}, as["acme"]...)
	doc := `{ account(id: "vip-7") { balance } }`
	sum := sha256.Sum256([]byte(doc))
	ext := map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": hex.EncodeToString(sum[:])}}

	probe := func(headers ...string) (string, int) {
		out, resp := g.postWith(map[string]any{"extensions": ext}, headers...)
		if len(out.Errors) > 0 {
			c, _ := out.Errors[0].Extensions["code"].(string)
			return c, resp.StatusCode
		}
		return "ran: " + string(out.Data["account"]), resp.StatusCode
	}
	// Before acme runs it, nobody's probe finds it.
	before, _ := probe(as["globex"]...)
	anonBefore, _ := probe()
	// acme runs the document the way APQ clients do: hash and text.
	out, _ := g.postWith(map[string]any{"query": doc, "extensions": ext}, as["acme"]...)
	if len(out.Errors) > 0 {
		t.Fatalf("acme's query: %+v", out.Errors)
	}
	after, _ := probe(as["globex"]...)
	anonAfter, st := probe()
	_ = st
	if before != after {
		t.Errorf("globex told acme's document apart: %q before acme ran it, %q after", before, after)
	}
	if anonBefore != anonAfter {
		t.Errorf("a caller with no credential told acme's document apart: %q before, %q after", anonBefore, anonAfter)
	}
}

func (c *client) postWith(body map[string]any, headers ...string) (gqlResponse, *http.Response) {
	c.t.Helper()
	raw, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, c.url, bytes.NewReader(raw))
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return c.do(req)
}

// accountAt/orderAt(at:) at the first instant of year 1 are null: nothing
// had been recorded by then (the zero time.Time, read as "no time given",
// answered the state as of now).
func TestTimeTravelToYearOneIsBeforeEverything(t *testing.T) {
	g := newFullGateway(t, 5*time.Second)
	g.mustMutate("openAccount", map[string]any{"accountId": "a1", "owner": "ada", "currency": "EUR", "initialDeposit": 100})
	g.mustMutate("placeOrder", map[string]any{"orderId": "o1", "customerId": "a1", "currency": "EUR"})
	for _, at := range []string{"0001-01-01T00:00:01Z", "0001-01-01T00:00:00Z", "0001-01-01T01:00:00+01:00"} {
		out, _ := g.post(`query($at: Time!) { accountAt(id: "a1", at: $at) { version balance } orderAt(id: "o1", at: $at) { version status } }`, map[string]any{"at": at})
		if len(out.Errors) > 0 || string(out.Data["accountAt"]) != "null" || string(out.Data["orderAt"]) != "null" {
			var errs []string
			for _, e := range out.Errors {
				errs = append(errs, e.Message)
			}
			t.Errorf("at %s: accountAt = %s, orderAt = %s %s; want null for both (nothing was recorded by then)", at, out.Data["accountAt"], out.Data["orderAt"], strings.Join(errs, "; "))
		}
	}
}

// A tenant's stream id near the limit is refused in the client's terms
// (the length it sent, the limit left to it), not the store's.
func TestStreamIDLengthErrorsAreInTheClientsTerms(t *testing.T) {
	g, as := newTenantGateway(t)
	id := strings.Repeat("s", 198) // under the 200 the error names
	for _, q := range []string{
		`query($id: String!) { stream(id: $id) { version } }`,
	} {
		out, _ := g.post(q, map[string]any{"id": id}, as["acme"]...)
		if len(out.Errors) != 1 {
			t.Errorf("%s: %+v, want one error", q, out.Errors)
			continue
		}
		msg := out.Errors[0].Message
		if strings.Contains(msg, "203") || strings.Contains(msg, "acme~") || !strings.Contains(msg, "198 bytes") {
			t.Errorf("%s: %q speaks of the tenant-qualified stream (203 bytes), not of the 198 the client sent", q, msg)
		}
	}
}

// A subscription to an id no aggregate can have is refused, as a read of
// it is (it waited for good).
func TestSubscriptionsToImpossibleIdsAreRefused(t *testing.T) {
	s := newWSServer(t, &graph.Websocket{})
	c := s.dial(t, graph.ProtocolTransportWS)
	c.init()
	for i, q := range []string{
		`subscription { accountChanged(id: "") { id } }`,
		`subscription($id: ID!) { accountChanged(id: $id) { id } }`,
		`subscription { productChanged(sku: "a b") { sku } }`,
		`subscription { orderChanged(id: "") { id } }`,
	} {
		id := fmt.Sprint("s", i)
		c.send(subscribeMsg(id, q, map[string]any{"id": strings.Repeat("x", 300)}))
		var got []string
		for {
			m := c.read()
			if m.ID != id {
				continue
			}
			got = append(got, m.Type+" "+string(m.Payload))
			if m.Type == "complete" || m.Type == "error" {
				break
			}
		}
		if !strings.Contains(strings.Join(got, " "), `"code":"VALIDATION"`) {
			t.Errorf("%s: %v", q, got)
		}
	}
}
