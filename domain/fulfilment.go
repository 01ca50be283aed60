package domain

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// Fulfilment is the state of an order's fulfilment saga: a process that
// reserves stock for every item of a submitted order (Product), charges the
// customer's account (Account), confirms the order (Order), and, when a
// step fails, undoes in reverse what it did. Its id is the order's id; its
// events are in stream fulfilment-<orderId>, so its whole history is in the
// log and it survives restarts. FulfilmentProcess drives it; the
// aggregate only decides which step comes next and records outcomes.
type Fulfilment struct {
	orderID   string
	started   bool
	accountID string
	currency  string
	amount    int64
	items     []FulfilmentItem
	state     string
	reason    string
	timedOut  bool
	// orderCancelled: the order was cancelled by someone else, so
	// compensation does not cancel it again.
	orderCancelled bool
	// done holds the steps that succeeded, by FulfilmentStep.Key.
	done map[string]bool
	// inFlight is the step that was current when compensation started
	// while running (a timeout, the order cancelled, or the step itself
	// failing): it may have taken effect without being recorded (a failed
	// step too: another runner may have taken it with another outcome), so
	// compensation undoes it too, as far as it did take effect.
	inFlight string
	// cancelReason is why compensation started, which the order's
	// cancellation gives; reason changes when a compensation step fails, so
	// that the cancellation, a command with an idempotency key, is the same
	// command on every attempt.
	cancelReason string
	// since is when the current step became current (the last event's time).
	since   time.Time
	attempt int
}

// Fulfilment states.
const (
	// FulfilmentRunning: doing its steps.
	FulfilmentRunning = "RUNNING"
	// FulfilmentCompensating: undoing what it did.
	FulfilmentCompensating = "COMPENSATING"
	// FulfilmentFulfilled: stock reserved, customer charged, order confirmed.
	FulfilmentFulfilled = "FULFILLED"
	// FulfilmentCompensated: a step failed, or the order was cancelled, and
	// everything done was undone.
	FulfilmentCompensated = "COMPENSATED"
	// FulfilmentTimedOut: a step missed its deadline and everything done was
	// undone.
	FulfilmentTimedOut = "TIMED_OUT"
	// FulfilmentFailed: a compensation step could not be done; the saga
	// waits for RetryFulfilment once the cause is fixed.
	FulfilmentFailed = "FAILED"
)

// Fulfilment steps: actions, then their compensations.
const (
	StepReserveStock = "RESERVE_STOCK"
	StepCharge       = "CHARGE"
	StepConfirmOrder = "CONFIRM_ORDER"
	StepReleaseStock = "RELEASE_STOCK"
	StepRefund       = "REFUND"
	StepCancelOrder  = "CANCEL_ORDER"
	// StepFinish is not a command to another aggregate: the saga records
	// its final state.
	StepFinish = "FINISH"
)

// Rule names of fulfilment refusals.
const (
	RuleFulfilmentNotStarted     = "FULFILMENT_NOT_STARTED"
	RuleStepOutOfOrder           = "STEP_OUT_OF_ORDER"
	RuleFulfilmentFinished       = "FULFILMENT_FINISHED"
	RuleFulfilmentNotFailed      = "FULFILMENT_NOT_FAILED"
	RuleFulfilmentNotOverdue     = "FULFILMENT_NOT_OVERDUE"
	RuleFulfilmentNotCompensable = "FULFILMENT_NOT_COMPENSABLE"
)

// FulfilmentItem is a line the saga reserves stock for.
type FulfilmentItem struct {
	Sku      string `json:"sku"`
	Quantity int64  `json:"quantity"`
}

// FulfilmentStep is a step of the saga: Name is one of the Step constants;
// Sku and Quantity are set for stock steps, Amount for money steps.
type FulfilmentStep struct {
	Name     string
	Sku      string
	Quantity int64
	Amount   int64
	// Compensation is true for the steps that undo others.
	Compensation bool
	// Uncertain is set on a refund of a charge that was in flight when
	// compensation started: whether the charge was made is to be found
	// out before refunding it.
	Uncertain bool
}

