package domain_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"cqrsgate/domain"
	"cqrsgate/eventstore"
)

// lostReplyStore commits the first append to an account stream once armed
// and answers it UNAVAILABLE, as eventstore.Postgres answers an append
// whose COMMIT reply was lost; it then fails everything until up.
type lostReplyStore struct {
	*eventstore.Memory
	armed, down atomic.Bool
}

var errStoreDown = &domain.Error{Code: domain.Unavailable, Message: "the event store is unavailable, retry later",
	Err: fmt.Errorf("append: failed to connect to `user=shop database=shop`:\n\t10.0.0.7:5432: dial error")}

func (o *lostReplyStore) Append(ctx context.Context, stream string, exp domain.ExpectedVersion, evs ...domain.EventData) (domain.AppendResult, error) {
	if o.down.Load() {
		return domain.AppendResult{}, errStoreDown
	}
	r, err := o.Memory.Append(ctx, stream, exp, evs...)
	if err == nil && strings.HasPrefix(stream, "account-") && o.armed.CompareAndSwap(true, false) {
		o.down.Store(true)
		return domain.AppendResult{}, errStoreDown
	}
	return r, err
}

func (o *lostReplyStore) ReadStream(ctx context.Context, stream string, q domain.StreamQuery) ([]domain.RecordedEvent, error) {
	if o.down.Load() {
		return nil, errStoreDown
	}
	return o.Memory.ReadStream(ctx, stream, q)
}

func (o *lostReplyStore) ReadEvent(ctx context.Context, id string) (domain.RecordedEvent, error) {
	if o.down.Load() {
		return domain.RecordedEvent{}, errStoreDown
	}
	return o.Memory.ReadEvent(ctx, id)
}

// newLostReplySaga is a saga test bed on a lostReplyStore (see restartOn).
func newLostReplySaga(t *testing.T, hook func(string, domain.FulfilmentStep, string)) (*saga, *lostReplyStore) {
	s := newSaga(t, hook)
	st := &lostReplyStore{Memory: s.store.Memory}
	s.restartOn(st, hook)
	return s, st
}

// restartOn gives the test bed a new command service and process, as a
// restart would, on store, with a minute's step timeout and saga o1 active
// for Tick.
func (s *saga) restartOn(store domain.EventStore, hook func(string, domain.FulfilmentStep, string)) {
	now := func() time.Time { return time.Unix(0, s.clock.Load()).UTC() }
	log := slog.New(slog.DiscardHandler)
	s.svc = domain.NewService(store, log, now, domain.ServiceOptions{})
	s.proc = domain.NewFulfilmentProcess(s.svc, log, now, domain.FulfilmentOptions{StepTimeout: time.Minute, Hook: hook,
		Active: func(context.Context, int) ([]string, error) { return []string{"o1"}, nil }})
}

