package domain_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cqrsgate/domain"
	"cqrsgate/eventstore"
)

// flakyStore fails appends to account streams while down is set, as an
// unreachable database would.
type flakyStore struct {
	*eventstore.Memory
	down atomic.Bool
}

func (f *flakyStore) Append(ctx context.Context, stream string, exp domain.ExpectedVersion, evs ...domain.EventData) (domain.AppendResult, error) {
	if f.down.Load() && strings.Contains(stream, "account-") {
		return domain.AppendResult{}, &domain.Error{Code: domain.Unavailable, Message: "database unavailable"}
	}
	return f.Memory.Append(ctx, stream, exp, evs...)
}

// saga is a fulfilment test bed: a store, a command service, the process,
// and the log position the process has handled.
type saga struct {
	t       *testing.T
	store   *flakyStore
	svc     *domain.Service
	proc    *domain.FulfilmentProcess
	handled int64
	clock   atomic.Int64 // unix nanoseconds
}

func newSaga(t *testing.T, hook func(string, domain.FulfilmentStep, string)) *saga {
	s := &saga{t: t, store: &flakyStore{Memory: eventstore.NewMemory(eventstore.Limits{}, time.Now)}}
	s.clock.Store(time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC).UnixNano())
	now := func() time.Time { return time.Unix(0, s.clock.Load()).UTC() }
	log := slog.New(slog.DiscardHandler)
	s.svc = domain.NewService(s.store, log, now, domain.ServiceOptions{})
	s.proc = domain.NewFulfilmentProcess(s.svc, log, now, domain.FulfilmentOptions{StepTimeout: time.Minute, Hook: hook})
	return s
}

func (s *saga) exec(tenant string, cmd domain.Command) {
	s.t.Helper()
	var err error
	meta := domain.CommandMeta{Tenant: tenant}
	switch cmd.(type) {
	case domain.OpenAccount, domain.DepositMoney, domain.FreezeAccount, domain.WithdrawMoney, domain.CloseAccount:
		_, err = domain.Execute(context.Background(), s.svc, domain.Accounts, cmd, meta)
	case domain.AddProduct, domain.RestockProduct, domain.ChangePrice:
		_, err = domain.Execute(context.Background(), s.svc, domain.Products, cmd, meta)
	default:
		_, err = domain.Execute(context.Background(), s.svc, domain.Orders, cmd, meta)
	}
	if err != nil {
		s.t.Fatalf("%s: %v", cmd.CommandName(), err)
	}
}

// drive hands the process every event of its types after the last one it
// handled, as the runner does, until none is left; it stops at the first
// error (the runner would retry that event).
func (s *saga) drive() error {
	for {
		page, err := s.store.ReadAll(context.Background(), eventstore.AllQuery{After: s.handled, Types: s.proc.EventTypes()})
		if err != nil {
			return err
		}
		if len(page.Events) == 0 {
			return nil
		}
		for _, e := range page.Events {
			if err := s.proc.Handle(context.Background(), e); err != nil {
				return err
			}
			s.handled = e.Position
		}
	}
}

func (s *saga) mustDrive() {
	s.t.Helper()
	if err := s.drive(); err != nil {
		s.t.Fatal(err)
	}
}

// shop opens account "cust" with balance in currency, adds products p1 and
// p2 with stock, and places and submits order o1 for 2 p1 at 100 and 1 p2
// at 300 (total 500).
func (s *saga) shop(tenant string, balance int64, currency string, stock1, stock2 int64) {
	s.t.Helper()
	s.exec(tenant, domain.OpenAccount{AccountID: "cust", Owner: "Ann", Currency: currency, InitialDeposit: balance})
	s.exec(tenant, domain.AddProduct{Sku: "p1", Name: "One", Price: 100, Currency: "EUR"})
	s.exec(tenant, domain.AddProduct{Sku: "p2", Name: "Two", Price: 300, Currency: "EUR"})
	if stock1 > 0 {
		s.exec(tenant, domain.RestockProduct{Sku: "p1", Quantity: stock1})
	}
	if stock2 > 0 {
		s.exec(tenant, domain.RestockProduct{Sku: "p2", Quantity: stock2})
	}
	s.exec(tenant, domain.PlaceOrder{OrderID: "o1", CustomerID: "cust", Currency: "EUR"})
	s.exec(tenant, domain.AddOrderItem{OrderID: "o1", Sku: "p1", Quantity: 2, UnitPrice: 100})
	s.exec(tenant, domain.AddOrderItem{OrderID: "o1", Sku: "p2", Quantity: 1, UnitPrice: 300})
	s.exec(tenant, domain.SubmitOrder{OrderID: "o1"})
}

// outcome is the state of every aggregate the saga touches.
type outcome struct {
	saga, reason, order  string
	balance              int64
	reserved1, reserved2 int64
}

