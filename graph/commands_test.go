package graph_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"cqrsgate/domain"
	"cqrsgate/eventstore"
	"cqrsgate/graph"
	"cqrsgate/internal/pgtest"
	"cqrsgate/schemaregistry"
)

func TestMain(m *testing.M) {
	pgtest.Main(m, pgtest.Options{Migrate: pgtest.OnConn(func(ctx context.Context, conn *pgx.Conn) error {
		if err := eventstore.Migrate(ctx, conn); err != nil {
			return err
		}
		return schemaregistry.Migrate(ctx, conn)
	})})
}

// pgGateway is the GraphQL handler over a fresh PostgreSQL database.
type pgGateway struct {
	*client
	store    *eventstore.Postgres
	commands *domain.Service
	ws       *graph.Websocket // nil without a websocket transport
	// The schema registry and the store that validates with it (nil
	// without a registry: newPGGateway).
	validated *eventstore.Schematized
	schemas   *schemaregistry.Registry
	pool      *pgxpool.Pool // newFullGateway's database
}

func newPGGateway(t *testing.T) *pgGateway {
	pool := pgtest.NewPool(t)
	log := slog.New(slog.DiscardHandler)
	store := eventstore.NewPostgres(pool, log, eventstore.Limits{}, eventstore.NewBroadcaster())
	commands := domain.NewService(store, log, time.Now, domain.ServiceOptions{MaxRetries: 50})
	return &pgGateway{client: newServerWith(t, store, commands, log), store: store, commands: commands}
}

// result is a CommandResult as the tests read it.
type result struct {
	AggregateID   string `json:"aggregateId"`
	StreamID      string `json:"streamId"`
	Version       int    `json:"version"`
	Position      int64  `json:"position"`
	Duplicate     bool   `json:"duplicate"`
	CorrelationID string `json:"correlationId"`
	CausationID   string `json:"causationId"`
	Events        []struct {
		Type          string          `json:"type"`
		SchemaVersion int             `json:"schemaVersion"`
		Data          json.RawMessage `json:"data"`
		Metadata      json.RawMessage `json:"metadata"`
	} `json:"events"`
}

const resultFields = `{ aggregateId streamId version position duplicate correlationId causationId events { type schemaVersion data metadata } }`

// mutate runs mutation name with input and returns its result, or the
// response's single error.
func (g *pgGateway) mutate(name string, input map[string]any, headers ...string) (result, *gqlError) {
	g.t.Helper()
	q := fmt.Sprintf(`mutation($input: %sInput!) { %s(input: $input) %s }`, strings.ToUpper(name[:1])+name[1:], name, resultFields)
	out, _ := g.post(q, map[string]any{"input": input}, headers...)
	if len(out.Errors) > 0 {
		e := gqlError(out.Errors[0])
		return result{}, &e
	}
	var r result
	if err := json.Unmarshal(out.Data[name], &r); err != nil {
		g.t.Fatalf("%s: %v", name, err)
	}
	return r, nil
}

func (g *pgGateway) mustMutate(name string, input map[string]any, headers ...string) result {
	g.t.Helper()
	r, err := g.mutate(name, input, headers...)
	if err != nil {
		g.t.Fatalf("%s(%v): %s %v", name, input, err.Message, err.Extensions)
	}
	return r
}

func (g *pgGateway) head() int64 {
	g.t.Helper()
	p, err := g.store.ReadAll(context.Background(), eventstore.AllQuery{Limit: 1})
	if err != nil {
		g.t.Fatal(err)
	}
	return p.Head
}

func (g *pgGateway) balance(id string) int64 {
	g.t.Helper()
	a, _, err := domain.Load(context.Background(), g.commands, domain.Accounts, id)
	if err != nil {
		g.t.Fatal(err)
	}
	return a.Balance()
}

func wantError(t *testing.T, what string, err *gqlError, code, detailKey, detail string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s succeeded, want %s", what, code)
	}
	if err.Extensions["code"] != code {
		t.Fatalf("%s: code %v (%s), want %s", what, err.Extensions["code"], err.Message, code)
	}
	if detailKey != "" && fmt.Sprint(err.Extensions[detailKey]) != detail {
		t.Fatalf("%s: %s = %v, want %s (%s)", what, detailKey, err.Extensions[detailKey], detail, err.Message)
	}
}

