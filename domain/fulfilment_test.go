package domain

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestFulfilmentDecisions(t *testing.T) {
	items := []FulfilmentItem{{Sku: "p1", Quantity: 2}, {Sku: "p2", Quantity: 1}}
	started := FulfilmentStarted{AccountID: "acc", Currency: "EUR", Amount: 500, Items: items, StartedAt: testNow}
	reserved := []Event{started,
		FulfilmentStepSucceeded{Step: StepReserveStock, Sku: "p1", At: testNow},
		FulfilmentStepSucceeded{Step: StepReserveStock, Sku: "p2", At: testNow}}
	charged := append(append([]Event{}, reserved...), FulfilmentStepSucceeded{Step: StepCharge, At: testNow})
	confirmed := append(append([]Event{}, charged...), FulfilmentStepSucceeded{Step: StepConfirmOrder, At: testNow})
	fulfilled := append(append([]Event{}, confirmed...), FulfilmentFinished{State: FulfilmentFulfilled, At: testNow})
	// The charge failed: compensation releases p2, then p1, refunds the
	// charge if it is found made after all, then cancels.
	chargeFailed := append(append([]Event{}, reserved...), FulfilmentStepFailed{Step: StepCharge, Reason: "INSUFFICIENT_FUNDS", At: testNow})
	refundFailed := append(append([]Event{}, fulfilled...),
		FulfilmentCompensationStarted{Reason: "order cancelled: x", OrderCancelled: true, At: testNow},
		FulfilmentStepSucceeded{Step: StepReleaseStock, Sku: "p2", Compensation: true, At: testNow},
		FulfilmentStepSucceeded{Step: StepReleaseStock, Sku: "p1", Compensation: true, At: testNow},
		FulfilmentStepFailed{Step: StepRefund, Compensation: true, Reason: "ACCOUNT_CLOSED", At: testNow})
	late := testNow.Add(-time.Minute)
	stuck := []Event{FulfilmentStarted{AccountID: "acc", Currency: "EUR", Amount: 500, Items: items, StartedAt: late}}

	runGWT(t, Fulfilments, []gwt{
		{name: "start", when: StartFulfilment{OrderID: "x1", AccountID: "acc", Currency: "EUR", Amount: 500, Items: items}, want: []Event{started}},
		{name: "start again is a no-op", given: reserved, when: StartFulfilment{OrderID: "x1", AccountID: "acc", Currency: "EUR", Amount: 500, Items: items}},
		{name: "start without items", when: StartFulfilment{OrderID: "x1", AccountID: "acc", Currency: "EUR"}, wantCode: Invalid, wantFld: "items"},
		{name: "start with a bad currency", when: StartFulfilment{OrderID: "x1", AccountID: "acc", Currency: "euro", Items: items}, wantCode: Invalid, wantFld: "currency"},
		{name: "start with a sku twice", when: StartFulfilment{OrderID: "x1", AccountID: "acc", Currency: "EUR", Items: []FulfilmentItem{{"a", 1}, {"a", 2}}}, wantCode: Invalid, wantFld: "items.1.sku"},
		{name: "start with a zero quantity", when: StartFulfilment{OrderID: "x1", AccountID: "acc", Currency: "EUR", Items: []FulfilmentItem{{"a", 0}}}, wantCode: Invalid, wantFld: "quantity"},
		// The account's id and the SKUs are checked as the account's and
		// the products' commands check them, not as free text: an id none
		// can have is refused (the saga could only compensate), and one
		// from before the invisible-character rule is taken (free text
		// refused it, and the order could not be fulfilled).
		{name: "start for an account id with a space", when: StartFulfilment{OrderID: "x1", AccountID: "acc 1", Currency: "EUR", Items: items}, wantCode: Invalid, wantFld: "accountId"},
		{name: "start for an account id of another tenant", when: StartFulfilment{OrderID: "x1", AccountID: "acme~acc", Currency: "EUR", Items: items}, wantCode: Invalid, wantFld: "accountId"},
		{name: "start for an oversized account id", when: StartFulfilment{OrderID: "x1", AccountID: strings.Repeat("a", 101), Currency: "EUR", Items: items}, wantCode: Invalid, wantFld: "accountId"},
		{name: "start without an account", when: StartFulfilment{OrderID: "x1", Currency: "EUR", Items: items}, wantCode: Invalid, wantFld: "accountId"},
		{name: "start for an account id older than the new-id rule", when: StartFulfilment{OrderID: "x1", AccountID: "acc\u200b1", Currency: "EUR", Amount: 500, Items: items},
			want: []Event{FulfilmentStarted{AccountID: "acc\u200b1", Currency: "EUR", Amount: 500, Items: items, StartedAt: testNow}}},
		{name: "start with a sku with a space", when: StartFulfilment{OrderID: "x1", AccountID: "acc", Currency: "EUR", Items: []FulfilmentItem{{"p1", 1}, {"p 2", 1}}}, wantCode: Invalid, wantFld: "items.1.sku"},
		{name: "start with a sku of another tenant", when: StartFulfilment{OrderID: "x1", AccountID: "acc", Currency: "EUR", Items: []FulfilmentItem{{"acme~p1", 1}}}, wantCode: Invalid, wantFld: "items.0.sku"},
		{name: "start with an oversized sku", when: StartFulfilment{OrderID: "x1", AccountID: "acc", Currency: "EUR", Items: []FulfilmentItem{{strings.Repeat("p", 65), 1}}}, wantCode: Invalid, wantFld: "items.0.sku"},
		{name: "start with a sku older than the new-id rule", when: StartFulfilment{OrderID: "x1", AccountID: "acc", Currency: "EUR", Amount: 5, Items: []FulfilmentItem{{"p\u200b1", 1}}},
			want: []Event{FulfilmentStarted{AccountID: "acc", Currency: "EUR", Amount: 5, Items: []FulfilmentItem{{"p\u200b1", 1}}, StartedAt: testNow}}},
		{name: "record before start", when: RecordFulfilmentStep{OrderID: "x1", Step: "RESERVE_STOCK:p1", Succeeded: true}, wantCode: RuleViolation, wantRule: RuleFulfilmentNotStarted},
		{name: "record the current step", given: []Event{started}, when: RecordFulfilmentStep{OrderID: "x1", Step: "RESERVE_STOCK:p1", Succeeded: true},
			want: []Event{FulfilmentStepSucceeded{Step: StepReserveStock, Sku: "p1", At: testNow}}},
		{name: "record nothing to undo on a step that undoes nothing", given: []Event{started}, when: RecordFulfilmentStep{OrderID: "x1", Step: "RESERVE_STOCK:p1", Succeeded: true, NothingToUndo: true},
			wantCode: Invalid, wantFld: "nothingToUndo"},
		{name: "record a release that found nothing to undo", given: chargeFailed, when: RecordFulfilmentStep{OrderID: "x1", Step: "RELEASE_STOCK:p2", Succeeded: true, NothingToUndo: true},
			want: []Event{FulfilmentStepSucceeded{Step: StepReleaseStock, Sku: "p2", Compensation: true, NothingToUndo: true, At: testNow}}},
		{name: "record a step out of order", given: []Event{started}, when: RecordFulfilmentStep{OrderID: "x1", Step: "CHARGE", Succeeded: true}, wantCode: RuleViolation, wantRule: RuleStepOutOfOrder},
		{name: "record a step twice", given: reserved, when: RecordFulfilmentStep{OrderID: "x1", Step: "RESERVE_STOCK:p2", Succeeded: true}, wantCode: RuleViolation, wantRule: RuleStepOutOfOrder},
		{name: "a failed action", given: reserved, when: RecordFulfilmentStep{OrderID: "x1", Step: "CHARGE", Reason: "INSUFFICIENT_FUNDS"},
			want: []Event{FulfilmentStepFailed{Step: StepCharge, Reason: "INSUFFICIENT_FUNDS", At: testNow}}},
		{name: "compensation releases in reverse order", given: chargeFailed, when: RecordFulfilmentStep{OrderID: "x1", Step: "RELEASE_STOCK:p2", Succeeded: true},
			want: []Event{FulfilmentStepSucceeded{Step: StepReleaseStock, Sku: "p2", Compensation: true, At: testNow}}},
		// Another runner may have taken the failed charge with success: its
		// refund is uncertain (made only if the charge is found by its key).
		{name: "compensation refunds a failed charge only if it was made", given: append(append([]Event{}, chargeFailed...),
			FulfilmentStepSucceeded{Step: StepReleaseStock, Sku: "p2", Compensation: true}, FulfilmentStepSucceeded{Step: StepReleaseStock, Sku: "p1", Compensation: true}),
			when: RecordFulfilmentStep{OrderID: "x1", Step: "REFUND", Succeeded: true}, want: []Event{FulfilmentStepSucceeded{Step: StepRefund, Compensation: true, At: testNow}}},
		{name: "compensation does not refund twice", given: append(append([]Event{}, chargeFailed...),
			FulfilmentStepSucceeded{Step: StepReleaseStock, Sku: "p2", Compensation: true}, FulfilmentStepSucceeded{Step: StepReleaseStock, Sku: "p1", Compensation: true},
			FulfilmentStepSucceeded{Step: StepRefund, Compensation: true}),
			when: RecordFulfilmentStep{OrderID: "x1", Step: "REFUND", Succeeded: true}, wantCode: RuleViolation, wantRule: RuleStepOutOfOrder},
		{name: "finish fulfilled", given: confirmed, when: RecordFulfilmentStep{OrderID: "x1", Step: "FINISH", Succeeded: true}, want: []Event{FulfilmentFinished{State: FulfilmentFulfilled, At: testNow}}},
		{name: "nothing after the end", given: fulfilled, when: RecordFulfilmentStep{OrderID: "x1", Step: "FINISH", Succeeded: true}, wantCode: RuleViolation, wantRule: RuleStepOutOfOrder},
		{name: "a cancelled fulfilled order is compensated", given: fulfilled, when: CompensateFulfilment{OrderID: "x1", Reason: "order cancelled: x"},
			want: []Event{FulfilmentCompensationStarted{Reason: "order cancelled: x", OrderCancelled: true, At: testNow}}},
		{name: "a compensating saga is not compensated twice", given: chargeFailed, when: CompensateFulfilment{OrderID: "x1", Reason: "x"}, wantCode: RuleViolation, wantRule: RuleFulfilmentNotCompensable},
		{name: "a step within its deadline does not time out", given: []Event{started}, when: TimeOutFulfilment{OrderID: "x1", Deadline: time.Minute}, wantCode: RuleViolation, wantRule: RuleFulfilmentNotOverdue},
		{name: "a running step past its deadline", given: stuck, when: TimeOutFulfilment{OrderID: "x1", Deadline: 30 * time.Second, Reason: "database unavailable"},
			want: []Event{FulfilmentCompensationStarted{Reason: "step RESERVE_STOCK:p1 did not complete within 30s: database unavailable", TimedOut: true, At: testNow}}},
		{name: "a compensation step past its deadline fails the saga", given: append(append([]Event{}, stuck...), FulfilmentCompensationStarted{Reason: "x", TimedOut: true, At: late}),
			when: TimeOutFulfilment{OrderID: "x1", Deadline: 30 * time.Second},
			want: []Event{FulfilmentStepFailed{Step: StepReleaseStock, Sku: "p1", Compensation: true, Reason: "step RELEASE_STOCK:p1 did not complete within 30s", At: testNow}}},
		{name: "retry a failed saga", given: refundFailed, when: RetryFulfilment{OrderID: "x1"}, want: []Event{FulfilmentRetried{Attempt: 1, At: testNow}}},
		{name: "retry a saga that did not fail", given: fulfilled, when: RetryFulfilment{OrderID: "x1"}, wantCode: RuleViolation, wantRule: RuleFulfilmentNotFailed},
	})
}