func (s *saga) outcome(tenant string) outcome {
	s.t.Helper()
	ctx := context.Background()
	q := func(id string) string { return domain.Qualify(tenant, id) }
	f, _, err1 := domain.Load(ctx, s.svc, domain.Fulfilments, q("o1"))
	o, _, err2 := domain.Load(ctx, s.svc, domain.Orders, q("o1"))
	a, _, err3 := domain.Load(ctx, s.svc, domain.Accounts, q("cust"))
	p1, _, err4 := domain.Load(ctx, s.svc, domain.Products, q("p1"))
	p2, _, err5 := domain.Load(ctx, s.svc, domain.Products, q("p2"))
	if err := errors.Join(err1, err2, err3, err4, err5); err != nil {
		s.t.Fatal(err)
	}
	return outcome{saga: f.State(), reason: f.Reason(), order: o.Status(), balance: a.Balance(), reserved1: p1.ReservedFor("o1"), reserved2: p2.ReservedFor("o1")}
}

func TestFulfilmentHappyPath(t *testing.T) {
	s := newSaga(t, nil)
	s.shop("", 1000, "EUR", 5, 5)
	s.mustDrive()
	got := s.outcome("")
	want := outcome{saga: domain.FulfilmentFulfilled, order: domain.StatusConfirmed, balance: 500, reserved1: 2, reserved2: 1}
	if got != want {
		t.Fatalf("outcome %+v, want %+v", got, want)
	}
	// Handling everything again changes nothing: no second charge.
	s.handled = 0
	s.mustDrive()
	if again := s.outcome(""); again != want {
		t.Fatalf("after handling the log again: %+v", again)
	}
	// The saga's commands carry the order's correlation id.
	evs, _ := s.store.ReadStream(context.Background(), "account-cust", domain.StreamQuery{})
	last := evs[len(evs)-1]
	sub, _ := s.store.ReadStream(context.Background(), "order-o1", domain.StreamQuery{})
	if !strings.Contains(string(last.Metadata), `"actor":"fulfilment"`) || !strings.Contains(string(sub[len(sub)-1].Metadata), `"command":"ConfirmOrder"`) {
		t.Errorf("charge metadata %s, confirm metadata %s", last.Metadata, sub[len(sub)-1].Metadata)
	}
}

func TestFulfilmentFailuresAreCompensated(t *testing.T) {
	for _, tc := range []struct {
		name           string
		setup          func(s *saga)
		balance        int64
		currency       string
		stock1, stock2 int64
		reason         string
		wantBalance    int64
	}{
		{name: "not enough stock for the second item", balance: 1000, currency: "EUR", stock1: 5, stock2: 0, reason: "INSUFFICIENT_STOCK", wantBalance: 1000},
		{name: "not enough stock for the first item", balance: 1000, currency: "EUR", stock1: 1, stock2: 5, reason: "INSUFFICIENT_STOCK", wantBalance: 1000},
		{name: "insufficient funds", balance: 499, currency: "EUR", stock1: 5, stock2: 5, reason: "INSUFFICIENT_FUNDS", wantBalance: 499},
		{name: "currency mismatch", balance: 1000, currency: "USD", stock1: 5, stock2: 5, reason: "CURRENCY_MISMATCH", wantBalance: 1000},
		{name: "frozen account", balance: 1000, currency: "EUR", stock1: 5, stock2: 5, reason: "ACCOUNT_FROZEN", wantBalance: 1000,
			setup: func(s *saga) { s.exec("", domain.FreezeAccount{AccountID: "cust", Reason: "audit"}) }},
		{name: "closed account", balance: 0, currency: "EUR", stock1: 5, stock2: 5, reason: "ACCOUNT_CLOSED", wantBalance: 0,
			setup: func(s *saga) { s.exec("", domain.CloseAccount{AccountID: "cust"}) }},
		// The order has p2 at 300; the catalogue's price is now 350.
		{name: "a price changed since the order was placed", balance: 1000, currency: "EUR", stock1: 5, stock2: 5, reason: "PRICE_MISMATCH", wantBalance: 1000,
			setup: func(s *saga) { s.exec("", domain.ChangePrice{Sku: "p2", Price: 350}) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSaga(t, nil)
			s.shop("", tc.balance, tc.currency, tc.stock1, tc.stock2)
			if tc.setup != nil {
				tc.setup(s)
			}
			s.mustDrive()
			got := s.outcome("")
			if got.saga != domain.FulfilmentCompensated || got.order != domain.StatusCancelled || got.balance != tc.wantBalance ||
				got.reserved1 != 0 || got.reserved2 != 0 || !strings.Contains(got.reason, tc.reason) {
				t.Fatalf("outcome %+v; want COMPENSATED, order CANCELLED, balance %d, nothing reserved, reason %s", got, tc.wantBalance, tc.reason)
			}
			o, _, _ := domain.Load(context.Background(), s.svc, domain.Orders, "o1")
			_ = o
		})
	}
}

