package domain

import (
	"encoding/json"
	"time"
)

// Account is a bank account: a balance in one currency, with an overdraft
// limit and a daily withdrawal limit. Streams: account-<id>.
type Account struct {
	id             string
	opened, closed bool
	frozen         bool
	owner          string
	currency       string
	balance        int64
	overdraft      int64
	dailyLimit     int64
	withdrawnDay   string // UTC date of the last withdrawal, YYYY-MM-DD
	withdrawnToday int64
}

// Account commands. Amounts are in the account currency's minor unit.
type (
	// OpenAccount opens a new account; InitialDeposit, OverdraftLimit and
	// DailyWithdrawalLimit are optional (0; a daily limit of 0 means none).
	OpenAccount struct {
		AccountID, Owner, Currency                           string
		InitialDeposit, OverdraftLimit, DailyWithdrawalLimit int64
	}
	// DepositMoney adds money; frozen accounts accept deposits, closed ones
	// only refunds. Currency, when set, must be the account's (rule
	// CURRENCY_MISMATCH).
	DepositMoney struct {
		AccountID string
		Amount    int64
		Currency  string
		// Refund marks the refund of a charge the account paid (the
		// fulfilment saga's, under its own idempotency key; no mutation
		// sets it). A closed account accepts it, as a bank credits a
		// refund to a closed account: it stays closed, and its balance
		// is what is owed to its holder. It is not part of the command's
		// identity for idempotency keys (a refund made before it existed
		// is found by its key).
		Refund bool `json:"-"`
	}
	// WithdrawMoney takes money out, within balance plus overdraft and the
	// daily limit; refused on frozen accounts. Currency, when set, must be
	// the account's (rule CURRENCY_MISMATCH).
	WithdrawMoney struct {
		AccountID string
		Amount    int64
		Currency  string
	}
	// FreezeAccount blocks everything but deposits.
	FreezeAccount struct{ AccountID, Reason string }
	// UnfreezeAccount lifts a freeze.
	UnfreezeAccount struct{ AccountID string }
	// CloseAccount closes an account whose balance is zero.
	CloseAccount struct{ AccountID string }
	// PayOutClosedAccount pays a closed account's balance (the refunds
	// credited to it since it closed) out to its holder, all of it: the
	// one debit a closed account takes.
	PayOutClosedAccount struct{ AccountID string }
	// ApplyInterest credits interest on a positive balance at RateBasisPoints
	// (1 = 0.01%), rounded down to the minor unit.
	ApplyInterest struct {
		AccountID       string
		RateBasisPoints int64
	}
	// ChargeFee debits a fee, within balance plus overdraft.
	ChargeFee struct {
		AccountID, Reason string
		Amount            int64
	}
)

// Account events.
type (
	// AccountOpened: an account was opened.
	AccountOpened struct {
		Owner                string    `json:"owner"`
		Currency             string    `json:"currency"`
		OverdraftLimit       int64     `json:"overdraftLimit"`
		DailyWithdrawalLimit int64     `json:"dailyWithdrawalLimit"`
		OpenedAt             time.Time `json:"openedAt"`
	}
	// MoneyDeposited: money was paid in.
	MoneyDeposited struct {
		Amount       int64 `json:"amount"`
		BalanceAfter int64 `json:"balanceAfter"`
	}
	// MoneyWithdrawn: money was taken out (At decides the daily limit's day, in UTC).
	MoneyWithdrawn struct {
		Amount       int64     `json:"amount"`
		BalanceAfter int64     `json:"balanceAfter"`
		At           time.Time `json:"at"`
	}
	// OverdraftOccurred: a debit took the balance from zero or above to below zero.
	OverdraftOccurred struct {
		Balance        int64 `json:"balance"`
		OverdraftLimit int64 `json:"overdraftLimit"`
	}
	// AccountFrozen: the account accepts deposits only.
	AccountFrozen struct {
		Reason string `json:"reason"`
	}
	// AccountUnfrozen: a freeze was lifted.
	AccountUnfrozen struct{}
	// AccountClosed: the account was closed at zero balance (refunds of
	// its charges are still credited to it).
	AccountClosed struct{}
	// ClosedAccountPaidOut: a closed account's balance, Amount, was paid
	// out to its holder; the balance is zero after it.
	ClosedAccountPaidOut struct {
		Amount int64 `json:"amount"`
	}
	// InterestApplied: interest was credited.
	InterestApplied struct {
		RateBasisPoints int64 `json:"rateBasisPoints"`
		Amount          int64 `json:"amount"`
		BalanceAfter    int64 `json:"balanceAfter"`
	}
	// FeeCharged: a fee was debited.
	FeeCharged struct {
		Amount       int64  `json:"amount"`
		Reason       string `json:"reason"`
		BalanceAfter int64  `json:"balanceAfter"`
	}
)

