package graph_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

type fulfilmentView struct {
	OrderID     string
	State       string
	Reason      *string
	CurrentStep *struct{ Step string }
	Amount      int64
	Steps       []struct {
		Step, Outcome string
		Sku           *string
		Compensation  bool
	}
	Compensation []struct{ Step string }
}

const fulfilmentFields = `{ orderId state reason currentStep { step } amount steps { step sku outcome compensation } compensation { step } }`

// awaitFulfilment polls until the order's saga is in a final state.
func awaitFulfilment(t *testing.T, g *pgGateway, orderID string) fulfilmentView {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var out struct{ Fulfilment *fulfilmentView }
		g.mustPost(`query($id: ID!) { fulfilment(orderId: $id) `+fulfilmentFields+` }`, map[string]any{"id": orderID}, &out)
		if f := out.Fulfilment; f != nil {
			switch f.State {
			case "FULFILLED", "COMPENSATED", "TIMED_OUT", "FAILED":
				return *f
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the fulfilment of %s did not end: %+v", orderID, out.Fulfilment)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func steps(f fulfilmentView) string {
	var out []string
	for _, s := range f.Steps {
		name := s.Step
		if s.Sku != nil {
			name += ":" + *s.Sku
		}
		out = append(out, name+"="+s.Outcome)
	}
	return strings.Join(out, " ")
}

// order places and submits order id for customer with the given items
// (sku -> quantity, at 100 each).
func (g *pgGateway) order(id, customer string, items map[string]int) result {
	g.t.Helper()
	g.mustMutate("placeOrder", map[string]any{"orderId": id, "customerId": customer, "currency": "EUR"})
	for _, sku := range []string{"p1", "p2"} {
		if q := items[sku]; q > 0 {
			g.mustMutate("addOrderItem", map[string]any{"orderId": id, "sku": sku, "quantity": q, "unitPrice": 100})
		}
	}
	return g.mustMutate("submitOrder", map[string]any{"orderId": id})
}

type stockAndMoney struct {
	Account struct{ Balance int64 }
	P1      struct{ Reserved, Available int }
	P2      struct{ Reserved, Available int }
	Order   struct{ Status string }
}

func (g *pgGateway) stockAndMoney(account, order string) stockAndMoney {
	g.t.Helper()
	var out stockAndMoney
	at := g.head()
	g.mustPost(`query($a: ID!, $o: ID!, $at: Position) { account(id: $a, atLeast: $at) { balance } p1: product(sku: "p1", atLeast: $at) { reserved available }
		p2: product(sku: "p2", atLeast: $at) { reserved available } order(id: $o, atLeast: $at) { status } }`, map[string]any{"a": account, "o": order, "at": at}, &out)
	return out
}

// TestFulfilmentOverGraphQL: the saga's happy path, a failure with its
// compensation, and a cancelled confirmed order, each checked on every
// aggregate's read model; the queries, the subscription and the admin
// mutation with bad input.
func TestFulfilmentOverGraphQL(t *testing.T) {
	g := newFullGatewayWith(t, fullOptions{readTimeout: 10 * time.Second, fulfilment: 10 * time.Second})
	g.mustMutate("openAccount", map[string]any{"accountId": "cust", "owner": "Ann", "currency": "EUR", "initialDeposit": 1000})
	for _, sku := range []string{"p1", "p2"} {
		g.mustMutate("addProduct", map[string]any{"sku": sku, "name": sku, "price": 100, "currency": "EUR"})
		g.mustMutate("restockProduct", map[string]any{"sku": sku, "quantity": 5})
	}
	c := dialAuth(t, g.url, nil)
	c.init()
	c.send(subscribeMsg("f", `subscription { fulfilmentChanged(orderId: "o1") { state steps { step } } }`, nil))
	time.Sleep(100 * time.Millisecond) // subscribed from now

	g.order("o1", "cust", map[string]int{"p1": 2, "p2": 1})
	f := awaitFulfilment(t, g, "o1")
	if f.State != "FULFILLED" || steps(f) != "RESERVE_STOCK:p1=SUCCEEDED RESERVE_STOCK:p2=SUCCEEDED CHARGE=SUCCEEDED CONFIRM_ORDER=SUCCEEDED" ||
		f.CurrentStep != nil || len(f.Compensation) != 0 || f.Amount != 300 {
		t.Fatalf("o1: %+v (%s)", f, steps(f))
	}
	if s := g.stockAndMoney("cust", "o1"); s.Account.Balance != 700 || s.P1.Reserved != 2 || s.P2.Reserved != 1 || s.Order.Status != "CONFIRMED" {
		t.Fatalf("after o1: %+v", s)
	}
	// The subscriber saw the saga move to FULFILLED.
	for deadline := time.Now().Add(10 * time.Second); ; {
		m := c.read()
		if m.Type != "next" {
			t.Fatalf("fulfilmentChanged: %s %s", m.Type, m.Payload)
		}
		if strings.Contains(string(m.Payload), `"FULFILLED"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("fulfilmentChanged never said FULFILLED")
		}
	}

	// Not enough p2: the p1 reservation is released and the order cancelled.
	g.order("o2", "cust", map[string]int{"p1": 1, "p2": 9})
	f = awaitFulfilment(t, g, "o2")
	if f.State != "COMPENSATED" || f.Reason == nil || !strings.Contains(*f.Reason, "INSUFFICIENT_STOCK") ||
		steps(f) != "RESERVE_STOCK:p1=SUCCEEDED RESERVE_STOCK:p2=FAILED RELEASE_STOCK:p2=NOTHING_TO_UNDO RELEASE_STOCK:p1=SUCCEEDED CANCEL_ORDER=SUCCEEDED" || len(f.Compensation) != 3 {
		t.Fatalf("o2: %+v (%s)", f, steps(f))
	}
	if s := g.stockAndMoney("cust", "o2"); s.Account.Balance != 700 || s.P1.Reserved != 2 || s.P2.Reserved != 1 || s.Order.Status != "CANCELLED" {
		t.Fatalf("after o2: %+v", s)
	}

	// Cancelling the confirmed o1 refunds it and releases its stock.
	g.mustMutate("cancelOrder", map[string]any{"orderId": "o1", "reason": "changed my mind"})
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		f = awaitFulfilment(t, g, "o1")
		if f.State == "COMPENSATED" || time.Now().After(deadline) {
			break
		}
	}
	if f.State != "COMPENSATED" || *f.Reason != "order cancelled: changed my mind" || len(f.Compensation) != 3 {
		t.Fatalf("o1 cancelled: %+v (%s)", f, steps(f))
	}
	if s := g.stockAndMoney("cust", "o1"); s.Account.Balance != 1000 || s.P1.Reserved != 0 || s.P2.Reserved != 0 || s.P1.Available != 5 || s.Order.Status != "CANCELLED" {
		t.Fatalf("after cancelling o1: %+v", s)
	}

	var list struct {
		Fulfilments struct {
			TotalCount int
			Edges      []struct{ Node struct{ OrderID string } }
		}
	}
	g.mustPost(`{ fulfilments(state: COMPENSATED, first: 1) { totalCount edges { node { orderId } } } }`, nil, &list)
	if list.Fulfilments.TotalCount != 2 || len(list.Fulfilments.Edges) != 1 || list.Fulfilments.Edges[0].Node.OrderID != "o1" {
		t.Fatalf("fulfilments(COMPENSATED) = %+v", list)
	}

	// Bad input gets a clear error and changes nothing.
	before := g.head()
	for q, want := range map[string]string{
		`{ fulfilment(orderId: "a~b") { state } }`:                  "VALIDATION",
		`{ fulfilments(first: 0) { totalCount } }`:                  "VALIDATION",
		`{ fulfilments(state: DONE) { totalCount } }`:               "GRAPHQL_VALIDATION_FAILED",
		`mutation { retryFulfilment(orderId: "o1") { version } }`:   "FULFILMENT_NOT_FAILED",
		`mutation { retryFulfilment(orderId: "nope") { version } }`: "FULFILMENT_NOT_STARTED",
		`mutation { retryFulfilment(orderId: "") { version } }`:     "VALIDATION",
		`mutation { appendEvents(stream: "fulfilment-o1", events: [{type: "FulfilmentFinished", data: {state: "FULFILLED", at: "2026-11-26T00:00:00Z"}}]) { position } }`: "belongs to the fulfilment aggregate",
	} {
		out, _ := g.post(q, nil)
		raw, _ := json.Marshal(out.Errors)
		if len(out.Errors) != 1 || !strings.Contains(string(raw), want) {
			t.Errorf("%s: errors %s, want %s", q, raw, want)
		}
	}
	if g.head() != before {
		t.Error("refused requests wrote events")
	}
	var none struct{ Fulfilment *fulfilmentView }
	g.mustPost(`{ fulfilment(orderId: "never-submitted") { state } }`, nil, &none)
	if none.Fulfilment != nil {
		t.Errorf("an order without a saga: %+v", none.Fulfilment)
	}
}

// TestConcurrentOrdersAgainstLimitedStock: 200 orders submitted at once for
// 60 units: stock never goes below zero, every order ends FULFILLED or
// COMPENSATED, and money and stock add up.
func TestConcurrentOrdersAgainstLimitedStock(t *testing.T) {
	g := newFullGatewayWith(t, fullOptions{readTimeout: 30 * time.Second, fulfilment: 30 * time.Second})
	const orders, stock, price, deposit = 200, 60, 100, 250
	g.mustMutate("addProduct", map[string]any{"sku": "p1", "name": "p1", "price": price, "currency": "EUR"})
	g.mustMutate("restockProduct", map[string]any{"sku": "p1", "quantity": stock})
	var wg sync.WaitGroup
	errs := make(chan string, orders)
	sem := make(chan struct{}, 32)
	for i := range orders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			id := fmt.Sprintf("o%03d", i)
			for _, m := range []struct {
				name  string
				input map[string]any
			}{
				{"openAccount", map[string]any{"accountId": "c" + id, "owner": "x", "currency": "EUR", "initialDeposit": deposit}},
				{"placeOrder", map[string]any{"orderId": id, "customerId": "c" + id, "currency": "EUR"}},
				{"addOrderItem", map[string]any{"orderId": id, "sku": "p1", "quantity": 1 + i%2, "unitPrice": price}},
				{"submitOrder", map[string]any{"orderId": id}},
			} {
				if _, err := g.mutate(m.name, m.input); err != nil {
					errs <- fmt.Sprintf("%s %s: %s", id, m.name, err.Message)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if t.Failed() {
		t.FailNow()
	}
	deadline := time.Now().Add(90 * time.Second)
	var list struct {
		Running, Compensating, Fulfilled, Compensated struct{ TotalCount int }
		P1                                            struct{ OnHand, Reserved, Available int }
		Accounts                                      struct{ TotalCount int }
		BankTotals                                    []struct{ TotalBalance int64 }
	}
	for {
		g.mustPost(`{ running: fulfilments(state: RUNNING) { totalCount } compensating: fulfilments(state: COMPENSATING) { totalCount }
			fulfilled: fulfilments(state: FULFILLED) { totalCount } compensated: fulfilments(state: COMPENSATED) { totalCount } }`, nil, &list)
		if list.Fulfilled.TotalCount+list.Compensated.TotalCount == orders {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sagas did not all end: %+v", list)
		}
		time.Sleep(100 * time.Millisecond)
	}
	g.mustPost(`query($at: Position) { p1: product(sku: "p1", atLeast: $at) { onHand reserved available } bankTotals(atLeast: $at) { totalBalance } }`,
		map[string]any{"at": g.head()}, &list)
	// Sum the units the fulfilled orders hold, from their sagas.
	units, after := 0, ""
	for {
		var page struct {
			Fulfilments struct {
				Edges []struct {
					Node struct{ Items []struct{ Quantity int } }
				}
				PageInfo struct {
					HasNextPage bool
					EndCursor   string
				}
			}
		}
		g.mustPost(`query($after: String) { fulfilments(state: FULFILLED, first: 100, after: $after) { edges { node { items { quantity } } } pageInfo { hasNextPage endCursor } } }`,
			map[string]any{"after": after}, &page)
		for _, e := range page.Fulfilments.Edges {
			units += e.Node.Items[0].Quantity
		}
		if !page.Fulfilments.PageInfo.HasNextPage {
			break
		}
		after = page.Fulfilments.PageInfo.EndCursor
	}
	t.Logf("%d fulfilled (%d units), %d compensated", list.Fulfilled.TotalCount, units, list.Compensated.TotalCount)
	if list.P1.Available < 0 || list.P1.Reserved != units || list.P1.OnHand != stock || list.P1.Available != stock-units {
		t.Errorf("p1 = %+v; the fulfilled orders hold %d units", list.P1, units)
	}
	if stock-units >= 2 {
		t.Errorf("%d units left although orders for them were compensated", stock-units)
	}
	if len(list.BankTotals) != 1 || list.BankTotals[0].TotalBalance != int64(orders*deposit-units*price) {
		t.Errorf("bank totals %+v, want %d", list.BankTotals, orders*deposit-units*price)
	}
}

// TestEachFulfilmentFailureIsCompensated: for each way the charge can fail,
// the saga compensates, and every read model shows it: the account is not
// charged, no stock stays reserved, the order is cancelled with the reason.
func TestEachFulfilmentFailureIsCompensated(t *testing.T) {
	g := newFullGatewayWith(t, fullOptions{readTimeout: 10 * time.Second, fulfilment: 10 * time.Second})
	for _, sku := range []string{"p1", "p2"} {
		g.mustMutate("addProduct", map[string]any{"sku": sku, "name": sku, "price": 100, "currency": "EUR"})
		g.mustMutate("restockProduct", map[string]any{"sku": sku, "quantity": 50})
	}
	for i, tc := range []struct {
		name, rule string
		balance    int64
		currency   string
		then       func(account string)
	}{
		{name: "insufficient funds", rule: "INSUFFICIENT_FUNDS", balance: 299, currency: "EUR"},
		{name: "currency mismatch", rule: "CURRENCY_MISMATCH", balance: 1000, currency: "USD"},
		{name: "frozen account", rule: "ACCOUNT_FROZEN", balance: 1000, currency: "EUR", then: func(a string) {
			g.mustMutate("freezeAccount", map[string]any{"accountId": a, "reason": "audit"})
		}},
		{name: "closed account", rule: "ACCOUNT_CLOSED", balance: 0, currency: "EUR", then: func(a string) {
			g.mustMutate("closeAccount", map[string]any{"accountId": a})
		}},
		{name: "no such account", rule: "does not exist", currency: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			account, order := fmt.Sprintf("acct-%d", i), fmt.Sprintf("order-%d", i)
			if tc.currency != "" {
				g.mustMutate("openAccount", map[string]any{"accountId": account, "owner": "x", "currency": tc.currency, "initialDeposit": tc.balance})
			}
			if tc.then != nil {
				tc.then(account)
			}
			g.order(order, account, map[string]int{"p1": 2, "p2": 1})
			f := awaitFulfilment(t, g, order)
			// The refund finds the charge was not made: nothing to undo.
			want := "RESERVE_STOCK:p1=SUCCEEDED RESERVE_STOCK:p2=SUCCEEDED CHARGE=FAILED RELEASE_STOCK:p2=SUCCEEDED RELEASE_STOCK:p1=SUCCEEDED REFUND=NOTHING_TO_UNDO CANCEL_ORDER=SUCCEEDED"
			if f.State != "COMPENSATED" || steps(f) != want || f.Reason == nil || !strings.Contains(*f.Reason, tc.rule) {
				t.Fatalf("%+v (%s), want COMPENSATED for %s", f, steps(f), tc.rule)
			}
			var out struct {
				Account *struct{ Balance int64 }
				P1, P2  struct{ Reserved int }
				Order   struct {
					Status        string
					StatusHistory []struct{ Status, Reason string }
				}
			}
			g.mustPost(`query($a: ID!, $o: ID!, $at: Position) { account(id: $a, atLeast: $at) { balance } p1: product(sku: "p1", atLeast: $at) { reserved }
				p2: product(sku: "p2", atLeast: $at) { reserved } order(id: $o, atLeast: $at) { status statusHistory { status reason } } }`,
				map[string]any{"a": account, "o": order, "at": g.head()}, &out)
			if tc.currency != "" && (out.Account == nil || out.Account.Balance != tc.balance) {
				t.Errorf("account = %+v, want balance %d", out.Account, tc.balance)
			}
			last := out.Order.StatusHistory[len(out.Order.StatusHistory)-1]
			if out.P1.Reserved != 0 || out.P2.Reserved != 0 || out.Order.Status != "CANCELLED" || !strings.Contains(last.Reason, tc.rule) {
				t.Errorf("stock %d/%d reserved, order %+v", out.P1.Reserved, out.P2.Reserved, out.Order)
			}
		})
	}
}
