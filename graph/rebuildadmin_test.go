package graph_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"cqrsgate/domain"
)

// projectionRow is a row of the projections query.
type projectionRow struct {
	Name           string `json:"name"`
	Generation     int    `json:"generation"`
	Status         string `json:"status"`
	Serving        bool   `json:"serving"`
	FailedPosition *int64 `json:"failedPosition"`
}

const projectionFields = `name generation status serving failedPosition`

// accountsGenerations returns the accounts read model's generations that
// projections lists, by generation.
func accountsGenerations(g *pgGateway) map[int]projectionRow {
	var ps struct{ Projections []projectionRow }
	g.mustPost(`{ projections { `+projectionFields+` } }`, nil, &ps)
	out := map[int]projectionRow{}
	for _, p := range ps.Projections {
		if p.Name == "accounts" {
			out[p.Generation] = p
		}
	}
	return out
}

// awaitFailed waits until generation gen of the accounts read model is
// FAILED at position at.
func awaitFailed(t *testing.T, g *pgGateway, gen int, at int64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		p, ok := accountsGenerations(g)[gen]
		if ok && p.Status == "FAILED" && p.FailedPosition != nil && *p.FailedPosition == at {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("generation %d of accounts did not fail at %d: %+v", gen, at, accountsGenerations(g))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestProjectionAdministrationOfAFailedRebuild: a rebuild that fails on an
// event (a deposit to an account never opened, which the serving
// generation was moved past) no longer blocks the read model. The
// administrator's mutations answer with the generation they acted on
// (retryProjection and skipProjectionEvent answered with the newest
// generation, whatever they acted on); rebuildProjection replaces the
// failed rebuild (it was refused, REBUILD_IN_PROGRESS, for good); and
// cancelProjectionRebuild abandons it, answering with the generation that
// serves on.
func TestProjectionAdministrationOfAFailedRebuild(t *testing.T) {
	g := newFullGatewayWith(t, fullOptions{readTimeout: 5 * time.Second, maxFailures: 2})
	g.mustMutate("openAccount", map[string]any{"accountId": "a1", "owner": "ada", "currency": "EUR", "initialDeposit": 70})
	// A deposit to an account never opened, which the accounts read model
	// cannot fold (appendEvents refuses an aggregate's stream: it goes
	// through the store).
	ghost := func(n int) int64 {
		res, err := g.validated.Append(context.Background(), fmt.Sprintf("account-ghost-%d", n), domain.ExpectAny,
			domain.EventData{Type: "MoneyDeposited", SchemaVersion: 1, Data: json.RawMessage(`{"amount": 1, "balanceAfter": 1}`)})
		if err != nil {
			t.Fatal(err)
		}
		return res.LastPosition
	}
	type acted struct {
		Rebuild projectionRow `json:"rebuildProjection"`
		Retry   projectionRow `json:"retryProjection"`
		Skip    projectionRow `json:"skipProjectionEvent"`
		Cancel  projectionRow `json:"cancelProjectionRebuild"`
	}
	mutate := func(q string) projectionRow {
		t.Helper()
		var out acted
		g.mustPost(`mutation { `+q+` { `+projectionFields+` } }`, nil, &out)
		for _, p := range []projectionRow{out.Rebuild, out.Retry, out.Skip, out.Cancel} {
			if p.Name != "" {
				return p
			}
		}
		t.Fatalf("%s answered nothing", q)
		return projectionRow{}
	}

	// The serving generation fails on the first ghost's deposit and is
	// moved past it.
	first := ghost(1)
	awaitFailed(t, g, 1, first)
	if p := mutate(fmt.Sprintf(`skipProjectionEvent(name: "accounts", position: %d)`, first)); p.Generation != 1 || !p.Serving {
		t.Fatalf("skip answered %+v, want generation 1, serving", p)
	}
	// A rebuild reads the log from the start: it fails on the same event.
	if p := mutate(`rebuildProjection(name: "accounts")`); p.Generation != 2 || p.Serving {
		t.Fatalf("rebuild answered %+v, want generation 2, not serving", p)
	}
	awaitFailed(t, g, 2, first)
	// The serving generation fails on a second ghost: a skip of that event
	// acts on it alone, and answers with it (not with generation 2, the
	// newest); a retry then acts on generation 2 alone.
	second := ghost(2)
	awaitFailed(t, g, 1, second)
	if p := mutate(fmt.Sprintf(`skipProjectionEvent(name: "accounts", position: %d)`, second)); p.Generation != 1 || !p.Serving || p.Status != "RUNNING" {
		t.Fatalf("skip of the serving generation's event answered %+v, want generation 1, serving, RUNNING", p)
	}
	if p := mutate(`retryProjection(name: "accounts")`); p.Generation != 2 || p.Serving {
		t.Fatalf("retry answered %+v, want generation 2 (the one failed), not serving", p)
	}
	awaitFailed(t, g, 2, first)

	// A rebuild while the rebuild has failed starts over, replacing it.
	if p := mutate(`rebuildProjection(name: "accounts")`); p.Generation != 3 || p.Serving || p.Status != "RUNNING" {
		t.Fatalf("rebuild over a failed one answered %+v, want generation 3, RUNNING", p)
	}
	if gens := accountsGenerations(g); len(gens) != 2 || gens[3].Name == "" || !gens[1].Serving {
		t.Fatalf("after the rebuild over a failed one: %+v, want generations 1 (serving) and 3", gens)
	}
	awaitFailed(t, g, 3, first)

	// Cancelling it leaves the serving generation alone.
	if p := mutate(`cancelProjectionRebuild(name: "accounts")`); p.Generation != 1 || !p.Serving {
		t.Fatalf("cancel answered %+v, want the serving generation 1", p)
	}
	if gens := accountsGenerations(g); len(gens) != 1 || !gens[1].Serving || gens[1].Status != "RUNNING" {
		t.Fatalf("after the cancel: %+v, want generation 1 alone, serving, RUNNING", gens)
	}
	out, _ := g.post(`mutation { cancelProjectionRebuild(name: "accounts") { name } }`, nil)
	if len(out.Errors) != 1 || out.Errors[0].Extensions["code"] != "RULE_VIOLATION" || out.Errors[0].Extensions["rule"] != "NO_REBUILD_IN_PROGRESS" {
		t.Fatalf("a second cancel: %+v, want RULE_VIOLATION NO_REBUILD_IN_PROGRESS", out.Errors)
	}
	dep := g.mustMutate("depositMoney", map[string]any{"accountId": "a1", "amount": 5})
	var acct struct{ Account struct{ Balance int64 } }
	g.mustPost(`query($p: Position) { account(id: "a1", atLeast: $p) { balance } }`, map[string]any{"p": dep.Position}, &acct)
	if acct.Account.Balance != 75 {
		t.Fatalf("balance after the cancel: %d, want 75", acct.Account.Balance)
	}
}