// Compensation undoes the step that was in flight when it started (it
// may have taken effect without being recorded): a reservation is released
// (releasing one never made is a no-op), a charge is refunded once it is
// found to have been made. A charge of zero is never refunded.
func TestFulfilmentCompensationUndoesTheStepInFlight(t *testing.T) {
	items := []FulfilmentItem{{"p1", 1}, {"p2", 1}}
	steps := func(amount int64, given ...Event) []string {
		f := Fulfilments.New("o1")
		f.Apply(FulfilmentStarted{AccountID: "acc", Currency: "EUR", Amount: amount, Items: items, StartedAt: testNow})
		for _, e := range given {
			f.Apply(e)
		}
		var keys []string
		for {
			s, ok := f.Next()
			if !ok || s.Name == StepFinish {
				return keys
			}
			key := s.Key()
			if s.Uncertain {
				key += "?"
			}
			keys = append(keys, key)
			f.Apply(FulfilmentStepSucceeded{Step: s.Name, Sku: s.Sku, Compensation: s.Compensation, At: testNow})
		}
	}
	reserved := []Event{FulfilmentStepSucceeded{Step: StepReserveStock, Sku: "p1", At: testNow}, FulfilmentStepSucceeded{Step: StepReserveStock, Sku: "p2", At: testNow}}
	timedOut := FulfilmentCompensationStarted{Reason: "step timed out", TimedOut: true, At: testNow}
	cancelled := FulfilmentCompensationStarted{Reason: "order cancelled: x", OrderCancelled: true, At: testNow}
	for _, c := range []struct {
		name   string
		amount int64
		given  []Event
		want   string
	}{
		{"timed out reserving p2", 500, []Event{reserved[0], timedOut}, "[RELEASE_STOCK:p2 RELEASE_STOCK:p1 CANCEL_ORDER]"},
		{"timed out charging", 500, append(append([]Event{}, reserved...), timedOut), "[RELEASE_STOCK:p2 RELEASE_STOCK:p1 REFUND? CANCEL_ORDER]"},
		{"order cancelled while charging", 500, append(append([]Event{}, reserved...), cancelled), "[RELEASE_STOCK:p2 RELEASE_STOCK:p1 REFUND?]"},
		{"order cancelled once charged", 500, append(append([]Event{}, reserved...), FulfilmentStepSucceeded{Step: StepCharge, At: testNow}, cancelled), "[RELEASE_STOCK:p2 RELEASE_STOCK:p1 REFUND]"},
		{"order of zero cancelled once charged", 0, append(append([]Event{}, reserved...), FulfilmentStepSucceeded{Step: StepCharge, At: testNow}, cancelled), "[RELEASE_STOCK:p2 RELEASE_STOCK:p1]"},
		{"order of zero timed out charging", 0, append(append([]Event{}, reserved...), timedOut), "[RELEASE_STOCK:p2 RELEASE_STOCK:p1 CANCEL_ORDER]"},
		// A step that failed may have been taken with success by another
		// runner at the same moment: it is undone as far as it took effect.
		{"reserving p2 failed", 500, []Event{reserved[0], FulfilmentStepFailed{Step: StepReserveStock, Sku: "p2", Reason: "INSUFFICIENT_STOCK", At: testNow}},
			"[RELEASE_STOCK:p2 RELEASE_STOCK:p1 CANCEL_ORDER]"},
		{"charging failed", 500, append(append([]Event{}, reserved...), FulfilmentStepFailed{Step: StepCharge, Reason: "INSUFFICIENT_FUNDS", At: testNow}),
			"[RELEASE_STOCK:p2 RELEASE_STOCK:p1 REFUND? CANCEL_ORDER]"},
		{"order of zero whose charge failed", 0, append(append([]Event{}, reserved...), FulfilmentStepFailed{Step: StepCharge, Reason: "ACCOUNT_CLOSED", At: testNow}),
			"[RELEASE_STOCK:p2 RELEASE_STOCK:p1 CANCEL_ORDER]"},
		{"confirming failed", 500, append(append([]Event{}, reserved...), FulfilmentStepSucceeded{Step: StepCharge, At: testNow},
			FulfilmentStepFailed{Step: StepConfirmOrder, Reason: "ORDER_CANCELLED", At: testNow}), "[RELEASE_STOCK:p2 RELEASE_STOCK:p1 REFUND CANCEL_ORDER]"},
	} {
		if got := fmt.Sprint(steps(c.amount, c.given...)); got != c.want {
			t.Errorf("%s: compensation steps %s, want %s", c.name, got, c.want)
		}
	}
}