// CommandName implements Command.
func (OpenAccount) CommandName() string { return "OpenAccount" }

// AggregateID implements Command.
func (c OpenAccount) AggregateID() string { return c.AccountID }

// CommandName implements Command.
func (DepositMoney) CommandName() string { return "DepositMoney" }

// AggregateID implements Command.
func (c DepositMoney) AggregateID() string { return c.AccountID }

// CommandName implements Command.
func (WithdrawMoney) CommandName() string { return "WithdrawMoney" }

// AggregateID implements Command.
func (c WithdrawMoney) AggregateID() string { return c.AccountID }

// CommandName implements Command.
func (FreezeAccount) CommandName() string { return "FreezeAccount" }

// AggregateID implements Command.
func (c FreezeAccount) AggregateID() string { return c.AccountID }

// CommandName implements Command.
func (UnfreezeAccount) CommandName() string { return "UnfreezeAccount" }

// AggregateID implements Command.
func (c UnfreezeAccount) AggregateID() string { return c.AccountID }

// CommandName implements Command.
func (CloseAccount) CommandName() string { return "CloseAccount" }

// AggregateID implements Command.
func (c CloseAccount) AggregateID() string { return c.AccountID }

// CommandName implements Command.
func (ApplyInterest) CommandName() string { return "ApplyInterest" }

// AggregateID implements Command.
func (c ApplyInterest) AggregateID() string { return c.AccountID }

// CommandName implements Command.
func (ChargeFee) CommandName() string { return "ChargeFee" }

// AggregateID implements Command.
func (c ChargeFee) AggregateID() string { return c.AccountID }

// EventType implements Event.
func (AccountOpened) EventType() string { return "AccountOpened" }

// EventType implements Event.
func (MoneyDeposited) EventType() string { return "MoneyDeposited" }

// EventType implements Event.
func (MoneyWithdrawn) EventType() string { return "MoneyWithdrawn" }

// EventType implements Event.
func (OverdraftOccurred) EventType() string { return "OverdraftOccurred" }

// EventType implements Event.
func (AccountFrozen) EventType() string { return "AccountFrozen" }

// EventType implements Event.
func (AccountUnfrozen) EventType() string { return "AccountUnfrozen" }

// EventType implements Event.
func (AccountClosed) EventType() string { return "AccountClosed" }

// EventType implements Event.
func (ClosedAccountPaidOut) EventType() string { return "ClosedAccountPaidOut" }

// CommandName implements Command.
func (PayOutClosedAccount) CommandName() string { return "PayOutClosedAccount" }

// AggregateID implements Command.
func (c PayOutClosedAccount) AggregateID() string { return c.AccountID }

// EventType implements Event.
func (InterestApplied) EventType() string { return "InterestApplied" }

// EventType implements Event.
func (FeeCharged) EventType() string { return "FeeCharged" }

// Rule names of account refusals (extensions.rule on RULE_VIOLATION errors).
const (
	RuleAccountExists     = "ACCOUNT_ALREADY_OPEN"
	RuleAccountClosed     = "ACCOUNT_CLOSED"
	RuleAccountFrozen     = "ACCOUNT_FROZEN"
	RuleAccountNotFrozen  = "ACCOUNT_NOT_FROZEN"
	RuleInsufficientFunds = "INSUFFICIENT_FUNDS"
	RuleDailyLimit        = "DAILY_LIMIT_EXCEEDED"
	RuleBalanceNotZero    = "BALANCE_NOT_ZERO"
	RuleAmountOverflow    = "AMOUNT_OVERFLOW"
	RuleCurrencyMismatch  = "CURRENCY_MISMATCH"
	RuleAccountNotClosed  = "ACCOUNT_NOT_CLOSED"
	RuleNothingToPayOut   = "NOTHING_TO_PAY_OUT"
)

