package domain_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"cqrsgate/domain"
	"cqrsgate/eventstore"
)

// raceShop opens account "cust" through svcA (balance 0), adds product p1
// with stock and places and submits order o1 of one p1 at 500 through svcB,
// and returns the OrderSubmitted event.
func raceShop(t *testing.T, mem *eventstore.Memory, svcA, svcB *domain.Service, deposit int64) domain.RecordedEvent {
	t.Helper()
	ctx := context.Background()
	must := func(_ domain.Result, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(domain.Execute(ctx, svcA, domain.Accounts, domain.OpenAccount{AccountID: "cust", Owner: "Ann", Currency: "EUR"}, domain.CommandMeta{}))
	if deposit > 0 {
		must(domain.Execute(ctx, svcB, domain.Accounts, domain.DepositMoney{AccountID: "cust", Amount: deposit}, domain.CommandMeta{}))
	}
	must(domain.Execute(ctx, svcB, domain.Products, domain.AddProduct{Sku: "p1", Name: "One", Price: 500, Currency: "EUR"}, domain.CommandMeta{}))
	must(domain.Execute(ctx, svcB, domain.Products, domain.RestockProduct{Sku: "p1", Quantity: 5}, domain.CommandMeta{}))
	must(domain.Execute(ctx, svcB, domain.Orders, domain.PlaceOrder{OrderID: "o1", CustomerID: "cust", Currency: "EUR"}, domain.CommandMeta{}))
	must(domain.Execute(ctx, svcB, domain.Orders, domain.AddOrderItem{OrderID: "o1", Sku: "p1", Quantity: 1, UnitPrice: 500}, domain.CommandMeta{}))
	must(domain.Execute(ctx, svcB, domain.Orders, domain.SubmitOrder{OrderID: "o1"}, domain.CommandMeta{}))
	page, err := mem.ReadAll(ctx, eventstore.AllQuery{Types: []string{"OrderSubmitted"}})
	if err != nil || len(page.Events) != 1 {
		t.Fatal(err, len(page.Events))
	}
	return page.Events[0]
}

// checkNotChargedForNothing fails t when order o1 was cancelled and its
// customer, who paid in 500, does not have them back.
func checkNotChargedForNothing(t *testing.T, svc *domain.Service) {
	t.Helper()
	ctx := context.Background()
	saga, _, err1 := domain.Load(ctx, svc, domain.Fulfilments, "o1")
	order, _, err2 := domain.Load(ctx, svc, domain.Orders, "o1")
	acct, _, err3 := domain.Load(ctx, svc, domain.Accounts, "cust")
	for _, err := range []error{err1, err2, err3} {
		if err != nil {
			t.Fatal(err)
		}
	}
	if !saga.Final() {
		t.Fatalf("saga %s (%s), want it ended", saga.State(), saga.Reason())
	}
	switch {
	case order.Status() == domain.StatusCancelled && acct.Balance() != 500:
		t.Fatalf("order cancelled (saga %s: %s) but the customer was charged and never refunded: balance %d, want 500",
			saga.State(), saga.Reason(), acct.Balance())
	case order.Status() == domain.StatusConfirmed && acct.Balance() != 0:
		t.Fatalf("order confirmed (saga %s) with balance %d, want 0: one charge of 500", saga.State(), acct.Balance())
	}
}

// Two gateways run the fulfilment process at once for a moment (the
// leader's lock connection dropped while it was handling OrderSubmitted;
// the other gateway took over from the saved checkpoint and handles the
// same event). Gateway A has the customer's account cached from opening it
// (balance 0); the customer then paid in exactly the order's total through
// gateway B. B's charge commits just after A looked its key up; A's charge
// is refused on its cached state, then again on the caught-up state (B's
// charge took the money): A must find B's charge by its key rather than
// record CHARGE FAILED and cancel an order the customer paid for.
func TestFulfilmentChargeIsNotRefusedByItsOwnEarlierExecution(t *testing.T) {
	ctx := context.Background()
	mem := eventstore.NewMemory(eventstore.Limits{}, time.Now)
	log := slog.New(slog.DiscardHandler)
	hookA := &keyLookupHook{Memory: mem, id: domain.IdempotentEventID("account-cust", "fulfilment/o1/CHARGE", 0)}
	svcA := domain.NewService(hookA, log, time.Now, domain.ServiceOptions{})
	svcB := domain.NewService(mem, log, time.Now, domain.ServiceOptions{})
	submitted := raceShop(t, mem, svcA, svcB, 500)
	procB, charged, release := chargeHeld(svcB, log)
	procA := domain.NewFulfilmentProcess(svcA, log, time.Now, domain.FulfilmentOptions{StepTimeout: time.Minute})

	doneB := make(chan error, 1)
	f := func() {
		go func() { doneB <- procB.Handle(ctx, submitted) }()
		<-charged // B's charge is committed, not yet recorded
	}
	hookA.onKeyCheck.Store(&f)
	if err := procA.Handle(ctx, submitted); err != nil {
		t.Fatal(err)
	}
	close(release)
	if err := <-doneB; err != nil {
		t.Fatal(err)
	}
	checkNotChargedForNothing(t, svcB)
	// The customer paid for it: the order is fulfilled, not cancelled.
	if saga, _, _ := domain.Load(ctx, svcB, domain.Fulfilments, "o1"); saga.State() != domain.FulfilmentFulfilled {
		t.Fatalf("saga %s (%s), want FULFILLED: its charge was made", saga.State(), saga.Reason())
	}
}

// Two gateways run the fulfilment process at once and take the charge with
// different outcomes: A's is refused (balance 0); the customer then pays in
// 500 and B's charge (same key, nothing written under it yet) is made. A
// records CHARGE FAILED first and B's record is refused as out of order:
// the compensation must find B's charge by its key and refund it.
func TestFulfilmentStepTakenTwiceWithDifferentOutcomesIsUndone(t *testing.T) {
	ctx := context.Background()
	mem := eventstore.NewMemory(eventstore.Limits{}, time.Now)
	log := slog.New(slog.DiscardHandler)
	svcA := domain.NewService(mem, log, time.Now, domain.ServiceOptions{})
	svcB := domain.NewService(mem, log, time.Now, domain.ServiceOptions{})
	submitted := raceShop(t, mem, svcA, svcA, 0)

	procB, charged, release := chargeHeld(svcB, log)
	doneB := make(chan error, 1)
	var depositErr error
	procA := domain.NewFulfilmentProcess(svcA, log, time.Now, domain.FulfilmentOptions{StepTimeout: time.Minute,
		Hook: func(_ string, step domain.FulfilmentStep, phase string) {
			if step.Name == domain.StepCharge && phase == "after" { // A's charge was refused
				_, depositErr = domain.Execute(ctx, svcA, domain.Accounts, domain.DepositMoney{AccountID: "cust", Amount: 500}, domain.CommandMeta{})
				go func() { doneB <- procB.Handle(ctx, submitted) }()
				<-charged // B's charge is made, not yet recorded
			}
		}})
	if err := procA.Handle(ctx, submitted); err != nil {
		t.Fatal(err)
	}
	close(release)
	if err := <-doneB; err != nil {
		t.Fatal(err)
	}
	if depositErr != nil {
		t.Fatal(depositErr)
	}
	checkNotChargedForNothing(t, svcA)
}

// chargeHeld is a fulfilment process on svc whose charge step, once done,
// closes charged and waits for release before its outcome is recorded.
func chargeHeld(svc *domain.Service, log *slog.Logger) (p *domain.FulfilmentProcess, charged, release chan struct{}) {
	charged, release = make(chan struct{}), make(chan struct{})
	p = domain.NewFulfilmentProcess(svc, log, time.Now, domain.FulfilmentOptions{StepTimeout: time.Minute,
		Hook: func(_ string, step domain.FulfilmentStep, phase string) {
			if step.Name == domain.StepCharge && phase == "after" {
				close(charged)
				<-release
			}
		}})
	return p, charged, release
}
