package domain

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// FulfilmentProcess drives fulfilment sagas from the event log. It reads
// OrderSubmitted (starts the order's saga), OrderCancelled (compensates a
// running or fulfilled saga) and FulfilmentRetried (resumes a saga), and on
// each it takes the saga's steps one after the other: it runs the step's
// command against the Product, Account or Order aggregate, then records the
// outcome on the saga's own stream.
//
// Exactly once: every step's command carries an idempotency key derived
// from the order and the step, so a step that is run again (the process
// died after the command and before recording it, or two processes raced)
// writes nothing the second time; and a step's outcome is recorded only
// while it is the saga's current step. A step that fails for a business
// reason (insufficient stock or funds, a frozen or closed account, a
// currency mismatch, ...) starts compensation; one that fails for a
// technical reason (database unavailable, too much contention) is retried
// by Tick until the step deadline passes, when the saga is compensated and
// ends TIMED_OUT.
//
// Handle and Tick must not run concurrently for the same process (the
// runner calls them from one goroutine); Handle is safe to call again with
// an event it has handled.
type FulfilmentProcess struct {
	svc  *Service
	log  *slog.Logger
	now  func() time.Time
	opts FulfilmentOptions

	mu sync.Mutex
	// pending holds the sagas (qualified order ids) left on a technical
	// failure, with the error, for Tick to retry.
	pending map[string]string
}

// FulfilmentOptions tune a FulfilmentProcess.
type FulfilmentOptions struct {
	// StepTimeout is how long a step may stay the current one before the
	// saga gives up on it (default 30s).
	StepTimeout time.Duration
	// Active lists up to limit sagas (qualified order ids, see Qualify)
	// that have not ended, those longest without a change first, for Tick
	// to look at after a restart; nil: Tick looks only at sagas this
	// process left on a technical failure. Tick asks for ActivePerTick: a
	// saga that changes moves behind the others, so that every saga is
	// looked at however many there are, the overdue ones first.
	Active func(ctx context.Context, limit int) ([]string, error)
	// Hook, when set, is called before ("before") and after ("after") each
	// step's command, with the qualified order id (tests crash the process
	// there).
	Hook func(orderID string, step FulfilmentStep, phase string)
}

// NewFulfilmentProcess returns the process driving sagas through svc.
func NewFulfilmentProcess(svc *Service, log *slog.Logger, now func() time.Time, opts FulfilmentOptions) *FulfilmentProcess {
	if opts.StepTimeout <= 0 {
		opts.StepTimeout = 30 * time.Second
	}
	return &FulfilmentProcess{svc: svc, log: log, now: now, opts: opts, pending: map[string]string{}}
}

// Name identifies the process (its checkpoint).
func (p *FulfilmentProcess) Name() string { return "fulfilment" }

// EventTypes are the events the process reacts to.
func (p *FulfilmentProcess) EventTypes() []string {
	return []string{"OrderSubmitted", "OrderCancelled", "FulfilmentRetried"}
}

// TickEvery is how often the runner should call Tick.
func (p *FulfilmentProcess) TickEvery() time.Duration {
	return min(max(p.opts.StepTimeout/4, 100*time.Millisecond), 5*time.Second)
}

// Handle reacts to one event of the log. It returns an error only when the
// event must be handled again (the saga's own stream could not be read or
// written); a saga step that fails is recorded, or left for Tick.
func (p *FulfilmentProcess) Handle(ctx context.Context, e RecordedEvent) error {
	meta := CommandMeta{CorrelationID: correlationOf(e), CausationID: e.ID, Actor: "fulfilment"}
	switch e.Type {
	case "OrderSubmitted":
		qid, ok := Orders.IDOf(e.StreamID)
		if !ok {
			return nil
		}
		meta.Tenant = TenantOf(qid)
		return p.start(ctx, qid, meta)
	case "OrderCancelled":
		qid, ok := Orders.IDOf(e.StreamID)
		if !ok {
			return nil
		}
		meta.Tenant = TenantOf(qid)
		ev, err := Orders.Decode(e.Type, e.SchemaVersion, e.Data)
		if err != nil {
			return fmt.Errorf("event %d: %w", e.Position, err)
		}
		_, orderID := SplitTenant(qid)
		_, err = Execute(ctx, p.svc, Fulfilments, CompensateFulfilment{OrderID: orderID, Reason: "order cancelled: " + ev.(OrderCancelled).Reason}, meta)
		switch {
		case err == nil:
		case isRule(err, RuleFulfilmentNotStarted), isRule(err, RuleFulfilmentNotCompensable):
			return nil // cancelled before its saga started, or by the saga itself
		case noSuchAggregate(err, Fulfilments):
			// No saga can have the order's id (one from before the id
			// rules, whose saga could not start): none to compensate, and
			// handling the event again would fail again, for good.
			return nil
		default:
			return err
		}
		return p.advance(ctx, qid, meta)
	case "FulfilmentRetried":
		qid, ok := Fulfilments.IDOf(e.StreamID)
		if !ok {
			return nil
		}
		meta.Tenant = TenantOf(qid)
		return p.advance(ctx, qid, meta)
	}
	return nil
}