func TestFulfilmentStepsAndStates(t *testing.T) {
	f := Fulfilments.New("o1")
	f.Apply(FulfilmentStarted{AccountID: "acc", Currency: "EUR", Amount: 5, Items: []FulfilmentItem{{"p1", 1}, {"p2", 1}}, StartedAt: testNow})
	var keys []string
	record := func(ok bool) {
		s, _ := f.Next()
		keys = append(keys, s.Key())
		switch {
		case s.Name == StepFinish:
			evs, err := f.decide(RecordFulfilmentStep{OrderID: "o1", Step: s.Key(), Succeeded: true}, testNow)
			if err != nil {
				t.Fatal(err)
			}
			f.Apply(evs[0])
		case ok:
			f.Apply(FulfilmentStepSucceeded{Step: s.Name, Sku: s.Sku, Compensation: s.Compensation})
		default:
			f.Apply(FulfilmentStepFailed{Step: s.Name, Sku: s.Sku, Compensation: s.Compensation, Reason: "no"})
		}
	}
	for _, ok := range []bool{true, true, true, false, true, true, true, true, true} {
		record(ok)
		if f.Final() {
			break
		}
	}
	want := "[RESERVE_STOCK:p1 RESERVE_STOCK:p2 CHARGE CONFIRM_ORDER RELEASE_STOCK:p2 RELEASE_STOCK:p1 REFUND CANCEL_ORDER FINISH]"
	if got := fmt.Sprint(keys); got != want || f.State() != FulfilmentCompensated || f.Reason() != "no" {
		t.Fatalf("steps %s, state %s (%q); want %s, COMPENSATED", got, f.State(), f.Reason(), want)
	}
	// A snapshot round trip keeps everything Next depends on.
	raw, err := Fulfilments.SaveState(f)
	if err != nil {
		t.Fatal(err)
	}
	g, err := Fulfilments.LoadState("o1", raw)
	if err != nil || g.State() != f.State() || g.Reason() != f.Reason() || g.Amount() != 5 || len(g.Items()) != 2 {
		t.Fatalf("restored %+v, %v", g, err)
	}
}
