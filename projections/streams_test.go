package projections_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"cqrsgate/domain"
	"cqrsgate/projections"
)

// TestReadModelsSkipEventsOnOtherStreams: an event of an aggregate's type
// on a stream that is not one of that aggregate's ("ledger-1", appended by
// the generic appendEvents) stopped the read model for every tenant, or
// became a row with an empty id, counted in the default tenant's bank
// totals. The read models skip such events, whether in a batch of their
// own or among the aggregates' events, and keep running.
func TestReadModelsSkipEventsOnOtherStreams(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var last int64
	foreign := func() {
		t.Helper()
		for _, a := range []struct {
			stream string
			events []domain.Event
		}{
			{"ledger-1", []domain.Event{domain.MoneyDeposited{Amount: 5, BalanceAfter: 5}}},
			{"acme~ledger-1", []domain.Event{domain.AccountOpened{Owner: "mallory", Currency: "USD", OpenedAt: at}}},
			{"account-", []domain.Event{domain.AccountOpened{Owner: "mallory", Currency: "GBP", OpenedAt: at}}},
			{"acme~account-", []domain.Event{domain.MoneyDeposited{Amount: 7, BalanceAfter: 7}}},
			{"ledger-2", []domain.Event{domain.OrderPlaced{CustomerID: "mallory", Currency: "EUR", PlacedAt: at},
				domain.OrderItemAdded{Sku: "widget", Quantity: 1, UnitPrice: 10, LineTotal: 10, OrderTotal: 10}}},
			{"acme~ledger-2", []domain.Event{domain.OrderSubmitted{Subtotal: 10, Total: 10}}},
			{"ledger-3", []domain.Event{domain.ProductAdded{Name: "fake", Price: 1, Currency: "EUR"}, domain.PriceChanged{OldPrice: 10, NewPrice: 1}}},
			{"ledger-4", []domain.Event{domain.FulfilmentStarted{AccountID: "a1", Currency: "EUR", Amount: 10, StartedAt: at},
				domain.FulfilmentStepSucceeded{Step: "reserve", Sku: "widget", At: at}}},
		} {
			last = max(last, e.appendEvents(t, a.stream, a.events...))
		}
	}
	run := func(k string, cmd domain.Command) {
		t.Helper()
		var res domain.Result
		var err error
		switch k {
		case "account":
			res, err = domain.Execute(ctx, e.commands, domain.Accounts, cmd, domain.CommandMeta{})
		case "product":
			res, err = domain.Execute(ctx, e.commands, domain.Products, cmd, domain.CommandMeta{})
		default:
			res, err = domain.Execute(ctx, e.commands, domain.Orders, cmd, domain.CommandMeta{})
		}
		if err != nil {
			t.Fatalf("%s: %v", cmd.CommandName(), err)
		}
		last = max(last, res.Position)
	}
	// A saga's own events, as the fulfilment process writes them.
	saga := func(evs ...domain.Event) {
		t.Helper()
		last = max(last, e.appendEvents(t, domain.Fulfilments.StreamID("o1"), evs...))
	}

	// The first batch, read when the runner starts, mixes both.
	run("account", domain.OpenAccount{AccountID: "a1", Owner: "ada", Currency: "EUR", InitialDeposit: 100})
	run("product", domain.AddProduct{Sku: "widget", Name: "widget", Price: 10, Currency: "EUR"})
	run("order", domain.PlaceOrder{OrderID: "o1", CustomerID: "ada", Currency: "EUR"})
	foreign()
	run("account", domain.DepositMoney{AccountID: "a1", Amount: 20})
	run("order", domain.AddOrderItem{OrderID: "o1", Sku: "widget", Quantity: 2, UnitPrice: 10})
	saga(domain.FulfilmentStarted{AccountID: "a1", Currency: "EUR", Amount: 20, Items: []domain.FulfilmentItem{{Sku: "widget", Quantity: 2}}, StartedAt: at})
	ps := []projections.Projection{projections.Accounts{}, projections.Orders{}, projections.Products{}, projections.Fulfilments{}}
	e.start(t, projections.Options{MaxFailures: 1, RetryBackoff: 10 * time.Millisecond}, ps...)
	caughtUpOrFailed := func() {
		t.Helper()
		waitFor(t, "the projections to catch up", func() bool {
			done := true
			for _, p := range ps {
				s := status(t, e.pool, p.Name(), p.Version())
				if s.Status == "FAILED" || s.Failures > 0 {
					t.Fatalf("projection %s failed at %d: %s", p.Name(), s.FailedPosition, s.LastError)
				}
				done = done && s.Position >= last
			}
			return done
		})
	}
	caughtUpOrFailed()

	// Then live: foreign events alone in a batch, and among others.
	foreign()
	caughtUpOrFailed()
	run("account", domain.DepositMoney{AccountID: "a1", Amount: 3})
	foreign()
	run("product", domain.RestockProduct{Sku: "widget", Quantity: 4})
	run("order", domain.SubmitOrder{OrderID: "o1"})
	saga(domain.FulfilmentStepSucceeded{Step: "reserve", Sku: "widget", At: at})
	caughtUpOrFailed()

	// No row but the aggregates' own, and none with an empty id.
	for _, table := range []struct{ name, id, want string }{
		{"account_summary", "id", "a1"}, {"account_statement", "account_id", "a1"}, {"order_list", "id", "o1"}, {"order_items", "order_id", "o1"},
		{"order_status_history", "order_id", "o1"}, {"product_catalogue", "sku", "widget"}, {"fulfilment_list", "id", "o1"}, {"fulfilment_steps", "fulfilment_id", "o1"},
	} {
		rows, err := e.pool.Query(ctx, `SELECT DISTINCT `+table.id+` FROM readmodel.`+table.name+` ORDER BY 1`)
		if err != nil {
			t.Fatal(err)
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		if len(ids) != 1 || ids[0] != table.want {
			t.Errorf("%s holds %q, want only %q", table.name, ids, table.want)
		}
	}
	accounts := projections.NewAccountQueries(e.pool)
	a, err := accounts.Account(ctx, "", "a1")
	if err != nil || a.Balance != 123 || a.Version != 4 {
		t.Errorf("account a1 = %+v, %v; want balance 123 at version 4", a, err)
	}
	for tenant, want := range map[string][]projections.BankTotal{
		"":     {{Currency: "EUR", Accounts: 1, TotalBalance: "123"}},
		"acme": nil,
	} {
		totals, err := accounts.BankTotals(ctx, tenant)
		if err != nil || len(totals) != len(want) || len(want) == 1 && (totals[0].Currency != want[0].Currency ||
			totals[0].Accounts != want[0].Accounts || totals[0].TotalBalance != want[0].TotalBalance) {
			t.Errorf("tenant %q: bank totals %+v, %v; want %+v", tenant, totals, err, want)
		}
	}
	o, err := projections.NewOrderQueries(e.pool).Order(ctx, "", "o1")
	if err != nil || o.Status != domain.StatusSubmitted || o.Total != 20 {
		t.Errorf("order o1 = %+v, %v; want SUBMITTED for 20", o, err)
	}
	stats, err := projections.NewOrderQueries(e.pool).Statistics(ctx, "", at.Add(-48*time.Hour), time.Now().Add(48*time.Hour))
	if err != nil || len(stats) != 1 || stats[0].Status != domain.StatusSubmitted || stats[0].Orders != 1 || stats[0].Revenue != "20" {
		t.Errorf("order statistics %+v, %v; want one SUBMITTED order of 20", stats, err)
	}
	p, err := projections.NewProductQueries(e.pool).Product(ctx, "", "widget")
	if err != nil || p.Price != 10 || p.OnHand != 4 {
		t.Errorf("product widget = %+v, %v; want price 10, 4 on hand", p, err)
	}
	f, err := projections.NewFulfilmentQueries(e.pool).Fulfilment(ctx, "", "o1")
	if err != nil || f.Amount != 20 || f.Version != 2 {
		t.Errorf("fulfilment of o1 = %+v, %v; want amount 20 at version 2", f, err)
	}
}
