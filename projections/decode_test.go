package projections

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"cqrsgate/domain"
)

// The white-box tests of the payload decoders: the fast path must give
// exactly what the domain's decoder gives, and leave everything else to it.

func domainDecode(eventType string, data []byte) (domain.Event, error) {
	if strings.HasPrefix(eventType, "Order") {
		return domain.Orders.Decode(eventType, 1, data)
	}
	return domain.Accounts.Decode(eventType, 1, data)
}

func fastDecode(eventType string, data []byte) (domain.Event, bool) {
	if strings.HasPrefix(eventType, "Order") {
		return fastOrderEvent(eventType, data)
	}
	return fastAccountEvent(eventType, data)
}

// fastEvents are the events with a fast path, with every field set.
func fastEvents() []domain.Event {
	at := time.Date(2026, 3, 1, 12, 30, 45, 123456789, time.UTC)
	return []domain.Event{
		domain.AccountOpened{Owner: "ada", Currency: "EUR", OverdraftLimit: 500, DailyWithdrawalLimit: 100000, OpenedAt: at},
		domain.MoneyDeposited{Amount: 1, BalanceAfter: -9223372036854775808},
		domain.MoneyWithdrawn{Amount: 9223372036854775807, BalanceAfter: -70, At: at},
		domain.OrderPlaced{CustomerID: "acme~c-1", Currency: "USD", PlacedAt: at},
		domain.OrderItemAdded{Sku: "sku-1", Quantity: 3, UnitPrice: 100, LineTotal: 300, OrderTotal: 900},
		domain.OrderItemRemoved{Sku: "sku 2", Quantity: 1, OrderTotal: 0},
		domain.OrderSubmitted{Subtotal: 900, Tax: 171, Total: 1071, Currency: "EUR", ItemCount: 4, SubmittedAt: at},
	}
}

// TestFastDecodeTakesWhatTheStoreReturns: every fast-path event, encoded as
// encoding/json does and as PostgreSQL's jsonb prints it, is decoded by the
// fast path, to the domain decoder's result.
func TestFastDecodeTakesWhatTheStoreReturns(t *testing.T) {
	for _, e := range fastEvents() {
		data, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		// jsonb's text form: a space after ':' and ','.
		spaced := strings.NewReplacer(`":`, `": `, `,"`, `, "`).Replace(string(data))
		for _, payload := range []string{string(data), spaced, " \n" + spaced + "\t "} {
			got, ok := fastDecode(e.EventType(), []byte(payload))
			if !ok {
				t.Errorf("%s %s: the fast path refused it", e.EventType(), payload)
				continue
			}
			want, err := domainDecode(e.EventType(), []byte(payload))
			if err != nil || !reflect.DeepEqual(got, want) || !reflect.DeepEqual(got, e) {
				t.Errorf("%s %s: fast %#v, domain %#v (%v), encoded %#v", e.EventType(), payload, got, want, err, e)
			}
		}
	}
}