// A step that failed is undone as far as it took effect (another runner
// may have taken it with success at the same moment): a product or account
// that does not exist, or whose id none can have (a saga started before
// the saga checked them as ids), holds nothing to undo, and the saga is
// compensated rather than stopped FAILED. An order placed before the id
// rules, submitted since, whose customer or SKU no account or product can
// have, gets no saga: the process cancels it, saying why.
func TestFulfilmentStepsFailedOnMissingProductsAndAccountsAreCompensated(t *testing.T) {
	s := newSaga(t, nil)
	ctx := context.Background()
	s.exec("", domain.OpenAccount{AccountID: "cust", Owner: "Ann", Currency: "EUR", InitialDeposit: 1000})
	s.exec("", domain.AddProduct{Sku: "p1", Name: "One", Price: 100, Currency: "EUR"})
	s.exec("", domain.RestockProduct{Sku: "p1", Quantity: 50})
	order := func(id, customer string, skus ...string) {
		s.exec("", domain.PlaceOrder{OrderID: id, CustomerID: customer, Currency: "EUR"})
		for _, sku := range skus {
			s.exec("", domain.AddOrderItem{OrderID: id, Sku: sku, Quantity: 1, UnitPrice: 100})
		}
		s.exec("", domain.SubmitOrder{OrderID: id})
	}
	seed := func(stream string, evs ...domain.Event) {
		data := make([]domain.EventData, len(evs))
		for i, e := range evs {
			var err error
			if data[i], err = domain.EncodeEvent(e); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.store.Append(ctx, stream, domain.ExpectNoStream, data...); err != nil {
			t.Fatal(err)
		}
	}
	// Orders placed before the id rules, with ids no account or product can have.
	oldOrder := func(id, customer string, skus ...string) {
		evs := []domain.Event{domain.OrderPlaced{CustomerID: customer, Currency: "EUR", PlacedAt: time.Unix(0, s.clock.Load()).UTC()}}
		for i, sku := range skus {
			evs = append(evs, domain.OrderItemAdded{Sku: sku, Quantity: 1, UnitPrice: 100, LineTotal: 100, OrderTotal: int64(i+1) * 100})
		}
		evs = append(evs, domain.OrderSubmitted{Subtotal: int64(len(skus)) * 100, Total: int64(len(skus)) * 100, Currency: "EUR", ItemCount: int64(len(skus)), SubmittedAt: time.Unix(0, s.clock.Load()).UTC()})
		seed("order-"+id, evs...)
	}
	// ... and sagas started for such orders before they were refused.
	oldSaga := func(id, customer string, skus ...string) {
		items := make([]domain.FulfilmentItem, len(skus))
		for i, sku := range skus {
			items[i] = domain.FulfilmentItem{Sku: sku, Quantity: 1}
		}
		seed("fulfilment-"+id, domain.FulfilmentStarted{AccountID: customer, Currency: "EUR", Amount: int64(len(skus)) * 100, Items: items, StartedAt: time.Unix(0, s.clock.Load()).UTC()})
		oldOrder(id, customer, skus...)
	}
	order("o1", "cust", "p1", "p9") // p9 does not exist
	order("o2", "nobody", "p1")     // nor does account nobody
	oldSaga("o3", "cust", "p1", "p 1")
	oldSaga("o4", "cust 1", "p1")
	oldOrder("o5", "cust", "p1", "p 1")
	oldOrder("o6", "cust 1", "p1")
	s.mustDrive()
	for _, id := range []string{"o1", "o2", "o3", "o4", "o5", "o6"} {
		f, _, err1 := domain.Load(ctx, s.svc, domain.Fulfilments, id)
		o, _, err2 := domain.Load(ctx, s.svc, domain.Orders, id)
		p, _, err3 := domain.Load(ctx, s.svc, domain.Products, "p1")
		if err := errors.Join(err1, err2, err3); err != nil {
			t.Fatal(err)
		}
		want := domain.FulfilmentCompensated
		if id == "o5" || id == "o6" {
			want = "" // not started
		}
		if f.State() != want || o.Status() != domain.StatusCancelled || p.ReservedFor(id) != 0 {
			t.Errorf("order %s: saga %q (%s), order %s, %d of p1 reserved; want %q, CANCELLED, none", id, f.State(), f.Reason(), o.Status(), p.ReservedFor(id), want)
		}
	}
	for id, field := range map[string]string{"o5": "items.0.sku", "o6": "accountId"} {
		evs, err := s.store.ReadStream(ctx, "order-"+id, domain.StreamQuery{Backward: true, Limit: 1})
		if err != nil || len(evs) != 1 {
			t.Fatalf("order %s: %v, %v", id, evs, err)
		}
		e, err := domain.Orders.Decode(evs[0].Type, evs[0].SchemaVersion, evs[0].Data)
		if c, ok := e.(domain.OrderCancelled); err != nil || !ok || !strings.HasPrefix(c.Reason, "fulfilment could not start: "+field+" contains white space") {
			t.Errorf("order %s: last event %+v (%v), want its cancellation for its %s", id, e, err, field)
		}
	}
	if a, _, _ := domain.Load(ctx, s.svc, domain.Accounts, "cust"); a.Balance() != 1000 {
		t.Errorf("balance %d, want 1000: nothing charged, nothing refunded", a.Balance())
	}
}

func TestCancellingAFulfilledOrderRefundsAndReleases(t *testing.T) {
	s := newSaga(t, nil)
	s.shop("acme", 1000, "EUR", 5, 5) // in a tenant: the saga works in the order's tenant
	s.mustDrive()
	s.exec("acme", domain.CancelOrder{OrderID: "o1", Reason: "changed my mind"})
	s.mustDrive()
	got := s.outcome("acme")
	want := outcome{saga: domain.FulfilmentCompensated, reason: "order cancelled: changed my mind", order: domain.StatusCancelled, balance: 1000}
	if got != want {
		t.Fatalf("outcome %+v, want %+v", got, want)
	}
}

// A fulfilled order's customer empties and closes the account, then cancels
// the (confirmed, not shipped) order: the refund is still credited to the
// closed account, which stays closed, and the saga ends COMPENSATED (it
// stopped FAILED for good: no command reopens an account).
func TestFulfilmentRefundsAnAccountClosedSinceTheCharge(t *testing.T) {
	s := newSaga(t, nil)
	s.shop("", 500, "EUR", 5, 5) // order o1 of 500: the whole balance
	s.mustDrive()
	if got := s.outcome(""); got.saga != domain.FulfilmentFulfilled || got.balance != 0 {
		t.Fatalf("%+v", got)
	}
	s.exec("", domain.CloseAccount{AccountID: "cust"})
	s.exec("", domain.CancelOrder{OrderID: "o1", Reason: "changed my mind"})
	s.mustDrive()
	got := s.outcome("")
	want := outcome{saga: domain.FulfilmentCompensated, reason: "order cancelled: changed my mind", order: domain.StatusCancelled, balance: 500}
	if got != want {
		t.Fatalf("outcome %+v, want %+v: the 500 charged for a cancelled order must be refunded", got, want)
	}
	a, _, err := domain.Load(context.Background(), s.svc, domain.Accounts, "cust")
	if err != nil || a.Status() != "CLOSED" {
		t.Fatalf("account %s (%v), want it CLOSED still", a.Status(), err)
	}
	// Only the refund: the closed account takes no other deposit.
	_, err = domain.Execute(context.Background(), s.svc, domain.Accounts, domain.DepositMoney{AccountID: "cust", Amount: 1}, domain.CommandMeta{})
	if de := (*domain.Error)(nil); !errors.As(err, &de) || de.Rule != domain.RuleAccountClosed {
		t.Fatalf("a deposit to the closed account: %v, want %s", err, domain.RuleAccountClosed)
	}
}

func TestFulfilmentTimesOutAndFailsAndRetries(t *testing.T) {
	s := newSaga(t, nil)
	s.shop("", 1000, "EUR", 5, 5)
	s.store.down.Store(true) // the charge cannot be made
	s.mustDrive()
	if got := s.outcome(""); got.saga != domain.FulfilmentRunning || got.reserved1 != 2 {
		t.Fatalf("while the charge is failing: %+v", got)
	}
	ctx := context.Background()
	if err := s.proc.Tick(ctx); err != nil { // within the deadline: retried, still failing
		t.Fatal(err)
	}
	if got := s.outcome(""); got.saga != domain.FulfilmentRunning {
		t.Fatalf("timed out early: %+v", got)
	}
	s.clock.Add(int64(2 * time.Minute))
	if err := s.proc.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	got := s.outcome("")
	want := outcome{saga: domain.FulfilmentTimedOut, order: domain.StatusCancelled, balance: 1000}
	if got.saga != want.saga || got.order != want.order || got.balance != 1000 || got.reserved1+got.reserved2 != 0 || !strings.Contains(got.reason, "did not complete within 1m0s: database unavailable") {
		t.Fatalf("after the deadline: %+v", got)
	}

	// A compensation that cannot be made before the deadline fails the saga,
	// and a retry once the cause is fixed finishes it.
	t2 := newSaga(t, nil)
	t2.shop("", 1000, "EUR", 5, 5)
	t2.mustDrive()
	t2.store.down.Store(true)
	t2.exec("", domain.CancelOrder{OrderID: "o1", Reason: "oops"})
	t2.mustDrive() // releases stock, then the refund cannot be made
	t2.clock.Add(int64(2 * time.Minute))
	if err := t2.proc.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if got := t2.outcome(""); got.saga != domain.FulfilmentFailed || got.balance != 500 || !strings.Contains(got.reason, "REFUND") {
		t.Fatalf("a refund that cannot be made: %+v", got)
	}
	t2.store.down.Store(false)
	if _, err := domain.Execute(ctx, t2.svc, domain.Fulfilments, domain.RetryFulfilment{OrderID: "o1"}, domain.CommandMeta{}); err != nil {
		t.Fatal(err)
	}
	t2.mustDrive()
	if got := t2.outcome(""); got.saga != domain.FulfilmentCompensated || got.balance != 1000 {
		t.Fatalf("after the retry: %+v", got)
	}
}

// TestFulfilmentSurvivesACrashAtEveryStep: the process dies after each
// step's command and before recording it (the worst moment), in turn; a new
// process takes over from the last handled event, and every order ends with
// exactly one charge and the right stock.
func TestFulfilmentSurvivesACrashAtEveryStep(t *testing.T) {
	type crash struct{}
	for _, failing := range []bool{false, true} {
		for k := 0; ; k++ {
			var n atomic.Int64
			hook := func(_ string, step domain.FulfilmentStep, phase string) {
				if phase == "after" && n.Add(1)-1 == int64(k) {
					panic(crash{})
				}
			}
			s := newSaga(t, hook)
			stock2 := int64(5)
			if failing {
				stock2 = 0 // the second reservation fails: compensation runs too
			}
			s.shop("", 1000, "EUR", 5, stock2)
			crashed := func() (c bool) {
				defer func() {
					if r := recover(); r != nil {
						if _, ok := r.(crash); !ok {
							panic(r)
						}
						c = true
					}
				}()
				s.mustDrive()
				return false
			}()
			// A new process, the same log: it starts from the last handled event.
			restarted := newSaga(t, nil)
			restarted.store, restarted.svc = s.store, domain.NewService(s.store, slog.New(slog.DiscardHandler), time.Now, domain.ServiceOptions{})
			restarted.proc = domain.NewFulfilmentProcess(restarted.svc, slog.New(slog.DiscardHandler), time.Now, domain.FulfilmentOptions{StepTimeout: time.Minute})
			restarted.handled = s.handled
			restarted.mustDrive()
			got := restarted.outcome("")
			want := outcome{saga: domain.FulfilmentFulfilled, order: domain.StatusConfirmed, balance: 500, reserved1: 2, reserved2: 1}
			if failing {
				want = outcome{saga: domain.FulfilmentCompensated, order: domain.StatusCancelled, balance: 1000}
			}
			got.reason = ""
			if got != want {
				t.Fatalf("failing=%v, crash after step %d: %+v, want %+v", failing, k, got, want)
			}
			if !crashed {
				break // k is past the last step
			}
		}
	}
}

// TestConcurrentFulfilmentsNeverOversell: many orders race for little
// stock; every order ends fulfilled or compensated, stock never goes below
// zero, and money and stock add up.
func TestConcurrentFulfilmentsNeverOversell(t *testing.T) {
	s := newSaga(t, nil)
	const orders, stock = 60, 25
	s.exec("", domain.AddProduct{Sku: "p1", Name: "One", Price: 10, Currency: "EUR"})
	s.exec("", domain.RestockProduct{Sku: "p1", Quantity: stock})
	var wg sync.WaitGroup
	for i := range orders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("o%d", i)
			s.exec("", domain.OpenAccount{AccountID: "c" + id, Owner: "x", Currency: "EUR", InitialDeposit: 100})
			s.exec("", domain.PlaceOrder{OrderID: id, CustomerID: "c" + id, Currency: "EUR"})
			s.exec("", domain.AddOrderItem{OrderID: id, Sku: "p1", Quantity: 1, UnitPrice: 10})
			s.exec("", domain.SubmitOrder{OrderID: id})
		}()
	}
	wg.Wait()
	s.mustDrive()
	ctx := context.Background()
	fulfilled := 0
	var money int64
	for i := range orders {
		id := fmt.Sprintf("o%d", i)
		f, _, _ := domain.Load(ctx, s.svc, domain.Fulfilments, id)
		a, _, _ := domain.Load(ctx, s.svc, domain.Accounts, "c"+id)
		money += a.Balance()
		switch f.State() {
		case domain.FulfilmentFulfilled:
			fulfilled++
		case domain.FulfilmentCompensated:
		default:
			t.Errorf("order %s ended %s", id, f.State())
		}
	}
	p, _, _ := domain.Load(ctx, s.svc, domain.Products, "p1")
	if fulfilled != stock || p.Reserved() != stock || p.Available() != 0 {
		t.Errorf("%d fulfilled, %d reserved, %d available; want %d, %d, 0", fulfilled, p.Reserved(), p.Available(), stock, stock)
	}
	if money != orders*100-int64(fulfilled)*10 {
		t.Errorf("accounts hold %d, want %d", money, orders*100-int64(fulfilled)*10)
	}
}

