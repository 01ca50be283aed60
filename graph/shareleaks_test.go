package graph_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"cqrsgate/graph"
)

// Black-box tests of what subscriptions share between subscribers: the
// executions of coalesced subscriptions started from now (shared by every
// subscriber with the same query, variables and caller scope), and the
// encoded payloads of log subscriptions (shared by every subscriber with
// the same selection and caller scope). Callers of different tenants, or
// of one tenant with different roles, must never receive a payload, or an
// error, produced for another.

// scopedToken is a JWT of tenant (none when "") with roles.
func scopedToken(t *testing.T, tenant, roles string) string {
	t.Helper()
	claims := jwt.MapClaims{"sub": "sam", "roles": roles, "exp": time.Now().Add(time.Hour).Unix()}
	if tenant != "" {
		claims["tenant"] = tenant
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(jwtSecret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// subscriber is a websocket connection of one caller, on either protocol.
type subscriber struct {
	name   string
	tenant string
	legacy bool
	c      *wsClient
	got    map[string][]wsMsg // messages received, by operation id
}

// dialAs connects with cred (an API key, or "Bearer <token>") in
// connection_init.
func dialAs(t *testing.T, g *pgGateway, name, tenant, cred string, legacy bool) *subscriber {
	t.Helper()
	proto := graph.ProtocolTransportWS
	if legacy {
		proto = graph.ProtocolLegacyWS
	}
	c := (&wsServer{url: "ws" + strings.TrimPrefix(g.url, "http")}).dial(t, proto)
	c.send(map[string]any{"type": "connection_init", "payload": map[string]any{"authorization": cred}})
	c.expect("connection_ack")
	return &subscriber{name: name, tenant: tenant, legacy: legacy, c: c, got: map[string][]wsMsg{}}
}

func (s *subscriber) subscribe(id, query string, vars map[string]any) {
	typ := "subscribe"
	if s.legacy {
		typ = "start"
	}
	s.c.send(map[string]any{"id": id, "type": typ, "payload": map[string]any{"query": query, "variables": vars}})
}

// until reads messages (keeping them in got) until done holds, for at
// most 15 seconds.
func (s *subscriber) until(what string, done func() bool) {
	s.c.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !done() {
		_ = s.c.conn.SetReadDeadline(deadline)
		var m wsMsg
		if err := s.c.conn.ReadJSON(&m); err != nil {
			s.c.t.Fatalf("%s: waiting for %s: %v (received %s)", s.name, what, err, s.received())
		}
		if m.Type == "ka" {
			continue
		}
		s.got[m.ID] = append(s.got[m.ID], m)
	}
}

// drain reads what comes within d.
func (s *subscriber) drain(d time.Duration) {
	deadline := time.Now().Add(d)
	for {
		_ = s.c.conn.SetReadDeadline(deadline)
		var m wsMsg
		if err := s.c.conn.ReadJSON(&m); err != nil {
			return
		}
		s.got[m.ID] = append(s.got[m.ID], m)
	}
}

func (s *subscriber) received() string {
	var b strings.Builder
	for id, ms := range s.got {
		for _, m := range ms {
			fmt.Fprintf(&b, "\n  %s %s %s", id, m.Type, m.Payload)
		}
	}
	return b.String()
}

// has reports whether a message for id holds every one of parts.
func (s *subscriber) has(id string, parts ...string) bool {
	for _, m := range s.got[id] {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(string(m.Payload), p)
		}
		if ok {
			return true
		}
	}
	return false
}

// TestSharedRowSubscriptionsKeepToTheirScope: callers of three tenants,
// and of one tenant with three roles, on both protocols, subscribe at the
// same time to the same query text with the same variables (the same ids,
// which each tenant has) from now. Each receives its own tenant's rows,
// figures and refusals only; the subscribers alike (same tenant, same
// roles) share one execution, whichever protocol they speak; the group's
// first subscriber leaving does not end it for the others, or change whose
// data it reads.
func TestSharedRowSubscriptionsKeepToTheirScope(t *testing.T) {
	g, as := newTenantGateway(t)
	owners := map[string]string{"acme": "ada-of-acme", "globex": "bob-of-globex", "": "cy-of-default"}
	currencies := map[string]string{"acme": "EUR", "globex": "USD", "": "GBP"}
	for tenant, owner := range owners {
		g.mustMutate("openAccount", map[string]any{"accountId": "a1", "owner": owner, "currency": "EUR", "initialDeposit": 10}, as[tenant]...)
		g.mustMutate("addProduct", map[string]any{"sku": "p1", "name": "p1-of-" + owner, "price": 100, "currency": "EUR"}, as[tenant]...)
	}

	subs := []*subscriber{
		dialAs(t, g, "acme writer", "acme", acmeKey, false),
		dialAs(t, g, "acme writer (legacy)", "acme", acmeKey, true),
		dialAs(t, g, "acme admin", "acme", acmeAdminKey, false),
		dialAs(t, g, "acme reader", "acme", "Bearer "+scopedToken(t, "acme", "reader"), true),
		dialAs(t, g, "globex writer", "globex", as["globex"][1], false),
		dialAs(t, g, "globex writer (legacy)", "globex", as["globex"][1], true),
		dialAs(t, g, "default writer", "", plainKey, false),
		dialAs(t, g, "default admin", "", adminKey, true),
	}
	const scopes = 6 // acme: writer, admin, reader; globex: writer; default: writer, admin
	const (
		account = `subscription($id: ID!, $after: Position) { accountChanged(id: $id, after: $after) { id owner balance } }`
		product = `subscription($sku: ID!) { productChanged(sku: $sku) { sku name price } }`
		order   = `subscription($c: String) { orderChanged(customerId: $c) { id customerId currency } }`
		stats   = `subscription { gatewayStats(intervalMs: 60000) { websocketConnections liveSubscriptions } }`
		status  = `subscription { projectionStatus(intervalMs: 60000) { name lastError failedEventId } }`
	)
	for _, s := range subs {
		s.subscribe("acct", account, map[string]any{"id": "a1"})
		s.subscribe("prod", product, map[string]any{"sku": "p1"})
		s.subscribe("order", order, map[string]any{"c": "c1"})
		s.subscribe("stats", stats, nil)
		s.subscribe("status", status, nil)
		// Resuming: run for each subscriber on its own.
		s.subscribe("resume", account, map[string]any{"id": "a1", "after": 0})
	}
	waitFor(t, "every subscription to run", func() bool { return g.ws.Subscriptions() == 6*len(subs) })

	// gatewayStats replays its latest figures at once: the counts of every
	// tenant's connections only to callers without a tenant.
	for _, s := range subs {
		s.until("gatewayStats", func() bool { return len(s.got["stats"]) > 0 })
		s.until("projectionStatus", func() bool { return len(s.got["status"]) > 0 })
		counted := s.has("stats", `"websocketConnections":`) && !s.has("stats", `"websocketConnections":null`)
		if counted != (s.tenant == "") {
			t.Errorf("%s: gatewayStats %s", s.name, s.got["stats"][0].Payload)
		}
	}
	// Four coalesced subscriptions each: one execution per scope for each.
	if n := g.ws.SharedSubscriptions(); n != 4*scopes {
		t.Errorf("%d shared executions; want %d (4 subscriptions, %d scopes)", n, 4*scopes, scopes)
	}

	deposits := map[string]int64{"acme": 1001, "globex": 2002, "": 3003}
	for tenant, amount := range deposits {
		g.mustMutate("depositMoney", map[string]any{"accountId": "a1", "amount": amount}, as[tenant]...)
		g.mustMutate("changePrice", map[string]any{"sku": "p1", "price": amount}, as[tenant]...)
		g.mustMutate("placeOrder", map[string]any{"orderId": "o1", "customerId": "c1", "currency": currencies[tenant]}, as[tenant]...)
	}
	check := func(s *subscriber, balance int64) {
		t.Helper()
		owner, currency := owners[s.tenant], currencies[s.tenant]
		s.until("its own rows", func() bool {
			return s.has("acct", owner, fmt.Sprintf(`"balance":%d`, balance)) &&
				s.has("resume", owner, fmt.Sprintf(`"balance":%d`, balance)) &&
				s.has("prod", "p1-of-"+owner, fmt.Sprintf(`"price":%d`, deposits[s.tenant])) &&
				s.has("order", `"currency":"`+currency+`"`)
		})
		for id, ms := range s.got {
			for _, m := range ms {
				p := string(m.Payload)
				for tenant, other := range owners {
					if tenant != s.tenant && (strings.Contains(p, other) || id == "order" && strings.Contains(p, currencies[tenant])) {
						t.Errorf("%s received %s's data: %s %s %s", s.name, tenant, id, m.Type, p)
					}
				}
				if m.Type == "error" || strings.Contains(p, `"errors"`) {
					t.Errorf("%s: %s %s %s", s.name, id, m.Type, p)
				}
			}
		}
	}
	for _, s := range subs {
		check(s, 10+deposits[s.tenant])
	}

	// The first subscriber of acme's writers leaves: the execution goes on
	// for the other, reading acme's row still; globex's are not disturbed.
	subs[0].c.conn.Close()
	waitFor(t, "the first subscriber's leaving", func() bool { return g.ws.Subscriptions() == 6*(len(subs)-1) })
	if n := g.ws.SharedSubscriptions(); n != 4*scopes {
		t.Fatalf("%d shared executions after the group's first subscriber left; want %d", n, 4*scopes)
	}
	for tenant := range deposits {
		deposits[tenant] += 5
		g.mustMutate("depositMoney", map[string]any{"accountId": "a1", "amount": 5}, as[tenant]...)
		g.mustMutate("changePrice", map[string]any{"sku": "p1", "price": deposits[tenant]}, as[tenant]...)
	}
	for _, s := range subs[1:] {
		check(s, 10+deposits[s.tenant])
	}
}

// TestSharedSubscriptionRefusalsKeepToTheirScope: the same subscription,
// text and variables, at the same time, by callers of a tenant that has
// the row, of one that has not, and of the first with another role: the
// row goes to the first tenant's callers only, the other's waits; a
// refused one (an id no aggregate can have) is refused for each.
func TestSharedSubscriptionRefusalsKeepToTheirScope(t *testing.T) {
	g, as := newTenantGateway(t)
	g.mustMutate("openAccount", map[string]any{"accountId": "a1", "owner": "ada-of-acme", "currency": "EUR", "initialDeposit": 10}, as["acme"]...)
	acme := dialAs(t, g, "acme", "acme", acmeKey, false)
	plain := dialAs(t, g, "default", "", plainKey, true)
	reader := dialAs(t, g, "acme reader", "acme", "Bearer "+scopedToken(t, "acme", "reader"), false)
	const q = `subscription($id: ID!) { accountChanged(id: $id) { owner balance } }`
	for _, s := range []*subscriber{acme, plain, reader} {
		s.subscribe("row", q, map[string]any{"id": "a1"})
		s.subscribe("bad", q, map[string]any{"id": "acme~a1"})
	}
	acme.until("the refusal", func() bool { return acme.has("bad", "VALIDATION") })
	plain.until("the refusal", func() bool { return plain.has("bad", "VALIDATION") })
	reader.until("the refusal", func() bool { return reader.has("bad", "VALIDATION") })
	waitFor(t, "every subscription to run", func() bool { return g.ws.Subscriptions() == 3 })
	if n := g.ws.SharedSubscriptions(); n != 3 {
		t.Errorf("%d shared executions; want 3 (one a scope)", n)
	}
	g.mustMutate("depositMoney", map[string]any{"accountId": "a1", "amount": 7}, as["acme"]...)
	acme.until("acme's row", func() bool { return acme.has("row", "ada-of-acme", `"balance":17`) })
	reader.until("acme's row", func() bool { return reader.has("row", "ada-of-acme", `"balance":17`) })
	plain.drain(500 * time.Millisecond)
	if len(plain.got["row"]) > 0 {
		t.Errorf("the default tenant's subscriber received %s", plain.received())
	}
}

// TestSharedLogPayloadsKeepToTheirSelection: subscribers of one tenant to
// the log with the same selection share encoded payloads, but not with
// subscribers whose selection renders an event otherwise: data at another
// schema version (a literal, a variable, a variable's default), another
// alias; nor with another tenant's, or another role's. Each replays
// (after: 0) while one alike holds the payloads, so that what it is sent is
// what another encoded.
func TestSharedLogPayloadsKeepToTheirSelection(t *testing.T) {
	g, as := newTenantGateway(t)
	for _, tenant := range []string{"acme", "globex"} {
		for i := 1; i <= 3; i++ {
			out, _ := g.post(`mutation($n: String!) { appendEvents(stream: "note-1", events: [{type: "NoteTaken", data: {note: $n}}]) { position } }`,
				map[string]any{"n": fmt.Sprintf("%s-%d", tenant, i)}, as[tenant]...)
			if len(out.Errors) > 0 {
				t.Fatal(out.Errors)
			}
		}
	}
	// Version 2 of NoteTaken adds a field: events stored at version 1 are
	// migrated when read.
	var reg any
	g.mustPost(`mutation { registerEventSchema(type: "NoteTaken", schema: {type: "object"}, migration: [{op: DEFAULT, path: "/v2", value: "yes"}]) { version } }`,
		nil, &reg, "X-API-Key", adminKey)
	head := g.head()

	type variant struct {
		name, tenant, cred, query string
		vars                      map[string]any
		want                      string // in every payload
		not                       string // in none
	}
	v1, v2 := `"note"`, `"v2":"yes"`
	acmeReader := "Bearer " + scopedToken(t, "acme", "reader")
	variants := []variant{
		{"latest", "acme", acmeKey, `subscription { events(after: %d) { streamId data } }`, nil, v2, ""},
		{"literal 1", "acme", acmeKey, `subscription { events(after: %d) { streamId data(asVersion: 1) } }`, nil, v1, v2},
		{"literal 2", "acme", acmeKey, `subscription { events(after: %d) { streamId data(asVersion: 2) } }`, nil, v2, ""},
		{"variable 1", "acme", acmeKey, `subscription($v: Int) { events(after: %d) { streamId data(asVersion: $v) } }`, map[string]any{"v": 1}, v1, v2},
		{"variable 2", "acme", acmeKey, `subscription($v: Int) { events(after: %d) { streamId data(asVersion: $v) } }`, map[string]any{"v": 2}, v2, ""},
		{"default 1", "acme", acmeKey, `subscription($v: Int = 1) { events(after: %d) { streamId data(asVersion: $v) } }`, nil, v1, v2},
		{"default 2", "acme", acmeKey, `subscription($v: Int = 2) { events(after: %d) { streamId data(asVersion: $v) } }`, nil, v2, ""},
		{"alias", "acme", acmeKey, `subscription { e: events(after: %d) { streamId data(asVersion: 1) } }`, nil, `{"e":`, v2},
		{"reader", "acme", acmeReader, `subscription { events(after: %d) { streamId data(asVersion: 1) } }`, nil, `"acme-`, v2},
		{"globex", "globex", as["globex"][1], `subscription { events(after: %d) { streamId data(asVersion: 1) } }`, nil, `"globex-`, v2},
	}
	before := g.ws.SharedPayloads()
	var replayers []*subscriber
	for i, v := range variants {
		// One from now holds the payloads, one replays and encodes them,
		// then one replays them again: from the other's.
		holder := dialAs(t, g, v.name+" (from now)", v.tenant, v.cred, i%2 == 1)
		holder.subscribe("log", fmt.Sprintf(v.query, head), v.vars)
		for j := 0; j < 2; j++ {
			s := dialAs(t, g, fmt.Sprintf("%s (replay %d)", v.name, j), v.tenant, v.cred, j == 1)
			s.subscribe("log", fmt.Sprintf(v.query, 0), v.vars)
			s.until("3 events", func() bool { return len(s.got["log"]) >= 3 })
			replayers = append(replayers, s)
		}
	}
	for i, s := range replayers {
		v := variants[i/2]
		s.drain(100 * time.Millisecond)
		for _, m := range s.got["log"] {
			p := string(m.Payload)
			if !strings.Contains(p, v.want) || v.not != "" && strings.Contains(p, v.not) || !strings.Contains(p, `"`+v.tenant+"-") {
				t.Errorf("%s: %s %s; want %s and a note of %s in it, and not %q", s.name, m.Type, p, v.want, v.tenant, v.not)
			}
			if strings.Contains(p, "globex-") != (v.tenant == "globex") {
				t.Errorf("%s received another tenant's event: %s", s.name, p)
			}
		}
	}
	// The second replayer of each variant was sent what the first encoded.
	if shared := g.ws.SharedPayloads() - before; shared < int64(len(variants)) {
		t.Errorf("%d payloads shared; want at least %d (one a variant): the test does not test sharing", shared, len(variants))
	}
}

// TestSharedSubscriptionOutlivesItsFirstSubscribersCredential: the
// subscriber that started a shared execution has its connection closed
// when its credential expires (4403), and receives nothing after; the
// execution goes on for the subscriber that joined it, and a caller with
// another role is not joined to it.
func TestSharedSubscriptionOutlivesItsFirstSubscribersCredential(t *testing.T) {
	g := newFullGatewayWith(t, fullOptions{readTimeout: 5 * time.Second, auth: newAuthenticator(t)})
	g.mustMutate("openAccount", map[string]any{"accountId": "a1", "owner": "ada", "currency": "EUR", "initialDeposit": 10}, "X-API-Key", writerKey)
	const q = `subscription { accountChanged(id: "a1") { balance } }`
	// exp is whole seconds, and the leeway one more: it expires in 2 to 3s.
	first := dialAs(t, g, "first (expiring)", "", "Bearer "+token(t, "writer", time.Now().Add(time.Second)), false)
	first.subscribe("s", q, nil)
	waitFor(t, "the first subscriber's execution", func() bool { return g.ws.SharedSubscriptions() == 1 })
	joiner := dialAs(t, g, "joiner", "", "Bearer "+token(t, "writer", time.Now().Add(time.Hour)), true)
	joiner.subscribe("s", q, nil)
	reader := dialAs(t, g, "reader", "", readerKey, false)
	reader.subscribe("s", q, nil)
	waitFor(t, "every subscription to run", func() bool { return g.ws.Subscriptions() == 3 })
	if n := g.ws.SharedSubscriptions(); n != 2 {
		t.Errorf("%d shared executions; want 2 (writers, readers)", n)
	}

	if code, reason := first.c.closeFrame(); code != graph.CloseForbidden || reason != "Forbidden: credential expired" {
		t.Fatalf("the first subscriber: close %d %q, want 4403 Forbidden: credential expired", code, reason)
	}
	waitFor(t, "the first subscriber's leaving", func() bool { return g.ws.Subscriptions() == 2 })
	if n := g.ws.SharedSubscriptions(); n != 2 {
		t.Fatalf("%d shared executions once the first subscriber left; want 2", n)
	}
	g.mustMutate("depositMoney", map[string]any{"accountId": "a1", "amount": 5}, "X-API-Key", writerKey)
	for _, s := range []*subscriber{joiner, reader} {
		s.until("the deposit", func() bool { return s.has("s", `"balance":15`) })
	}
}