// A charge whose commit reply was lost, followed by an outage longer than
// the step timeout: once the store is back, Tick takes the step again
// (finding the charge made, by its idempotency key) before it would give up
// on it. Before, the saga timed out first and compensated only recorded
// steps: the order was cancelled and the customer stayed charged.
func TestFulfilmentStepOfUnknownOutcomeIsTakenAgainBeforeItsDeadline(t *testing.T) {
	s, st := newLostReplySaga(t, nil)
	s.shop("", 1000, "EUR", 5, 5)
	st.armed.Store(true)
	s.mustDrive()  // reserves, then charges: the reply is lost and the store goes down
	for range 10 { // 75 s of ticks against a store that is down, past the minute's deadline
		s.clock.Add(int64(7500 * time.Millisecond))
		_ = s.proc.Tick(context.Background())
	}
	st.down.Store(false)
	s.clock.Add(int64(7500 * time.Millisecond))
	if err := s.proc.Tick(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := s.outcome(""); got.saga != domain.FulfilmentFulfilled || got.order != domain.StatusConfirmed || got.balance != 500 {
		t.Fatalf("after the outage: %+v; want FULFILLED, CONFIRMED, charged once (balance 500)", got)
	}
}

// A process that dies between a step and its record, restarted after the
// step's deadline, takes the step again (idempotently) and carries on,
// rather than timing the saga out and leaving the step's effect behind.
func TestFulfilmentStepsBeforeACrashAreNotLostToTheDeadline(t *testing.T) {
	for _, at := range []string{"RESERVE_STOCK:p2", "CHARGE"} {
		t.Run(at, func(t *testing.T) {
			type crash struct{}
			s, st := newLostReplySaga(t, func(_ string, step domain.FulfilmentStep, phase string) {
				if phase == "after" && step.Key() == at {
					panic(crash{})
				}
			})
			s.shop("", 1000, "EUR", 5, 5)
			func() {
				defer func() { _ = recover() }()
				_ = s.drive()
			}()
			s.clock.Add(int64(2 * time.Minute))
			s.restartOn(st, nil)
			if err := s.proc.Tick(context.Background()); err != nil {
				t.Fatal(err)
			}
			got := s.outcome("")
			if got.saga != domain.FulfilmentFulfilled || got.balance != 500 || got.reserved1 != 2 || got.reserved2 != 1 {
				t.Fatalf("after the restart: %+v; want FULFILLED, charged once, 2 p1 and 1 p2 reserved", got)
			}
		})
	}
}

// An order cancelled while its charge was in flight with an unknown
// outcome is refunded if, and only if, the charge was made.
func TestFulfilmentRefundsAChargeInFlightOnlyIfItWasMade(t *testing.T) {
	for _, made := range []bool{true, false} {
		t.Run(fmt.Sprint("made=", made), func(t *testing.T) {
			var st *lostReplyStore
			s, st := newLostReplySaga(t, func(_ string, step domain.FulfilmentStep, phase string) {
				if !made && step.Name == domain.StepCharge && phase == "before" {
					st.down.Store(true) // the charge never reaches the store
				}
			})
			s.shop("", 1000, "EUR", 5, 5)
			st.armed.Store(made) // the charge commits, its reply is lost
			s.mustDrive()
			st.down.Store(false)
			if got := s.outcome(""); got.saga != domain.FulfilmentRunning {
				t.Fatalf("saga %s with its charge in flight, want RUNNING", got.saga)
			}
			s.exec("", domain.CancelOrder{OrderID: "o1", Reason: "changed my mind"})
			s.mustDrive()
			got := s.outcome("")
			if got.saga != domain.FulfilmentCompensated || got.balance != 1000 || got.reserved1 != 0 || got.reserved2 != 0 {
				t.Fatalf("after the cancel: %+v; want COMPENSATED, balance 1000, nothing reserved", got)
			}
			evs, err := s.store.ReadStream(context.Background(), "account-cust", domain.StreamQuery{})
			if err != nil {
				t.Fatal(err)
			}
			want := map[bool]int{true: 4, false: 2}[made] // opened and deposit; then the charge and its refund
			if len(evs) != want {
				t.Fatalf("the account has %d events, want %d", len(evs), want)
			}
		})
	}
}

// What a saga records of a technical failure is what clients may read: no
// driver detail (hosts, users), no control character, which the order's
// cancel reason refuses (the saga then stopped FAILED, not TIMED_OUT).
func TestFulfilmentReasonsLeaveTechnicalDetailsToTheLog(t *testing.T) {
	s, st := newLostReplySaga(t, nil)
	s.shop("", 1000, "EUR", 5, 5)
	// Accounts are unreachable: the charge fails until it times out.
	s.restartOn(&flakyAccounts{lostReplyStore: st}, nil)
	s.mustDrive()
	for range 3 {
		if err := s.proc.Tick(context.Background()); err != nil {
			t.Fatal(err)
		}
		s.clock.Add(int64(2 * time.Minute))
	}
	got := s.outcome("")
	if got.saga != domain.FulfilmentTimedOut || got.order != domain.StatusCancelled {
		t.Fatalf("%+v; want TIMED_OUT and the order cancelled", got)
	}
	evs, err := s.store.ReadStream(context.Background(), "fulfilment-o1", domain.StreamQuery{})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		if strings.Contains(string(e.Data), "shop database") || strings.Contains(string(e.Data), `\n`) || strings.Contains(string(e.Data), "10.0.0.7") {
			t.Errorf("%s records technical details: %s", e.Type, e.Data)
		}
	}
	if !strings.Contains(got.reason, "the event store is unavailable") {
		t.Errorf("reason %q does not say what failed", got.reason)
	}
}

// flakyAccounts fails every append to an account stream.
type flakyAccounts struct{ *lostReplyStore }

func (f *flakyAccounts) Append(ctx context.Context, stream string, exp domain.ExpectedVersion, evs ...domain.EventData) (domain.AppendResult, error) {
	if strings.HasPrefix(stream, "account-") {
		return domain.AppendResult{}, errStoreDown
	}
	return f.lostReplyStore.Append(ctx, stream, exp, evs...)
}