// start begins the saga of a submitted order (unless it began already) and
// advances it.
func (p *FulfilmentProcess) start(ctx context.Context, qid string, meta CommandMeta) error {
	saga, _, err := Load(ctx, p.svc, Fulfilments, qid)
	if err != nil {
		return err
	}
	if !saga.Started() {
		order, _, err := Load(ctx, p.svc, Orders, qid)
		if err != nil {
			return err
		}
		if order.Status() != StatusSubmitted {
			// Cancelled (or confirmed by hand) before its saga could start.
			p.log.InfoContext(ctx, "fulfilment: order no longer submitted; not starting", "order", qid, "status", order.Status())
			return nil
		}
		items := make([]FulfilmentItem, 0, len(order.Items()))
		for _, l := range order.Items() {
			items = append(items, FulfilmentItem{Sku: l.Sku, Quantity: l.Quantity})
		}
		_, orderID := SplitTenant(qid)
		cmd := StartFulfilment{OrderID: orderID, AccountID: order.CustomerID(), Currency: order.Currency(), Amount: order.Total(), Items: items}
		if _, err := Execute(ctx, p.svc, Fulfilments, cmd, meta); err != nil {
			if transient(err) {
				return err
			}
			// The order cannot be fulfilled at all: say so on the order.
			p.log.WarnContext(ctx, "fulfilment: cannot start", "order", qid, "err", err)
			_, cerr := Execute(ctx, p.svc, Orders, CancelOrder{OrderID: orderID, Reason: truncateReason("fulfilment could not start: " + reasonOf(err))}, meta)
			if cerr != nil && transient(cerr) {
				return cerr
			}
			return nil
		}
	}
	return p.advance(ctx, qid, meta)
}

// advance takes the saga's steps until it ends, fails, or a step meets a
// technical failure (left for Tick).
func (p *FulfilmentProcess) advance(ctx context.Context, qid string, meta CommandMeta) error {
	tenant, orderID := SplitTenant(qid)
	for {
		saga, _, err := Load(ctx, p.svc, Fulfilments, qid)
		if err != nil {
			return err
		}
		step, ok := saga.Next()
		if !ok {
			p.resolved(qid)
			return nil
		}
		if p.opts.Hook != nil {
			p.opts.Hook(qid, step, "before")
		}
		taken, err := p.run(ctx, tenant, orderID, saga, step, meta)
		if err != nil {
			p.mu.Lock()
			p.pending[qid] = reasonOf(err)
			p.mu.Unlock()
			p.log.WarnContext(ctx, "fulfilment: step failed for a technical reason; it will be retried", "order", qid, "step", step.Key(), "err", err)
			return nil
		}
		if p.opts.Hook != nil {
			p.opts.Hook(qid, step, "after")
		}
		_, err = Execute(ctx, p.svc, Fulfilments, RecordFulfilmentStep{OrderID: orderID, Step: step.Key(), Succeeded: taken.succeeded, Reason: taken.reason, NothingToUndo: taken.nothingToUndo}, meta)
		switch {
		case err == nil, isRule(err, RuleStepOutOfOrder):
			// Recorded, or recorded by someone else: read the saga again.
		default:
			return err
		}
	}
}

// stepTaken is what a step came to: whether it succeeded and, if not,
// why; a compensation step that succeeded may have found nothing to undo.
type stepTaken struct {
	succeeded     bool
	reason        string
	nothingToUndo bool
}