// TestFastDecodeLeavesTheRestToTheDomain: payloads outside the fast path
// (unknown keys or keys in another case, escapes, non-ASCII, fractions,
// exponents, overflow, null, nesting, wrong kinds, trailing data, broken
// JSON) are refused by it, and decodeAccountEvent/decodeOrderEvent give
// the domain decoder's value or error.
func TestFastDecodeLeavesTheRestToTheDomain(t *testing.T) {
	for _, c := range []struct{ typ, data string }{
		{"MoneyDeposited", `{"amount": 1, "balanceAfter": 2, "extra": 3}`},
		{"MoneyDeposited", `{"Amount": 1, "balanceAfter": 2}`},
		{"MoneyDeposited", `{"amount": 1.0, "balanceAfter": 2}`},
		{"MoneyDeposited", `{"amount": 1e2, "balanceAfter": 2}`},
		{"MoneyDeposited", `{"amount": 01, "balanceAfter": 2}`},
		{"MoneyDeposited", `{"amount": -, "balanceAfter": 2}`},
		{"MoneyDeposited", `{"amount": 9223372036854775808}`},
		{"MoneyDeposited", `{"amount": -9223372036854775809}`},
		{"MoneyDeposited", `{"amount": null}`},
		{"MoneyDeposited", `{"amount": "1"}`},
		{"MoneyDeposited", `{"amount": true}`},
		{"MoneyDeposited", `{"amount": [1]}`},
		{"MoneyDeposited", `{"amount": 1} {"amount": 2}`},
		{"MoneyDeposited", `{"amount": 1} x`},
		{"MoneyDeposited", `{"amount": 1`},
		{"MoneyDeposited", `{"amount": 1,}`},
		{"MoneyDeposited", `{"amount" 1}`},
		{"MoneyDeposited", `[]`},
		{"MoneyDeposited", ``},
		{"MoneyDeposited", `{"am\u006funt": 1}`},
		{"AccountOpened", `{"owner": "Zoë", "currency": "EUR"}`},
		{"AccountOpened", `{"owner": "a\"b", "currency": "EUR"}`},
		{"AccountOpened", `{"owner": "a\nb"}`},
		{"AccountOpened", `{"owner": 7}`},
		{"AccountOpened", `{"owner": {"name": "ada"}}`},
		{"AccountOpened", `{"openedAt": "yesterday"}`},
		{"AccountOpened", `{"openedAt": null}`},
		{"AccountOpened", `{"openedAt": 17}`},
		{"MoneyWithdrawn", `{"at": "2026-03-01T12:30:45+02:00", "amount": 5}`},
		{"OrderItemAdded", `{"sku": "s", "quantity": 1, "quantity": 2}`},
		{"OrderSubmitted", `{"subtotal": 1, "lines": []}`},
		{"OrderPlaced", `{"customerId": "c", "currency": "EUR", "placedAt": "2026-03-01T12:30:45Z", "note": ""}`},
		{"OrderConfirmed", `{"confirmedAt": "2026-03-01T12:30:45Z"}`},
		{"AccountFrozen", `{"reason": "audit"}`},
	} {
		want, wantErr := domainDecode(c.typ, []byte(c.data))
		var got domain.Event
		var err error
		if strings.HasPrefix(c.typ, "Order") {
			got, err = decodeOrderEvent(domain.RecordedEvent{EventData: domain.EventData{Type: c.typ, SchemaVersion: 1, Data: json.RawMessage(c.data)}})
		} else {
			got, err = decodeAccountEvent(domain.RecordedEvent{EventData: domain.EventData{Type: c.typ, SchemaVersion: 1, Data: json.RawMessage(c.data)}})
		}
		if fmtErr(err) != fmtErr(wantErr) || !reflect.DeepEqual(got, want) {
			t.Errorf("%s %s: got %#v, %v; the domain decoder gives %#v, %v", c.typ, c.data, got, err, want, wantErr)
		}
	}
	// Some of these are decoded by the fast path all the same, to the same
	// result: the duplicate key (the last wins, as with encoding/json) and
	// the time with an offset.
	for _, c := range []struct{ typ, data string }{
		{"OrderItemAdded", `{"sku": "s", "quantity": 1, "quantity": 2}`},
		{"MoneyWithdrawn", `{"at": "2026-03-01T12:30:45+02:00", "amount": 5}`},
	} {
		if _, ok := fastDecode(c.typ, []byte(c.data)); !ok {
			t.Errorf("%s %s: the fast path refused it", c.typ, c.data)
		}
	}
}

func fmtErr(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// FuzzFastDecode: whatever the payload, when the fast path takes it, the
// domain decoder decodes it without error to the same event.
func FuzzFastDecode(f *testing.F) {
	types := []string{"AccountOpened", "MoneyDeposited", "MoneyWithdrawn", "OrderPlaced", "OrderItemAdded", "OrderItemRemoved", "OrderSubmitted"}
	for i, e := range fastEvents() {
		data, _ := json.Marshal(e)
		f.Add(uint8(i), data)
	}
	f.Add(uint8(1), []byte(`{"amount": 1.5}`))
	f.Add(uint8(3), []byte(`{"placedAt": "2026-03-01T12:30:45.1+01:00"}`))
	f.Fuzz(func(t *testing.T, typ uint8, data []byte) {
		eventType := types[int(typ)%len(types)]
		got, ok := fastDecode(eventType, data)
		if !ok {
			return
		}
		want, err := domainDecode(eventType, data)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("%s %q: fast %#v; domain %#v, %v", eventType, data, got, want, err)
		}
	})
}
