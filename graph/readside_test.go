package graph_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/trace"

	"cqrsgate/domain"
	"cqrsgate/eventstore"
	"cqrsgate/graph"
	"cqrsgate/internal/auth"
	"cqrsgate/internal/pgtest"
	"cqrsgate/internal/tracing"
	"cqrsgate/projections"
	"cqrsgate/schemaregistry"
)

// newFullGateway is the handler with the read side and a running projection
// runner over a fresh database.
func newFullGateway(t *testing.T, readTimeout time.Duration) *pgGateway {
	t.Helper()
	return newFullGatewayWith(t, fullOptions{readTimeout: readTimeout})
}

// newFullGatewayWith is newFullGateway with the given websocket transport;
// accepted connections pass through wrap when it is not nil.
// fullOptions vary the gateway of newFullGatewayWith.
type fullOptions struct {
	readTimeout time.Duration
	ws          *graph.Websocket                // default: a Websocket with default settings
	wrap        func(net.Listener) net.Listener // wraps the server's listener
	auth        *auth.Authenticator             // default: development mode
	seed        fs.FS                           // event schemas registered at start (default: the domain's)
	tracer      trace.TracerProvider            // default: no tracing
	// fulfilment, when set, runs the fulfilment saga with this step timeout.
	fulfilment time.Duration
	// maxFailures, when set, is the runner's MaxFailures, with a 10 ms
	// backoff: a projection that cannot fold an event fails at once.
	maxFailures int
}

// shippedNames are the names of the read models the gateway runs, sorted.
func shippedNames() []string {
	var names []string
	for _, p := range projections.Shipped() {
		names = append(names, p.Name())
	}
	slices.Sort(names)
	return names
}

