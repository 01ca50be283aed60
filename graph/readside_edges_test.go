package graph_test

import (
	"encoding/json"
	"testing"
	"time"
)

// TestFilterWithNULIsValidation: a filter value holding a NUL (which no
// stored text can hold) is the client's error, as it is for ids and
// cursors: it came back INTERNAL.
func TestFilterWithNULIsValidation(t *testing.T) {
	g := newFullGateway(t, 2*time.Second)
	for _, q := range []string{
		`query($s: String) { accounts(filter: {owner: $s}) { totalCount } }`,
		`query($s: String) { accounts(filter: {status: $s}) { totalCount } }`,
		`query($s: String) { accounts(filter: {currency: $s}) { totalCount } }`,
		`query($s: String) { orders(filter: {status: $s}) { totalCount } }`,
		`query($s: String) { orders(filter: {customerId: $s}) { totalCount } }`,
		`query($s: String!) { customerOrders(customerId: $s) { totalCount } }`,
		`query($s: String) { events(correlationId: $s) { next } }`,
		`query($s: String!) { events(types: [$s]) { next } }`,
	} {
		out, _ := g.post(q, map[string]any{"s": "a\x00"})
		if len(out.Errors) != 1 || out.Errors[0].Extensions["code"] != "VALIDATION" {
			t.Errorf("%s with a NUL: %+v, want VALIDATION", q, out.Errors)
		}
	}
}

// TestEventsEmptyStreamIsNotEveryStream: events(stream: "") names no
// stream, and is VALIDATION as stream(id: "") is; a caller of the default
// tenant got every stream.
func TestEventsEmptyStreamIsNotEveryStream(t *testing.T) {
	g := newFullGateway(t, 2*time.Second)
	last := g.mustMutate("openAccount", map[string]any{"accountId": "a1", "owner": "ada", "currency": "EUR"}).Position
	g.mustMutate("placeOrder", map[string]any{"orderId": "o1", "customerId": "c1", "currency": "EUR"})
	for deadline := time.Now().Add(5 * time.Second); g.head() < last && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	out, _ := g.post(`{ events(stream: "") { events { streamId } } }`, nil)
	if len(out.Errors) != 1 || out.Errors[0].Extensions["field"] != "stream" {
		t.Errorf(`events(stream: "") = %s %+v, want VALIDATION on stream, not the whole log`, out.Data["events"], out.Errors)
	}
}

// TestStockFitsItsIntFields: a product's stock is a GraphQL Int (32 bits);
// three restocks of the largest quantity took it to 3000000000, which the
// API then gave as an Int. The third is refused.
func TestStockFitsItsIntFields(t *testing.T) {
	g := newFullGateway(t, 2*time.Second)
	g.mustMutate("addProduct", map[string]any{"sku": "p1", "name": "W", "price": 1, "currency": "EUR"})
	var last int64
	for i := 0; i < 3; i++ {
		r, err := g.mutate("restockProduct", map[string]any{"sku": "p1", "quantity": 1_000_000_000})
		if i == 2 {
			wantError(t, "the third restock", err, "RULE_VIOLATION", "rule", "AMOUNT_OVERFLOW")
			continue
		}
		if err != nil {
			t.Fatalf("restock %d: %+v", i, err)
		}
		last = r.Position
	}
	out, _ := g.post(`query($p: Position) { product(sku: "p1", atLeast: $p) { onHand available } }`, map[string]any{"p": last})
	var p struct{ OnHand, Available int64 }
	_ = json.Unmarshal(out.Data["product"], &p)
	if p.OnHand > 1<<31-1 || p.Available > 1<<31-1 {
		t.Errorf("product = %s: an Int beyond 32 bits", out.Data["product"])
	}
}

// TestCursorOfAnotherListIsRefused: a cursor of another list is a
// VALIDATION error on after, as one the gateway did not give is; it was
// taken for a key of the list, and gave a wrong page.
func TestCursorOfAnotherListIsRefused(t *testing.T) {
	g := newFullGateway(t, 2*time.Second)
	last := g.mustMutate("openAccount", map[string]any{"accountId": "a1", "owner": "ada", "currency": "EUR"}).Position
	var orders struct {
		Orders struct{ Edges []struct{ Cursor string } }
	}
	// At the order's own position: the log's readable head can still be
	// short of it (an older transaction holds it back), and the orders
	// read model then had no order to list.
	placed := g.mustMutate("placeOrder", map[string]any{"orderId": "o1", "customerId": "c1", "currency": "EUR"}).Position
	g.mustPost(`query($p: Position) { orders(first: 1, atLeast: $p) { edges { cursor } } }`, map[string]any{"p": placed}, &orders)
	if len(orders.Orders.Edges) != 1 {
		t.Fatalf("orders: %+v", orders)
	}
	orderCursor := orders.Orders.Edges[0].Cursor
	for _, q := range []string{
		`query($a: String, $p: Position) { accounts(after: $a, atLeast: $p) { totalCount } }`,
		`query($a: String, $p: Position) { products(after: $a, atLeast: $p) { totalCount } }`,
		`query($a: String, $p: Position) { fulfilments(after: $a, atLeast: $p) { totalCount } }`,
	} {
		out, _ := g.post(q, map[string]any{"a": orderCursor, "p": last})
		if len(out.Errors) != 1 || out.Errors[0].Extensions["field"] != "after" {
			t.Errorf("%s with an orders cursor: data %s errors %+v, want VALIDATION on after", q, out.Data, out.Errors)
		}
	}
}

// TestEventsHeadPastTheEnd: EventPage.head is the highest position
// readable; read after a position past the log's end, it answered that
// position (head 99999999999 on a log of 2), telling a reader that had
// overshot it was caught up.
func TestEventsHeadPastTheEnd(t *testing.T) {
	g := newFullGateway(t, 2*time.Second)
	last := g.mustMutate("openAccount", map[string]any{"accountId": "a1", "owner": "ada", "currency": "EUR"}).Position
	for deadline := time.Now().Add(5 * time.Second); g.head() < last && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	var out struct{ Events struct{ Head, Next int64 } }
	g.mustPost(`{ events(after: 99999999999) { head next } }`, nil, &out)
	if out.Events.Head != g.head() {
		t.Errorf("events(after: 99999999999) head = %d, next = %d; the log's head is %d", out.Events.Head, out.Events.Next, g.head())
	}
}