// Key identifies the step within its saga ("RESERVE_STOCK:<sku>", "CHARGE", ...).
func (s FulfilmentStep) Key() string {
	if s.Sku != "" {
		return s.Name + ":" + s.Sku
	}
	return s.Name
}

// Fulfilment commands. OrderID is the aggregate id.
type (
	// StartFulfilment starts the saga of a submitted order; starting one
	// that has started is a no-op. AccountID is checked as the account's
	// commands check an account's id, and each item's Sku as the
	// products' commands check a SKU (of at most 64 bytes): an order the
	// saga could neither charge nor reserve for is refused (Invalid, field
	// accountId or items.<i>.sku), not started to be compensated.
	StartFulfilment struct {
		OrderID, AccountID, Currency string
		Amount                       int64
		Items                        []FulfilmentItem
	}
	// RecordFulfilmentStep records the outcome of the current step (which
	// must be Step: a stale or repeated record is refused with
	// STEP_OUT_OF_ORDER). A failed action starts compensation; a failed
	// compensation stops the saga in FAILED.
	RecordFulfilmentStep struct {
		OrderID   string
		Step      string // FulfilmentStep.Key of the current step
		Succeeded bool
		Reason    string
		// NothingToUndo, for a compensation step that succeeded, says it
		// found nothing to undo.
		NothingToUndo bool
	}
	// CompensateFulfilment starts compensation because the order was
	// cancelled (running or fulfilled sagas only).
	CompensateFulfilment struct{ OrderID, Reason string }
	// TimeOutFulfilment gives up on a step that has been current for longer
	// than Deadline: a running saga is compensated (and ends TIMED_OUT), a
	// compensating one stops in FAILED. Refused (FULFILMENT_NOT_OVERDUE)
	// while the step is within its deadline.
	TimeOutFulfilment struct {
		OrderID  string
		Deadline time.Duration
		Reason   string
	}
	// RetryFulfilment resumes a FAILED saga at the step it failed on.
	RetryFulfilment struct{ OrderID string }
)

// Fulfilment events.
type (
	// FulfilmentStarted: the saga of a submitted order began.
	FulfilmentStarted struct {
		AccountID string           `json:"accountId"`
		Currency  string           `json:"currency"`
		Amount    int64            `json:"amount"`
		Items     []FulfilmentItem `json:"items"`
		StartedAt time.Time        `json:"startedAt"`
	}
	// FulfilmentStepSucceeded (schema version 2): a step was done. A
	// compensation step that found nothing to undo (the release of a
	// reservation that was never made, the refund of a charge that was not
	// made) says so with NothingToUndo; version 1 had no such field, and
	// its events, valid as version 2, are read with it false. (No
	// migration adds the field to them: a release before version 2, in a
	// rolling deploy or after a rollback, reads them as it wrote them.)
	FulfilmentStepSucceeded struct {
		Step          string    `json:"step"`
		Sku           string    `json:"sku,omitempty"`
		Compensation  bool      `json:"compensation"`
		NothingToUndo bool      `json:"nothingToUndo,omitempty"`
		At            time.Time `json:"at"`
	}
	// FulfilmentStepFailed: a step could not be done, for Reason.
	FulfilmentStepFailed struct {
		Step         string    `json:"step"`
		Sku          string    `json:"sku,omitempty"`
		Compensation bool      `json:"compensation"`
		Reason       string    `json:"reason"`
		At           time.Time `json:"at"`
	}
	// FulfilmentCompensationStarted: the saga began undoing its steps
	// because the order was cancelled or a step timed out.
	FulfilmentCompensationStarted struct {
		Reason         string    `json:"reason"`
		OrderCancelled bool      `json:"orderCancelled"`
		TimedOut       bool      `json:"timedOut"`
		At             time.Time `json:"at"`
	}
	// FulfilmentFinished: the saga ended in State (FULFILLED, COMPENSATED or
	// TIMED_OUT).
	FulfilmentFinished struct {
		State string    `json:"state"`
		At    time.Time `json:"at"`
	}
	// FulfilmentRetried: an administrator resumed a FAILED saga.
	FulfilmentRetried struct {
		Attempt int       `json:"attempt"`
		At      time.Time `json:"at"`
	}
)