func TestAccountMutations(t *testing.T) {
	g := newPGGateway(t)
	open := g.mustMutate("openAccount", map[string]any{"owner": "ada", "currency": "EUR", "initialDeposit": 1000, "overdraftLimit": 500}, "X-Correlation-ID", "corr-acct")
	id := open.AggregateID
	if !domain.ValidID(id) || open.StreamID != "account-"+id || open.Version != 2 || open.Position == 0 || len(open.Events) != 2 ||
		open.Events[0].Type != "AccountOpened" || open.Events[1].Type != "MoneyDeposited" || open.CorrelationID != "corr-acct" || open.CausationID == "" {
		t.Fatalf("openAccount = %+v", open)
	}
	var meta map[string]string
	_ = json.Unmarshal(open.Events[0].Metadata, &meta)
	if meta["correlationId"] != "corr-acct" || meta["causationId"] != open.CausationID || meta["command"] != "OpenAccount" {
		t.Fatalf("metadata = %v", meta)
	}
	dep := g.mustMutate("depositMoney", map[string]any{"accountId": id, "amount": "250"})
	if dep.Version != 3 || dep.Position <= open.Position || string(dep.Events[0].Data) != `{"amount":250,"balanceAfter":1250}` {
		t.Fatalf("depositMoney = %+v", dep)
	}

	head := g.head()
	_, err := g.mutate("withdrawMoney", map[string]any{"accountId": id, "amount": 1751})
	wantError(t, "withdraw beyond overdraft", err, "RULE_VIOLATION", "rule", domain.RuleInsufficientFunds)
	_, err = g.mutate("closeAccount", map[string]any{"accountId": id})
	wantError(t, "close with a balance", err, "RULE_VIOLATION", "rule", domain.RuleBalanceNotZero)
	if g.head() != head || g.balance(id) != 1250 {
		t.Fatal("refused commands wrote events")
	}

	w := g.mustMutate("withdrawMoney", map[string]any{"accountId": id, "amount": 1750})
	if len(w.Events) != 2 || w.Events[1].Type != "OverdraftOccurred" || g.balance(id) != -500 {
		t.Fatalf("withdraw into overdraft = %+v", w)
	}
	g.mustMutate("freezeAccount", map[string]any{"accountId": id, "reason": "audit"})
	_, err = g.mutate("withdrawMoney", map[string]any{"accountId": id, "amount": 1})
	wantError(t, "withdraw from frozen", err, "RULE_VIOLATION", "rule", domain.RuleAccountFrozen)
	g.mustMutate("depositMoney", map[string]any{"accountId": id, "amount": 500})
	g.mustMutate("unfreezeAccount", map[string]any{"accountId": id})
	g.mustMutate("chargeFee", map[string]any{"accountId": id, "amount": 0o0 + 1, "reason": "card"})
	g.mustMutate("depositMoney", map[string]any{"accountId": id, "amount": 1})
	noop := g.mustMutate("applyInterest", map[string]any{"accountId": id, "rateBasisPoints": 100})
	if len(noop.Events) != 0 || noop.Position != 0 {
		t.Fatalf("interest on a zero balance wrote %+v", noop)
	}
	closed := g.mustMutate("closeAccount", map[string]any{"accountId": id, "expectedVersion": noop.Version})
	if closed.Events[0].Type != "AccountClosed" {
		t.Fatalf("close = %+v", closed)
	}
}