// TestZeroTotalOrderForUnknownAccount: a zero-total order charges nothing,
// but its customer's account is still looked at: an order for an account
// that does not exist was reserved and confirmed.
func TestZeroTotalOrderForUnknownAccount(t *testing.T) {
	s := newSaga(t, nil)
	s.exec("", domain.AddProduct{Sku: "p1", Name: "TV", Price: 100_000, Currency: "EUR"})
	s.exec("", domain.RestockProduct{Sku: "p1", Quantity: 10})
	s.exec("", domain.PlaceOrder{OrderID: "o1", CustomerID: "ghost", Currency: "EUR"})
	s.exec("", domain.AddOrderItem{OrderID: "o1", Sku: "p1", Quantity: 10, UnitPrice: 0})
	s.exec("", domain.SubmitOrder{OrderID: "o1"})
	s.mustDrive()
	f, _, _ := domain.Load(t.Context(), s.svc, domain.Fulfilments, "o1")
	if f.State() == domain.FulfilmentFulfilled {
		t.Fatalf("order of unknown account ghost fulfilled (10 TVs reserved)")
	}
}

// An order is fulfilled only at the catalogue's prices, in the product's
// currency: a line priced at anything else (0 included) is refused when
// its stock is reserved, and the saga compensates. Before, nothing
// compared them: an order could price a product at anything.
func TestFulfilmentRefusesLinesNotAtTheCataloguePrice(t *testing.T) {
	for _, tc := range []struct {
		name, currency string
		price          int64
		reason         string
	}{
		{"a lower price", "EUR", 1, "PRICE_MISMATCH"},
		{"a price of nothing", "EUR", 0, "PRICE_MISMATCH"},
		{"another currency", "USD", 100, "CURRENCY_MISMATCH"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSaga(t, nil)
			s.exec("", domain.OpenAccount{AccountID: "cust", Owner: "Ann", Currency: tc.currency, InitialDeposit: 1000})
			s.exec("", domain.AddProduct{Sku: "p1", Name: "One", Price: 100, Currency: "EUR"})
			s.exec("", domain.AddProduct{Sku: "p2", Name: "Two", Price: 300, Currency: "EUR"})
			s.exec("", domain.RestockProduct{Sku: "p1", Quantity: 5})
			s.exec("", domain.RestockProduct{Sku: "p2", Quantity: 5})
			s.exec("", domain.PlaceOrder{OrderID: "o1", CustomerID: "cust", Currency: tc.currency})
			// p2 at its price (in EUR reserved first, then released), p1 at tc.price.
			s.exec("", domain.AddOrderItem{OrderID: "o1", Sku: "p2", Quantity: 1, UnitPrice: 300})
			s.exec("", domain.AddOrderItem{OrderID: "o1", Sku: "p1", Quantity: 2, UnitPrice: tc.price})
			s.exec("", domain.SubmitOrder{OrderID: "o1"})
			s.mustDrive()
			got := s.outcome("")
			if got.saga != domain.FulfilmentCompensated || got.order != domain.StatusCancelled || got.balance != 1000 ||
				got.reserved1 != 0 || got.reserved2 != 0 || !strings.Contains(got.reason, tc.reason) {
				t.Fatalf("outcome %+v; want COMPENSATED, order CANCELLED, balance 1000, nothing reserved, reason %s", got, tc.reason)
			}
		})
	}
}