// Accounts is the account aggregate kind.
var Accounts = &Kind[*Account]{
	Name:         "account",
	IDField:      "accountId",
	New:          func(id string) *Account { return &Account{id: id} },
	Decide:       func(a *Account, cmd Command, now time.Time) ([]Event, error) { return a.decide(cmd, now) },
	Decode:       decodeAccountEvent,
	StateVersion: 1,
	SaveState:    func(a *Account) (json.RawMessage, error) { return json.Marshal(a.state()) },
	LoadState:    loadAccount,
}

// Balance returns the balance in minor units.
func (a *Account) Balance() int64 { return a.balance }

// Owner returns the account holder.
func (a *Account) Owner() string { return a.owner }

// OverdraftLimit returns how far below zero the balance may go.
func (a *Account) OverdraftLimit() int64 { return a.overdraft }

// DailyWithdrawalLimit returns the most that may be withdrawn per UTC day (0: no limit).
func (a *Account) DailyWithdrawalLimit() int64 { return a.dailyLimit }

// Currency returns the account's ISO 4217 currency.
func (a *Account) Currency() string { return a.currency }

// takenWhenClosed reports whether a closed account takes cmd: a refund
// credited to it, and the pay-out of its balance.
func takenWhenClosed(cmd Command) bool {
	switch c := cmd.(type) {
	case DepositMoney:
		return c.Refund
	case PayOutClosedAccount:
		return true
	}
	return false
}

// Status returns OPEN, FROZEN, CLOSED or "" for an account never opened.
func (a *Account) Status() string {
	switch {
	case !a.opened:
		return ""
	case a.closed:
		return "CLOSED"
	case a.frozen:
		return "FROZEN"
	}
	return "OPEN"
}

