package graph_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"cqrsgate/domain"
	"cqrsgate/graph"
)

// bigEvents appends n events of about 50 KB to stream.
func bigEvents(t *testing.T, s *wsServer, stream string, n int) {
	t.Helper()
	big := json.RawMessage(`{"blob": "` + strings.Repeat("x", 50_000) + `"}`)
	for i := 0; i < n; i++ {
		if _, err := s.store.Append(context.Background(), stream, domain.ExpectAny, domain.EventData{Type: "Big", SchemaVersion: 1, Data: big}); err != nil {
			t.Fatal(err)
		}
	}
}

// The payloads subscriptions share are kept only while two or more share
// them, and within a budget: an idle subscriber left alone with its
// selection kept every payload (32 MB in a review's test). (The budget of
// all caches: TestPayloadCachesShareOneBudget.)
func TestSharedPayloadsAreBounded(t *testing.T) {
	ws := &graph.Websocket{}
	s := newWSServer(t, ws)
	const q = `subscription { events(streamPrefix: "big-") { position data } }`
	a := s.dial(t, graph.ProtocolTransportWS)
	a.init()
	a.send(subscribeMsg("s", q, nil))
	b := s.dial(t, graph.ProtocolTransportWS)
	b.init()
	b.send(subscribeMsg("s", q, nil))
	waitFor(t, "two subscriptions", func() bool { return ws.Subscriptions() == 2 })
	const n = 200 // 10 MB
	bigEvents(t, s, "big-1", n)
	for i := 0; i < n; i++ {
		a.expect("next")
		b.expect("next")
	}
	if ws.SharedPayloads() == 0 || ws.CachedPayloadBytes() == 0 {
		t.Fatalf("nothing shared: %d shared, %d bytes cached", ws.SharedPayloads(), ws.CachedPayloadBytes())
	}
	if got := ws.CachedPayloadBytes(); got > 8<<20 {
		t.Errorf("one shared selection caches %d MB, want at most 8", got>>20)
	}
	b.send(map[string]any{"id": "s", "type": "complete"})
	waitFor(t, "one subscription", func() bool { return ws.Subscriptions() == 1 })
	if got := ws.CachedPayloadBytes(); got != 0 {
		t.Errorf("a subscriber alone with its selection keeps %d bytes of payloads", got)
	}
}

// The limit is on operations running: one the client has completed no
// longer runs (its id is free at once), so a client at the limit that
// completes one and subscribes another is within it.
func TestCompletedOperationsDoNotCountAgainstTheLimit(t *testing.T) {
	s := newWSServer(t, &graph.Websocket{MaxSubscriptions: 2})
	appendN(t, s.store, "lim-1", 1)
	c := s.dial(t, graph.ProtocolTransportWS)
	c.init()
	c.send(subscribeMsg("keep", eventsSubscription, nil))
	c.send(subscribeMsg("s0", eventsSubscription, nil))
	c.expect("next")
	c.expect("next")
	for i := 1; i <= 20; i++ {
		// Complete the previous one and start the next, in one segment.
		next, _ := json.Marshal(subscribeMsg(fmt.Sprintf("s%d", i), eventsSubscription, nil))
		b := append(clientFrame(fmt.Sprintf(`{"id":"s%d","type":"complete"}`, i-1)), clientFrame(string(next))...)
		if _, err := c.conn.NetConn().Write(b); err != nil {
			t.Fatal(err)
		}
		_ = c.conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		for {
			var m wsMsg
			if err := c.conn.ReadJSON(&m); err != nil {
				t.Fatalf("round %d: %v", i, err)
			}
			if m.ID == fmt.Sprintf("s%d", i) {
				if m.Type != "next" {
					t.Fatalf("round %d: with 1 of 2 operations running, a new one got %s %s", i, m.Type, m.Payload)
				}
				break
			}
		}
	}
}

// A subscription whose root field a directive leaves out is the client's
// mistake: a validation error, not an INTERNAL error from a panic (the
// generated code calls the nil stream it returned after "must subscribe to
// exactly one stream").
func TestSkippedRootSubscriptionFieldIsAValidationError(t *testing.T) {
	s := newWSServer(t, &graph.Websocket{})
	c := s.dial(t, graph.ProtocolTransportWS)
	c.init()
	c.send(subscribeMsg("s", `subscription($off: Boolean!) { events @include(if: $off) { position } }`, map[string]any{"off": false}))
	m := c.read()
	if m.Type != "error" || !strings.Contains(string(m.Payload), "GRAPHQL_VALIDATION_FAILED") {
		t.Fatalf("got %s %s, want an error message with GRAPHQL_VALIDATION_FAILED", m.Type, m.Payload)
	}
}