// CommandName implements Command.
func (StartFulfilment) CommandName() string { return "StartFulfilment" }

// AggregateID implements Command.
func (c StartFulfilment) AggregateID() string { return c.OrderID }

// CommandName implements Command.
func (RecordFulfilmentStep) CommandName() string { return "RecordFulfilmentStep" }

// AggregateID implements Command.
func (c RecordFulfilmentStep) AggregateID() string { return c.OrderID }

// CommandName implements Command.
func (CompensateFulfilment) CommandName() string { return "CompensateFulfilment" }

// AggregateID implements Command.
func (c CompensateFulfilment) AggregateID() string { return c.OrderID }

// CommandName implements Command.
func (TimeOutFulfilment) CommandName() string { return "TimeOutFulfilment" }

// AggregateID implements Command.
func (c TimeOutFulfilment) AggregateID() string { return c.OrderID }

// CommandName implements Command.
func (RetryFulfilment) CommandName() string { return "RetryFulfilment" }

// AggregateID implements Command.
func (c RetryFulfilment) AggregateID() string { return c.OrderID }

// EventType implements Event.
func (FulfilmentStarted) EventType() string { return "FulfilmentStarted" }

// EventType implements Event.
func (FulfilmentStepSucceeded) EventType() string { return "FulfilmentStepSucceeded" }

// SchemaVersion implements Versioned.
func (FulfilmentStepSucceeded) SchemaVersion() int { return 2 }

// EventType implements Event.
func (FulfilmentStepFailed) EventType() string { return "FulfilmentStepFailed" }

// EventType implements Event.
func (FulfilmentCompensationStarted) EventType() string { return "FulfilmentCompensationStarted" }

// EventType implements Event.
func (FulfilmentFinished) EventType() string { return "FulfilmentFinished" }

// EventType implements Event.
func (FulfilmentRetried) EventType() string { return "FulfilmentRetried" }

// Fulfilments is the fulfilment saga's aggregate kind.
var Fulfilments = &Kind[*Fulfilment]{
	Name:         "fulfilment",
	IDField:      "orderId",
	New:          func(orderID string) *Fulfilment { return &Fulfilment{orderID: orderID} },
	Decide:       func(f *Fulfilment, cmd Command, now time.Time) ([]Event, error) { return f.decide(cmd, now) },
	Decode:       decodeFulfilmentEvent,
	StateVersion: 4,
	SaveState:    func(f *Fulfilment) (json.RawMessage, error) { return json.Marshal(f.snapshot()) },
	LoadState:    loadFulfilment,
}

// Started reports whether the saga has begun.
func (f *Fulfilment) Started() bool { return f.started }

// State returns the saga's state (one of the Fulfilment... constants; ""
// before it started).
func (f *Fulfilment) State() string { return f.state }

// Reason returns why the saga compensated or failed ("" otherwise).
func (f *Fulfilment) Reason() string { return f.reason }

// CancelReason returns why compensation started: the reason the order is
// cancelled with ("" while the saga runs; Reason for a state that does not
// know it).
func (f *Fulfilment) CancelReason() string {
	if f.cancelReason == "" {
		return f.reason
	}
	return f.cancelReason
}

// AccountID returns the account the saga charges.
func (f *Fulfilment) AccountID() string { return f.accountID }

// Currency returns the currency of the charge.
func (f *Fulfilment) Currency() string { return f.currency }

// Amount returns the charge, in minor units.
func (f *Fulfilment) Amount() int64 { return f.amount }

// Items returns the lines the saga reserves stock for.
func (f *Fulfilment) Items() []FulfilmentItem { return append([]FulfilmentItem(nil), f.items...) }

// Since returns when the current step became current.
func (f *Fulfilment) Since() time.Time { return f.since }

// Attempt counts the retries of the saga (0 before the first).
func (f *Fulfilment) Attempt() int { return f.attempt }

// Final reports whether the saga has ended (FULFILLED, COMPENSATED or
// TIMED_OUT); a FAILED saga may still be retried.
func (f *Fulfilment) Final() bool {
	switch f.state {
	case FulfilmentFulfilled, FulfilmentCompensated, FulfilmentTimedOut:
		return true
	}
	return false
}

