package graph_test

import (
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"cqrsgate/graph"
)

const balanceSub = `subscription($id: ID!, $after: Position) { accountChanged(id: $id, after: $after) { balance position } }`

// waitFor polls cond for up to 10s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestCoalescedSubscriptionsAreShared: subscribers of a @coalesced
// subscription with the same query and variables, started from now, share
// one execution whose encoded payloads go to each of them; one leaving does
// not end it for the others, and the last one leaving ends it.
func TestCoalescedSubscriptionsAreShared(t *testing.T) {
	g := newFullGateway(t, 5*time.Second)
	url := "ws" + strings.TrimPrefix(g.url, "http")
	g.mustMutate("openAccount", map[string]any{"accountId": "a1", "owner": "ada", "currency": "EUR", "initialDeposit": 100})
	g.mustMutate("openAccount", map[string]any{"accountId": "a2", "owner": "bob", "currency": "EUR", "initialDeposit": 100})

	var alike []*wsClient
	for i := 0; i < 3; i++ {
		c := (&wsServer{url: url}).dial(t, graph.ProtocolTransportWS)
		c.init()
		c.send(subscribeMsg("s", balanceSub, map[string]any{"id": "a1"}))
		alike = append(alike, c)
	}
	legacy := (&wsServer{url: url}).dial(t, graph.ProtocolLegacyWS)
	legacy.send(map[string]any{"type": "connection_init"})
	legacy.expect("connection_ack")
	legacy.send(map[string]any{"id": "L", "type": "start", "payload": map[string]any{"query": balanceSub, "variables": map[string]any{"id": "a1"}}})
	waitFor(t, "one shared execution for four alike subscribers", func() bool { return g.ws.SharedSubscriptions() == 1 })

	other := (&wsServer{url: url}).dial(t, graph.ProtocolTransportWS)
	other.init()
	other.send(subscribeMsg("a2", balanceSub, map[string]any{"id": "a2"}))
	other.send(subscribeMsg("resume", balanceSub, map[string]any{"id": "a1", "after": 0})) // resumes: runs on its own
	waitFor(t, "a second shared execution for other variables", func() bool { return g.ws.SharedSubscriptions() == 2 })

	dep := g.mustMutate("depositMoney", map[string]any{"accountId": "a1", "amount": 5})
	want := `{"data":{"accountChanged":{"balance":105,"position":` + itoa(dep.Position) + `}}}`
	// "From now" may begin with the row of a change committed just before the
	// subscription: read up to the deposit's row.
	upTo := func(c *wsClient, typ, want string) {
		t.Helper()
		for i := 0; ; i++ {
			m := c.expect(typ)
			if string(m.Payload) == want {
				return
			}
			if i == 1 {
				t.Fatalf("got %s, want %s", m.Payload, want)
			}
		}
	}
	for _, c := range alike {
		upTo(c, "next", want)
	}
	upTo(legacy, "data", want)
	// The resuming subscription replays from 0 on its own (coalesced into the latest row).
	for {
		m := other.expect("next")
		if m.ID == "a2" {
			continue // a2's row as of its opening, committed just before
		}
		if m.ID != "resume" || !strings.Contains(string(m.Payload), `"balance":10`) {
			t.Fatalf("resuming subscriber got %s %s", m.ID, m.Payload)
		}
		break
	}

	// One leaves; the others still receive.
	alike[0].send(map[string]any{"id": "s", "type": "complete"})
	dep = g.mustMutate("depositMoney", map[string]any{"accountId": "a1", "amount": 7})
	want = `{"data":{"accountChanged":{"balance":112,"position":` + itoa(dep.Position) + `}}}`
	for _, c := range alike[1:] {
		if m := c.expect("next"); string(m.Payload) != want {
			t.Fatalf("after one left: got %s, want %s", m.Payload, want)
		}
	}
	_ = alike[0].conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, data, err := alike[0].conn.ReadMessage(); err == nil {
		t.Fatalf("a completed subscriber received %s", data)
	}

	// The last one leaving ends the execution.
	for _, c := range alike[1:] {
		c.conn.Close()
	}
	legacy.conn.Close()
	waitFor(t, "the a1 execution to end with its last subscriber", func() bool { return g.ws.SharedSubscriptions() == 1 })
	other.conn.Close()
	waitFor(t, "no shared execution", func() bool { return g.ws.SharedSubscriptions() == 0 })
}

// TestCoalescedReplayLatest: a subscriber joining a running projectionStatus
// receives the latest status at once, not after the next interval.
func TestCoalescedReplayLatest(t *testing.T) {
	g := newFullGateway(t, 5*time.Second)
	url := "ws" + strings.TrimPrefix(g.url, "http")
	const q = `subscription { projectionStatus(intervalMs: 60000) { name } }`
	first := (&wsServer{url: url}).dial(t, graph.ProtocolTransportWS)
	first.init()
	first.send(subscribeMsg("s", q, nil))
	first.expect("next")
	second := (&wsServer{url: url}).dial(t, graph.ProtocolTransportWS)
	second.init()
	second.send(subscribeMsg("s", q, nil))
	if m := second.expect("next"); !strings.Contains(string(m.Payload), `{"data":{"projectionStatus":[`) { // read() waits at most 5s
		t.Fatalf("joining subscriber got %s", m.Payload)
	}
	if n := g.ws.SharedSubscriptions(); n != 1 {
		t.Fatalf("%d shared executions, want 1", n)
	}
}