func TestCommandConflictsAndIdempotency(t *testing.T) {
	g := newPGGateway(t)
	open := g.mustMutate("openAccount", map[string]any{"accountId": "acc-1", "owner": "ada", "currency": "EUR"})
	_, err := g.mutate("depositMoney", map[string]any{"accountId": "acc-1", "amount": 5, "expectedVersion": 0})
	wantError(t, "stale expectedVersion", err, "CONFLICT", "actualVersion", "1")
	if err.Extensions["expectedVersion"] != float64(0) {
		t.Fatalf("extensions = %v", err.Extensions)
	}

	first := g.mustMutate("depositMoney", map[string]any{"accountId": "acc-1", "amount": 5, "idempotencyKey": "k-1"})
	again := g.mustMutate("depositMoney", map[string]any{"accountId": "acc-1", "amount": 5, "idempotencyKey": "k-1"})
	if !again.Duplicate || again.Position != first.Position || again.Version != first.Version || len(again.Events) != 1 {
		t.Fatalf("retry = %+v, want the original %+v", again, first)
	}
	// A new process (new handler, new service) on the same database still
	// knows the key: it lives in the event store.
	restarted := &pgGateway{client: newServerWith(t, g.store, domain.NewService(g.store, slog.New(slog.DiscardHandler), time.Now, domain.ServiceOptions{}), nil), store: g.store, commands: g.commands}
	after := restarted.mustMutate("depositMoney", map[string]any{"accountId": "acc-1", "amount": 5, "idempotencyKey": "k-1"})
	if !after.Duplicate || after.Position != first.Position {
		t.Fatalf("retry after restart = %+v", after)
	}
	// A key stands for one command: repeated with other arguments, or with
	// another command, it is refused and writes nothing.
	head := g.head()
	_, err = g.mutate("depositMoney", map[string]any{"accountId": "acc-1", "amount": 500, "idempotencyKey": "k-1"})
	wantError(t, "the key of a deposit of 5 reused for 500", err, "VALIDATION", "field", "idempotencyKey")
	_, err = g.mutate("withdrawMoney", map[string]any{"accountId": "acc-1", "amount": 5, "idempotencyKey": "k-1"})
	wantError(t, "the key of a deposit reused for a withdrawal", err, "VALIDATION", "field", "idempotencyKey")
	if g.head() != head {
		t.Fatal("a reused key wrote events")
	}
	// Concurrent retries of a creation without an id open one account.
	var wg sync.WaitGroup
	ids := make([]string, 8)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ids[i] = g.mustMutate("openAccount", map[string]any{"owner": "bob", "currency": "USD", "initialDeposit": 7, "idempotencyKey": "open-bob"}).AggregateID
		}()
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("concurrent retries opened different accounts: %v", ids)
		}
	}
	if v, _ := g.store.StreamVersion(context.Background(), "account-"+ids[0]); v != 2 || g.balance(ids[0]) != 7 {
		t.Fatalf("account opened by retries is at version %d with balance %d", v, g.balance(ids[0]))
	}
	if g.balance("acc-1") != 5 || open.Version != 1 {
		t.Fatalf("balance %d after one deposit retried thrice", g.balance("acc-1"))
	}
}

// TestConcurrentDepositsAllSucceed: 16 concurrent deposits to one account
// all succeed through the service's retries and the balance is exact.
func TestConcurrentDepositsAllSucceed(t *testing.T) {
	g := newPGGateway(t)
	id := g.mustMutate("openAccount", map[string]any{"owner": "ada", "currency": "EUR"}).AggregateID
	var wg sync.WaitGroup
	for i := 1; i <= 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g.mustMutate("depositMoney", map[string]any{"accountId": id, "amount": i * 100})
		}()
	}
	wg.Wait()
	if b := g.balance(id); b != 13600 {
		t.Fatalf("balance %d after 16 concurrent deposits, want 13600", b)
	}
	if v, _ := g.store.StreamVersion(context.Background(), "account-"+id); v != 17 {
		t.Fatalf("version %d, want 17", v)
	}
}

