package projections_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"cqrsgate/domain"
	"cqrsgate/projections"
)

// TestReadModelsKeepTenantsApart: the same ids in two tenants and in the
// default tenant are separate rows, and every query sees only the tenant
// it is given.
func TestReadModelsKeepTenantsApart(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.start(t, projections.Options{}, projections.Accounts{}, projections.Orders{}, projections.Products{})
	var last int64
	run := func(tenant string, cmds ...domain.Command) {
		t.Helper()
		for _, cmd := range cmds {
			var res domain.Result
			var err error
			meta := domain.CommandMeta{Tenant: tenant}
			switch cmd.(type) {
			case domain.OpenAccount, domain.DepositMoney:
				res, err = domain.Execute(ctx, e.commands, domain.Accounts, cmd, meta)
			case domain.AddProduct, domain.RestockProduct:
				res, err = domain.Execute(ctx, e.commands, domain.Products, cmd, meta)
			default:
				res, err = domain.Execute(ctx, e.commands, domain.Orders, cmd, meta)
			}
			if err != nil {
				t.Fatalf("tenant %q: %s: %v", tenant, cmd.CommandName(), err)
			}
			last = max(last, res.Position)
		}
	}
	for _, tc := range []struct {
		tenant, owner string
		deposit       int64
	}{{"acme", "ada", 100}, {"globex", "bob", 7}, {"", "cy", 1}} {
		run(tc.tenant,
			domain.OpenAccount{AccountID: "a1", Owner: tc.owner, Currency: "EUR", InitialDeposit: tc.deposit},
			domain.AddProduct{Sku: "widget", Name: tc.owner + "'s widget", Price: 10, Currency: "EUR"},
			domain.RestockProduct{Sku: "widget", Quantity: tc.deposit},
			domain.PlaceOrder{OrderID: "o1", CustomerID: tc.owner, Currency: "EUR"},
			domain.AddOrderItem{OrderID: "o1", Sku: "widget", Quantity: 1, UnitPrice: 10})
	}
	run("acme", domain.OpenAccount{AccountID: "a2", Owner: "ada", Currency: "EUR", InitialDeposit: 5})
	// Each projection's serving row must be there and past last: before
	// the runner has set one up there is no row, and no table to read.
	waitFor(t, "the projections to catch up", func() bool {
		list, _ := projections.List(ctx, e.pool)
		for _, name := range []string{"accounts", "orders", "products"} {
			if !slices.ContainsFunc(list, func(s projections.Status) bool { return s.Name == name && s.Serving && s.Position >= last }) {
				return false
			}
		}
		return true
	})

	accounts := projections.NewAccountQueries(e.pool)
	for _, tc := range []struct {
		tenant, owner string
		balance       int64
		count         int
	}{{"acme", "ada", 100, 2}, {"globex", "bob", 7, 1}, {"", "cy", 1, 1}} {
		a, err := accounts.Account(ctx, tc.tenant, "a1")
		if err != nil || a.ID != "a1" || a.Owner != tc.owner || a.Balance != tc.balance {
			t.Errorf("tenant %q: account a1 = %+v, %v", tc.tenant, a, err)
		}
		list, _, total, err := accounts.Accounts(ctx, tc.tenant, projections.AccountFilter{}, 10, "")
		if err != nil || total != tc.count || len(list) != tc.count {
			t.Errorf("tenant %q: %d accounts (total %d), want %d: %v", tc.tenant, len(list), total, tc.count, err)
		}
		for _, a := range list {
			if a.Owner != tc.owner {
				t.Errorf("tenant %q lists %+v", tc.tenant, a)
			}
		}
		totals, err := accounts.BankTotals(ctx, tc.tenant)
		want := tc.balance
		if tc.tenant == "acme" {
			want += 5
		}
		if err != nil || len(totals) != 1 || totals[0].TotalBalance != fmt.Sprint(want) || totals[0].Accounts != int64(tc.count) {
			t.Errorf("tenant %q: bank totals %+v, %v", tc.tenant, totals, err)
		}
		lines, _, n, err := accounts.Statement(ctx, tc.tenant, "a1", 10, "")
		if err != nil || n != 1 || lines[0].Amount != tc.balance {
			t.Errorf("tenant %q: statement %+v (%d), %v", tc.tenant, lines, n, err)
		}
		p, err := projections.NewProductQueries(e.pool).Product(ctx, tc.tenant, "widget")
		if err != nil || p.Sku != "widget" || p.Name != tc.owner+"'s widget" || p.OnHand != tc.balance {
			t.Errorf("tenant %q: product = %+v, %v", tc.tenant, p, err)
		}
		orders := projections.NewOrderQueries(e.pool)
		os, _, n, err := orders.Orders(ctx, tc.tenant, projections.OrderFilter{}, projections.OrderSort{}, 10, "")
		if err != nil || n != 1 || os[0].ID != "o1" || os[0].CustomerID != tc.owner {
			t.Errorf("tenant %q: orders %+v, %v", tc.tenant, os, err)
		}
		items, err := orders.Items(ctx, tc.tenant, []string{"o1"})
		if err != nil || len(items["o1"]) != 1 {
			t.Errorf("tenant %q: items %+v, %v", tc.tenant, items, err)
		}
		stats, err := orders.Statistics(ctx, tc.tenant, time.Now().Add(-48*time.Hour), time.Now().Add(48*time.Hour))
		if err != nil || len(stats) != 1 || stats[0].Orders != 1 || stats[0].Revenue != "10" {
			t.Errorf("tenant %q: stats %+v, %v", tc.tenant, stats, err)
		}
	}
	// Another tenant's row cannot be named.
	if _, err := accounts.Account(ctx, "", "acme~a1"); domain.CodeOf(err) != domain.Invalid {
		t.Errorf("the default tenant reading acme~a1: %v", err)
	}
	if _, err := accounts.Account(ctx, "nobody", "a1"); domain.CodeOf(err) != domain.NotFound {
		t.Errorf("a tenant without accounts reading a1: %v", err)
	}
}