// A compensation step that finds nothing to undo says so: the release of
// the reservation that failed (p2: no stock) is NothingToUndo, the release
// of the one that was made (p1) is not. Both were recorded alike before,
// so the saga's history showed a release that released nothing.
func TestCompensationStepsSayWhenThereWasNothingToUndo(t *testing.T) {
	s := newSaga(t, nil)
	s.shop("", 1000, "EUR", 5, 0)
	s.mustDrive()
	evs, err := s.store.ReadStream(context.Background(), "fulfilment-o1", domain.StreamQuery{})
	if err != nil {
		t.Fatal(err)
	}
	undone := map[string]bool{}
	for _, re := range evs {
		if re.Type != "FulfilmentStepSucceeded" {
			continue
		}
		if re.SchemaVersion != 2 {
			t.Errorf("%s written at schema version %d, want 2", re.Type, re.SchemaVersion)
		}
		e, err := domain.Fulfilments.Decode(re.Type, re.SchemaVersion, re.Data)
		if err != nil {
			t.Fatal(err)
		}
		if st := e.(domain.FulfilmentStepSucceeded); st.Step == domain.StepReleaseStock {
			undone[st.Sku] = !st.NothingToUndo
		}
	}
	if len(undone) != 2 || !undone["p1"] || undone["p2"] {
		t.Fatalf("releases (sku: released something) %v; want p1 released, p2 with nothing to undo", undone)
	}
}