func (a *Account) decide(cmd Command, now time.Time) ([]Event, error) {
	if c, ok := cmd.(OpenAccount); ok {
		return a.open(c, now)
	}
	if !a.opened {
		return nil, notFound("account %s does not exist", a.id)
	}
	if a.closed && !takenWhenClosed(cmd) {
		return nil, ruleError(RuleAccountClosed, "account %s is closed", a.id)
	}
	switch c := cmd.(type) {
	case DepositMoney:
		if err := checkPositive("amount", c.Amount); err != nil {
			return nil, err
		}
		if err := a.checkCurrency(c.Currency); err != nil {
			return nil, err
		}
		after, ok := addMoney(a.balance, c.Amount)
		if !ok {
			return nil, ruleError(RuleAmountOverflow, "depositing %d would overflow the balance", c.Amount)
		}
		return []Event{MoneyDeposited{Amount: c.Amount, BalanceAfter: after}}, nil
	case WithdrawMoney:
		if err := checkPositive("amount", c.Amount); err != nil {
			return nil, err
		}
		if err := a.checkCurrency(c.Currency); err != nil {
			return nil, err
		}
		if a.frozen {
			return nil, ruleError(RuleAccountFrozen, "account %s is frozen: only deposits are accepted", a.id)
		}
		after, err := a.debit(c.Amount)
		if err != nil {
			return nil, err
		}
		if a.dailyLimit > 0 {
			today := a.withdrawnOn(now)
			if total, ok := addMoney(today, c.Amount); !ok || total > a.dailyLimit {
				return nil, ruleError(RuleDailyLimit, "withdrawing %d would exceed the daily limit of %d (%d withdrawn today)", c.Amount, a.dailyLimit, today)
			}
		}
		return a.withOverdraft(after, MoneyWithdrawn{Amount: c.Amount, BalanceAfter: after, At: now.UTC()}), nil
	case FreezeAccount:
		if err := checkText("reason", c.Reason, 500); err != nil {
			return nil, err
		}
		if a.frozen {
			return nil, ruleError(RuleAccountFrozen, "account %s is already frozen", a.id)
		}
		return []Event{AccountFrozen{Reason: c.Reason}}, nil
	case UnfreezeAccount:
		if !a.frozen {
			return nil, ruleError(RuleAccountNotFrozen, "account %s is not frozen", a.id)
		}
		return []Event{AccountUnfrozen{}}, nil
	case PayOutClosedAccount:
		if !a.closed {
			return nil, ruleError(RuleAccountNotClosed, "account %s is open: withdraw its money instead", a.id)
		}
		if a.balance <= 0 {
			return nil, ruleError(RuleNothingToPayOut, "closed account %s has a balance of %d: there is nothing to pay out", a.id, a.balance)
		}
		return []Event{ClosedAccountPaidOut{Amount: a.balance}}, nil
	case CloseAccount:
		if a.frozen {
			return nil, ruleError(RuleAccountFrozen, "account %s is frozen: only deposits are accepted", a.id)
		}
		if a.balance != 0 {
			return nil, ruleError(RuleBalanceNotZero, "account %s has a balance of %d: only an account at zero can be closed", a.id, a.balance)
		}
		return []Event{AccountClosed{}}, nil
	case ApplyInterest:
		if c.RateBasisPoints <= 0 || c.RateBasisPoints > 10000 {
			return nil, InvalidField("rateBasisPoints", "rate must be 1 to 10000 basis points, got %d", c.RateBasisPoints)
		}
		if a.frozen {
			return nil, ruleError(RuleAccountFrozen, "account %s is frozen", a.id)
		}
		if a.balance <= 0 {
			return nil, nil // no interest on a balance at or below zero
		}
		interest := basisPoints(a.balance, c.RateBasisPoints)
		if interest == 0 {
			return nil, nil
		}
		after, ok := addMoney(a.balance, interest)
		if !ok {
			return nil, ruleError(RuleAmountOverflow, "interest of %d would overflow the balance", interest)
		}
		return []Event{InterestApplied{RateBasisPoints: c.RateBasisPoints, Amount: interest, BalanceAfter: after}}, nil
	case ChargeFee:
		if err := checkPositive("amount", c.Amount); err != nil {
			return nil, err
		}
		if err := checkText("reason", c.Reason, 500); err != nil {
			return nil, err
		}
		if a.frozen {
			return nil, ruleError(RuleAccountFrozen, "account %s is frozen: only deposits are accepted", a.id)
		}
		after, err := a.debit(c.Amount)
		if err != nil {
			return nil, err
		}
		return a.withOverdraft(after, FeeCharged{Amount: c.Amount, Reason: c.Reason, BalanceAfter: after}), nil
	}
	return nil, Errorf(Invalid, "account: unsupported command %s", cmd.CommandName())
}

func (a *Account) open(c OpenAccount, now time.Time) ([]Event, error) {
	if a.opened {
		return nil, ruleError(RuleAccountExists, "account %s already exists", a.id)
	}
	if err := checkText("owner", c.Owner, 200); err != nil {
		return nil, err
	}
	if !ValidCurrency(c.Currency) {
		return nil, InvalidField("currency", "%q is not an ISO 4217 currency code", CutText(c.Currency, maxQuoted))
	}
	for _, f := range []struct {
		name string
		v    int64
	}{{"initialDeposit", c.InitialDeposit}, {"overdraftLimit", c.OverdraftLimit}, {"dailyWithdrawalLimit", c.DailyWithdrawalLimit}} {
		if err := checkNonNegative(f.name, f.v); err != nil {
			return nil, err
		}
	}
	events := []Event{AccountOpened{Owner: c.Owner, Currency: c.Currency, OverdraftLimit: c.OverdraftLimit, DailyWithdrawalLimit: c.DailyWithdrawalLimit, OpenedAt: now.UTC()}}
	if c.InitialDeposit > 0 {
		events = append(events, MoneyDeposited{Amount: c.InitialDeposit, BalanceAfter: c.InitialDeposit})
	}
	return events, nil
}

// debit returns the balance after taking amount, or INSUFFICIENT_FUNDS when
// that would pass the overdraft limit.
// checkCurrency refuses a movement in another currency than the account's;
// "" (unspecified) is the account's.
func (a *Account) checkCurrency(currency string) error {
	if currency != "" && currency != a.currency {
		return ruleError(RuleCurrencyMismatch, "account %s holds %s, not %s", a.id, a.currency, CutText(currency, maxQuoted))
	}
	return nil
}