func TestCommandBadInputWritesNothing(t *testing.T) {
	g := newPGGateway(t)
	id := g.mustMutate("openAccount", map[string]any{"owner": "ada", "currency": "EUR", "initialDeposit": 100}).AggregateID
	head := g.head()
	long := strings.Repeat("x", 1000)
	cases := []badInput{
		{"missing owner", "openAccount", map[string]any{"currency": "EUR"}, "GRAPHQL_VALIDATION_FAILED", ""},
		{"missing amount", "depositMoney", map[string]any{"accountId": id}, "GRAPHQL_VALIDATION_FAILED", ""},
		{"amount not a number", "depositMoney", map[string]any{"accountId": id, "amount": "ten"}, "VALIDATION", ""},
		{"zero amount", "depositMoney", map[string]any{"accountId": id, "amount": 0}, "VALIDATION", "amount"},
		{"negative amount", "withdrawMoney", map[string]any{"accountId": id, "amount": -5}, "VALIDATION", "amount"},
		{"negative initial deposit", "openAccount", map[string]any{"owner": "a", "currency": "EUR", "initialDeposit": -1}, "VALIDATION", "initialDeposit"},
		{"unknown currency", "openAccount", map[string]any{"owner": "a", "currency": "XYZ"}, "VALIDATION", "currency"},
		{"oversized owner", "openAccount", map[string]any{"owner": long, "currency": "EUR"}, "VALIDATION", "owner"},
		{"oversized reason", "freezeAccount", map[string]any{"accountId": id, "reason": long}, "VALIDATION", "reason"},
		{"oversized id", "depositMoney", map[string]any{"accountId": long, "amount": 1}, "VALIDATION", "accountId"},
		{"unknown account", "depositMoney", map[string]any{"accountId": "nobody", "amount": 1}, "NOT_FOUND", ""},
		{"negative expectedVersion", "depositMoney", map[string]any{"accountId": id, "amount": 1, "expectedVersion": -1}, "VALIDATION", "expectedVersion"},
		{"empty idempotencyKey", "depositMoney", map[string]any{"accountId": id, "amount": 1, "idempotencyKey": ""}, "VALIDATION", "idempotencyKey"},
		{"oversized idempotencyKey", "depositMoney", map[string]any{"accountId": id, "amount": 1, "idempotencyKey": long}, "VALIDATION", "idempotencyKey"},
		{"idempotencyKey of the fulfilment process", "depositMoney", map[string]any{"accountId": id, "amount": 1, "idempotencyKey": "fulfilment/o-1/CHARGE"}, "VALIDATION", "idempotencyKey"},
		{"idempotencyKey with NUL", "depositMoney", map[string]any{"accountId": id, "amount": 1, "idempotencyKey": "key\x00"}, "VALIDATION", "idempotencyKey"},
		{"idempotencyKey with control characters", "depositMoney", map[string]any{"accountId": id, "amount": 1, "idempotencyKey": "k\n\x01"}, "VALIDATION", "idempotencyKey"},
		{"id with a zero-width space", "depositMoney", map[string]any{"accountId": id + "\u200b", "amount": 1}, "VALIDATION", "accountId"},
		{"id of a zero-width space", "openAccount", map[string]any{"accountId": "\u200b", "owner": "a", "currency": "EUR"}, "VALIDATION", "accountId"},
		{"id with a no-break space", "openAccount", map[string]any{"accountId": "a\u00a0b", "owner": "a", "currency": "EUR"}, "VALIDATION", "accountId"},
		{"id with a C1 control", "openAccount", map[string]any{"accountId": "a\u0085b", "owner": "a", "currency": "EUR"}, "VALIDATION", "accountId"},
		{"order id with a tab", "submitOrder", map[string]any{"orderId": "a\tb"}, "VALIDATION", "orderId"},
		{"empty sku", "restockProduct", map[string]any{"sku": "", "quantity": 1}, "VALIDATION", "sku"},
		{"owner with a right-to-left override", "openAccount", map[string]any{"owner": "ada\u202eevil", "currency": "EUR"}, "VALIDATION", "owner"},
		{"owner with a line separator", "openAccount", map[string]any{"owner": "ada\u2028x", "currency": "EUR"}, "VALIDATION", "owner"},
		{"interest rate out of range", "applyInterest", map[string]any{"accountId": id, "rateBasisPoints": 0}, "VALIDATION", "rateBasisPoints"},
	}
	g.wantRefused(cases)
	if g.head() != head || g.balance(id) != 100 {
		t.Fatal("bad input wrote events")
	}
}