// Next returns the step to take now, and false when there is none (the
// saga has not started, has ended, or is FAILED). A running saga reserves
// each item's stock in order, then charges, then confirms; a compensating
// one releases the stock it reserved in reverse order, refunds the charge
// and cancels the order. StepFinish comes last.
func (f *Fulfilment) Next() (FulfilmentStep, bool) {
	switch f.state {
	case FulfilmentRunning:
		for _, it := range f.items {
			s := FulfilmentStep{Name: StepReserveStock, Sku: it.Sku, Quantity: it.Quantity}
			if !f.done[s.Key()] {
				return s, true
			}
		}
		for _, s := range []FulfilmentStep{{Name: StepCharge, Amount: f.amount}, {Name: StepConfirmOrder}} {
			if !f.done[s.Key()] {
				return s, true
			}
		}
		return FulfilmentStep{Name: StepFinish}, true
	case FulfilmentCompensating:
		for i := len(f.items) - 1; i >= 0; i-- {
			it := f.items[i]
			s := FulfilmentStep{Name: StepReleaseStock, Sku: it.Sku, Quantity: it.Quantity, Compensation: true}
			reserve := StepReserveStock + ":" + it.Sku
			if (f.done[reserve] || f.inFlight == reserve) && !f.done[s.Key()] {
				return s, true
			}
		}
		// A charge of zero moved no money: there is nothing to refund.
		if f.amount > 0 && (f.done[StepCharge] || f.inFlight == StepCharge) && !f.done[StepRefund] {
			return FulfilmentStep{Name: StepRefund, Amount: f.amount, Compensation: true, Uncertain: !f.done[StepCharge]}, true
		}
		if !f.orderCancelled && !f.done[StepCancelOrder] {
			return FulfilmentStep{Name: StepCancelOrder, Compensation: true}, true
		}
		return FulfilmentStep{Name: StepFinish, Compensation: true}, true
	}
	return FulfilmentStep{}, false
}

func (f *Fulfilment) decide(cmd Command, now time.Time) ([]Event, error) {
	if c, ok := cmd.(StartFulfilment); ok {
		return f.start(c, now)
	}
	if !f.started {
		return nil, ruleError(RuleFulfilmentNotStarted, "order %s has no fulfilment", f.orderID)
	}
	switch c := cmd.(type) {
	case RecordFulfilmentStep:
		step, ok := f.Next()
		if !ok || step.Key() != c.Step {
			current := "none"
			if ok {
				current = step.Key()
			}
			return nil, ruleError(RuleStepOutOfOrder, "the fulfilment of order %s is at step %s, not %s", f.orderID, current, CutText(c.Step, maxQuoted))
		}
		if step.Name == StepFinish {
			if !c.Succeeded {
				return nil, InvalidField("succeeded", "the finish step cannot fail")
			}
			state := FulfilmentFulfilled
			switch {
			case f.state == FulfilmentCompensating && f.timedOut:
				state = FulfilmentTimedOut
			case f.state == FulfilmentCompensating:
				state = FulfilmentCompensated
			}
			return []Event{FulfilmentFinished{State: state, At: now}}, nil
		}
		if c.Succeeded {
			if c.NothingToUndo && !step.Compensation {
				return nil, InvalidField("nothingToUndo", "step %s undoes nothing: only a compensation step finds nothing to undo", step.Key())
			}
			return []Event{FulfilmentStepSucceeded{Step: step.Name, Sku: step.Sku, Compensation: step.Compensation, NothingToUndo: c.NothingToUndo, At: now}}, nil
		}
		if err := checkText("reason", c.Reason, 1000); err != nil {
			return nil, err
		}
		return []Event{FulfilmentStepFailed{Step: step.Name, Sku: step.Sku, Compensation: step.Compensation, Reason: c.Reason, At: now}}, nil
	case CompensateFulfilment:
		if f.state != FulfilmentRunning && f.state != FulfilmentFulfilled {
			return nil, ruleError(RuleFulfilmentNotCompensable, "the fulfilment of order %s is %s: there is nothing to compensate", f.orderID, f.state)
		}
		return []Event{FulfilmentCompensationStarted{Reason: c.Reason, OrderCancelled: true, At: now}}, nil
	case TimeOutFulfilment:
		if f.state != FulfilmentRunning && f.state != FulfilmentCompensating {
			return nil, ruleError(RuleFulfilmentFinished, "the fulfilment of order %s is %s", f.orderID, f.state)
		}
		if c.Deadline <= 0 || now.Sub(f.since) < c.Deadline {
			return nil, ruleError(RuleFulfilmentNotOverdue, "the current step of order %s started %s ago, within the deadline of %s", f.orderID, now.Sub(f.since).Round(time.Millisecond), c.Deadline)
		}
		step, _ := f.Next()
		reason := fmt.Sprintf("step %s did not complete within %s", step.Key(), c.Deadline)
		if c.Reason != "" {
			reason += ": " + c.Reason
		}
		reason = CutText(reason, 1000)
		if f.state == FulfilmentRunning {
			return []Event{FulfilmentCompensationStarted{Reason: reason, TimedOut: true, At: now}}, nil
		}
		return []Event{FulfilmentStepFailed{Step: step.Name, Sku: step.Sku, Compensation: true, Reason: reason, At: now}}, nil
	case RetryFulfilment:
		if f.state != FulfilmentFailed {
			return nil, ruleError(RuleFulfilmentNotFailed, "the fulfilment of order %s is %s: only a FAILED one can be retried", f.orderID, f.state)
		}
		return []Event{FulfilmentRetried{Attempt: f.attempt + 1, At: now}}, nil
	}
	return nil, Errorf(Invalid, "fulfilment: unsupported command %s", cmd.CommandName())
}

