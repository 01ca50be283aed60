package graph_test

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

// Sums over many aggregates (a tenant's bank totals, a day's order
// revenue) are exact. Two balances near the 64-bit limit used to stop the
// accounts read model for every tenant (bigint out of range, FAILED), and
// wrapped to a negative total when folded in one batch (a rebuild); large
// orders did the same to the orders read model. Now the tenant that holds
// such sums reads them whole as decimal strings (totalBalanceDecimal,
// revenueDecimal), gets an OUT_OF_RANGE error on the Long fields alone
// (they were INTERNAL and took the whole list with them before
// 2026-11-27), and the others see nothing of it.
func TestSumsBeyond64BitsStayExactAndInTheirTenant(t *testing.T) {
	g, as := newTenantGateway(t)
	big := fmt.Sprint(int64(math.MaxInt64 - 10))
	for _, id := range []string{"r1", "r2"} {
		g.mustMutate("openAccount", map[string]any{"accountId": id, "owner": "x", "currency": "EUR", "initialDeposit": big}, as["acme"]...)
		g.mustMutate("placeOrder", map[string]any{"orderId": id, "customerId": "c", "currency": "EUR"}, as["acme"]...)
		g.mustMutate("addOrderItem", map[string]any{"orderId": id, "sku": "s", "quantity": 1, "unitPrice": big}, as["acme"]...)
		time.Sleep(300 * time.Millisecond) // in separate batches
	}
	g.mustMutate("openAccount", map[string]any{"accountId": "v1", "owner": "v", "currency": "USD", "initialDeposit": 5}, as["globex"]...)
	r := g.mustMutate("placeOrder", map[string]any{"orderId": "v1", "customerId": "c", "currency": "USD"}, as["globex"]...)

	const q = `query($p: Position, $from: Time!, $to: Time!) {
		account(id: "v1", atLeast: $p) { balance }
		order(id: "v1", atLeast: $p) { status }
		bankTotals(atLeast: $p) { currency totalBalance totalBalanceDecimal }
		orderStatistics(from: $from, to: $to, atLeast: $p) { status orders revenue revenueDecimal }
	}`
	vars := map[string]any{"p": r.Position, "from": time.Now().Add(-48 * time.Hour).Format(time.RFC3339), "to": time.Now().Add(48 * time.Hour).Format(time.RFC3339)}
	out, _ := g.post(q, vars, as["globex"]...)
	if len(out.Errors) > 0 {
		ps, _ := g.post(`{ projections { name status lastError } }`, nil, as["globex"]...)
		t.Fatalf("globex after acme's huge sums: %+v\nprojections: %s", out.Errors, ps.Data["projections"])
	}
	if got := string(out.Data["bankTotals"]); got != `[{"currency":"USD","totalBalance":5,"totalBalanceDecimal":"5"}]` {
		t.Errorf("globex's bank totals %s", got)
	}
	if got := string(out.Data["orderStatistics"]); got != `[{"status":"OPEN","orders":1,"revenue":0,"revenueDecimal":"0"}]` {
		t.Errorf("globex's order statistics %s", got)
	}

	// acme is told its sums do not fit a Long, not given wrong ones.
	beyond := func(when string) {
		t.Helper()
		out, _ := g.post(q, vars, as["acme"]...)
		var fields []string
		for _, e := range out.Errors {
			if e.Extensions["code"] != "OUT_OF_RANGE" || !strings.Contains(e.Message, "18446744073709551594, beyond a Long (64 bits): read ") {
				t.Errorf("%s: acme's error %+v", when, e)
			}
			fields = append(fields, fmt.Sprint(e.Path))
		}
		slices.Sort(fields)
		if strings.Join(fields, " ") != "[bankTotals 0 totalBalance] [orderStatistics 0 revenue]" {
			t.Errorf("%s: acme's errors on %v, want bankTotals' totalBalance and orderStatistics' revenue (data %v)", when, fields, out.Data)
		}
		if got := string(out.Data["bankTotals"]); got != `[{"currency":"EUR","totalBalance":null,"totalBalanceDecimal":"18446744073709551594"}]` {
			t.Errorf("%s: acme's bank totals %s", when, got)
		}
	}
	beyond("live")
	// Folded in one batch, the sum does not wrap.
	var rebuilt struct{ RebuildProjection struct{ Generation int } }
	g.mustPost(`mutation { rebuildProjection(name: "accounts") { generation } }`, nil, &rebuilt, "X-API-Key", adminKey)
	waitFor(t, "the rebuilt accounts read model to serve", func() bool {
		var ps struct {
			Projections []struct {
				Name       string
				Generation int
				Serving    bool
			}
		}
		g.mustPost(`{ projections { name generation serving } }`, nil, &ps, "X-API-Key", adminKey)
		for _, p := range ps.Projections {
			if p.Name == "accounts" && p.Generation == rebuilt.RebuildProjection.Generation && p.Serving {
				return true
			}
		}
		return false
	})
	beyond("rebuilt")
}

// A projection's failure may name any tenant's data (a fold's error names
// the tenant-qualified id): callers of a tenant see that it failed, not
// the error, event or position; gateway-wide callers see all.
func TestProjectionFailuresAreNotShownToTenants(t *testing.T) {
	g, as := newTenantGateway(t)
	g.mustMutate("openAccount", map[string]any{"accountId": "r1", "owner": "x", "currency": "EUR"}, as["acme"]...)
	if _, err := g.pool.Exec(context.Background(), `UPDATE projections SET status = 'FAILED', failures = 5, last_error = 'account acme~r1 opened twice',
		failed_position = 1, failed_event_id = '0190a8f0-0000-7000-8000-000000000001' WHERE name = 'accounts' AND serving`); err != nil {
		t.Fatal(err)
	}
	const q = `{ projections { name failures lastError failedPosition failedEventId } }`
	type status struct {
		Name           string
		Failures       int
		LastError      *string
		FailedPosition *int64
		FailedEventID  *string
	}
	accounts := func(headers ...string) status {
		t.Helper()
		var out struct{ Projections []status }
		g.mustPost(q, nil, &out, headers...)
		for _, p := range out.Projections {
			if p.Name == "accounts" {
				return p
			}
		}
		t.Fatalf("no accounts projection in %+v", out.Projections)
		return status{}
	}
	for _, tenant := range []string{"globex", "acme"} {
		if p := accounts(as[tenant]...); p.Failures != 5 || p.LastError != nil || p.FailedPosition != nil || p.FailedEventID != nil {
			t.Errorf("%s sees %+v, want the failure counted and nothing of what failed", tenant, p)
		}
	}
	if p := accounts("X-API-Key", adminKey); p.LastError == nil || *p.LastError != "account acme~r1 opened twice" || p.FailedEventID == nil {
		t.Errorf("a gateway-wide admin sees %+v", p)
	}
}
