package graph_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"cqrsgate/domain"
	"cqrsgate/eventstore"
	"cqrsgate/graph"
	"cqrsgate/internal/pgtest"
	"cqrsgate/projections"
)

// newFullGateway is the handler with the read side and a running projection
// runner over a fresh database.
func newFullGateway(t *testing.T, readTimeout time.Duration) *pgGateway {
	t.Helper()
	pool := pgtest.NewPool(t)
	ctx := context.Background()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	err = projections.Migrate(ctx, conn.Conn())
	conn.Release()
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	store := eventstore.NewPostgres(pool, log, eventstore.Limits{}, eventstore.NewBroadcaster())
	commands := domain.NewService(store, log, time.Now, domain.ServiceOptions{})
	runner, err := projections.NewRunner(pool, store, log, projections.Options{Poll: 50 * time.Millisecond, LeaderRetry: 50 * time.Millisecond}, projections.Accounts{})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = runner.Run(runCtx) }()
	t.Cleanup(func() { stop(); <-done })
	srv := httptest.NewServer(graph.NewHandler(graph.Config{
		Store: store, Commands: commands, Log: log,
		AccountReads: projections.NewAccountQueries(pool), Admin: projections.NewAdmin(pool),
		Positions: projections.NewPositions(pool, runner.Progress), ReadTimeout: readTimeout,
	}))
	t.Cleanup(srv.Close)
	return &pgGateway{client: &client{t: t, url: srv.URL}, store: store, commands: commands}
}

func TestReadYourWritesWithAtLeast(t *testing.T) {
	g := newFullGateway(t, 300*time.Millisecond)
	open := g.mustMutate("openAccount", map[string]any{"accountId": "a1", "owner": "ada", "currency": "EUR", "initialDeposit": 1000})
	dep := g.mustMutate("depositMoney", map[string]any{"accountId": "a1", "amount": 234})
	var out struct {
		Account struct {
			ID       string `json:"id"`
			Balance  int64  `json:"balance"`
			Status   string `json:"status"`
			Version  int    `json:"version"`
			Position int64  `json:"position"`
		} `json:"account"`
	}
	// The first try already sees the write.
	g.mustPost(`query($p: Position) { account(id: "a1", atLeast: $p) { id balance status version position } }`, map[string]any{"p": dep.Position}, &out)
	if out.Account.Balance != 1234 || out.Account.Version != 3 || out.Account.Position != dep.Position || out.Account.Status != "OPEN" {
		t.Fatalf("account = %+v, want the deposit at %d", out.Account, dep.Position)
	}
	// An impossible position fails with STALE after the timeout.
	start := time.Now()
	resp, _ := g.post(`query($p: Position) { account(id: "a1", atLeast: $p) { id } }`, map[string]any{"p": dep.Position + 1000})
	if len(resp.Errors) != 1 || resp.Errors[0].Extensions["code"] != "STALE" || resp.Errors[0].Extensions["behind"] == nil {
		t.Fatalf("impossible atLeast: %+v", resp.Errors)
	}
	if waited := time.Since(start); waited < 250*time.Millisecond {
		t.Fatalf("STALE after %s, before the 300ms timeout", waited)
	}
	var missing struct {
		Account *struct{ ID string } `json:"account"`
	}
	g.mustPost(`query($p: Position) { account(id: "nobody", atLeast: $p) { id } }`, map[string]any{"p": open.Position}, &missing)
	if missing.Account != nil {
		t.Fatalf("unknown account = %+v, want null", missing.Account)
	}
}