func (f *Fulfilment) start(c StartFulfilment, now time.Time) ([]Event, error) {
	if f.started {
		return nil, nil // the order's saga exists: starting it again changes nothing
	}
	// The account's and the products' ids as their commands check them
	// (validateReadID), not as free text: an account or product from
	// before the invisible-character rule has an id that free text may
	// not hold, and its orders could not be fulfilled.
	if err := validateReadID("accountId", c.AccountID); err != nil {
		return nil, err
	}
	if !ValidCurrency(c.Currency) {
		return nil, InvalidField("currency", "%q is not an ISO 4217 currency code", CutText(c.Currency, maxQuoted))
	}
	if c.Amount < 0 {
		return nil, InvalidField("amount", "amount must not be negative, got %d", c.Amount)
	}
	if len(c.Items) == 0 {
		return nil, InvalidField("items", "an order without items has nothing to fulfil")
	}
	seen := map[string]bool{}
	for i, it := range c.Items {
		field := fmt.Sprintf("items.%d.sku", i)
		if err := validateReadID(field, it.Sku); err != nil {
			return nil, err
		}
		if len(it.Sku) > 64 {
			return nil, InvalidField(field, "%s is %d bytes; at most 64 are allowed", field, len(it.Sku))
		}
		if seen[it.Sku] {
			return nil, InvalidField(fmt.Sprintf("items.%d.sku", i), "sku %s appears twice", it.Sku)
		}
		seen[it.Sku] = true
		if err := checkQuantity(it.Quantity); err != nil {
			return nil, err
		}
	}
	return []Event{FulfilmentStarted{AccountID: c.AccountID, Currency: c.Currency, Amount: c.Amount, Items: append([]FulfilmentItem(nil), c.Items...), StartedAt: now}}, nil
}

