package demo_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"cqrsgate/domain"
	"cqrsgate/eventstore"
	"cqrsgate/internal/demo"
)

func TestDemoDrivesEveryAggregateAndStops(t *testing.T) {
	store := eventstore.NewMemory(eventstore.Limits{}, time.Now)
	svc := domain.NewService(store, slog.New(slog.DiscardHandler), time.Now, domain.ServiceOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- demo.Run(ctx, svc, slog.New(slog.DiscardHandler), demo.Options{Rate: 200}) }()
	// The fulfilment saga reserves, charges and confirms the submitted orders.
	saga := domain.NewFulfilmentProcess(svc, slog.New(slog.DiscardHandler), time.Now, domain.FulfilmentOptions{})
	go func() {
		var after int64
		for ctx.Err() == nil {
			page, err := store.ReadAll(ctx, eventstore.AllQuery{After: after, Types: saga.EventTypes()})
			if err != nil {
				return
			}
			for _, e := range page.Events {
				if saga.Handle(ctx, e) != nil {
					return
				}
			}
			after = page.Next
			time.Sleep(5 * time.Millisecond)
		}
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the demo did not stop with its context")
	}
	page, err := store.ReadAll(context.Background(), eventstore.AllQuery{Limit: eventstore.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	types := map[string]int{}
	for _, e := range page.Events {
		types[e.Type]++
	}
	for _, want := range []string{"AccountOpened", "MoneyDeposited", "ProductAdded", "ProductRestocked", "OrderPlaced", "OrderItemAdded", "OrderSubmitted", "StockReserved", "MoneyWithdrawn", "OrderConfirmed", "OrderShipped", "FulfilmentFinished"} {
		if types[want] == 0 {
			t.Errorf("no %s in %d events: %v", want, len(page.Events), types)
		}
	}
}

// TestDemoRunsInOneSecondUseIdsOfTheirOwn: two demo runs started in the
// same second (two gateways on one database) each open their own accounts
// and products; their ids came from the time of day alone, and the second
// run's set-up was refused (the accounts existed).
func TestDemoRunsInOneSecondUseIdsOfTheirOwn(t *testing.T) {
	store := eventstore.NewMemory(eventstore.Limits{}, time.Now)
	svc := domain.NewService(store, slog.New(slog.DiscardHandler), time.Now, domain.ServiceOptions{})
	for range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		_ = demo.Run(ctx, svc, slog.New(slog.DiscardHandler), demo.Options{Rate: 1, Accounts: 3, Products: 2})
		cancel()
	}
	page, err := store.ReadAll(context.Background(), eventstore.AllQuery{Limit: eventstore.MaxLimit, Types: []string{"AccountOpened", "ProductAdded"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Events) != 2*(3+2) {
		t.Fatalf("two runs opened %d accounts and products, want %d", len(page.Events), 2*(3+2))
	}
}
