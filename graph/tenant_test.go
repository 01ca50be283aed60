package graph_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"cqrsgate/internal/auth"
)

// Credentials of the tenancy tests: a writer and an admin key for tenant
// acme, a writer JWT for globex, and a writer key without a tenant.
const (
	acmeKey      = "acme-writer-key-0123456789"
	acmeAdminKey = "acme-admin-key-0123456789"
	plainKey     = "plain-writer-key-0123456789"
)

func tenantToken(t *testing.T, tenant any) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "gina", "roles": "writer", "tenant": tenant, "exp": time.Now().Add(time.Hour).Unix()}).SignedString(jwtSecret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newTenantGateway(t *testing.T) (*pgGateway, map[string][]string) {
	t.Helper()
	a, err := auth.New(auth.Config{HMACSecret: jwtSecret, APIKeys: []auth.APIKey{
		{Name: "acme-app", Key: acmeKey, Roles: []auth.Role{auth.Writer}, Tenant: "acme"},
		{Name: "acme-ops", Key: acmeAdminKey, Roles: []auth.Role{auth.Admin}, Tenant: "acme"},
		{Name: "plain-app", Key: plainKey, Roles: []auth.Role{auth.Writer}},
		{Name: "ops", Key: adminKey, Roles: []auth.Role{auth.Admin}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	g := newFullGatewayWith(t, fullOptions{readTimeout: 5 * time.Second, auth: a})
	var reg any
	g.mustPost(`mutation { registerEventSchema(type: "NoteTaken", schema: {type: "object"}) { version } }`, nil, &reg, "X-API-Key", adminKey)
	return g, map[string][]string{
		"acme":   {"X-API-Key", acmeKey},
		"globex": {"Authorization", "Bearer " + tenantToken(t, "globex")},
		"":       {"X-API-Key", plainKey},
	}
}

// TestTenantIsolationOverHTTP: three callers (two tenants and the default
// tenant) use the same ids; each sees and changes only its own data, and
// none can name another's.
func TestTenantIsolationOverHTTP(t *testing.T) {
	g, as := newTenantGateway(t)
	deposits := map[string]int64{"acme": 100, "globex": 7, "": 1}
	owners := map[string]string{"acme": "ada", "globex": "bob", "": "cy"}
	var last int64
	correlation := map[string]string{}
	for tenant, amount := range deposits {
		r := g.mustMutate("openAccount", map[string]any{"accountId": "a1", "owner": owners[tenant], "currency": "EUR", "initialDeposit": amount}, as[tenant]...)
		if r.AggregateID != "a1" || r.StreamID != "account-a1" {
			t.Errorf("tenant %q: result names %s / %s; want its own terms a1 / account-a1", tenant, r.AggregateID, r.StreamID)
		}
		correlation[tenant] = r.CorrelationID
		last = max(last, r.Position)
		// appendEvents is scoped the same way.
		out, _ := g.post(`mutation($n: String!) { appendEvents(stream: "note-1", events: [{type: "NoteTaken", data: {note: $n}}]) { streamId } }`,
			map[string]any{"n": "by " + tenant}, as[tenant]...)
		if len(out.Errors) > 0 || !strings.Contains(string(out.Data["appendEvents"]), `"streamId":"note-1"`) {
			t.Fatalf("tenant %q: appendEvents = %s %v", tenant, out.Data["appendEvents"], out.Errors)
		}
	}
	r := g.mustMutate("depositMoney", map[string]any{"accountId": "a1", "amount": 5}, as["globex"]...)
	deposits["globex"] += 5
	// The log is read gap-safe: wait until everything written is readable.
	for deadline := time.Now().Add(10 * time.Second); g.head() < r.Position && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}

	for tenant, balance := range deposits {
		var out struct {
			Account struct {
				ID, Owner string
				Balance   int64
			}
			Accounts   struct{ TotalCount int }
			BankTotals []struct{ TotalBalance int64 }
			AccountAt  struct{ Balance int64 }
			Stream     struct {
				Version int
				Events  []struct{ StreamID string }
			}
			Notes struct {
				Events []struct{ Data map[string]string }
			}
			Events struct{ Events []struct{ StreamID string } }
			ByCorr struct{ Events []struct{ StreamID string } }
		}
		g.mustPost(`query($at: Position!, $corr: String!) {
			account(id: "a1", atLeast: $at) { id owner balance }
			accounts(atLeast: $at) { totalCount }
			bankTotals(atLeast: $at) { totalBalance }
			accountAt(id: "a1") { balance }
			stream(id: "account-a1") { version events { streamId } }
			notes: events(stream: "note-1") { events { data } }
			events(first: 1000) { events { streamId } }
			byCorr: events(correlationId: $corr) { events { streamId } }
		}`, map[string]any{"at": max(r.Position, last), "corr": correlation["acme"]}, &out, as[tenant]...)
		if out.Account.ID != "a1" || out.Account.Owner != owners[tenant] || out.Account.Balance != balance {
			t.Errorf("tenant %q: account = %+v, want %s with %d", tenant, out.Account, owners[tenant], balance)
		}
		if out.Accounts.TotalCount != 1 || len(out.BankTotals) != 1 || out.BankTotals[0].TotalBalance != balance || out.AccountAt.Balance != balance {
			t.Errorf("tenant %q: accounts %d, totals %+v, accountAt %d; want 1 account with %d", tenant, out.Accounts.TotalCount, out.BankTotals, out.AccountAt.Balance, balance)
		}
		if len(out.Notes.Events) != 1 || out.Notes.Events[0].Data["note"] != "by "+tenant {
			t.Errorf("tenant %q: note-1 = %+v", tenant, out.Notes.Events)
		}
		wantEvents := 3 // AccountOpened, MoneyDeposited, NoteTaken
		if tenant == "globex" {
			wantEvents++
		}
		if len(out.Events.Events) != wantEvents || out.Stream.Version != wantEvents-1 {
			t.Errorf("tenant %q: %d events in the log and stream version %d; want %d and %d", tenant, len(out.Events.Events), out.Stream.Version, wantEvents, wantEvents-1)
		}
		for _, e := range append(out.Events.Events, out.Stream.Events...) {
			if strings.Contains(e.StreamID, "~") {
				t.Errorf("tenant %q was shown stream %s", tenant, e.StreamID)
			}
		}
		if (len(out.ByCorr.Events) > 0) != (tenant == "acme") {
			t.Errorf("tenant %q read %d events of acme's correlation id", tenant, len(out.ByCorr.Events))
		}
	}

	// No caller can spell another tenant's namespace.
	for _, q := range []string{
		`{ account(id: "acme~a1") { id } }`,
		`{ stream(id: "acme~account-a1") { version } }`,
		`{ events(stream: "acme~note-1") { head } }`,
		`{ events(streamPrefix: "acme~") { head } }`,
		`{ accountAt(id: "acme~a1") { id } }`,
		`mutation { appendEvents(stream: "acme~note-1", events: [{type: "NoteTaken", data: {}}]) { position } }`,
		`mutation { depositMoney(input: {accountId: "acme~a1", amount: 1}) { position } }`,
	} {
		out, _ := g.post(q, nil, as["globex"]...)
		if len(out.Errors) != 1 || out.Errors[0].Extensions["code"] != "VALIDATION" || !strings.Contains(out.Errors[0].Message, "~") {
			t.Errorf("%s: errors %+v, want one VALIDATION about the separator", q, out.Errors)
		}
	}
	if g.balance("acme~a1") != 100 {
		t.Errorf("acme's balance changed to %d", g.balance("acme~a1"))
	}

	// Gateway-wide administration needs an administrator without a tenant.
	for _, q := range []string{
		`mutation { rebuildProjection(name: "accounts") { name } }`,
		`mutation { cancelProjectionRebuild(name: "accounts") { name } }`,
	} {
		out, _ := g.post(q, nil, "X-API-Key", acmeAdminKey)
		if len(out.Errors) != 1 || out.Errors[0].Extensions["code"] != "FORBIDDEN" {
			t.Errorf("a tenant's admin: %s: %+v", q, out.Errors)
		}
	}

	// A tenant claim that names no tenant is refused, not read as "no tenant".
	for _, bad := range []any{42, "", "ac~me", "a b"} {
		out, resp := g.post(`{ __typename }`, nil, "Authorization", "Bearer "+tenantToken(t, bad))
		if resp.StatusCode != http.StatusUnauthorized || len(out.Errors) != 1 || !strings.Contains(out.Errors[0].Message, "tenant") {
			t.Errorf("tenant claim %v: status %d, errors %+v", bad, resp.StatusCode, out.Errors)
		}
	}
}

// TestTenantIsolationOverWebsocket: a tenant's subscriptions, live and
// replayed, carry only its own events and rows.
func TestTenantIsolationOverWebsocket(t *testing.T) {
	g, as := newTenantGateway(t)
	for tenant, owner := range map[string]string{"acme": "ada", "globex": "bob"} {
		g.mustMutate("openAccount", map[string]any{"accountId": "a1", "owner": owner, "currency": "EUR", "initialDeposit": 10}, as[tenant]...)
	}
	c := dialAuth(t, g.url, nil)
	c.send(map[string]any{"type": "connection_init", "payload": map[string]any{"authorization": as["globex"][1]}})
	c.expect("connection_ack")
	c.send(subscribeMsg("log", `subscription { events(after: 0) { streamId type data } }`, nil))
	c.send(subscribeMsg("row", `subscription { accountChanged(id: "a1") { owner balance } }`, nil))
	c.send(subscribeMsg("bad", `subscription { accountChanged(id: "acme~a1") { owner } }`, nil))
	// "row" starts from now: a deposit before it is running may not be sent.
	waitFor(t, "the row subscription to run", func() bool { return g.ws.SharedSubscriptions() == 1 })

	// acme's deposits first, then globex's: globex's subscriber must see
	// its own replayed events, then its own deposit and nothing of acme's.
	for i := 1; i <= 3; i++ {
		g.mustMutate("depositMoney", map[string]any{"accountId": "a1", "amount": 1000 * i}, as["acme"]...)
	}
	g.mustMutate("depositMoney", map[string]any{"accountId": "a1", "amount": 5}, as["globex"]...)

	var logEvents []string
	var sawBad, sawRow bool
	deadline := time.Now().Add(20 * time.Second)
	for (len(logEvents) < 3 || !sawBad || !sawRow) && time.Now().Before(deadline) {
		m := c.read()
		switch m.ID {
		case "log":
			var p struct {
				Data struct {
					Events struct {
						StreamID, Type string
						Data           json.RawMessage
					}
				}
			}
			if err := json.Unmarshal(m.Payload, &p); err != nil || m.Type != "next" {
				t.Fatalf("log: %s %s", m.Type, m.Payload)
			}
			e := p.Data.Events
			logEvents = append(logEvents, fmt.Sprintf("%s %s %s", e.StreamID, e.Type, e.Data))
		case "row":
			if m.Type != "next" {
				t.Fatalf("row: %s %s", m.Type, m.Payload)
			}
			var p struct {
				Data struct{ AccountChanged struct{ Owner string } }
			}
			_ = json.Unmarshal(m.Payload, &p)
			if p.Data.AccountChanged.Owner != "bob" {
				t.Fatalf("globex's accountChanged carried %s", m.Payload)
			}
			sawRow = true
		case "bad":
			if m.Type == "complete" {
				continue
			}
			if !strings.Contains(string(m.Payload), "VALIDATION") {
				t.Fatalf("subscribing to acme~a1: %s %s", m.Type, m.Payload)
			}
			sawBad = true
		}
	}
	want := []string{`account-a1 AccountOpened`, `account-a1 MoneyDeposited`, `account-a1 MoneyDeposited {"amount": 5,`}
	if len(logEvents) != len(want) {
		t.Fatalf("globex's event subscription got %v", logEvents)
	}
	for i, w := range want {
		if !strings.HasPrefix(logEvents[i], w) {
			t.Errorf("event %d = %s, want %s...", i, logEvents[i], w)
		}
	}
	if !sawRow || !sawBad {
		t.Errorf("row update seen: %v, refusal seen: %v", sawRow, sawBad)
	}
	// Nothing else arrives: acme's deposits were not sent.
	c.conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	var extra wsMsg
	if err := c.conn.ReadJSON(&extra); err == nil && extra.ID == "log" {
		t.Errorf("globex also received %s", extra.Payload)
	}
}