// Apply implements Aggregate.
func (f *Fulfilment) Apply(e Event) {
	if f.done == nil {
		f.done = map[string]bool{}
	}
	switch e := e.(type) {
	case FulfilmentStarted:
		f.started, f.state = true, FulfilmentRunning
		f.accountID, f.currency, f.amount = e.AccountID, e.Currency, e.Amount
		f.items = append([]FulfilmentItem(nil), e.Items...)
		f.since = e.StartedAt
	case FulfilmentStepSucceeded:
		f.done[FulfilmentStep{Name: e.Step, Sku: e.Sku}.Key()] = true
		f.since = e.At
	case FulfilmentStepFailed:
		if e.Compensation {
			f.state = FulfilmentFailed
		} else {
			// Two runners overlapping for a moment may take the step with
			// different outcomes, the failure recorded first: compensation
			// undoes the step as far as it took effect (a reservation
			// released if held, a charge refunded if made).
			f.state, f.cancelReason = FulfilmentCompensating, e.Reason
			f.inFlight = FulfilmentStep{Name: e.Step, Sku: e.Sku}.Key()
		}
		f.reason, f.since = e.Reason, e.At
	case FulfilmentCompensationStarted:
		if step, ok := f.Next(); ok && f.state == FulfilmentRunning && step.Name != StepFinish {
			f.inFlight = step.Key()
		}
		f.state, f.reason, f.cancelReason, f.since = FulfilmentCompensating, e.Reason, e.Reason, e.At
		f.timedOut = f.timedOut || e.TimedOut
		f.orderCancelled = f.orderCancelled || e.OrderCancelled
	case FulfilmentFinished:
		f.state, f.since = e.State, e.At
	case FulfilmentRetried:
		// Only compensation steps fail for good, so a retry resumes compensating.
		f.state, f.attempt, f.since = FulfilmentCompensating, e.Attempt, e.At
	}
}

func decodeFulfilmentEvent(eventType string, schemaVersion int, data json.RawMessage) (Event, error) {
	switch eventType {
	case "FulfilmentStarted":
		return DecodeAs[FulfilmentStarted](data)
	case "FulfilmentStepSucceeded":
		return DecodeAs[FulfilmentStepSucceeded](data)
	case "FulfilmentStepFailed":
		return DecodeAs[FulfilmentStepFailed](data)
	case "FulfilmentCompensationStarted":
		return DecodeAs[FulfilmentCompensationStarted](data)
	case "FulfilmentFinished":
		return DecodeAs[FulfilmentFinished](data)
	case "FulfilmentRetried":
		return DecodeAs[FulfilmentRetried](data)
	}
	return nil, UnknownEvent("fulfilment", eventType, schemaVersion)
}

// fulfilmentState is the snapshot shape (StateVersion 4: 1 had neither
// InFlight nor CancelReason, 2 no CancelReason; both are left out when
// empty, as the fulfilments read model stores this shape too; up to 3 a
// failed action was not InFlight, so their snapshots of a compensating
// saga would not undo it).
type fulfilmentState struct {
	Started                  bool
	AccountID, Currency      string
	Amount                   int64
	Items                    []FulfilmentItem
	State, Reason            string
	TimedOut, OrderCancelled bool
	Done                     []string
	Since                    time.Time
	Attempt                  int
	InFlight                 string `json:",omitempty"`
	CancelReason             string `json:",omitempty"`
}

func (f *Fulfilment) snapshot() fulfilmentState {
	s := fulfilmentState{Started: f.started, AccountID: f.accountID, Currency: f.currency, Amount: f.amount, Items: f.items,
		State: f.state, Reason: f.reason, TimedOut: f.timedOut, OrderCancelled: f.orderCancelled, Since: f.since, Attempt: f.attempt, InFlight: f.inFlight, CancelReason: f.cancelReason}
	for k := range f.done {
		s.Done = append(s.Done, k)
	}
	slices.Sort(s.Done)
	return s
}

func loadFulfilment(orderID string, raw json.RawMessage) (*Fulfilment, error) {
	var s fulfilmentState
	if err := strictUnmarshal(raw, &s); err != nil {
		return nil, err
	}
	f := &Fulfilment{orderID: orderID, started: s.Started, accountID: s.AccountID, currency: s.Currency, amount: s.Amount, items: s.Items,
		state: s.State, reason: s.Reason, timedOut: s.TimedOut, orderCancelled: s.OrderCancelled, since: s.Since, attempt: s.Attempt, inFlight: s.InFlight, cancelReason: s.CancelReason, done: map[string]bool{}}
	for _, k := range s.Done {
		f.done[k] = true
	}
	return f, nil
}