// An order of total zero (its lines at 0, where the catalogue has a price)
// is compensated, not left FAILED: its reservation is refused at the
// catalogue's price, nothing was charged, so nothing is refunded (a refund
// of zero was refused, and the saga stopped FAILED for good), and the order
// is cancelled.
func TestFulfilmentOfAFreeOrderIsCompensated(t *testing.T) {
	s := newSaga(t, nil)
	s.exec("", domain.OpenAccount{AccountID: "cust", Owner: "Ann", Currency: "EUR"})
	s.exec("", domain.AddProduct{Sku: "p1", Name: "Sample", Price: 1, Currency: "EUR"})
	s.exec("", domain.RestockProduct{Sku: "p1", Quantity: 5})
	s.exec("", domain.PlaceOrder{OrderID: "o1", CustomerID: "cust", Currency: "EUR"})
	s.exec("", domain.AddOrderItem{OrderID: "o1", Sku: "p1", Quantity: 1, UnitPrice: 0})
	s.exec("", domain.SubmitOrder{OrderID: "o1"})
	s.mustDrive()
	f, _, err := domain.Load(context.Background(), s.svc, domain.Fulfilments, "o1")
	if err != nil || f.State() != domain.FulfilmentCompensated || !strings.Contains(f.Reason(), domain.RulePriceMismatch) {
		t.Fatalf("saga %s (%q), %v; want COMPENSATED for PRICE_MISMATCH", f.State(), f.Reason(), err)
	}
	evs, _ := s.store.ReadStream(context.Background(), "account-cust", domain.StreamQuery{})
	if len(evs) != 1 {
		t.Fatalf("the account has %d events, want only its opening (no charge, no refund)", len(evs))
	}
}

// The saga's idempotency keys stand for its steps only: a command of a
// client under the key of a saga's charge does not pass for the charge
// (the graph refuses such keys from clients outright).
func TestFulfilmentChargeIsNotTakenForAnotherCommandUnderItsKey(t *testing.T) {
	s := newSaga(t, nil)
	s.exec("", domain.OpenAccount{AccountID: "cust", Owner: "Ann", Currency: "EUR", InitialDeposit: 1000})
	if _, err := domain.Execute(context.Background(), s.svc, domain.Accounts, domain.DepositMoney{AccountID: "cust", Amount: 1},
		domain.CommandMeta{IdempotencyKey: "fulfilment/o1/CHARGE"}); err != nil {
		t.Fatal(err)
	}
	s.exec("", domain.AddProduct{Sku: "p1", Name: "One", Price: 100, Currency: "EUR"})
	s.exec("", domain.AddProduct{Sku: "p2", Name: "Two", Price: 300, Currency: "EUR"})
	s.exec("", domain.RestockProduct{Sku: "p1", Quantity: 5})
	s.exec("", domain.RestockProduct{Sku: "p2", Quantity: 5})
	s.exec("", domain.PlaceOrder{OrderID: "o1", CustomerID: "cust", Currency: "EUR"})
	s.exec("", domain.AddOrderItem{OrderID: "o1", Sku: "p1", Quantity: 2, UnitPrice: 100})
	s.exec("", domain.AddOrderItem{OrderID: "o1", Sku: "p2", Quantity: 1, UnitPrice: 300})
	s.exec("", domain.SubmitOrder{OrderID: "o1"})
	s.mustDrive()
	if got := s.outcome(""); got.saga == domain.FulfilmentFulfilled || got.order == domain.StatusConfirmed {
		t.Fatalf("%+v: the order was confirmed without its charge", got)
	}
}

// The refund of a charge in flight is made only if the charge is in the
// account's stream, written by the charge: an event with the charge's id
// elsewhere (a client chose it for an event of its own) is no proof.
func TestFulfilmentRefundsNoChargeProvedByAnEventElsewhere(t *testing.T) {
	var st *lostReplyStore
	s, st := newLostReplySaga(t, func(_ string, step domain.FulfilmentStep, phase string) {
		if step.Name == domain.StepCharge && phase == "before" {
			st.down.Store(true) // the charge never reaches the store
		}
	})
	s.shop("", 1000, "EUR", 5, 5)
	forged := domain.IdempotentEventID("account-cust", "fulfilment/o1/CHARGE", 0)
	if _, err := s.store.Memory.Append(context.Background(), "note-1", domain.ExpectAny,
		domain.EventData{ID: forged, Type: "NoteTaken", SchemaVersion: 1, Data: json.RawMessage(`{}`)}); err != nil {
		t.Fatal(err)
	}
	s.mustDrive()
	st.down.Store(false)
	s.exec("", domain.CancelOrder{OrderID: "o1", Reason: "changed my mind"})
	s.mustDrive()
	if got := s.outcome(""); got.balance != 1000 {
		t.Fatalf("%+v: never charged, yet refunded: balance %d, want 1000", got, got.balance)
	}
}