func TestOrderLifecycleMutations(t *testing.T) {
	g := newPGGateway(t)
	placed := g.mustMutate("placeOrder", map[string]any{"customerId": "cust-1", "currency": "EUR"})
	id := placed.AggregateID
	g.mustMutate("addOrderItem", map[string]any{"orderId": id, "sku": "widget", "quantity": 2, "unitPrice": 1500})
	g.mustMutate("addOrderItem", map[string]any{"orderId": id, "sku": "gadget", "quantity": 1, "unitPrice": 999})
	g.mustMutate("addOrderItem", map[string]any{"orderId": id, "sku": "widget", "quantity": 1, "unitPrice": 1500})
	_, err := g.mutate("addOrderItem", map[string]any{"orderId": id, "sku": "widget", "quantity": 1, "unitPrice": 1})
	wantError(t, "price mismatch", err, "RULE_VIOLATION", "rule", domain.RulePriceMismatch)
	g.mustMutate("removeOrderItem", map[string]any{"orderId": id, "sku": "gadget"})
	_, err = g.mutate("confirmOrder", map[string]any{"orderId": id})
	wantError(t, "confirm before submit", err, "RULE_VIOLATION", "rule", domain.RuleOrderNotSubmitted)
	sub := g.mustMutate("submitOrder", map[string]any{"orderId": id})
	var submitted domain.OrderSubmitted
	if err := json.Unmarshal(sub.Events[0].Data, &submitted); err != nil || submitted.Total != 4500 || submitted.ItemCount != 3 {
		t.Fatalf("submitted = %s", sub.Events[0].Data)
	}
	_, err = g.mutate("addOrderItem", map[string]any{"orderId": id, "sku": "late", "quantity": 1, "unitPrice": 1})
	wantError(t, "add after submit", err, "RULE_VIOLATION", "rule", domain.RuleOrderNotOpen)
	_, err = g.mutate("shipOrder", map[string]any{"orderId": id, "trackingNumber": "TRK1"})
	wantError(t, "ship before confirm", err, "RULE_VIOLATION", "rule", domain.RuleOrderNotConfirmed)
	g.mustMutate("confirmOrder", map[string]any{"orderId": id})
	shipped := g.mustMutate("shipOrder", map[string]any{"orderId": id, "trackingNumber": "TRK1"})
	if shipped.Version != 8 || shipped.Events[0].Type != "OrderShipped" {
		t.Fatalf("ship = %+v", shipped)
	}
	_, err = g.mutate("cancelOrder", map[string]any{"orderId": id, "reason": "too late"})
	wantError(t, "cancel after shipping", err, "RULE_VIOLATION", "rule", domain.RuleOrderShipped)

	other := g.mustMutate("placeOrder", map[string]any{"orderId": "order-2", "customerId": "cust-1", "currency": "EUR"}).AggregateID
	_, err = g.mutate("submitOrder", map[string]any{"orderId": other})
	wantError(t, "submit empty", err, "RULE_VIOLATION", "rule", domain.RuleOrderEmpty)
	g.mustMutate("cancelOrder", map[string]any{"orderId": other, "reason": "changed my mind"})
	_, err = g.mutate("placeOrder", map[string]any{"customerId": "c", "currency": "euro"})
	wantError(t, "bad currency", err, "VALIDATION", "field", "currency")
	_, err = g.mutate("addOrderItem", map[string]any{"orderId": "missing", "sku": "w", "quantity": 1, "unitPrice": 1})
	wantError(t, "unknown order", err, "NOT_FOUND", "", "")
	_, err = g.mutate("addOrderItem", map[string]any{"orderId": other, "sku": "w", "quantity": 0, "unitPrice": 1})
	wantError(t, "zero quantity", err, "VALIDATION", "field", "quantity")
}

