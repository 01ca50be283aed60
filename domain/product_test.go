package domain

import (
	"crypto/sha256"
	"encoding/hex"
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestProductRules(t *testing.T) {
	added := ProductAdded{Name: "Widget", Price: 250, Currency: "EUR"}
	stocked := []Event{added, ProductRestocked{Quantity: 10, OnHand: 10}}
	held := append(append([]Event{}, stocked...), StockReserved{OrderID: "o1", Quantity: 4, Reserved: 4})
	runGWT(t, Products, []gwt{
		{name: "add", when: AddProduct{Sku: "x1", Name: "Widget", Price: 250, Currency: "EUR"}, want: []Event{added}},
		{name: "add twice", given: []Event{added}, when: AddProduct{Sku: "x1", Name: "Widget", Price: 250, Currency: "EUR"}, wantCode: RuleViolation, wantRule: RuleProductExists},
		{name: "add without name", when: AddProduct{Sku: "x1", Price: 250, Currency: "EUR"}, wantCode: Invalid, wantFld: "name"},
		{name: "add with oversized name", when: AddProduct{Sku: "x1", Name: strings.Repeat("n", 201), Price: 250, Currency: "EUR"}, wantCode: Invalid, wantFld: "name"},
		{name: "add with oversized sku", when: AddProduct{Sku: strings.Repeat("s", 65), Name: "W", Price: 250, Currency: "EUR"}, wantCode: Invalid, wantFld: "sku"},
		{name: "add with zero price", when: AddProduct{Sku: "x1", Name: "W", Currency: "EUR"}, wantCode: Invalid, wantFld: "price"},
		{name: "add with negative price", when: AddProduct{Sku: "x1", Name: "W", Price: -1, Currency: "EUR"}, wantCode: Invalid, wantFld: "price"},
		{name: "add with unknown currency", when: AddProduct{Sku: "x1", Name: "W", Price: 1, Currency: "ABC"}, wantCode: Invalid, wantFld: "currency"},

		{name: "restock", given: stocked, when: RestockProduct{Sku: "x1", Quantity: 5}, want: []Event{ProductRestocked{Quantity: 5, OnHand: 15}}},
		{name: "restock unknown product", when: RestockProduct{Sku: "x1", Quantity: 5}, wantCode: NotFound},
		{name: "restock zero", given: stocked, when: RestockProduct{Sku: "x1"}, wantCode: Invalid, wantFld: "quantity"},
		{name: "restock too much at once", given: stocked, when: RestockProduct{Sku: "x1", Quantity: MaxStockQuantity + 1}, wantCode: Invalid, wantFld: "quantity"},
		{name: "restock overflows", given: []Event{added, ProductRestocked{Quantity: math.MaxInt64, OnHand: math.MaxInt64}}, when: RestockProduct{Sku: "x1", Quantity: 1}, wantCode: RuleViolation, wantRule: RuleAmountOverflow},
		// The stock fits the API's 32-bit Int: up to MaxStock, no further.
		{name: "restock up to the most stock", given: []Event{added, ProductRestocked{Quantity: MaxStock - 5, OnHand: MaxStock - 5}}, when: RestockProduct{Sku: "x1", Quantity: 5}, want: []Event{ProductRestocked{Quantity: 5, OnHand: MaxStock}}},
		{name: "restock past the most stock", given: []Event{added, ProductRestocked{Quantity: MaxStock - 5, OnHand: MaxStock - 5}}, when: RestockProduct{Sku: "x1", Quantity: 6}, wantCode: RuleViolation, wantRule: RuleAmountOverflow},

		{name: "reserve", given: stocked, when: ReserveStock{Sku: "x1", OrderID: "o1", Quantity: 4}, want: []Event{StockReserved{OrderID: "o1", Quantity: 4, Reserved: 4}}},
		{name: "reserve all that is available", given: held, when: ReserveStock{Sku: "x1", OrderID: "o2", Quantity: 6}, want: []Event{StockReserved{OrderID: "o2", Quantity: 6, Reserved: 10}}},
		{name: "reserve beyond available", given: held, when: ReserveStock{Sku: "x1", OrderID: "o2", Quantity: 7}, wantCode: RuleViolation, wantRule: RuleInsufficientStock},
		{name: "reserve twice for one order", given: held, when: ReserveStock{Sku: "x1", OrderID: "o1", Quantity: 1}, wantCode: RuleViolation, wantRule: RuleAlreadyReserved},
		{name: "reserve without order", given: stocked, when: ReserveStock{Sku: "x1", Quantity: 1}, wantCode: Invalid, wantFld: "orderId"},
		{name: "reserve negative", given: stocked, when: ReserveStock{Sku: "x1", OrderID: "o1", Quantity: -1}, wantCode: Invalid, wantFld: "quantity"},
		{name: "reserve on unknown product", when: ReserveStock{Sku: "x1", OrderID: "o1", Quantity: 1}, wantCode: NotFound},
		// The order id is checked as an order's id is, not as free text.
		{name: "reserve for an order id with a space", given: stocked, when: ReserveStock{Sku: "x1", OrderID: "o 1", Quantity: 1}, wantCode: Invalid, wantFld: "orderId"},
		{name: "reserve for an order id of spaces", given: stocked, when: ReserveStock{Sku: "x1", OrderID: "   ", Quantity: 1}, wantCode: Invalid, wantFld: "orderId"},
		{name: "reserve for an order id with a tab", given: stocked, when: ReserveStock{Sku: "x1", OrderID: "o\t1", Quantity: 1}, wantCode: Invalid, wantFld: "orderId"},
		{name: "reserve for another tenant's order", given: stocked, when: ReserveStock{Sku: "x1", OrderID: "t~o1", Quantity: 1}, wantCode: Invalid, wantFld: "orderId"},
		{name: "reserve for an oversized order id", given: stocked, when: ReserveStock{Sku: "x1", OrderID: strings.Repeat("o", 101), Quantity: 1}, wantCode: Invalid, wantFld: "orderId"},
		{name: "reserve for an order id with a NUL", given: stocked, when: ReserveStock{Sku: "x1", OrderID: "o\x001", Quantity: 1}, wantCode: Invalid, wantFld: "orderId"},
		{name: "reserve for an order id of 100 bytes", given: stocked, when: ReserveStock{Sku: "x1", OrderID: strings.Repeat("o", 100), Quantity: 1},
			want: []Event{StockReserved{OrderID: strings.Repeat("o", 100), Quantity: 1, Reserved: 1}}},
		// An order placed before new ids were checked for invisible
		// characters can still have its stock reserved (by its saga).
		{name: "reserve for an order id older than the new-id rule", given: stocked, when: ReserveStock{Sku: "x1", OrderID: "o\u200b1", Quantity: 1},
			want: []Event{StockReserved{OrderID: "o\u200b1", Quantity: 1, Reserved: 1}}},

		{name: "release", given: held, when: ReleaseStock{Sku: "x1", OrderID: "o1"}, want: []Event{StockReleased{OrderID: "o1", Quantity: 4, Reserved: 0}}},
		{name: "release without reservation", given: stocked, when: ReleaseStock{Sku: "x1", OrderID: "o1"}, wantCode: RuleViolation, wantRule: RuleNoReservation},
		{name: "release for an order id with a space", given: held, when: ReleaseStock{Sku: "x1", OrderID: "o 1"}, wantCode: Invalid, wantFld: "orderId"},
		{name: "release for another tenant's order", given: held, when: ReleaseStock{Sku: "x1", OrderID: "t~o1"}, wantCode: Invalid, wantFld: "orderId"},
		{name: "release without order", given: held, when: ReleaseStock{Sku: "x1"}, wantCode: Invalid, wantFld: "orderId"},
		// A reservation made by hand before order ids were checked as ids
		// is released all the same.
		{name: "release a reservation made under free text", given: append(append([]Event{}, stocked...), StockReserved{OrderID: "order 1", Quantity: 3, Reserved: 3}),
			when: ReleaseStock{Sku: "x1", OrderID: "order 1"}, want: []Event{StockReleased{OrderID: "order 1", Quantity: 3, Reserved: 0}}},
		{name: "release twice", given: append(append([]Event{}, held...), StockReleased{OrderID: "o1", Quantity: 4, Reserved: 0}), when: ReleaseStock{Sku: "x1", OrderID: "o1"}, wantCode: RuleViolation, wantRule: RuleNoReservation},
		{name: "reserve again after release", given: append(append([]Event{}, held...), StockReleased{OrderID: "o1", Quantity: 4, Reserved: 0}), when: ReserveStock{Sku: "x1", OrderID: "o1", Quantity: 10},
			want: []Event{StockReserved{OrderID: "o1", Quantity: 10, Reserved: 10}}},

		{name: "change price", given: stocked, when: ChangePrice{Sku: "x1", Price: 300}, want: []Event{PriceChanged{OldPrice: 250, NewPrice: 300}}},
		{name: "change to the same price", given: stocked, when: ChangePrice{Sku: "x1", Price: 250}, want: nil},
		{name: "change to zero", given: stocked, when: ChangePrice{Sku: "x1"}, wantCode: Invalid, wantFld: "price"},
	})
}

func TestProductSnapshotRoundTrip(t *testing.T) {
	p := Products.New("x1")
	for _, e := range []Event{ProductAdded{Name: "W", Price: 1, Currency: "EUR"}, ProductRestocked{Quantity: 9, OnHand: 9}, StockReserved{OrderID: "b", Quantity: 2, Reserved: 2}, StockReserved{OrderID: "a", Quantity: 3, Reserved: 5}} {
		p.Apply(e)
	}
	raw, err := Products.SaveState(p)
	if err != nil {
		t.Fatal(err)
	}
	q, err := Products.LoadState("x1", raw)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(p, q) || q.Available() != 4 || q.ReservedFor("a") != 3 {
		t.Fatalf("snapshot round trip: %+v became %+v", p, q)
	}
}

// A reservation at a price is refused unless the catalogue has the same
// price and currency; one without a price takes any.
func TestReserveStockAtAPrice(t *testing.T) {
	given := []Event{ProductAdded{Name: "W", Price: 250, Currency: "EUR"}, ProductRestocked{Quantity: 5, OnHand: 5}}
	reserved := []Event{StockReserved{OrderID: "o1", Quantity: 2, Reserved: 2}}
	at := func(amount int64, currency string) *UnitPrice { return &UnitPrice{Amount: amount, Currency: currency} }
	runGWT(t, Products, []gwt{
		{name: "at the price", given: given, when: ReserveStock{Sku: "w", OrderID: "o1", Quantity: 2, AtPrice: at(250, "EUR")}, want: reserved},
		{name: "without a price", given: given, when: ReserveStock{Sku: "w", OrderID: "o1", Quantity: 2}, want: reserved},
		{name: "at another price", given: given, when: ReserveStock{Sku: "w", OrderID: "o1", Quantity: 2, AtPrice: at(249, "EUR")}, wantCode: RuleViolation, wantRule: RulePriceMismatch},
		{name: "at nothing", given: given, when: ReserveStock{Sku: "w", OrderID: "o1", Quantity: 2, AtPrice: at(0, "EUR")}, wantCode: RuleViolation, wantRule: RulePriceMismatch},
		{name: "in another currency", given: given, when: ReserveStock{Sku: "w", OrderID: "o1", Quantity: 2, AtPrice: at(250, "USD")}, wantCode: RuleViolation, wantRule: RuleCurrencyMismatch},
	})
}

// A reservation's price is not part of the command's identity: the
// saga's reservation step retried after an upgrade (made before the
// price existed, under the same idempotency key) is found as the first
// one, where its fingerprint changed and the retry was refused, the step
// recorded failed and a good order cancelled.
func TestReserveStockFingerprintLeavesThePriceOut(t *testing.T) {
	withPrice, err := commandFingerprint(ReserveStock{Sku: "p1", OrderID: "o1", Quantity: 2, AtPrice: &UnitPrice{Amount: 100, Currency: "EUR"}})
	if err != nil {
		t.Fatal(err)
	}
	// The fingerprint the command had before AtPrice existed.
	h := sha256.Sum256([]byte("ReserveStock\x00" + `{"Sku":"p1","OrderID":"o1","Quantity":2}`))
	if before := hex.EncodeToString(h[:16]); withPrice != before {
		t.Fatalf("fingerprint %s, want %s as before AtPrice", withPrice, before)
	}
}