// legacyStore is a memory store that also holds streams whose names have
// a zero-width space, which new streams may not have, as streams created
// before that rule do: it keeps them under another name.
type legacyStore struct{ *eventstore.Memory }

func (legacyStore) in(stream string) string  { return strings.ReplaceAll(stream, "\u200b", "{zwsp}") }
func (legacyStore) out(stream string) string { return strings.ReplaceAll(stream, "{zwsp}", "\u200b") }

func (l legacyStore) Append(ctx context.Context, stream string, exp domain.ExpectedVersion, evs ...domain.EventData) (domain.AppendResult, error) {
	return l.Memory.Append(ctx, l.in(stream), exp, evs...)
}

func (l legacyStore) ReadStream(ctx context.Context, stream string, q domain.StreamQuery) ([]domain.RecordedEvent, error) {
	evs, err := l.Memory.ReadStream(ctx, l.in(stream), q)
	for i := range evs {
		evs[i].StreamID = l.out(evs[i].StreamID)
	}
	return evs, err
}

func (l legacyStore) ReadEvent(ctx context.Context, id string) (domain.RecordedEvent, error) {
	e, err := l.Memory.ReadEvent(ctx, id)
	e.StreamID = l.out(e.StreamID)
	return e, err
}

// seed appends evs to a new stream of tenant acme, bypassing the commands.
func (l legacyStore) seed(t *testing.T, stream string, evs ...domain.Event) {
	t.Helper()
	var data []domain.EventData
	for _, e := range evs {
		d, err := domain.EncodeEvent(e)
		if err != nil {
			t.Fatal(err)
		}
		data = append(data, d)
	}
	if _, err := l.Append(context.Background(), domain.Qualify("acme", stream), domain.ExpectNoStream, data...); err != nil {
		t.Fatal(err)
	}
}

