package domain_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"cqrsgate/domain"
)

// TestCachedStateCatchesUpWithOtherWriters: a command on a cached
// aggregate reads only what was appended since, including by another
// process, and decides on the true current state.
func TestCachedStateCatchesUpWithOtherWriters(t *testing.T) {
	a, store := newService(domain.ServiceOptions{SnapshotEvery: -1})
	b := domain.NewService(store, slog.New(slog.DiscardHandler), time.Now, domain.ServiceOptions{}) // "another process"
	exec(t, a, domain.OpenAccount{AccountID: "a1", Owner: "ada", Currency: "EUR", InitialDeposit: 100}, domain.CommandMeta{})
	for i := 0; i < 50; i++ {
		exec(t, a, domain.DepositMoney{AccountID: "a1", Amount: 1}, domain.CommandMeta{})
	}
	before := store.read.Load()
	exec(t, a, domain.DepositMoney{AccountID: "a1", Amount: 1}, domain.CommandMeta{})
	if n := store.read.Load() - before; n != 0 {
		t.Errorf("a command on a cached aggregate read %d events, want 0", n)
	}
	// Another writer takes the balance to 0; a withdrawal through the
	// cached service must see it.
	if _, err := domain.Execute(context.Background(), b, domain.Accounts, domain.WithdrawMoney{AccountID: "a1", Amount: 151}, domain.CommandMeta{}); err != nil {
		t.Fatal(err)
	}
	before = store.read.Load()
	_, err := domain.Execute(context.Background(), a, domain.Accounts, domain.WithdrawMoney{AccountID: "a1", Amount: 1}, domain.CommandMeta{})
	if domain.CodeOf(err) != domain.RuleViolation {
		t.Fatalf("withdrawing from an account another writer emptied: %v", err)
	}
	if n := store.read.Load() - before; n != 1 {
		t.Errorf("catching up read %d events, want the 1 written elsewhere", n)
	}
	acct, v, _ := domain.Load(context.Background(), a, domain.Accounts, "a1")
	if acct.Balance() != 0 || v != 54 {
		t.Errorf("balance %d at version %d", acct.Balance(), v)
	}
}

// Commands against instances that do not exist (made-up ids) take no
// room in the cache: the states worth keeping stay.
func TestCacheKeepsNoStateOfMissingInstances(t *testing.T) {
	s, store := newService(domain.ServiceOptions{CacheSize: 2, SnapshotEvery: -1})
	exec(t, s, domain.OpenAccount{AccountID: "a1", Owner: "ada", Currency: "EUR", InitialDeposit: 100}, domain.CommandMeta{})
	for i := 0; i < 5; i++ {
		if _, err := domain.Execute(context.Background(), s, domain.Accounts, domain.DepositMoney{AccountID: fmt.Sprint("nobody-", i), Amount: 1}, domain.CommandMeta{}); domain.CodeOf(err) != domain.NotFound {
			t.Fatalf("a deposit into a missing account: %v", err)
		}
	}
	before := store.read.Load()
	exec(t, s, domain.DepositMoney{AccountID: "a1", Amount: 1}, domain.CommandMeta{})
	if n := store.read.Load() - before; n != 0 {
		t.Errorf("after commands on missing accounts, a command on a cached one read %d events, want 0", n)
	}
}

// TestCacheEvictsAndStaysCorrect: with room for two aggregates, commands
// over five keep every balance right.
func TestCacheEvictsAndStaysCorrect(t *testing.T) {
	s, _ := newService(domain.ServiceOptions{CacheSize: 2})
	for i := 0; i < 5; i++ {
		exec(t, s, domain.OpenAccount{AccountID: fmt.Sprint("a", i), Owner: "x", Currency: "EUR"}, domain.CommandMeta{})
	}
	for round := 0; round < 30; round++ {
		for i := 0; i < 5; i++ {
			exec(t, s, domain.DepositMoney{AccountID: fmt.Sprint("a", i), Amount: int64(i + 1)}, domain.CommandMeta{})
		}
	}
	for i := 0; i < 5; i++ {
		acct, v, err := domain.Load(context.Background(), s, domain.Accounts, fmt.Sprint("a", i))
		if err != nil || acct.Balance() != int64(30*(i+1)) || v != 31 {
			t.Errorf("a%d: balance %d version %d %v", i, acct.Balance(), v, err)
		}
	}
}

// TestCachedRefusalsAreRecheckedOnTheCurrentState: a refusal decided on a
// cached state is final only once the state is known to be current: a
// withdrawal that the stale state would refuse succeeds after another
// process deposited, and a release finds the reservation another process
// made.
func TestCachedRefusalsAreRecheckedOnTheCurrentState(t *testing.T) {
	a, store := newService(domain.ServiceOptions{})
	b := domain.NewService(store, slog.New(slog.DiscardHandler), time.Now, domain.ServiceOptions{})
	ctx := context.Background()
	exec(t, a, domain.OpenAccount{AccountID: "a1", Owner: "ada", Currency: "EUR"}, domain.CommandMeta{})
	if _, err := domain.Execute(ctx, b, domain.Accounts, domain.DepositMoney{AccountID: "a1", Amount: 100}, domain.CommandMeta{}); err != nil {
		t.Fatal(err)
	}
	if _, err := domain.Execute(ctx, a, domain.Accounts, domain.WithdrawMoney{AccountID: "a1", Amount: 50}, domain.CommandMeta{}); err != nil {
		t.Fatalf("a withdrawal covered by another process's deposit: %v", err)
	}

	for _, cmd := range []domain.Command{domain.AddProduct{Sku: "p1", Name: "One", Price: 1, Currency: "EUR"}, domain.RestockProduct{Sku: "p1", Quantity: 5}} {
		if _, err := domain.Execute(ctx, a, domain.Products, cmd, domain.CommandMeta{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := domain.Execute(ctx, b, domain.Products, domain.ReserveStock{Sku: "p1", OrderID: "o1", Quantity: 2}, domain.CommandMeta{}); err != nil {
		t.Fatal(err)
	}
	if _, err := domain.Execute(ctx, a, domain.Products, domain.ReleaseStock{Sku: "p1", OrderID: "o1"}, domain.CommandMeta{}); err != nil {
		t.Fatalf("releasing a reservation another process made: %v", err)
	}
	p, _, _ := domain.Load(ctx, a, domain.Products, "p1")
	if p.Reserved() != 0 {
		t.Errorf("%d units still reserved", p.Reserved())
	}
}