// run takes one step and reports what it came to; err is a technical
// failure (nothing recorded, to be retried).
func (p *FulfilmentProcess) run(ctx context.Context, tenant, orderID string, saga *Fulfilment, step FulfilmentStep, meta CommandMeta) (stepTaken, error) {
	meta.Tenant = tenant
	meta.IdempotencyKey = stepKey(orderID, step)
	var err error
	nothingToUndo := false
	switch step.Name {
	case StepReserveStock:
		reserve := ReserveStock{Sku: step.Sku, OrderID: orderID, Quantity: step.Quantity}
		if reserve.AtPrice, err = p.orderedAt(ctx, tenant, orderID, step.Sku); err == nil {
			_, err = Execute(ctx, p.svc, Products, reserve, meta)
		}
	case StepCharge:
		if step.Amount > 0 {
			_, err = Execute(ctx, p.svc, Accounts, p.chargeOf(saga, step.Amount), meta)
		} else {
			// Nothing to charge, but the order is still the customer's:
			// an account that does not exist, is closed or frozen, or
			// holds another currency refuses it as a charge would.
			err = p.chargeable(ctx, tenant, saga)
		}
	case StepConfirmOrder:
		_, err = Execute(ctx, p.svc, Orders, ConfirmOrder{OrderID: orderID}, meta)
	case StepReleaseStock:
		_, err = Execute(ctx, p.svc, Products, ReleaseStock{Sku: step.Sku, OrderID: orderID}, meta)
		if isRule(err, RuleNoReservation) || noSuchAggregate(err, Products) {
			err, nothingToUndo = nil, true // nothing held (a reservation that failed, or was never made): nothing to release
		}
	case StepRefund:
		if step.Uncertain {
			charge := meta
			charge.IdempotencyKey = stepKey(orderID, FulfilmentStep{Name: StepCharge})
			charged, cerr := executed(ctx, p.svc, Accounts, p.chargeOf(saga, step.Amount), charge)
			if cerr != nil || !charged {
				err, nothingToUndo = cerr, cerr == nil // not charged: nothing to refund
				break
			}
		}
		// A refund, which an account closed since the charge accepts too.
		_, err = Execute(ctx, p.svc, Accounts, DepositMoney{AccountID: saga.AccountID(), Amount: step.Amount, Currency: saga.Currency(), Refund: true}, meta)
	case StepCancelOrder:
		_, err = Execute(ctx, p.svc, Orders, CancelOrder{OrderID: orderID, Reason: truncateReason(saga.CancelReason())}, meta)
		if isRule(err, RuleOrderCancelled) {
			err = nil // cancelled already
		}
	case StepFinish:
	default:
		return stepTaken{}, fmt.Errorf("unknown step %s", step.Name)
	}
	switch {
	case err == nil:
		return stepTaken{succeeded: true, nothingToUndo: nothingToUndo}, nil
	case transient(err):
		return stepTaken{}, err
	}
	return stepTaken{reason: truncateReason(reasonOf(err))}, nil
}

// stepKey is the idempotency key of a saga's step: a repeat of the step
// finds what the first attempt did.
func stepKey(orderID string, step FulfilmentStep) string {
	return "fulfilment/" + orderID + "/" + step.Key()
}

// orderedAt is the unit price and currency the order has for sku: the
// price a reservation for it must find in the catalogue. The order's lines
// cannot change once it is submitted. Nil when the order has no such line.
func (p *FulfilmentProcess) orderedAt(ctx context.Context, tenant, orderID, sku string) (*UnitPrice, error) {
	o, _, err := Load(ctx, p.svc, Orders, Qualify(tenant, orderID))
	if err != nil {
		return nil, err
	}
	for _, l := range o.Items() {
		if l.Sku == sku {
			return &UnitPrice{Amount: l.UnitPrice, Currency: o.Currency()}, nil
		}
	}
	return nil, nil
}

// chargeOf is the command that charges the saga's account amount.
// chargeable checks that the saga's account could be charged: what a
// charge of nothing would refuse.
func (p *FulfilmentProcess) chargeable(ctx context.Context, tenant string, saga *Fulfilment) error {
	acc, _, err := Load(ctx, p.svc, Accounts, Qualify(tenant, saga.AccountID()))
	if err != nil {
		return err
	}
	switch acc.Status() {
	case "":
		return notFound("account %s does not exist", saga.AccountID())
	case "CLOSED":
		return ruleError(RuleAccountClosed, "account %s is closed", saga.AccountID())
	case "FROZEN":
		return ruleError(RuleAccountFrozen, "account %s is frozen", saga.AccountID())
	}
	if acc.Currency() != saga.Currency() {
		return ruleError(RuleCurrencyMismatch, "account %s holds %s, not %s", saga.AccountID(), acc.Currency(), saga.Currency())
	}
	return nil
}

func (p *FulfilmentProcess) chargeOf(saga *Fulfilment, amount int64) WithdrawMoney {
	return WithdrawMoney{AccountID: saga.AccountID(), Amount: amount, Currency: saga.Currency()}
}

// reasonOf is what a saga records of a failure, in its events, which
// clients read: a domain error's message, or for a technical failure a note
// that points to the log, which has the details (a driver's error may name
// hosts and users).
func reasonOf(err error) string {
	var de *Error
	switch {
	case errors.As(err, &de) && de.Rule != "":
		return de.Rule + ": " + de.Message
	case errors.As(err, &de) && de.Message != "":
		return de.Message
	}
	return "technical failure (details in the gateway's log)"
}