func TestProductMutations(t *testing.T) {
	g := newPGGateway(t)
	g.mustMutate("addProduct", map[string]any{"sku": "SKU-1", "name": "Widget", "price": 1500, "currency": "EUR"})
	_, err := g.mutate("addProduct", map[string]any{"sku": "SKU-1", "name": "Widget", "price": 1500, "currency": "EUR"})
	wantError(t, "add twice", err, "RULE_VIOLATION", "rule", domain.RuleProductExists)
	g.mustMutate("restockProduct", map[string]any{"sku": "SKU-1", "quantity": 5})
	g.mustMutate("reserveStock", map[string]any{"sku": "SKU-1", "orderId": "o1", "quantity": 3})
	_, err = g.mutate("reserveStock", map[string]any{"sku": "SKU-1", "orderId": "o2", "quantity": 3})
	wantError(t, "reserve beyond available", err, "RULE_VIOLATION", "rule", domain.RuleInsufficientStock)
	g.mustMutate("releaseStock", map[string]any{"sku": "SKU-1", "orderId": "o1"})
	g.mustMutate("reserveStock", map[string]any{"sku": "SKU-1", "orderId": "o2", "quantity": 5})
	same := g.mustMutate("changePrice", map[string]any{"sku": "SKU-1", "price": 1500})
	if len(same.Events) != 0 {
		t.Fatalf("the same price wrote %+v", same.Events)
	}
	g.mustMutate("changePrice", map[string]any{"sku": "SKU-1", "price": 1700})
	p, v, err2 := domain.Load(context.Background(), g.commands, domain.Products, "SKU-1")
	if err2 != nil || v != 6 || p.OnHand() != 5 || p.Available() != 0 || p.Price() != 1700 {
		t.Fatalf("product = on hand %d available %d price %d at %d (%v)", p.OnHand(), p.Available(), p.Price(), v, err2)
	}
	_, err = g.mutate("restockProduct", map[string]any{"sku": "nope", "quantity": 1})
	wantError(t, "unknown product", err, "NOT_FOUND", "", "")
	_, err = g.mutate("addProduct", map[string]any{"sku": "SKU-2", "name": "W", "price": 0, "currency": "EUR"})
	wantError(t, "zero price", err, "VALIDATION", "field", "price")
}

func TestTimeTravel(t *testing.T) {
	g := newPGGateway(t)
	g.mustMutate("openAccount", map[string]any{"accountId": "a1", "owner": "ada", "currency": "EUR", "initialDeposit": 100})
	g.mustMutate("depositMoney", map[string]any{"accountId": "a1", "amount": 50})
	time.Sleep(20 * time.Millisecond)
	cut := time.Now().UTC()
	time.Sleep(20 * time.Millisecond)
	g.mustMutate("withdrawMoney", map[string]any{"accountId": "a1", "amount": 120})
	g.mustMutate("freezeAccount", map[string]any{"accountId": "a1", "reason": "audit"})

	var out struct {
		V2, Cut, Now, Before *struct {
			Version int    `json:"version"`
			Balance int64  `json:"balance"`
			Status  string `json:"status"`
			Owner   string `json:"owner"`
		}
	}
	g.mustPost(`query($cut: Time, $before: Time) {
		v2: accountAt(id: "a1", version: 2) { version balance status owner }
		cut: accountAt(id: "a1", at: $cut) { version balance status owner }
		now: accountAt(id: "a1") { version balance status owner }
		before: accountAt(id: "a1", at: $before) { version }
	}`, map[string]any{"cut": cut.Format(time.RFC3339Nano), "before": "2001-01-01T00:00:00Z"}, &out)
	if out.V2 == nil || out.V2.Version != 2 || out.V2.Balance != 100 || out.V2.Owner != "ada" {
		t.Fatalf("at version 2: %+v", out.V2)
	}
	if out.Cut == nil || out.Cut.Version != 3 || out.Cut.Balance != 150 || out.Cut.Status != "OPEN" {
		t.Fatalf("at the cut: %+v", out.Cut)
	}
	if out.Now == nil || out.Now.Version != 5 || out.Now.Balance != 30 || out.Now.Status != "FROZEN" || out.Before != nil {
		t.Fatalf("now: %+v, before it existed: %+v", out.Now, out.Before)
	}

	g.mustMutate("placeOrder", map[string]any{"orderId": "o1", "customerId": "c1", "currency": "EUR"})
	g.mustMutate("addOrderItem", map[string]any{"orderId": "o1", "sku": "w", "quantity": 2, "unitPrice": 300})
	g.mustMutate("submitOrder", map[string]any{"orderId": "o1"})
	var order struct {
		OrderAt struct {
			Status string `json:"status"`
			Total  int64  `json:"total"`
			Items  []struct {
				Sku      string `json:"sku"`
				Quantity int    `json:"quantity"`
			} `json:"items"`
		} `json:"orderAt"`
	}
	g.mustPost(`{ orderAt(id: "o1", version: 2) { status total items { sku quantity } } }`, nil, &order)
	if order.OrderAt.Status != "OPEN" || order.OrderAt.Total != 600 || len(order.OrderAt.Items) != 1 || order.OrderAt.Items[0].Quantity != 2 {
		t.Fatalf("order at version 2: %+v", order.OrderAt)
	}
	resp, _ := g.post(`{ accountAt(id: "a1", version: 0) { version } }`, nil)
	if len(resp.Errors) != 1 || resp.Errors[0].Extensions["field"] != "version" {
		t.Fatalf("version 0: %+v", resp.Errors)
	}
	var missing struct{ AccountAt *struct{ Version int } }
	g.mustPost(`{ accountAt(id: "nobody") { version } }`, nil, &missing)
	if missing.AccountAt != nil {
		t.Fatal("an unknown account has a past")
	}
}