// drive is saga.drive on the store's names.
func (l legacyStore) drive(s *saga) error {
	for {
		page, err := l.ReadAll(context.Background(), eventstore.AllQuery{After: s.handled, Types: s.proc.EventTypes()})
		if err != nil || len(page.Events) == 0 {
			return err
		}
		for _, e := range page.Events {
			e.StreamID = l.out(e.StreamID)
			if err := s.proc.Handle(context.Background(), e); err != nil {
				return err
			}
			s.handled = e.Position
		}
	}
}

// legacyOrder seeds order id of tenant acme, placed and submitted before
// the id rules: 1 of p1 at 100, charged to cust.
func (l legacyStore) legacyOrder(t *testing.T, s *saga, id string) {
	at := time.Unix(0, s.clock.Load()).UTC()
	l.seed(t, "order-"+id, domain.OrderPlaced{CustomerID: "cust", Currency: "EUR", PlacedAt: at},
		domain.OrderItemAdded{Sku: "p1", Quantity: 1, UnitPrice: 100, LineTotal: 100, OrderTotal: 100},
		domain.OrderSubmitted{Subtotal: 100, Total: 100, Currency: "EUR", ItemCount: 1, SubmittedAt: at})
}

// legacySaga is a saga process on a legacyStore, with tenant acme's
// account cust (1000 EUR) and product p1 (5 at 100 EUR).
func legacySaga(t *testing.T) (*saga, legacyStore) {
	s := newSaga(t, nil)
	store := legacyStore{s.store.Memory}
	s.restartOn(store, nil)
	s.exec("acme", domain.OpenAccount{AccountID: "cust", Owner: "Ann", Currency: "EUR", InitialDeposit: 1000})
	s.exec("acme", domain.AddProduct{Sku: "p1", Name: "One", Price: 100, Currency: "EUR"})
	s.exec("acme", domain.RestockProduct{Sku: "p1", Quantity: 5})
	return s, store
}