// ActivePerTick is how many of the sagas that have not ended (see
// FulfilmentOptions.Active) a Tick looks at, beside those this process left
// on a technical failure: each costs a load of the saga, and events wait
// for the Tick to end.
const ActivePerTick = 1000

// Tick retries the steps of sagas left on a technical failure and gives up
// on steps past the deadline: a running saga is then compensated (it ends
// TIMED_OUT), a compensating one stops FAILED. It returns the first error
// met, after trying every saga.
func (p *FulfilmentProcess) Tick(ctx context.Context) error {
	p.mu.Lock()
	ids := make(map[string]string, len(p.pending))
	for id, why := range p.pending {
		ids[id] = why
	}
	p.mu.Unlock()
	var first error
	if p.opts.Active != nil {
		active, err := p.opts.Active(ctx, ActivePerTick)
		if err != nil {
			first = err
		}
		for _, id := range active {
			if _, ok := ids[id]; !ok {
				ids[id] = ""
			}
		}
	}
	for qid, why := range ids {
		if err := p.tick(ctx, qid, why); err != nil && first == nil {
			first = err
		}
	}
	return first
}

func (p *FulfilmentProcess) tick(ctx context.Context, qid, why string) error {
	saga, _, err := Load(ctx, p.svc, Fulfilments, qid)
	if err != nil {
		return err
	}
	if _, ok := saga.Next(); !ok {
		p.resolved(qid)
		return nil
	}
	tenant, orderID := SplitTenant(qid)
	meta := CommandMeta{Tenant: tenant, CorrelationID: p.correlationOfSaga(ctx, qid), CausationID: "fulfilment-deadline", Actor: "fulfilment"}
	// The current step is taken again before it is given up on: it may
	// have taken effect already (a crash before its record, an append whose
	// outcome was unknown), which its idempotency key finds out.
	if err := p.advance(ctx, qid, meta); err != nil {
		return err
	}
	if saga, _, err = Load(ctx, p.svc, Fulfilments, qid); err != nil {
		return err
	}
	if _, ok := saga.Next(); !ok {
		return nil
	}
	if p.now().Sub(saga.Since()) >= p.opts.StepTimeout {
		p.mu.Lock()
		if r, ok := p.pending[qid]; ok {
			why = r
		}
		p.mu.Unlock()
		_, err := Execute(ctx, p.svc, Fulfilments, TimeOutFulfilment{OrderID: orderID, Deadline: p.opts.StepTimeout, Reason: truncateReason(why)}, meta)
		switch {
		case err == nil:
			p.log.WarnContext(ctx, "fulfilment: step timed out", "order", qid, "deadline", p.opts.StepTimeout)
		case isRule(err, RuleFulfilmentNotOverdue), isRule(err, RuleFulfilmentFinished):
		default:
			return err
		}
		return p.advance(ctx, qid, meta) // the compensation
	}
	return nil
}

func (p *FulfilmentProcess) resolved(qid string) {
	p.mu.Lock()
	delete(p.pending, qid)
	p.mu.Unlock()
}

// correlationOfSaga returns the correlation id the saga started with.
func (p *FulfilmentProcess) correlationOfSaga(ctx context.Context, qid string) string {
	evs, err := p.svc.store.ReadStream(ctx, Fulfilments.StreamID(qid), StreamQuery{Limit: 1})
	if err != nil || len(evs) == 0 {
		return ""
	}
	return correlationOf(evs[0])
}

func correlationOf(e RecordedEvent) string {
	var m map[string]any
	_ = json.Unmarshal(e.Metadata, &m)
	s, _ := m[MetaCorrelationID].(string)
	return s
}

// transient reports whether err is a technical failure worth retrying,
// rather than a refusal.
func transient(err error) bool {
	switch CodeOf(err) {
	case Invalid, NotFound, RuleViolation:
		return false
	}
	return true
}

// noSuchAggregate reports whether err says that the instance of kind k a
// command addressed does not exist, or that no instance can have its id
// (one of an order placed before the id rules).
func noSuchAggregate[A Aggregate](err error, k *Kind[A]) bool {
	var de *Error
	return CodeOf(err) == NotFound || errors.As(err, &de) && de.Code == Invalid && de.Field == k.idField()
}

func isRule(err error, rule string) bool {
	var de *Error
	return errors.As(err, &de) && de.Rule == rule
}

// truncateReason makes s fit a reason: at most 500 bytes, cut between
// characters, with characters free text does not allow (see TextRune) as
// spaces.
func truncateReason(s string) string {
	var b strings.Builder
	for _, r := range s {
		if !TextRune(r) {
			r = ' '
		}
		if b.Len()+utf8.RuneLen(r) > 500 {
			break
		}
		b.WriteRune(r)
	}
	return b.String()
}
