package graph_test

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"
)

// An edited cursor is a VALIDATION error on after, whatever its bytes:
// ones PostgreSQL's text cannot hold (invalid UTF-8, NUL) came back as
// INTERNAL, and a statement cursor with trailing garbage was taken.
func TestEditedCursorsAreRefused(t *testing.T) {
	g := newFullGateway(t, 5*time.Second)
	last := g.mustMutate("openAccount", map[string]any{"accountId": "a1", "owner": "ada", "currency": "EUR", "initialDeposit": 1}).Position
	b64 := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	for _, c := range []struct{ query, cursor string }{
		{`accounts(after: $a, atLeast: $p) { totalCount }`, b64("account:\xff")},
		{`accounts(after: $a, atLeast: $p) { totalCount }`, b64("account:a\x00")},
		{`accounts(after: $a, atLeast: $p) { totalCount }`, b64("a1")}, // no list
		{`products(after: $a, atLeast: $p) { totalCount }`, b64("product:\xff")},
		{`fulfilments(after: $a, atLeast: $p) { totalCount }`, b64("fulfilment:\xff")},
		{`orders(after: $a, atLeast: $p) { totalCount }`, b64("order.placed:2026-01-01T00:00:00Z|\xff")},
		{`orders(after: $a, atLeast: $p, orderBy: {field: TOTAL}) { totalCount }`, b64("order.total:5|\x00")},
		{`orders(after: $a, atLeast: $p, orderBy: {field: TOTAL}) { totalCount }`, b64("order.placed:2026-01-01T00:00:00Z|o1")}, // another order's
		{`accountStatement(id: "a1", after: $a, atLeast: $p) { totalCount }`, b64("statement:5abc")},
		{`accountStatement(id: "a1", after: $a, atLeast: $p) { totalCount }`, b64("statement:1 2")},
		{`accountStatement(id: "a1", after: $a, atLeast: $p) { totalCount }`, b64("statement:-1")},
		{`accountStatement(id: "a1", after: $a, atLeast: $p) { totalCount }`, b64("statement:2026-01-01T00:00:00Z|o1")},
	} {
		out, _ := g.post(`query($a: String, $p: Position) { `+c.query+` }`, map[string]any{"a": c.cursor, "p": last})
		if len(out.Errors) != 1 || out.Errors[0].Extensions["code"] != "VALIDATION" || out.Errors[0].Extensions["field"] != "after" {
			t.Errorf("%s with cursor %q: errors %+v, want one VALIDATION on after", c.query, c.cursor, out.Errors)
		}
	}
	// A cursor the gateway gave is still taken.
	out, _ := g.post(`query($a: String, $p: Position) { accountStatement(id: "a1", first: 1, after: $a, atLeast: $p) { totalCount } }`, map[string]any{"a": b64("statement:1"), "p": last})
	if len(out.Errors) > 0 {
		t.Errorf("statement cursor 1: %+v", out.Errors)
	}
	// first: 0 is out of range, and the error says 0.
	out, _ = g.post(`{ accounts(first: 0) { totalCount } }`, nil)
	if len(out.Errors) != 1 || out.Errors[0].Extensions["field"] != "first" || !strings.Contains(out.Errors[0].Message, "got 0") {
		t.Errorf("accounts(first: 0): %+v, want VALIDATION on first saying it got 0", out.Errors)
	}
}

// An id with a NUL or bytes that are not UTF-8 (PostgreSQL's text holds
// neither) is a VALIDATION error naming it, in queries and subscriptions,
// not an INTERNAL one.
func TestIDsNoRowCanHaveAreRefused(t *testing.T) {
	g := newFullGateway(t, 5*time.Second)
	for _, q := range []string{
		`query($id: ID!) { account(id: $id) { id } }`,
		`query($id: ID!) { order(id: $id) { id } }`,
		`query($id: ID!) { product(sku: $id) { sku } }`,
		`query($id: ID!) { fulfilment(orderId: $id) { orderId } }`,
		`query($id: ID!) { accountStatement(id: $id) { totalCount } }`,
	} {
		out, _ := g.post(q, map[string]any{"id": "a\x00"})
		if len(out.Errors) != 1 || out.Errors[0].Extensions["code"] != "VALIDATION" {
			t.Errorf("%s with a NUL: %+v, want VALIDATION", q, out.Errors)
		}
	}
	for i, q := range []string{
		`subscription($id: ID!) { accountChanged(id: $id) { id } }`,
		`subscription($id: ID!) { orderChanged(id: $id) { id } }`,
		`subscription($id: ID!) { productChanged(sku: $id) { sku } }`,
	} {
		c := dialAuth(t, g.url, nil)
		c.init()
		c.send(subscribeMsg(fmt.Sprint(i), q, map[string]any{"id": "a\x00"}))
		if m := c.read(); !strings.Contains(string(m.Payload), `"VALIDATION"`) {
			t.Errorf("%s with a NUL: %s %s, want VALIDATION", q, m.Type, m.Payload)
		}
	}
}