// TestCoalescedSlowClientGetsLatestAndStays: a client that falls behind on a
// @coalesced subscription is not disconnected however many changes pile up
// (a log subscription would be, once its queue stays full); when it reads
// again it gets the latest row, not every intermediate one.
func TestCoalescedSlowClientGetsLatestAndStays(t *testing.T) {
	ws := &graph.Websocket{SendQueue: 2, WriteTimeout: 5 * time.Second}
	// Small server send buffers, so the backlog builds up in the gateway.
	g := newFullGatewayWith(t, fullOptions{readTimeout: 5 * time.Second, ws: ws, wrap: func(l net.Listener) net.Listener { return smallSendBuffers{l} }})
	url := "ws" + strings.TrimPrefix(g.url, "http")
	g.mustMutate("openAccount", map[string]any{"accountId": "a1", "owner": "ada", "currency": "EUR", "initialDeposit": 0})
	d := websocket.Dialer{Subprotocols: []string{graph.ProtocolTransportWS}, ReadBufferSize: 512}
	conn, _, err := d.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &wsClient{t: t, conn: conn}
	c.init()
	// A long selection makes each payload big enough to fill the buffers.
	sel := "balance position"
	for i := 0; i < 200; i++ {
		sel += " a" + strconv.Itoa(i) + ": balance"
	}
	c.send(subscribeMsg("s", `subscription { accountChanged(id: "a1") { `+sel+` } }`, nil))
	waitFor(t, "the subscription to start", func() bool { return ws.SharedSubscriptions() == 1 })
	const deposits = 300
	for i := 0; i < deposits; i++ {
		g.mustMutate("depositMoney", map[string]any{"accountId": "a1", "amount": 1})
	}
	if n := ws.Connections(); n != 1 {
		t.Fatalf("%d connections: the slow client of a coalesced subscription was disconnected", n)
	}
	var got int
	for {
		m := c.expect("next")
		got++
		if strings.Contains(string(m.Payload), `"balance":300,`) {
			break
		}
	}
	if got >= deposits {
		t.Fatalf("received %d rows for %d changes: nothing was coalesced", got, deposits)
	}
	t.Logf("%d changes reached the slow client as %d rows", deposits, got)
}

type smallSendBuffers struct{ net.Listener }

func (l smallSendBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(4096)
	}
	return c, err
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestRowSubscriptionsNeverRepeatAState: a row subscription resumed from
// the start of a long history, once the read model has caught up, sends the
// current row once, not once per replayed event.
func TestRowSubscriptionsNeverRepeatAState(t *testing.T) {
	g := newFullGateway(t, 5*time.Second)
	g.mustMutate("openAccount", map[string]any{"accountId": "a1", "owner": "ada", "currency": "EUR"})
	var last result
	for i := 0; i < 200; i++ {
		last = g.mustMutate("depositMoney", map[string]any{"accountId": "a1", "amount": 1})
	}
	var row struct{ Account struct{ Balance int } }
	g.mustPost(`query($at: Position) { account(id: "a1", atLeast: $at) { balance } }`, map[string]any{"at": last.Position}, &row)
	c := (&wsServer{url: "ws" + strings.TrimPrefix(g.url, "http")}).dial(t, graph.ProtocolTransportWS)
	c.init()
	c.send(subscribeMsg("s", balanceSub, map[string]any{"id": "a1", "after": 0}))
	want := `{"data":{"accountChanged":{"balance":200,"position":` + itoa(last.Position) + `}}}`
	for {
		m := c.expect("next")
		if string(m.Payload) == want {
			break
		}
	}
	_ = c.conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	if _, data, err := c.conn.ReadMessage(); err == nil {
		t.Fatalf("the same state again, or an older one: %s", data)
	}
}

// TestSharedSubscriptionThatFailsAtOnceSaysWhy: a shared subscription whose
// execution fails at once (an id no row can have) sends its error to the
// subscriber that started it, and to one that joined it as it failed, never
// a bare complete (the subscriber was made a member only after the
// execution had started, and missed its one payload now and then).
func TestSharedSubscriptionThatFailsAtOnceSaysWhy(t *testing.T) {
	g := newFullGateway(t, 5*time.Second)
	const n = 60
	clients := []*wsClient{dialAuth(t, g.url, nil), dialAuth(t, g.url, nil)}
	for _, c := range clients {
		c.init()
	}
	for i := 0; i < n; i++ {
		// Two connections subscribe to one failing id at once: the second
		// joins the first's execution, or starts its own.
		for _, c := range clients {
			c.send(subscribeMsg(strconv.Itoa(i), `subscription($id: ID!) { productChanged(sku: $id) { sku } }`, map[string]any{"id": "bad\x00" + strconv.Itoa(i)}))
		}
	}
	for k, c := range clients {
		told := map[string]bool{}
		for ended := 0; ended < n; {
			m := c.read()
			switch {
			case m.Type == "complete" && told[m.ID]:
				ended++
			case m.Type == "complete" || !strings.Contains(string(m.Payload), `"VALIDATION"`):
				t.Fatalf("client %d, subscription %s: %s %s before its VALIDATION error", k, m.ID, m.Type, m.Payload)
			default:
				told[m.ID] = true
			}
		}
	}
}
