package domain

import (
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestOrderRules(t *testing.T) {
	placed := OrderPlaced{CustomerID: "c1", Currency: "EUR", PlacedAt: testNow}
	withItem := []Event{placed, OrderItemAdded{Sku: "w", Quantity: 2, UnitPrice: 150, LineTotal: 300, OrderTotal: 300}}
	submitted := append(append([]Event{}, withItem...), OrderSubmitted{Subtotal: 300, Total: 300, Currency: "EUR", ItemCount: 2, SubmittedAt: testNow})
	confirmed := append(append([]Event{}, submitted...), OrderConfirmed{ConfirmedAt: testNow})
	shipped := append(append([]Event{}, confirmed...), OrderShipped{TrackingNumber: "T1", ShippedAt: testNow})
	cancelled := append(append([]Event{}, withItem...), OrderCancelled{Reason: "r", PreviousStatus: StatusOpen, CancelledAt: testNow})
	full := []Event{placed}
	for i := 0; i < MaxOrderLines; i++ {
		full = append(full, OrderItemAdded{Sku: "s" + string(rune('a'+i%26)) + string(rune('a'+i/26)), Quantity: 1, UnitPrice: 1, LineTotal: 1, OrderTotal: int64(i + 1)})
	}
	runGWT(t, Orders, []gwt{
		{name: "place", when: PlaceOrder{OrderID: "x1", CustomerID: "c1", Currency: "EUR"}, want: []Event{placed}},
		{name: "place twice", given: []Event{placed}, when: PlaceOrder{OrderID: "x1", CustomerID: "c1", Currency: "EUR"}, wantCode: RuleViolation, wantRule: RuleOrderExists},
		{name: "place without customer", when: PlaceOrder{OrderID: "x1", Currency: "EUR"}, wantCode: Invalid, wantFld: "customerId"},
		{name: "place with oversized customer", when: PlaceOrder{OrderID: "x1", CustomerID: strings.Repeat("c", 101), Currency: "EUR"}, wantCode: Invalid, wantFld: "customerId"},
		// The customer is an account id and a line's sku a product's:
		// ids no account or product can have are refused up front, not by
		// the saga after the order is submitted.
		{name: "place for a customer id with a space", when: PlaceOrder{OrderID: "x1", CustomerID: "cust 1", Currency: "EUR"}, wantCode: Invalid, wantFld: "customerId"},
		{name: "place for a customer id of another tenant", when: PlaceOrder{OrderID: "x1", CustomerID: "acme~cust", Currency: "EUR"}, wantCode: Invalid, wantFld: "customerId"},
		{name: "place with unknown currency", when: PlaceOrder{OrderID: "x1", CustomerID: "c1", Currency: "EU"}, wantCode: Invalid, wantFld: "currency"},

		{name: "add item", given: []Event{placed}, when: AddOrderItem{OrderID: "x1", Sku: "w", Quantity: 2, UnitPrice: 150},
			want: []Event{OrderItemAdded{Sku: "w", Quantity: 2, UnitPrice: 150, LineTotal: 300, OrderTotal: 300}}},
		{name: "add more of an item", given: withItem, when: AddOrderItem{OrderID: "x1", Sku: "w", Quantity: 1, UnitPrice: 150},
			want: []Event{OrderItemAdded{Sku: "w", Quantity: 1, UnitPrice: 150, LineTotal: 450, OrderTotal: 450}}},
		{name: "add a free item", given: withItem, when: AddOrderItem{OrderID: "x1", Sku: "gift", Quantity: 1},
			want: []Event{OrderItemAdded{Sku: "gift", Quantity: 1, LineTotal: 0, OrderTotal: 300}}},
		{name: "add an item at another price", given: withItem, when: AddOrderItem{OrderID: "x1", Sku: "w", Quantity: 1, UnitPrice: 99}, wantCode: RuleViolation, wantRule: RulePriceMismatch},
		{name: "add to an unknown order", when: AddOrderItem{OrderID: "x1", Sku: "w", Quantity: 1, UnitPrice: 1}, wantCode: NotFound},
		{name: "add zero", given: []Event{placed}, when: AddOrderItem{OrderID: "x1", Sku: "w", UnitPrice: 1}, wantCode: Invalid, wantFld: "quantity"},
		{name: "add negative quantity", given: []Event{placed}, when: AddOrderItem{OrderID: "x1", Sku: "w", Quantity: -1, UnitPrice: 1}, wantCode: Invalid, wantFld: "quantity"},
		{name: "add negative price", given: []Event{placed}, when: AddOrderItem{OrderID: "x1", Sku: "w", Quantity: 1, UnitPrice: -1}, wantCode: Invalid, wantFld: "unitPrice"},
		{name: "add without sku", given: []Event{placed}, when: AddOrderItem{OrderID: "x1", Quantity: 1, UnitPrice: 1}, wantCode: Invalid, wantFld: "sku"},
		{name: "add a sku with a space", given: []Event{placed}, when: AddOrderItem{OrderID: "x1", Sku: "p 1", Quantity: 1, UnitPrice: 1}, wantCode: Invalid, wantFld: "sku"},
		{name: "add a sku of another tenant", given: []Event{placed}, when: AddOrderItem{OrderID: "x1", Sku: "acme~p1", Quantity: 1, UnitPrice: 1}, wantCode: Invalid, wantFld: "sku"},
		{name: "add an oversized sku", given: []Event{placed}, when: AddOrderItem{OrderID: "x1", Sku: strings.Repeat("s", 65), Quantity: 1, UnitPrice: 1}, wantCode: Invalid, wantFld: "sku"},
		{name: "remove a line added before the sku rules", given: []Event{OrderPlaced{CustomerID: "cust 1", Currency: "EUR"}, OrderItemAdded{Sku: "p 1", Quantity: 1, UnitPrice: 5, LineTotal: 5, OrderTotal: 5}},
			when: RemoveOrderItem{OrderID: "x1", Sku: "p 1"}, want: []Event{OrderItemRemoved{Sku: "p 1", Quantity: 1, OrderTotal: 0}}},
		{name: "add too many units", given: withItem, when: AddOrderItem{OrderID: "x1", Sku: "w", Quantity: MaxOrderLineQuantity - 1, UnitPrice: 150}, wantCode: Invalid, wantFld: "quantity"},
		{name: "add units that overflow the line", given: withItem, when: AddOrderItem{OrderID: "x1", Sku: "w", Quantity: math.MaxInt64, UnitPrice: 150}, wantCode: Invalid, wantFld: "quantity"},
		{name: "add a line too many", given: full, when: AddOrderItem{OrderID: "x1", Sku: "one-more", Quantity: 1, UnitPrice: 1}, wantCode: RuleViolation, wantRule: RuleTooManyItems},
		{name: "add more to a line of a full order", given: full, when: AddOrderItem{OrderID: "x1", Sku: "saa", Quantity: 1, UnitPrice: 1},
			want: []Event{OrderItemAdded{Sku: "saa", Quantity: 1, UnitPrice: 1, LineTotal: 2, OrderTotal: MaxOrderLines + 1}}},
		{name: "add with an overflowing total", given: []Event{placed}, when: AddOrderItem{OrderID: "x1", Sku: "w", Quantity: 2, UnitPrice: math.MaxInt64/2 + 1}, wantCode: RuleViolation, wantRule: RuleAmountOverflow},
		{name: "add after submit", given: submitted, when: AddOrderItem{OrderID: "x1", Sku: "w", Quantity: 1, UnitPrice: 150}, wantCode: RuleViolation, wantRule: RuleOrderNotOpen},

		{name: "remove item", given: withItem, when: RemoveOrderItem{OrderID: "x1", Sku: "w"}, want: []Event{OrderItemRemoved{Sku: "w", Quantity: 2, OrderTotal: 0}}},
		{name: "remove an item not on the order", given: withItem, when: RemoveOrderItem{OrderID: "x1", Sku: "v"}, wantCode: RuleViolation, wantRule: RuleItemNotInOrder},
		// A sku the order holds no line of is checked as addOrderItem
		// checks it, not as free text; a line held is removed whatever its
		// sku (see "remove a line added before the sku rules").
		{name: "remove a sku with a space", given: withItem, when: RemoveOrderItem{OrderID: "x1", Sku: "w 1"}, wantCode: Invalid, wantFld: "sku"},
		{name: "remove a sku of another tenant", given: withItem, when: RemoveOrderItem{OrderID: "x1", Sku: "acme~w"}, wantCode: Invalid, wantFld: "sku"},
		{name: "remove a sku with an invisible character", given: withItem, when: RemoveOrderItem{OrderID: "x1", Sku: "w\u200b"}, wantCode: Invalid, wantFld: "sku"},
		{name: "remove an oversized sku", given: withItem, when: RemoveOrderItem{OrderID: "x1", Sku: strings.Repeat("s", 65)}, wantCode: Invalid, wantFld: "sku"},
		{name: "remove a sku no product can have after submit", given: submitted, when: RemoveOrderItem{OrderID: "x1", Sku: "w 1"}, wantCode: Invalid, wantFld: "sku"},
		{name: "remove a line added before the invisible-character rule", given: []Event{placed, OrderItemAdded{Sku: "p\u200b1", Quantity: 1, UnitPrice: 5, LineTotal: 5, OrderTotal: 5}},
			when: RemoveOrderItem{OrderID: "x1", Sku: "p\u200b1"}, want: []Event{OrderItemRemoved{Sku: "p\u200b1", Quantity: 1, OrderTotal: 0}}},
		{name: "remove after submit", given: submitted, when: RemoveOrderItem{OrderID: "x1", Sku: "w"}, wantCode: RuleViolation, wantRule: RuleOrderNotOpen},

		{name: "submit", given: withItem, when: SubmitOrder{OrderID: "x1"}, want: []Event{OrderSubmitted{Subtotal: 300, Total: 300, Currency: "EUR", ItemCount: 2, SubmittedAt: testNow}}},
		{name: "submit an empty order", given: []Event{placed}, when: SubmitOrder{OrderID: "x1"}, wantCode: RuleViolation, wantRule: RuleOrderEmpty},
		{name: "submit an emptied order", given: append(append([]Event{}, withItem...), OrderItemRemoved{Sku: "w", Quantity: 2}), when: SubmitOrder{OrderID: "x1"}, wantCode: RuleViolation, wantRule: RuleOrderEmpty},
		{name: "submit twice", given: submitted, when: SubmitOrder{OrderID: "x1"}, wantCode: RuleViolation, wantRule: RuleOrderNotOpen},

		{name: "confirm", given: submitted, when: ConfirmOrder{OrderID: "x1"}, want: []Event{OrderConfirmed{ConfirmedAt: testNow}}},
		{name: "confirm an open order", given: withItem, when: ConfirmOrder{OrderID: "x1"}, wantCode: RuleViolation, wantRule: RuleOrderNotSubmitted},

		{name: "ship", given: confirmed, when: ShipOrder{OrderID: "x1", TrackingNumber: "T1"}, want: []Event{OrderShipped{TrackingNumber: "T1", ShippedAt: testNow}}},
		{name: "ship unconfirmed", given: submitted, when: ShipOrder{OrderID: "x1", TrackingNumber: "T1"}, wantCode: RuleViolation, wantRule: RuleOrderNotConfirmed},
		{name: "ship without tracking number", given: confirmed, when: ShipOrder{OrderID: "x1"}, wantCode: Invalid, wantFld: "trackingNumber"},
		{name: "ship twice", given: shipped, when: ShipOrder{OrderID: "x1", TrackingNumber: "T2"}, wantCode: RuleViolation, wantRule: RuleOrderNotConfirmed},

		{name: "cancel open", given: withItem, when: CancelOrder{OrderID: "x1", Reason: "r"}, want: []Event{OrderCancelled{Reason: "r", PreviousStatus: StatusOpen, CancelledAt: testNow}}},
		{name: "cancel confirmed", given: confirmed, when: CancelOrder{OrderID: "x1", Reason: "out of stock"}, want: []Event{OrderCancelled{Reason: "out of stock", PreviousStatus: StatusConfirmed, CancelledAt: testNow}}},
		{name: "cancel shipped", given: shipped, when: CancelOrder{OrderID: "x1", Reason: "r"}, wantCode: RuleViolation, wantRule: RuleOrderShipped},
		{name: "cancel twice", given: cancelled, when: CancelOrder{OrderID: "x1", Reason: "r"}, wantCode: RuleViolation, wantRule: RuleOrderCancelled},
		{name: "cancel without reason", given: withItem, when: CancelOrder{OrderID: "x1"}, wantCode: Invalid, wantFld: "reason"},
		{name: "submit cancelled", given: cancelled, when: SubmitOrder{OrderID: "x1"}, wantCode: RuleViolation, wantRule: RuleOrderNotOpen},
	})
}

func TestOrderSnapshotRoundTrip(t *testing.T) {
	o := Orders.New("x1")
	for _, e := range []Event{OrderPlaced{CustomerID: "c", Currency: "EUR", PlacedAt: testNow}, OrderItemAdded{Sku: "b", Quantity: 1, UnitPrice: 5, LineTotal: 5, OrderTotal: 5},
		OrderItemAdded{Sku: "a", Quantity: 2, UnitPrice: 3, LineTotal: 6, OrderTotal: 11}, OrderSubmitted{Subtotal: 11, Total: 11, Currency: "EUR", ItemCount: 3, SubmittedAt: testNow}} {
		o.Apply(e)
	}
	raw, err := Orders.SaveState(o)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Orders.LoadState("x1", raw)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(o, p) || p.Total() != 11 || p.Status() != StatusSubmitted || len(p.Items()) != 2 || p.Items()[0].Sku != "a" {
		t.Fatalf("snapshot round trip: %+v became %+v", o, p)
	}
}
