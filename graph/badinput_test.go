package graph_test

import (
	"strings"
	"testing"
	"time"
)

// The write paths not covered by TestCommandBadInputWritesNothing get bad
// input too: each is refused with the code (and field) that says what is
// wrong, and nothing is written.
func TestMoreCommandsRefuseBadInput(t *testing.T) {
	g := newPGGateway(t)
	g.mustMutate("openAccount", map[string]any{"accountId": "a1", "owner": "ada", "currency": "EUR", "initialDeposit": 100})
	g.mustMutate("addProduct", map[string]any{"sku": "p1", "name": "Widget", "price": 100, "currency": "EUR"})
	g.mustMutate("restockProduct", map[string]any{"sku": "p1", "quantity": 5})
	g.mustMutate("placeOrder", map[string]any{"orderId": "o1", "customerId": "c1", "currency": "EUR"})
	g.mustMutate("addOrderItem", map[string]any{"orderId": "o1", "sku": "p1", "quantity": 1, "unitPrice": 100})
	head := g.head()
	long := strings.Repeat("x", 1000)
	g.wantRefused([]badInput{
		{"unfreeze: empty id", "unfreezeAccount", map[string]any{"accountId": ""}, "VALIDATION", "accountId"},
		{"unfreeze: unknown account", "unfreezeAccount", map[string]any{"accountId": "nobody"}, "NOT_FOUND", ""},
		{"unfreeze: not frozen", "unfreezeAccount", map[string]any{"accountId": "a1"}, "RULE_VIOLATION", ""},
		{"fee: zero", "chargeFee", map[string]any{"accountId": "a1", "amount": 0, "reason": "r"}, "VALIDATION", "amount"},
		{"fee: negative", "chargeFee", map[string]any{"accountId": "a1", "amount": -1, "reason": "r"}, "VALIDATION", "amount"},
		{"fee: empty reason", "chargeFee", map[string]any{"accountId": "a1", "amount": 1, "reason": " "}, "VALIDATION", "reason"},
		{"fee: reason with a control character", "chargeFee", map[string]any{"accountId": "a1", "amount": 1, "reason": "a\x01"}, "VALIDATION", "reason"},
		{"fee: oversized reason", "chargeFee", map[string]any{"accountId": "a1", "amount": 1, "reason": long}, "VALIDATION", "reason"},
		{"remove item: empty sku", "removeOrderItem", map[string]any{"orderId": "o1", "sku": ""}, "VALIDATION", "sku"},
		{"remove item: sku not in the order", "removeOrderItem", map[string]any{"orderId": "o1", "sku": "p9"}, "RULE_VIOLATION", ""},
		// Skus are checked as addOrderItem's are, not as free text, unless the order holds the line.
		{"remove item: sku with a space", "removeOrderItem", map[string]any{"orderId": "o1", "sku": "p 1"}, "VALIDATION", "sku"},
		{"remove item: sku of another tenant", "removeOrderItem", map[string]any{"orderId": "o1", "sku": "acme~p1"}, "VALIDATION", "sku"},
		{"remove item: unknown order", "removeOrderItem", map[string]any{"orderId": "o9", "sku": "p1"}, "NOT_FOUND", ""},
		{"confirm: id with a tab", "confirmOrder", map[string]any{"orderId": "o\t1"}, "VALIDATION", "orderId"},
		{"confirm: not submitted", "confirmOrder", map[string]any{"orderId": "o1"}, "RULE_VIOLATION", ""},
		{"cancel: empty reason", "cancelOrder", map[string]any{"orderId": "o1", "reason": ""}, "VALIDATION", "reason"},
		{"cancel: reason with a bidi override", "cancelOrder", map[string]any{"orderId": "o1", "reason": "x\u202e"}, "VALIDATION", "reason"},
		{"cancel: oversized reason", "cancelOrder", map[string]any{"orderId": "o1", "reason": long}, "VALIDATION", "reason"},
		{"ship: empty tracking number", "shipOrder", map[string]any{"orderId": "o1", "trackingNumber": ""}, "VALIDATION", "trackingNumber"},
		{"ship: tracking number with a newline", "shipOrder", map[string]any{"orderId": "o1", "trackingNumber": "a\nb"}, "VALIDATION", "trackingNumber"},
		{"ship: not confirmed", "shipOrder", map[string]any{"orderId": "o1", "trackingNumber": "T1"}, "RULE_VIOLATION", ""},
		{"reserve: zero", "reserveStock", map[string]any{"sku": "p1", "orderId": "o1", "quantity": 0}, "VALIDATION", "quantity"},
		{"reserve: negative", "reserveStock", map[string]any{"sku": "p1", "orderId": "o1", "quantity": -2}, "VALIDATION", "quantity"},
		{"reserve: empty order id", "reserveStock", map[string]any{"sku": "p1", "orderId": "", "quantity": 1}, "VALIDATION", "orderId"},
		{"reserve: more than on hand", "reserveStock", map[string]any{"sku": "p1", "orderId": "o1", "quantity": 6}, "RULE_VIOLATION", ""},
		{"reserve: unknown product", "reserveStock", map[string]any{"sku": "p9", "orderId": "o1", "quantity": 1}, "NOT_FOUND", ""},
		// Order ids are checked as ids, as placeOrder's and the order reads' are, not as free text.
		{"reserve: order id with a space", "reserveStock", map[string]any{"sku": "p1", "orderId": "o 1", "quantity": 1}, "VALIDATION", "orderId"},
		{"reserve: order id with a leading space", "reserveStock", map[string]any{"sku": "p1", "orderId": " o1", "quantity": 1}, "VALIDATION", "orderId"},
		{"reserve: order id of another tenant", "reserveStock", map[string]any{"sku": "p1", "orderId": "acme~o1", "quantity": 1}, "VALIDATION", "orderId"},
		{"reserve: oversized order id", "reserveStock", map[string]any{"sku": "p1", "orderId": strings.Repeat("o", 101), "quantity": 1}, "VALIDATION", "orderId"},
		{"release: order id with a control character", "releaseStock", map[string]any{"sku": "p1", "orderId": "o\x7f1"}, "VALIDATION", "orderId"},
		{"release: order id with a space", "releaseStock", map[string]any{"sku": "p1", "orderId": "o 1"}, "VALIDATION", "orderId"},
		{"release: order id of another tenant", "releaseStock", map[string]any{"sku": "p1", "orderId": "acme~o1"}, "VALIDATION", "orderId"},
		{"release: nothing reserved", "releaseStock", map[string]any{"sku": "p1", "orderId": "o1"}, "RULE_VIOLATION", ""},
		{"price: zero", "changePrice", map[string]any{"sku": "p1", "price": 0}, "VALIDATION", "price"},
		{"price: negative", "changePrice", map[string]any{"sku": "p1", "price": -100}, "VALIDATION", "price"},
		{"price: empty sku", "changePrice", map[string]any{"sku": "", "price": 1}, "VALIDATION", "sku"},
		{"price: not a number", "changePrice", map[string]any{"sku": "p1", "price": "ten"}, "VALIDATION", ""},
	})
	if g.head() != head {
		t.Fatalf("bad input wrote events: head %d, was %d", g.head(), head)
	}
}