// orderChanged by customer sends each order's changes, but never the same
// state twice ("nothing duplicated"; accountChanged has the same guarantee,
// TestRowSubscriptionsNeverRepeatAState).
func TestOrderChangedByCustomerNeverRepeatsAState(t *testing.T) {
	g := newFullGateway(t, 5*time.Second)
	g.mustMutate("placeOrder", map[string]any{"orderId": "o1", "customerId": "c1", "currency": "EUR"})
	g.mustMutate("addOrderItem", map[string]any{"orderId": "o1", "sku": "p1", "quantity": 1, "unitPrice": 100})
	g.mustMutate("addOrderItem", map[string]any{"orderId": "o1", "sku": "p2", "quantity": 2, "unitPrice": 50})
	last := g.mustMutate("submitOrder", map[string]any{"orderId": "o1"})
	var row struct{ Order struct{ Status string } }
	g.mustPost(`query($at: Position) { order(id: "o1", atLeast: $at) { status } }`, map[string]any{"at": last.Position}, &row)

	c := (&wsServer{url: "ws" + strings.TrimPrefix(g.url, "http")}).dial(t, graph.ProtocolTransportWS)
	c.init()
	c.send(subscribeMsg("s", `subscription { orderChanged(customerId: "c1", after: 0) { id status total position } }`, nil))
	seen := map[string]int{}
	_ = c.conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	for {
		var m wsMsg
		if err := c.conn.ReadJSON(&m); err != nil {
			break
		}
		seen[string(m.Payload)]++
	}
	for p, n := range seen {
		if n > 1 {
			t.Errorf("the same state sent %d times: %s", n, p)
		}
	}
}

// After the client's complete, nothing more is sent for its id (the
// graphql-transport-ws spec, Complete: "No further events, relevant to the
// original subscription, should be sent through"). An operation whose
// document fails validation still sends its error after the complete: here
// to an id the client has since reused, whose operation (a live
// subscription) the error then appears to end.
func TestNoErrorAfterTheClientsComplete(t *testing.T) {
	s := newWSServer(t, &graph.Websocket{})
	c := s.dial(t, graph.ProtocolTransportWS)
	c.init()
	// A document that takes the server a moment to validate, and fails.
	bad := `subscription { events { ` + strings.Repeat("position streamId type ", 300) + ` nope } }`
	sub, _ := json.Marshal(subscribeMsg("x", bad, nil))
	again, _ := json.Marshal(subscribeMsg("x", eventsSubscription, nil))
	var b []byte
	b = append(b, clientFrame(string(sub))...)
	b = append(b, clientFrame(`{"id":"x","type":"complete"}`)...)
	b = append(b, clientFrame(string(again))...) // the id is free again
	if _, err := c.conn.NetConn().Write(b); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		_ = c.conn.SetReadDeadline(deadline)
		var m wsMsg
		if err := c.conn.ReadJSON(&m); err != nil {
			break
		}
		if m.ID == "x" && m.Type != "next" {
			t.Fatalf("after the client completed the first x and subscribed x again, the server sent %s %.150s", m.Type, m.Payload)
		}
	}
}

// Operations the client completed but that still run (validating a large
// document ignores cancellation) count, up to as many again as the limit:
// a loop of subscribe and complete ran 80 at once with a limit of 2.
func TestCompletedOperationsDoNotPileUp(t *testing.T) {
	ws := &graph.Websocket{MaxSubscriptions: 2}
	s := newWSServer(t, ws)
	c := s.dial(t, graph.ProtocolTransportWS)
	c.init()
	var b []byte
	const n = 80
	for i := 0; i < n; i++ {
		// A distinct, slow-to-validate (and invalid) document each time.
		doc := fmt.Sprintf(`subscription Q%d { events { `, i) + strings.Repeat("position streamId type ", 1500) + ` nope } }`
		sub, _ := json.Marshal(subscribeMsg("x", doc, nil))
		b = append(b, clientFrame(string(sub))...)
		b = append(b, clientFrame(`{"id":"x","type":"complete"}`)...)
	}
	if _, err := c.conn.NetConn().Write(b); err != nil {
		t.Fatal(err)
	}
	peak := 0
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		n := ws.Subscriptions()
		peak = max(peak, n)
		if n == 0 && peak > 0 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if peak > 4 {
		t.Fatalf("MaxSubscriptions is 2, but %d operations ran on one connection at once (completed ones count up to as many again)", peak)
	}
}