// The saga reserves and releases stock under the order's own id, in the
// order's tenant, also for an order (and saga) from before the rule that
// new ids hold no invisible character: ReserveStock and ReleaseStock check
// the order id as the order's own commands and reads do. Checked as free
// text, such an id was refused, and the saga ended FAILED.
func TestFulfilmentReservesForOrdersPlacedBeforeTheIDRules(t *testing.T) {
	s, store := legacySaga(t)
	ctx := context.Background()
	id := "o\u200b9"
	// The saga started before the rule, as the order was placed: a new
	// saga's id is checked as a new id.
	store.seed(t, "fulfilment-"+id, domain.FulfilmentStarted{AccountID: "cust", Currency: "EUR", Amount: 100,
		Items: []domain.FulfilmentItem{{Sku: "p1", Quantity: 1}}, StartedAt: time.Unix(0, s.clock.Load()).UTC()})
	store.legacyOrder(t, s, id)
	check := func(when, state string, reserved, balance int64) {
		t.Helper()
		f, _, err1 := domain.Load(ctx, s.svc, domain.Fulfilments, domain.Qualify("acme", id))
		p, _, err2 := domain.Load(ctx, s.svc, domain.Products, domain.Qualify("acme", "p1"))
		a, _, err3 := domain.Load(ctx, s.svc, domain.Accounts, domain.Qualify("acme", "cust"))
		if err := errors.Join(err1, err2, err3); err != nil {
			t.Fatal(err)
		}
		if f.State() != state || p.ReservedFor(id) != reserved || a.Balance() != balance {
			t.Fatalf("%s: saga %s (%s), %d reserved, balance %d; want %s, %d, %d", when, f.State(), f.Reason(), p.ReservedFor(id), a.Balance(), state, reserved, balance)
		}
	}
	if err := store.drive(s); err != nil {
		t.Fatal(err)
	}
	check("submitted", domain.FulfilmentFulfilled, 1, 900)
	if _, err := domain.Execute(ctx, s.svc, domain.Orders, domain.CancelOrder{OrderID: id, Reason: "changed my mind"}, domain.CommandMeta{Tenant: "acme"}); err != nil {
		t.Fatal(err)
	}
	if err := store.drive(s); err != nil {
		t.Fatal(err)
	}
	check("cancelled", domain.FulfilmentCompensated, 0, 1000)
}

// An order from before the invisible-character rule, submitted since, gets
// no saga (a new saga's id is checked as a new id): the process cancels
// the order, and then takes its cancellation as one before a saga started.
// Before, compensating the saga no id can have failed, and the process
// returned the error for the runner to hand it the event again, for good.
func TestFulfilmentOfAnOrderNoSagaCanHaveIsCancelled(t *testing.T) {
	s, store := legacySaga(t)
	ctx := context.Background()
	id := "o\u200b8"
	store.legacyOrder(t, s, id)
	if err := store.drive(s); err != nil {
		t.Fatalf("handling the order's events: %v", err)
	}
	o, _, err := domain.Load(ctx, s.svc, domain.Orders, domain.Qualify("acme", id))
	if err != nil {
		t.Fatal(err)
	}
	if o.Status() != domain.StatusCancelled {
		t.Errorf("order %s, want CANCELLED", o.Status())
	}
}

// An order from before the invisible-character rule for an account and a
// product from before it too (their ids hold a zero-width space, which the
// account's and the products' commands take, as ids to act on) is
// fulfilled: the saga checks the account id and the SKUs as those commands
// do. It checked them as free text, which refuses invisible characters:
// the saga could not start, and the process cancelled the order.
func TestFulfilmentOfAnOrderForAccountsAndProductsFromBeforeTheIDRules(t *testing.T) {
	s, store := legacySaga(t)
	ctx := context.Background()
	at := time.Unix(0, s.clock.Load()).UTC()
	account, sku := "cust\u200b2", "p\u200b2"
	store.seed(t, "account-"+account, domain.AccountOpened{Owner: "Bo", Currency: "EUR", OpenedAt: at}, domain.MoneyDeposited{Amount: 1000, BalanceAfter: 1000})
	store.seed(t, "product-"+sku, domain.ProductAdded{Name: "Two", Price: 100, Currency: "EUR"}, domain.ProductRestocked{Quantity: 5, OnHand: 5})
	store.seed(t, "order-o7", domain.OrderPlaced{CustomerID: account, Currency: "EUR", PlacedAt: at},
		domain.OrderItemAdded{Sku: sku, Quantity: 1, UnitPrice: 100, LineTotal: 100, OrderTotal: 100},
		domain.OrderSubmitted{Subtotal: 100, Total: 100, Currency: "EUR", ItemCount: 1, SubmittedAt: at})
	if err := store.drive(s); err != nil {
		t.Fatal(err)
	}
	f, _, err1 := domain.Load(ctx, s.svc, domain.Fulfilments, domain.Qualify("acme", "o7"))
	o, _, err2 := domain.Load(ctx, s.svc, domain.Orders, domain.Qualify("acme", "o7"))
	p, _, err3 := domain.Load(ctx, s.svc, domain.Products, domain.Qualify("acme", sku))
	a, _, err4 := domain.Load(ctx, s.svc, domain.Accounts, domain.Qualify("acme", account))
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		t.Fatal(err)
	}
	if f.State() != domain.FulfilmentFulfilled || o.Status() != domain.StatusConfirmed || p.ReservedFor("o7") != 1 || a.Balance() != 900 {
		t.Fatalf("saga %q (%s), order %s, %d reserved, balance %d; want FULFILLED, CONFIRMED, 1, 900", f.State(), f.Reason(), o.Status(), p.ReservedFor("o7"), a.Balance())
	}
}