func (a *Account) debit(amount int64) (int64, error) {
	after, ok := addMoney(a.balance, -amount)
	if !ok || after < -a.overdraft {
		return 0, ruleError(RuleInsufficientFunds, "insufficient funds: balance %d, overdraft limit %d, requested %d", a.balance, a.overdraft, amount)
	}
	return after, nil
}

// withOverdraft adds OverdraftOccurred when a debit takes the balance from
// zero or above to below zero.
func (a *Account) withOverdraft(after int64, e Event) []Event {
	if a.balance >= 0 && after < 0 {
		return []Event{e, OverdraftOccurred{Balance: after, OverdraftLimit: a.overdraft}}
	}
	return []Event{e}
}

// withdrawnOn returns what was withdrawn on now's UTC day.
func (a *Account) withdrawnOn(now time.Time) int64 {
	// A clock behind the one that stamped the last withdrawal (another
	// process's, or this one's before NTP stepped it back) counts that
	// later day's total too: the limit never resets backwards.
	if now.UTC().Format(time.DateOnly) <= a.withdrawnDay {
		return a.withdrawnToday
	}
	return 0
}

// Apply implements Aggregate.
func (a *Account) Apply(e Event) {
	switch e := e.(type) {
	case AccountOpened:
		a.opened, a.owner, a.currency = true, e.Owner, e.Currency
		a.overdraft, a.dailyLimit = e.OverdraftLimit, e.DailyWithdrawalLimit
	case MoneyDeposited:
		a.balance = e.BalanceAfter
	case MoneyWithdrawn:
		day := e.At.UTC().Format(time.DateOnly)
		if day > a.withdrawnDay { // a stamp of an earlier day (a clock behind) adds to the latest day
			a.withdrawnDay, a.withdrawnToday = day, 0
		}
		a.withdrawnToday += e.Amount
		a.balance = e.BalanceAfter
	case AccountFrozen:
		a.frozen = true
	case AccountUnfrozen:
		a.frozen = false
	case AccountClosed:
		a.closed = true
	case ClosedAccountPaidOut:
		a.balance -= e.Amount
	case InterestApplied:
		a.balance = e.BalanceAfter
	case FeeCharged:
		a.balance = e.BalanceAfter
	case OverdraftOccurred:
	}
}

func decodeAccountEvent(eventType string, schemaVersion int, data json.RawMessage) (Event, error) {
	switch eventType {
	case "AccountOpened":
		return DecodeAs[AccountOpened](data)
	case "MoneyDeposited":
		return DecodeAs[MoneyDeposited](data)
	case "MoneyWithdrawn":
		return DecodeAs[MoneyWithdrawn](data)
	case "OverdraftOccurred":
		return DecodeAs[OverdraftOccurred](data)
	case "AccountFrozen":
		return DecodeAs[AccountFrozen](data)
	case "AccountUnfrozen":
		return DecodeAs[AccountUnfrozen](data)
	case "AccountClosed":
		return DecodeAs[AccountClosed](data)
	case "ClosedAccountPaidOut":
		return DecodeAs[ClosedAccountPaidOut](data)
	case "InterestApplied":
		return DecodeAs[InterestApplied](data)
	case "FeeCharged":
		return DecodeAs[FeeCharged](data)
	}
	return nil, UnknownEvent("account", eventType, schemaVersion)
}

// accountState is the snapshot shape (StateVersion 1).
type accountState struct {
	Opened, Closed, Frozen bool
	Owner, Currency        string
	Balance, Overdraft     int64
	DailyLimit             int64
	WithdrawnDay           string
	WithdrawnToday         int64
}

func (a *Account) state() accountState {
	return accountState{a.opened, a.closed, a.frozen, a.owner, a.currency, a.balance, a.overdraft, a.dailyLimit, a.withdrawnDay, a.withdrawnToday}
}

func loadAccount(id string, raw json.RawMessage) (*Account, error) {
	var s accountState
	if err := strictUnmarshal(raw, &s); err != nil {
		return nil, err
	}
	return &Account{id: id, opened: s.Opened, closed: s.Closed, frozen: s.Frozen, owner: s.Owner, currency: s.Currency,
		balance: s.Balance, overdraft: s.Overdraft, dailyLimit: s.DailyLimit, withdrawnDay: s.WithdrawnDay, withdrawnToday: s.WithdrawnToday}, nil
}
