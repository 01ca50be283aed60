package domain_test

import (
	"context"
	"testing"

	"cqrsgate/domain"
)

func TestTenantsHaveSeparateAggregates(t *testing.T) {
	s, store := newService(domain.ServiceOptions{})
	ctx := context.Background()
	open := domain.OpenAccount{AccountID: "a1", Owner: "ada", Currency: "EUR", InitialDeposit: 100}
	acme := exec(t, s, open, domain.CommandMeta{Tenant: "acme"})
	if acme.StreamID != "acme~account-a1" || acme.AggregateID != "a1" {
		t.Fatalf("acme open = %+v", acme)
	}
	// The same id in another tenant and in the default tenant is another account.
	globex := exec(t, s, domain.OpenAccount{AccountID: "a1", Owner: "bob", Currency: "USD", InitialDeposit: 7}, domain.CommandMeta{Tenant: "globex"})
	plain := exec(t, s, domain.OpenAccount{AccountID: "a1", Owner: "cy", Currency: "GBP"}, domain.CommandMeta{})
	if globex.StreamID != "globex~account-a1" || plain.StreamID != "account-a1" || globex.Version != 2 || plain.Version != 1 {
		t.Fatalf("globex = %+v, plain = %+v", globex, plain)
	}
	// Idempotency keys are per tenant too: the same key in another tenant is another command.
	key := domain.CommandMeta{Tenant: "acme", IdempotencyKey: "k1"}
	first := exec(t, s, domain.DepositMoney{AccountID: "a1", Amount: 5}, key)
	key.Tenant = "globex"
	other := exec(t, s, domain.DepositMoney{AccountID: "a1", Amount: 5}, key)
	if first.Duplicate || other.Duplicate {
		t.Fatalf("a key used in two tenants was taken as a repeat: %+v %+v", first, other)
	}
	for _, tc := range []struct {
		id      string
		owner   string
		balance int64
	}{{"acme~a1", "ada", 105}, {"globex~a1", "bob", 12}, {"a1", "cy", 0}} {
		a, _, err := domain.Load(ctx, s, domain.Accounts, tc.id)
		if err != nil || a.Owner() != tc.owner || a.Balance() != tc.balance {
			t.Errorf("load %s = %s %d %v; want %s %d", tc.id, a.Owner(), a.Balance(), err, tc.owner, tc.balance)
		}
	}
	evs, _ := store.ReadStream(ctx, "acme~account-a1", domain.StreamQuery{})
	if len(evs) != 3 {
		t.Errorf("acme's stream has %d events, want 3", len(evs))
	}
}

func TestTenantNamesAndReservedSeparator(t *testing.T) {
	s, _ := newService(domain.ServiceOptions{})
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		cmd  domain.Command
		meta domain.CommandMeta
	}{
		{"separator in id", domain.OpenAccount{AccountID: "globex~a1", Owner: "x", Currency: "EUR"}, domain.CommandMeta{Tenant: "acme"}},
		{"separator in default tenant's id", domain.OpenAccount{AccountID: "acme~a1", Owner: "x", Currency: "EUR"}, domain.CommandMeta{}},
		{"bad tenant", domain.OpenAccount{AccountID: "a1", Owner: "x", Currency: "EUR"}, domain.CommandMeta{Tenant: "ac~me"}},
		{"tenant with space", domain.OpenAccount{AccountID: "a1", Owner: "x", Currency: "EUR"}, domain.CommandMeta{Tenant: "ac me"}},
	} {
		_, err := domain.Execute(ctx, s, domain.Accounts, tc.cmd, tc.meta)
		if domain.CodeOf(err) != domain.Invalid {
			t.Errorf("%s: err = %v, want Invalid", tc.name, err)
		}
	}
	if _, _, err := domain.Load(ctx, s, domain.Accounts, "~a1"); domain.CodeOf(err) != domain.Invalid {
		t.Errorf("load with an empty tenant: %v", err)
	}
	if err := domain.ValidateTenant(string(make([]byte, 65))); err == nil {
		t.Error("a 65-byte tenant was accepted")
	}
}

func TestQualifyRoundTrips(t *testing.T) {
	for _, tc := range []struct{ tenant, name, qualified string }{
		{"", "account-1", "account-1"},
		{"acme", "account-1", "acme~account-1"},
	} {
		if got := domain.Qualify(tc.tenant, tc.name); got != tc.qualified {
			t.Errorf("Qualify(%q, %q) = %q", tc.tenant, tc.name, got)
		}
		if tenant, name := domain.SplitTenant(tc.qualified); tenant != tc.tenant || name != tc.name {
			t.Errorf("SplitTenant(%q) = %q, %q", tc.qualified, tenant, name)
		}
	}
	if got := domain.Accounts.StreamID("acme~a1"); got != "acme~account-a1" {
		t.Errorf("StreamID = %q", got)
	}
	for stream, want := range map[string]string{"acme~account-a1": "acme~a1", "account-a1": "a1"} {
		if id, ok := domain.Accounts.IDOf(stream); !ok || id != want {
			t.Errorf("IDOf(%q) = %q %v, want %q", stream, id, ok, want)
		}
	}
	if _, ok := domain.Accounts.IDOf("acme~order-1"); ok {
		t.Error("IDOf took an order stream for an account's")
	}
}