func newFullGatewayWith(t *testing.T, o fullOptions) *pgGateway {
	t.Helper()
	ws := o.ws
	if ws == nil {
		ws = &graph.Websocket{}
	}
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
	registry, err := schemaregistry.New(ctx, pool, store, log, schemaregistry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	seed := o.seed
	if seed == nil {
		seed = domain.EventSchemas()
	}
	if err := registry.Seed(ctx, seed); err != nil {
		t.Fatal(err)
	}
	validated := eventstore.WithSchemas(store, registry)
	var commandStore eventstore.Store = validated
	runnerOpts := projections.Options{Poll: 50 * time.Millisecond, LeaderRetry: 50 * time.Millisecond}
	if o.maxFailures > 0 {
		runnerOpts.MaxFailures, runnerOpts.RetryBackoff = o.maxFailures, 10*time.Millisecond
	}
	if o.tracer != nil {
		commandStore = tracing.Store(validated, o.tracer)
		runnerOpts.Trace = tracing.ProjectionBatch(o.tracer)
	}
	commands := domain.NewService(commandStore, log, time.Now, domain.ServiceOptions{})
	runner, err := projections.NewRunner(pool, validated, log, runnerOpts, projections.Shipped()...)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = runner.Run(runCtx) }()
	t.Cleanup(func() { stop(); <-done })
	// As a deployment's readiness check would: every read model exists
	// before the first query (until then queries are UNAVAILABLE).
	awaitServing(t, pool, shippedNames()...)
	fulfilments := projections.NewFulfilmentQueries(pool)
	if o.fulfilment > 0 {
		saga := domain.NewFulfilmentProcess(commands, log, time.Now, domain.FulfilmentOptions{StepTimeout: o.fulfilment, Active: fulfilments.Active})
		sagaRunner, err := projections.NewProcessRunner(pool, validated, log, projections.ProcessOptions{Poll: 50 * time.Millisecond, LeaderRetry: 50 * time.Millisecond}, saga)
		if err != nil {
			t.Fatal(err)
		}
		sagaDone := make(chan struct{})
		go func() { defer close(sagaDone); _ = sagaRunner.Run(runCtx) }()
		t.Cleanup(func() { stop(); <-sagaDone })
	}
	hub := eventstore.NewHub(store, log)
	go func() { _ = hub.Run(runCtx) }()
	srv := httptest.NewUnstartedServer(graph.NewHandler(graph.Config{
		Store: commandStore, Schemas: registry, Commands: commands, Log: log, Hub: hub, Websocket: ws, Tracer: o.tracer,
		AccountReads: projections.NewAccountQueries(pool), OrderReads: projections.NewOrderQueries(pool),
		ProductReads: projections.NewProductQueries(pool), FulfilmentReads: fulfilments, Admin: projections.NewAdmin(pool),
		Positions: projections.NewPositions(pool, runner), ReadTimeout: o.readTimeout, Auth: o.auth,
	}))
	if o.wrap != nil {
		srv.Listener = o.wrap(srv.Listener)
	}
	srv.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = ws.Shutdown(ctx)
		srv.Close()
	})
	return &pgGateway{client: &client{t: t, url: srv.URL}, store: store, commands: commands, ws: ws, validated: validated, schemas: registry, pool: pool}
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
		{"rebuild an unknown projection", `mutation { rebuildProjection(name: "nope") { name } }`, "NOT_FOUND"},
		{"cancel the rebuild of an unknown projection", `mutation { cancelProjectionRebuild(name: "nope") { name } }`, "NOT_FOUND"},
		{"cancel a rebuild when none is under way", `mutation { cancelProjectionRebuild(name: "accounts") { name } }`, "RULE_VIOLATION"},
	} {
		resp, _ := g.post(c.query, nil)
		if len(resp.Errors) != 1 || resp.Errors[0].Extensions["code"] != c.code {
			t.Errorf("%s: %+v, want %s", c.name, resp.Errors, c.code)
		}
	}

	var ps struct {
		Projections []struct {
			Name       string  `json:"name"`
			Status     string  `json:"status"`
			Serving    bool    `json:"serving"`
			Position   int64   `json:"position"`
			Lag        int64   `json:"lag"`
			LagSeconds float64 `json:"lagSeconds"`
		} `json:"projections"`
	}
	// A fresh projection serves once it has caught up for the first time.
	deadline := time.Now().Add(10 * time.Second)
	for {
		g.mustPost(`{ projections { name status serving position lag lagSeconds } }`, nil, &ps)
		names := shippedNames() // the list is sorted by name
		if len(ps.Projections) != len(names) {
			t.Fatalf("projections = %+v, want %v", ps.Projections, names)
		}
		serving := true
		for i, name := range names {
			p := ps.Projections[i]
			if p.Name != name || p.Status != "RUNNING" || p.Position+p.Lag != last || p.Lag == 0 && p.LagSeconds != 0 {
				t.Fatalf("projections = %+v (head %d)", ps.Projections, last)
			}
			serving = serving && p.Serving
		}
		if serving {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("projections never all serving: %+v", ps.Projections)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestOrderAndProductQueries(t *testing.T) {
	g := newFullGateway(t, 5*time.Second)
	for i, o := range []struct {
		id, customer string
		price        int
	}{{"o1", "c1", 500}, {"o2", "c2", 100}, {"o3", "c1", 300}} {
		g.mustMutate("placeOrder", map[string]any{"orderId": o.id, "customerId": o.customer, "currency": "EUR"})
		g.mustMutate("addOrderItem", map[string]any{"orderId": o.id, "sku": "w", "quantity": i + 1, "unitPrice": o.price})
		g.mustMutate("addOrderItem", map[string]any{"orderId": o.id, "sku": "v", "quantity": 1, "unitPrice": 1})
	}
	g.mustMutate("removeOrderItem", map[string]any{"orderId": "o1", "sku": "v"})
	g.mustMutate("submitOrder", map[string]any{"orderId": "o1"})
	g.mustMutate("confirmOrder", map[string]any{"orderId": "o1"})
	g.mustMutate("shipOrder", map[string]any{"orderId": "o1", "trackingNumber": "TRK-9"})
	g.mustMutate("cancelOrder", map[string]any{"orderId": "o2", "reason": "changed mind"})
	g.mustMutate("addProduct", map[string]any{"sku": "w", "name": "Widget", "price": 500, "currency": "EUR"})
	g.mustMutate("addProduct", map[string]any{"sku": "v", "name": "Valve", "price": 1, "currency": "EUR"})
	g.mustMutate("restockProduct", map[string]any{"sku": "w", "quantity": 10})
	last := g.mustMutate("reserveStock", map[string]any{"sku": "w", "orderId": "o1", "quantity": 7}).Position

	var one struct {
		Order struct {
			Status        string `json:"status"`
			Total         int64  `json:"total"`
			ItemCount     int    `json:"itemCount"`
			Items         []struct{ Sku string }
			StatusHistory []struct {
				Status string `json:"status"`
				Reason string `json:"reason"`
			} `json:"statusHistory"`
		} `json:"order"`
	}
	g.mustPost(`query($p: Position) { order(id: "o1", atLeast: $p) { status total itemCount items { sku } statusHistory { status reason } } }`, map[string]any{"p": last}, &one)
	raw, _ := json.Marshal(one.Order.StatusHistory)
	if one.Order.Status != "SHIPPED" || one.Order.Total != 500 || one.Order.ItemCount != 1 || len(one.Order.Items) != 1 ||
		string(raw) != `[{"status":"OPEN","reason":""},{"status":"SUBMITTED","reason":""},{"status":"CONFIRMED","reason":""},{"status":"SHIPPED","reason":"TRK-9"}]` {
		t.Fatalf("order o1 = %+v %s", one.Order, raw)
	}

	type orderConn struct {
		Edges []struct {
			Node struct {
				ID    string `json:"id"`
				Total int64  `json:"total"`
				Items []struct {
					Sku      string `json:"sku"`
					Quantity int    `json:"quantity"`
				} `json:"items"`
			} `json:"node"`
		} `json:"edges"`
		PageInfo struct {
			HasNextPage bool    `json:"hasNextPage"`
			EndCursor   *string `json:"endCursor"`
		} `json:"pageInfo"`
		TotalCount int `json:"totalCount"`
	}
	ids := func(c orderConn) string {
		var out []string
		for _, e := range c.Edges {
			out = append(out, e.Node.ID)
		}
		return strings.Join(out, ",")
	}
	var list struct{ Orders orderConn }
	q := `query($after: String, $by: OrderOrderBy, $f: OrderFilter) { orders(first: 2, after: $after, orderBy: $by, filter: $f) { edges { node { id total items { sku quantity } } } pageInfo { hasNextPage endCursor } totalCount } }`
	g.mustPost(q, map[string]any{"by": map[string]any{"field": "TOTAL", "direction": "DESC"}}, &list)
	if ids(list.Orders) != "o3,o1" || !list.Orders.PageInfo.HasNextPage || list.Orders.TotalCount != 3 || len(list.Orders.Edges[0].Node.Items) != 2 {
		t.Fatalf("by total, descending = %+v", list.Orders)
	}
	g.mustPost(q, map[string]any{"by": map[string]any{"field": "TOTAL", "direction": "DESC"}, "after": *list.Orders.PageInfo.EndCursor}, &list)
	if ids(list.Orders) != "o2" || list.Orders.PageInfo.HasNextPage {
		t.Fatalf("second page = %+v", list.Orders)
	}
	g.mustPost(q, map[string]any{"f": map[string]any{"status": "CANCELLED"}}, &list)
	if ids(list.Orders) != "o2" || list.Orders.TotalCount != 1 {
		t.Fatalf("cancelled = %+v", list.Orders)
	}
	var mine struct{ CustomerOrders orderConn }
	g.mustPost(`{ customerOrders(customerId: "c1") { edges { node { id total } } totalCount } }`, nil, &mine)
	if ids(mine.CustomerOrders) != "o1,o3" || mine.CustomerOrders.TotalCount != 2 {
		t.Fatalf("customer c1 = %+v", mine.CustomerOrders)
	}

	var stats struct {
		OrderStatistics []struct {
			Status  string `json:"status"`
			Orders  int    `json:"orders"`
			Revenue int64  `json:"revenue"`
		} `json:"orderStatistics"`
	}
	today := time.Now().UTC()
	g.mustPost(`query($from: Time!, $to: Time!) { orderStatistics(from: $from, to: $to) { status orders revenue } }`,
		map[string]any{"from": today.Add(-24 * time.Hour).Format(time.RFC3339), "to": today.Add(24 * time.Hour).Format(time.RFC3339)}, &stats)
	raw, _ = json.Marshal(stats.OrderStatistics)
	if string(raw) != `[{"status":"CANCELLED","orders":1,"revenue":201},{"status":"OPEN","orders":1,"revenue":901},{"status":"SHIPPED","orders":1,"revenue":500}]` {
		t.Fatalf("statistics = %s", raw)
	}

	var products struct {
		Products struct {
			Edges []struct {
				Node struct {
					Sku       string `json:"sku"`
					OnHand    int    `json:"onHand"`
					Reserved  int    `json:"reserved"`
					Available int    `json:"available"`
				} `json:"node"`
			} `json:"edges"`
			TotalCount int `json:"totalCount"`
		} `json:"products"`
	}
	g.mustPost(`query($p: Position) { products(maxAvailable: 3, atLeast: $p) { edges { node { sku onHand reserved available } } totalCount } }`, map[string]any{"p": last}, &products)
	raw, _ = json.Marshal(products.Products.Edges)
	if string(raw) != `[{"node":{"sku":"v","onHand":0,"reserved":0,"available":0}},{"node":{"sku":"w","onHand":10,"reserved":7,"available":3}}]` {
		t.Fatalf("low stock = %s", raw)
	}
	var p struct{ Product *struct{ Name string } }
	g.mustPost(`{ product(sku: "nope") { name } }`, nil, &p)
	if p.Product != nil {
		t.Fatal("an unknown product was found")
	}
	for _, c := range []struct{ name, query string }{
		{"bad order cursor", `{ orders(after: "bm9wZQ") { totalCount } }`},
		{"statistics range reversed", `{ orderStatistics(from: "2026-02-01T00:00:00Z", to: "2026-01-01T00:00:00Z") { day } }`},
		{"negative maxAvailable", `{ products(maxAvailable: -1) { totalCount } }`},
	} {
		resp, _ := g.post(c.query, nil)
		if len(resp.Errors) != 1 || resp.Errors[0].Extensions["code"] != "VALIDATION" {
			t.Errorf("%s: %+v", c.name, resp.Errors)
		}
	}
}

func TestRebuildProjectionMutation(t *testing.T) {
	g := newFullGateway(t, 5*time.Second)
	last := g.mustMutate("openAccount", map[string]any{"accountId": "a1", "owner": "ada", "currency": "EUR", "initialDeposit": 70}).Position
	var acct struct{ Account struct{ Balance int64 } }
	g.mustPost(`query($p: Position) { account(id: "a1", atLeast: $p) { balance } }`, map[string]any{"p": last}, &acct)
	var out struct {
		RebuildProjection struct {
			Name       string `json:"name"`
			Generation int    `json:"generation"`
			Serving    bool   `json:"serving"`
		} `json:"rebuildProjection"`
	}
	g.mustPost(`mutation { rebuildProjection(name: "accounts") { name generation serving } }`, nil, &out)
	if out.RebuildProjection.Generation != 2 || out.RebuildProjection.Serving {
		t.Fatalf("rebuild = %+v, want generation 2 not serving yet", out.RebuildProjection)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		var ps struct {
			Projections []struct {
				Name       string `json:"name"`
				Generation int    `json:"generation"`
				Serving    bool   `json:"serving"`
			} `json:"projections"`
		}
		g.mustPost(`{ projections { name generation serving } }`, nil, &ps)
		done := false
		for _, p := range ps.Projections {
			if p.Name == "accounts" && p.Generation == 2 && p.Serving {
				done = true
			}
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the rebuild did not take over: %+v", ps.Projections)
		}
		time.Sleep(50 * time.Millisecond)
	}
	g.mustPost(`query($p: Position) { account(id: "a1", atLeast: $p) { balance } }`, map[string]any{"p": last}, &acct)
	if acct.Account.Balance != 70 {
		t.Fatalf("after the rebuild the balance is %d, want 70", acct.Account.Balance)
	}
}

func TestReadModelSubscriptions(t *testing.T) {
	g := newFullGateway(t, 5*time.Second)
	ws := (&wsServer{url: "ws" + strings.TrimPrefix(g.url, "http")}).dial(t, graph.ProtocolTransportWS)
	ws.init()
	g.mustMutate("openAccount", map[string]any{"accountId": "a1", "owner": "ada", "currency": "EUR", "initialDeposit": 100})
	ws.send(subscribeMsg("acct", `subscription { accountChanged(id: "a1") { balance version position } }`, nil))
	ws.send(subscribeMsg("replay", `subscription { accountChanged(id: "a1", after: 0) { balance version } }`, nil))
	ws.send(subscribeMsg("prod", `subscription { productChanged(sku: "w") { available position } }`, nil))
	ws.send(subscribeMsg("cust", `subscription { orderChanged(customerId: "c1") { id status total } }`, nil))
	ws.send(subscribeMsg("status", `subscription { projectionStatus(intervalMs: 250) { name position } }`, nil))
	time.Sleep(200 * time.Millisecond) // let the subscriptions join the feed
	dep := g.mustMutate("depositMoney", map[string]any{"accountId": "a1", "amount": 23})
	g.mustMutate("addProduct", map[string]any{"sku": "w", "name": "Widget", "price": 5, "currency": "EUR"})
	g.mustMutate("restockProduct", map[string]any{"sku": "w", "quantity": 4})
	g.mustMutate("placeOrder", map[string]any{"orderId": "o-other", "customerId": "c2", "currency": "EUR"})
	g.mustMutate("placeOrder", map[string]any{"orderId": "o-mine", "customerId": "c1", "currency": "EUR"})

	seen := map[string][]string{}
	deadline := time.Now().Add(10 * time.Second)
	want := fmt.Sprintf(`{"data":{"accountChanged":{"balance":123,"version":3,"position":%d}}}`, dep.Position)
	// "From now" may first send the row as of a change committed just before
	// the subscription (never miss one committed after): look for the deposit.
	for !slices.Contains(seen["acct"], want) || len(seen["replay"]) == 0 || len(seen["cust"]) == 0 || !strings.Contains(strings.Join(seen["status"], ""), `"name":"accounts"`) || !strings.Contains(strings.Join(seen["prod"], ""), `"available":4`) {
		if time.Now().After(deadline) {
			t.Fatalf("subscriptions so far: %v", seen)
		}
		m := ws.read()
		if m.Type != "next" {
			t.Fatalf("%s %s %s", m.ID, m.Type, m.Payload)
		}
		seen[m.ID] = append(seen[m.ID], string(m.Payload))
	}
	if last := seen["acct"][len(seen["acct"])-1]; last != want || len(seen["acct"]) > 2 {
		t.Fatalf("accountChanged sent %v, want ... %s", seen["acct"], want)
	}
	if !strings.Contains(seen["replay"][0], `"version":2`) && !strings.Contains(seen["replay"][0], `"version":3`) {
		t.Fatalf("accountChanged with after: 0 replayed %s", seen["replay"][0])
	}
	for _, o := range seen["cust"] {
		if !strings.Contains(o, `"id":"o-mine"`) {
			t.Fatalf("orderChanged for customer c1 sent %s", o)
		}
	}
	ws.send(subscribeMsg("bad", `subscription { orderChanged(id: "x", customerId: "y") { id } }`, nil))
	for {
		m := ws.read()
		if m.ID != "bad" {
			continue
		}
		if m.Type != "next" || !strings.Contains(string(m.Payload), "VALIDATION") {
			t.Fatalf("orderChanged with both arguments: %s %s", m.Type, m.Payload)
		}
		break
	}
}

// awaitServing waits until a version of each named projection serves queries.
func awaitServing(t *testing.T, pool *pgxpool.Pool, names ...string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		list, err := projections.List(context.Background(), pool)
		if err != nil {
			t.Fatal(err)
		}
		serving := map[string]bool{}
		for _, p := range list {
			serving[p.Name] = serving[p.Name] || p.Serving
		}
		missing := 0
		for _, n := range names {
			if !serving[n] {
				missing++
			}
		}
		if missing == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("projections not serving after 30s: %+v", list)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// An event is readable once every transaction older than its own has
// ended. A client that reads the log right after its mutation answered
// can miss its own event (a projection's batch, begun a moment before,
// still runs); with atLeast the read waits for it.
func TestEventsAtLeastWaitsForTheLogToBeReadable(t *testing.T) {
	g := newFullGateway(t, 400*time.Millisecond)
	ctx := context.Background()
	g.mustMutate("openAccount", map[string]any{"accountId": "a1", "owner": "ada", "currency": "EUR", "initialDeposit": 10})

	// An older transaction with an id of its own holds back what commits after it.
	hold := func() pgx.Tx {
		tx, err := g.pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, `SELECT pg_current_xact_id()`); err != nil {
			t.Fatal(err)
		}
		return tx
	}
	type page struct {
		Events struct {
			Events []struct{ Position int64 } `json:"events"`
			Head   int64                      `json:"head"`
		} `json:"events"`
	}
	read := func(atLeast any) (page, []gqlError) {
		var p page
		out, _ := g.post(`query($p: Position) { events(stream: "account-a1", atLeast: $p) { events { position } head } }`, map[string]any{"p": atLeast})
		if len(out.Errors) == 0 {
			if err := json.Unmarshal(out.Data["events"], &p.Events); err != nil {
				t.Fatal(err)
			}
		}
		return p, out.Errors
	}

	tx := hold()
	dep := g.mustMutate("depositMoney", map[string]any{"accountId": "a1", "amount": 5})
	if p, errs := read(nil); len(errs) > 0 || len(p.Events.Events) != 2 || p.Events.Head >= dep.Position {
		t.Fatalf("without atLeast, while held back: %+v %+v; want the first two events only", p, errs)
	}
	released := make(chan time.Time, 1)
	go func() {
		time.Sleep(150 * time.Millisecond)
		released <- time.Now()
		_ = tx.Rollback(ctx)
	}()
	p, errs := read(dep.Position)
	at := <-released
	if len(errs) > 0 || len(p.Events.Events) != 3 || p.Events.Events[2].Position != dep.Position || p.Events.Head < dep.Position {
		t.Fatalf("with atLeast: %+v %+v; want the deposit at %d", p, errs, dep.Position)
	}
	if time.Now().Before(at) {
		t.Fatal("the read answered before the older transaction ended")
	}

	// Held back past the read timeout: STALE, with how far the log is readable.
	tx = hold()
	defer func() { _ = tx.Rollback(ctx) }()
	dep2 := g.mustMutate("depositMoney", map[string]any{"accountId": "a1", "amount": 5})
	start := time.Now()
	_, errs = read(dep2.Position)
	if len(errs) != 1 || errs[0].Extensions["code"] != "STALE" || errs[0].Extensions["atLeast"] != float64(dep2.Position) ||
		errs[0].Extensions["reached"] != float64(dep.Position) {
		t.Fatalf("held back past the timeout: %+v, want STALE reached %d", errs, dep.Position)
	}
	if waited := time.Since(start); waited < 350*time.Millisecond {
		t.Fatalf("STALE after %s, before the 400ms timeout", waited)
	}
	// With correlationId too.
	out, _ := g.post(`query($p: Position) { events(correlationId: "x", atLeast: $p) { head } }`, map[string]any{"p": dep2.Position})
	if len(out.Errors) != 1 || out.Errors[0].Extensions["code"] != "STALE" {
		t.Fatalf("correlationId read held back: %+v, want STALE", out.Errors)
	}
}

// A closed account's refunds (the saga credits them to it: here by hand)
// are paid out to its holder by an administrator: the read model shows the
// balance at zero and a PAYOUT line, and the bank's totals lose it. Before,
// nothing could take the money out of a closed account.
func TestPayOutClosedAccount(t *testing.T) {
	g := newFullGateway(t, 2*time.Second)
	ctx := context.Background()
	g.mustMutate("openAccount", map[string]any{"accountId": "a1", "owner": "ada", "currency": "EUR"})
	g.mustMutate("openAccount", map[string]any{"accountId": "a2", "owner": "bob", "currency": "EUR", "initialDeposit": 40})
	g.mustMutate("closeAccount", map[string]any{"accountId": "a1"})
	if _, err := domain.Execute(ctx, g.commands, domain.Accounts, domain.DepositMoney{AccountID: "a1", Amount: 25, Refund: true}, domain.CommandMeta{}); err != nil {
		t.Fatal(err)
	}
	g.wantRefused([]badInput{
		{"an open account", "payOutClosedAccount", map[string]any{"accountId": "a2"}, "RULE_VIOLATION", ""},
		{"an account never opened", "payOutClosedAccount", map[string]any{"accountId": "a9"}, "NOT_FOUND", ""},
		{"no account id", "payOutClosedAccount", map[string]any{"accountId": ""}, "VALIDATION", "accountId"},
	})
	paid := g.mustMutate("payOutClosedAccount", map[string]any{"accountId": "a1"})
	var out struct {
		Account struct {
			Balance int64
			Status  string
		}
		AccountStatement struct {
			Edges []struct {
				Node struct {
					Kind         string
					Amount       int64
					BalanceAfter int64
				}
			}
		}
		BankTotals []struct {
			Currency     string
			TotalBalance int64
		}
	}
	g.mustPost(`query($p: Position) { account(id: "a1", atLeast: $p) { balance status }
		accountStatement(id: "a1", atLeast: $p) { edges { node { kind amount balanceAfter } } }
		bankTotals(atLeast: $p) { currency totalBalance } }`, map[string]any{"p": paid.Position}, &out)
	lines := out.AccountStatement.Edges
	if out.Account.Balance != 0 || out.Account.Status != "CLOSED" || len(lines) == 0 {
		t.Fatalf("after the pay-out: %+v", out)
	}
	if last := lines[len(lines)-1].Node; last.Kind != "PAYOUT" || last.Amount != -25 || last.BalanceAfter != 0 {
		t.Fatalf("the statement's last line %+v, want PAYOUT -25 to 0", last)
	}
	if len(out.BankTotals) != 1 || out.BankTotals[0].TotalBalance != 40 {
		t.Fatalf("bank totals %+v, want only a2's 40", out.BankTotals)
	}
	// Paid out: nothing more to pay, and the account takes nothing else.
	g.wantRefused([]badInput{
		{"a second pay-out", "payOutClosedAccount", map[string]any{"accountId": "a1"}, "RULE_VIOLATION", ""},
		{"a deposit after it", "depositMoney", map[string]any{"accountId": "a1", "amount": 1}, "RULE_VIOLATION", ""},
	})
}

// countingStore counts reads of the log.
type countingStore struct {
	eventstore.Store
	reads atomic.Int64
}

func (s *countingStore) ReadAll(ctx context.Context, q eventstore.AllQuery) (eventstore.Page, error) {
	s.reads.Add(1)
	return s.Store.ReadAll(ctx, q)
}

// Many fields waiting with atLeast wait on the hub, not each on the
// database: 500 aliases of events(atLeast:) past the log's end polled the
// store 12,500 times in one request (a reader's request could tie up the
// pool), and their wait overran the read timeout queueing for it.
func TestEventsAtLeastWaitersShareTheHub(t *testing.T) {
	mem := memStore()
	store := &countingStore{Store: mem}
	log := slog.New(slog.DiscardHandler)
	hub := eventstore.NewHub(store, log)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go func() { _ = hub.Run(ctx) }()
	srv := httptest.NewServer(graph.NewHandler(graph.Config{Store: store, Hub: hub, Log: log, ReadTimeout: 500 * time.Millisecond,
		Commands: domain.NewService(mem, log, time.Now, domain.ServiceOptions{})}))
	defer srv.Close()
	c := &client{t: t, url: srv.URL}
	var q strings.Builder
	q.WriteString("query($p: Position) {")
	for i := range 500 {
		fmt.Fprintf(&q, " a%d: events(first: 1, atLeast: $p) { head }", i)
	}
	q.WriteString(" }")
	before := store.reads.Load()
	start := time.Now()
	out, _ := c.post(q.String(), map[string]any{"p": 1 << 40})
	took := time.Since(start)
	if len(out.Errors) != 500 || out.Errors[0].Extensions["code"] != "STALE" {
		t.Fatalf("%d errors, the first %+v; want 500 STALE", len(out.Errors), out.Errors[0])
	}
	if n := store.reads.Load() - before; n > 50 {
		t.Errorf("one request read the log %d times while its fields waited", n)
	}
	if took > 2*time.Second {
		t.Errorf("the request took %s against a 500ms read timeout", took)
	}
}