// flakyOrders fails reads of order streams (a transient failure).
type flakyOrders struct{ *lostReplyStore }

func (f *flakyOrders) ReadStream(ctx context.Context, stream string, q domain.StreamQuery) ([]domain.RecordedEvent, error) {
	if strings.HasPrefix(stream, "order-") {
		return nil, errStoreDown
	}
	return f.lostReplyStore.ReadStream(ctx, stream, q)
}

// The order's cancellation is the same command on every attempt: its
// reason is why compensation started, not the saga's latest reason, which
// changes when a compensation step fails. Otherwise a retry after such a
// failure was refused under the step's idempotency key, for good.
func TestFulfilmentCancellationIsTheSameCommandOnEveryAttempt(t *testing.T) {
	type crash struct{}
	s, st := newLostReplySaga(t, func(_ string, step domain.FulfilmentStep, phase string) {
		if phase == "after" && step.Name == domain.StepCancelOrder {
			panic(crash{}) // the order is cancelled; the step is not recorded
		}
	})
	s.shop("", 100, "EUR", 5, 5) // insufficient funds: compensates
	func() {
		defer func() { _ = recover() }()
		_ = s.drive()
	}()
	// Restarted past the deadline while order streams fail transiently.
	s.clock.Add(int64(2 * time.Minute))
	s.restartOn(&flakyOrders{lostReplyStore: st}, nil)
	_ = s.proc.Tick(context.Background())
	s.restartOn(st, nil)
	if got := s.outcome(""); got.saga != domain.FulfilmentFailed || got.order != domain.StatusCancelled {
		t.Fatalf("%+v; want FAILED after the timeout, the order cancelled", got)
	}
	// An operator retries: the cancellation is found done.
	if _, err := domain.Execute(context.Background(), s.svc, domain.Fulfilments, domain.RetryFulfilment{OrderID: "o1"}, domain.CommandMeta{}); err != nil {
		t.Fatal(err)
	}
	s.mustDrive()
	if got := s.outcome(""); got.saga != domain.FulfilmentCompensated {
		t.Fatalf("after the retry: saga %s, reason %q; want COMPENSATED", got.saga, got.reason)
	}
}

// A saga compensating when the gateway is upgraded, whose state does not
// know why compensation started (a snapshot of a release before it was
// kept), cancels the order with its reason: the cancellation, with an
// empty reason, was refused and the saga stopped FAILED.
func TestFulfilmentStateWithoutACancelReasonCancelsTheOrder(t *testing.T) {
	type crash struct{}
	s, st := newLostReplySaga(t, func(_ string, step domain.FulfilmentStep, phase string) {
		if phase == "before" && step.Name == domain.StepCancelOrder {
			panic(crash{}) // the old release stops before cancelling (upgrade)
		}
	})
	s.shop("", 100, "EUR", 5, 5) // insufficient funds: compensates
	func() {
		defer func() { _ = recover() }()
		_ = s.drive()
	}()
	ctx := context.Background()
	f, v, err := domain.Load(ctx, s.svc, domain.Fulfilments, "o1")
	if err != nil {
		t.Fatal(err)
	}
	// The snapshot such a release wrote: no CancelReason.
	raw, _ := domain.Fulfilments.SaveState(f)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	delete(m, "CancelReason")
	old, _ := json.Marshal(m)
	if err := st.Memory.SaveSnapshot(ctx, domain.Snapshot{StreamID: "fulfilment-o1", Version: v, SchemaVersion: domain.Fulfilments.StateVersion, State: old}); err != nil {
		t.Fatal(err)
	}
	// The new release starts.
	now := func() time.Time { return time.Unix(0, s.clock.Load()).UTC() }
	log := slog.New(slog.DiscardHandler)
	s.svc = domain.NewService(st, log, now, domain.ServiceOptions{SnapshotEvery: 100})
	s.proc = domain.NewFulfilmentProcess(s.svc, log, now, domain.FulfilmentOptions{StepTimeout: time.Minute,
		Active: func(context.Context, int) ([]string, error) { return []string{"o1"}, nil }})
	_ = s.proc.Tick(ctx)
	got := s.outcome("")
	if got.order != domain.StatusCancelled || got.saga != domain.FulfilmentCompensated {
		t.Fatalf("after the upgrade: %+v; want the order CANCELLED, the saga COMPENSATED", got)
	}
}