// The schema registry's other mutations get bad input too: each refusal
// says what is wrong and changes nothing.
func TestRegistryMutationsRefuseBadInput(t *testing.T) {
	g := newFullGateway(t, 5*time.Second)
	g.mustPost(`mutation { registerEventSchema(type: "NoteTaken", schema: {type: "object"}) { version } }`, nil, &struct{}{})
	for _, c := range []struct {
		name, query string
		code, field string
	}{
		{"compatibility of an unnamed type", `mutation { setEventCompatibility(type: "", mode: FULL) { name } }`, "VALIDATION", "type"},
		{"compatibility of an unknown type", `mutation { setEventCompatibility(type: "Nope", mode: FULL) { name } }`, "NOT_FOUND", ""},
		{"compatibility with an unknown mode", `mutation { setEventCompatibility(type: "NoteTaken", mode: SOMETIMES) { name } }`, "GRAPHQL_VALIDATION_FAILED", ""},
		{"deprecating an unknown type", `mutation { deprecateEventSchema(type: "Nope", version: 1) { version } }`, "NOT_FOUND", ""},
		{"deprecating a version that does not exist", `mutation { deprecateEventSchema(type: "NoteTaken", version: 7) { version } }`, "NOT_FOUND", ""},
		{"deprecating the latest version", `mutation { deprecateEventSchema(type: "NoteTaken", version: 1) { version } }`, "VALIDATION", ""},
		{"checking a schema that is not an object", `mutation { checkEventSchema(type: "NoteTaken", schema: 5) { compatible } }`, "VALIDATION", ""},
		{"checking a type with a space", `mutation { checkEventSchema(type: "Note Taken", schema: {type: "object"}) { compatible } }`, "VALIDATION", "type"},
	} {
		out, _ := g.post(c.query, nil)
		if len(out.Errors) != 1 || out.Errors[0].Extensions["code"] != c.code || c.field != "" && out.Errors[0].Extensions["field"] != c.field {
			t.Errorf("%s: %+v, want %s field %q", c.name, out.Errors, c.code, c.field)
		}
	}
	var types struct {
		EventTypes []struct {
			Name          string
			Compatibility string
			LatestVersion int
		}
	}
	g.mustPost(`{ eventTypes { name compatibility latestVersion } }`, nil, &types)
	found := false
	for _, et := range types.EventTypes {
		if et.Name == "NoteTaken" {
			found = true
			if et.LatestVersion != 1 || et.Compatibility != "BACKWARD" {
				t.Errorf("NoteTaken after refused changes: %+v", et)
			}
		}
	}
	if !found {
		t.Errorf("NoteTaken is gone: %+v", types.EventTypes)
	}
}