func TestAccountListStatementAndTotals(t *testing.T) {
	g := newFullGateway(t, 5*time.Second)
	var last int64
	for _, a := range []map[string]any{
		{"accountId": "a1", "owner": "ada", "currency": "EUR", "initialDeposit": 100},
		{"accountId": "a2", "owner": "bob", "currency": "EUR", "initialDeposit": 200},
		{"accountId": "a3", "owner": "ada", "currency": "USD", "initialDeposit": 300},
	} {
		last = g.mustMutate("openAccount", a).Position
	}
	g.mustMutate("withdrawMoney", map[string]any{"accountId": "a1", "amount": 40})
	last = g.mustMutate("chargeFee", map[string]any{"accountId": "a1", "amount": 10, "reason": "card"}).Position

	type conn struct {
		Edges []struct {
			Cursor string `json:"cursor"`
			Node   struct {
				ID      string `json:"id"`
				Balance int64  `json:"balance"`
			} `json:"node"`
		} `json:"edges"`
		PageInfo struct {
			HasNextPage bool    `json:"hasNextPage"`
			EndCursor   *string `json:"endCursor"`
		} `json:"pageInfo"`
		TotalCount int `json:"totalCount"`
	}
	var page struct{ Accounts conn }
	q := `query($p: Position, $after: String, $f: AccountFilter) { accounts(first: 2, after: $after, atLeast: $p, filter: $f) { edges { cursor node { id balance } } pageInfo { hasNextPage endCursor } totalCount } }`
	g.mustPost(q, map[string]any{"p": last}, &page)
	if page.Accounts.TotalCount != 3 || len(page.Accounts.Edges) != 2 || !page.Accounts.PageInfo.HasNextPage || page.Accounts.Edges[0].Node.ID != "a1" || page.Accounts.Edges[0].Node.Balance != 50 {
		t.Fatalf("first page = %+v", page.Accounts)
	}
	g.mustPost(q, map[string]any{"after": *page.Accounts.PageInfo.EndCursor}, &page)
	if len(page.Accounts.Edges) != 1 || page.Accounts.Edges[0].Node.ID != "a3" || page.Accounts.PageInfo.HasNextPage {
		t.Fatalf("second page = %+v", page.Accounts)
	}
	g.mustPost(q, map[string]any{"f": map[string]any{"owner": "ada", "currency": "USD"}}, &page)
	if page.Accounts.TotalCount != 1 || page.Accounts.Edges[0].Node.ID != "a3" {
		t.Fatalf("filtered = %+v", page.Accounts)
	}

	var st struct {
		AccountStatement struct {
			Edges []struct {
				Node struct {
					Kind         string `json:"kind"`
					Amount       int64  `json:"amount"`
					BalanceAfter int64  `json:"balanceAfter"`
				} `json:"node"`
			} `json:"edges"`
			TotalCount int `json:"totalCount"`
		} `json:"accountStatement"`
	}
	g.mustPost(`{ accountStatement(id: "a1") { edges { node { kind amount balanceAfter } } totalCount } }`, nil, &st)
	raw, _ := json.Marshal(st.AccountStatement.Edges)
	if st.AccountStatement.TotalCount != 3 || string(raw) != `[{"node":{"kind":"DEPOSIT","amount":100,"balanceAfter":100}},{"node":{"kind":"WITHDRAWAL","amount":-40,"balanceAfter":60}},{"node":{"kind":"FEE","amount":-10,"balanceAfter":50}}]` {
		t.Fatalf("statement = %s (%d)", raw, st.AccountStatement.TotalCount)
	}
	var totals struct {
		BankTotals []struct {
			Currency     string `json:"currency"`
			Accounts     int    `json:"accounts"`
			TotalBalance int64  `json:"totalBalance"`
		} `json:"bankTotals"`
	}
	g.mustPost(`{ bankTotals { currency accounts totalBalance } }`, nil, &totals)
	raw, _ = json.Marshal(totals.BankTotals)
	if string(raw) != `[{"currency":"EUR","accounts":2,"totalBalance":250},{"currency":"USD","accounts":1,"totalBalance":300}]` {
		t.Fatalf("bank totals = %s", raw)
	}

	for _, c := range []struct{ name, query, code string }{
		{"bad cursor", `{ accounts(after: "%%%") { totalCount } }`, "VALIDATION"},
		{"first too large", `{ accounts(first: 501) { totalCount } }`, "VALIDATION"},
		{"first zero", `{ accounts(first: 0) { totalCount } }`, "VALIDATION"},
		{"statement of unknown account", `{ accountStatement(id: "nope") { totalCount } }`, "NOT_FOUND"},
		{"retry unknown projection", `mutation { retryProjection(name: "nope") { name } }`, "NOT_FOUND"},
		{"retry a healthy projection", `mutation { retryProjection(name: "accounts") { name } }`, "RULE_VIOLATION"},
		{"skip on a healthy projection", `mutation { skipProjectionEvent(name: "accounts", position: 1) { name } }`, "RULE_VIOLATION"},
	} {
		resp, _ := g.post(c.query, nil)
		if len(resp.Errors) != 1 || resp.Errors[0].Extensions["code"] != c.code {
			t.Errorf("%s: %+v, want %s", c.name, resp.Errors, c.code)
		}
	}

	var ps struct {
		Projections []struct {
			Name     string `json:"name"`
			Status   string `json:"status"`
			Serving  bool   `json:"serving"`
			Position int64  `json:"position"`
			Lag      int64  `json:"lag"`
		} `json:"projections"`
	}
	g.mustPost(`{ projections { name status serving position lag } }`, nil, &ps)
	if len(ps.Projections) != 1 || ps.Projections[0].Name != "accounts" || ps.Projections[0].Status != "RUNNING" || !ps.Projections[0].Serving ||
		ps.Projections[0].Position+ps.Projections[0].Lag != last {
		t.Fatalf("projections = %+v (head %d)", ps.Projections, last)
	}
}