// appendEvents writes no event of the domain's own types: read models fold
// events by type, so a MoneyDeposited on "ledger-1" stopped the accounts
// read model for every tenant, and a tenant's AccountOpened on its own
// stream showed up in the default tenant's bank totals.
func TestAppendEventsRefusesTheDomainsEventTypes(t *testing.T) {
	g := newFullGateway(t, 2*time.Second)
	g.mustMutate("openAccount", map[string]any{"accountId": "a1", "owner": "ada", "currency": "EUR", "initialDeposit": 100})
	g.mustPost(`mutation { registerEventSchema(type: "NoteTaken", schema: {type: "object"}) { version } }`, nil, &struct{}{})
	head := g.head()
	for _, typ := range []string{"MoneyDeposited", "AccountOpened", "OrderSubmitted", "StockReserved", "FulfilmentStarted"} {
		// Data that matches MoneyDeposited's schema: only the type refuses it.
		out, _ := g.post(`mutation($t: String!) { appendEvents(stream: "ledger-1", events: [{type: "NoteTaken", data: {}}, {type: $t, data: {amount: 5, balanceAfter: 5}}]) { position } }`, map[string]any{"t": typ})
		if len(out.Errors) != 1 || out.Errors[0].Extensions["code"] != "VALIDATION" || out.Errors[0].Extensions["field"] != "events.1.type" ||
			!strings.Contains(out.Errors[0].Message, "command mutations") {
			t.Errorf("appendEvents of %s: %+v, want VALIDATION on events.1.type", typ, out.Errors)
		}
	}
	if g.head() != head {
		t.Fatalf("refused appends wrote events: head %d, was %d", g.head(), head)
	}
	dep := g.mustMutate("depositMoney", map[string]any{"accountId": "a1", "amount": 1})
	out, _ := g.post(`query($p: Position) { account(id: "a1", atLeast: $p) { balance } }`, map[string]any{"p": dep.Position})
	if len(out.Errors) > 0 || string(out.Data["account"]) != `{"balance":101}` {
		t.Errorf("the accounts read model after the refused appends: %s %+v", out.Data["account"], out.Errors)
	}
}

// badInput is a mutation with bad input, and the error code (and field,
// when not "") it must be refused with.
type badInput struct {
	name, mutation string
	input          map[string]any
	code, field    string
}

// wantRefused runs each case and checks it is refused as it says.
func (g *pgGateway) wantRefused(cases []badInput) {
	g.t.Helper()
	for _, c := range cases {
		_, err := g.mutate(c.mutation, c.input)
		if err == nil {
			g.t.Errorf("%s: succeeded", c.name)
			continue
		}
		if err.Extensions["code"] != c.code || c.field != "" && err.Extensions["field"] != c.field {
			g.t.Errorf("%s: %s %v, want %s field %q", c.name, err.Message, err.Extensions, c.code, c.field)
		}
	}
}
