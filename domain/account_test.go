package domain

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

func roundTrip[A Aggregate](t *testing.T, k *Kind[A], e Event) {
	t.Helper()
	raw, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	back, err := k.Decode(e.EventType(), schemaVersionOf(e), raw)
	if err != nil {
		t.Fatalf("decode %s: %v", e.EventType(), err)
	}
	if !reflect.DeepEqual(back, e) {
		t.Fatalf("%s round trip: %#v became %#v", e.EventType(), e, back)
	}
}

func opened(overdraft, daily int64) AccountOpened {
	return AccountOpened{Owner: "ada", Currency: "EUR", OverdraftLimit: overdraft, DailyWithdrawalLimit: daily, OpenedAt: testNow}
}

func TestAccountRules(t *testing.T) {
	open := opened(0, 0)
	funded := []Event{open, MoneyDeposited{Amount: 1000, BalanceAfter: 1000}}
	yesterday := testNow.Add(-24 * time.Hour)
	runGWT(t, Accounts, []gwt{
		{name: "open", when: OpenAccount{AccountID: "x1", Owner: "ada", Currency: "EUR"}, want: []Event{open}},
		{name: "open with deposit and limits", when: OpenAccount{AccountID: "x1", Owner: "ada", Currency: "EUR", InitialDeposit: 500, OverdraftLimit: 100, DailyWithdrawalLimit: 300},
			want: []Event{opened(100, 300), MoneyDeposited{Amount: 500, BalanceAfter: 500}}},
		{name: "open twice", given: []Event{open}, when: OpenAccount{AccountID: "x1", Owner: "ada", Currency: "EUR"}, wantCode: RuleViolation, wantRule: RuleAccountExists},
		{name: "open without owner", when: OpenAccount{AccountID: "x1", Currency: "EUR"}, wantCode: Invalid, wantFld: "owner"},
		{name: "open with oversized owner", when: OpenAccount{AccountID: "x1", Owner: strings.Repeat("a", 201), Currency: "EUR"}, wantCode: Invalid, wantFld: "owner"},
		{name: "open with unknown currency", when: OpenAccount{AccountID: "x1", Owner: "ada", Currency: "EURO"}, wantCode: Invalid, wantFld: "currency"},
		{name: "open with lower-case currency", when: OpenAccount{AccountID: "x1", Owner: "ada", Currency: "eur"}, wantCode: Invalid, wantFld: "currency"},
		{name: "open with negative deposit", when: OpenAccount{AccountID: "x1", Owner: "ada", Currency: "EUR", InitialDeposit: -1}, wantCode: Invalid, wantFld: "initialDeposit"},
		{name: "open with negative overdraft", when: OpenAccount{AccountID: "x1", Owner: "ada", Currency: "EUR", OverdraftLimit: -1}, wantCode: Invalid, wantFld: "overdraftLimit"},

		{name: "deposit", given: funded, when: DepositMoney{AccountID: "x1", Amount: 250}, want: []Event{MoneyDeposited{Amount: 250, BalanceAfter: 1250}}},
		{name: "deposit zero", given: funded, when: DepositMoney{AccountID: "x1", Amount: 0}, wantCode: Invalid, wantFld: "amount"},
		{name: "deposit negative", given: funded, when: DepositMoney{AccountID: "x1", Amount: -5}, wantCode: Invalid, wantFld: "amount"},
		{name: "deposit to unknown account", when: DepositMoney{AccountID: "x1", Amount: 5}, wantCode: NotFound},
		{name: "deposit overflows", given: []Event{open, MoneyDeposited{Amount: math.MaxInt64, BalanceAfter: math.MaxInt64}}, when: DepositMoney{AccountID: "x1", Amount: 1}, wantCode: RuleViolation, wantRule: RuleAmountOverflow},
		{name: "deposit to frozen account", given: append(funded, AccountFrozen{Reason: "audit"}), when: DepositMoney{AccountID: "x1", Amount: 1}, want: []Event{MoneyDeposited{Amount: 1, BalanceAfter: 1001}}},
		{name: "deposit to closed account", given: []Event{open, AccountClosed{}}, when: DepositMoney{AccountID: "x1", Amount: 1}, wantCode: RuleViolation, wantRule: RuleAccountClosed},
		{name: "refund to closed account", given: []Event{open, AccountClosed{}}, when: DepositMoney{AccountID: "x1", Amount: 5, Refund: true}, want: []Event{MoneyDeposited{Amount: 5, BalanceAfter: 5}}},
		{name: "refund in another currency to closed account", given: []Event{open, AccountClosed{}}, when: DepositMoney{AccountID: "x1", Amount: 5, Currency: "USD", Refund: true}, wantCode: RuleViolation, wantRule: RuleCurrencyMismatch},
		{name: "withdraw a refund from closed account", given: []Event{open, AccountClosed{}, MoneyDeposited{Amount: 5, BalanceAfter: 5}}, when: WithdrawMoney{AccountID: "x1", Amount: 5}, wantCode: RuleViolation, wantRule: RuleAccountClosed},
		// A closed account's refunds are paid out to its holder, all at once.
		{name: "pay out a closed account's refunds", given: []Event{open, AccountClosed{}, MoneyDeposited{Amount: 5, BalanceAfter: 5}, MoneyDeposited{Amount: 7, BalanceAfter: 12}},
			when: PayOutClosedAccount{AccountID: "x1"}, want: []Event{ClosedAccountPaidOut{Amount: 12}}},
		{name: "pay out a closed account twice", given: []Event{open, AccountClosed{}, MoneyDeposited{Amount: 5, BalanceAfter: 5}, ClosedAccountPaidOut{Amount: 5}},
			when: PayOutClosedAccount{AccountID: "x1"}, wantCode: RuleViolation, wantRule: RuleNothingToPayOut},
		{name: "pay out a closed account at zero", given: []Event{open, AccountClosed{}}, when: PayOutClosedAccount{AccountID: "x1"}, wantCode: RuleViolation, wantRule: RuleNothingToPayOut},
		{name: "pay out an open account", given: funded, when: PayOutClosedAccount{AccountID: "x1"}, wantCode: RuleViolation, wantRule: RuleAccountNotClosed},
		{name: "pay out an account never opened", when: PayOutClosedAccount{AccountID: "x1"}, wantCode: NotFound},
		{name: "deposit to a closed account paid out", given: []Event{open, AccountClosed{}, MoneyDeposited{Amount: 5, BalanceAfter: 5}, ClosedAccountPaidOut{Amount: 5}},
			when: DepositMoney{AccountID: "x1", Amount: 1}, wantCode: RuleViolation, wantRule: RuleAccountClosed},

		{name: "withdraw", given: funded, when: WithdrawMoney{AccountID: "x1", Amount: 400}, want: []Event{MoneyWithdrawn{Amount: 400, BalanceAfter: 600, At: testNow}}},
		{name: "withdraw in the account's currency", given: funded, when: WithdrawMoney{AccountID: "x1", Amount: 400, Currency: "EUR"}, want: []Event{MoneyWithdrawn{Amount: 400, BalanceAfter: 600, At: testNow}}},
		{name: "withdraw in another currency", given: funded, when: WithdrawMoney{AccountID: "x1", Amount: 400, Currency: "USD"}, wantCode: RuleViolation, wantRule: RuleCurrencyMismatch},
		{name: "deposit in another currency", given: funded, when: DepositMoney{AccountID: "x1", Amount: 400, Currency: "USD"}, wantCode: RuleViolation, wantRule: RuleCurrencyMismatch},
		{name: "withdraw everything", given: funded, when: WithdrawMoney{AccountID: "x1", Amount: 1000}, want: []Event{MoneyWithdrawn{Amount: 1000, BalanceAfter: 0, At: testNow}}},
		{name: "withdraw beyond balance", given: funded, when: WithdrawMoney{AccountID: "x1", Amount: 1001}, wantCode: RuleViolation, wantRule: RuleInsufficientFunds},
		{name: "withdraw into overdraft", given: []Event{opened(500, 0), MoneyDeposited{Amount: 100, BalanceAfter: 100}}, when: WithdrawMoney{AccountID: "x1", Amount: 300},
			want: []Event{MoneyWithdrawn{Amount: 300, BalanceAfter: -200, At: testNow}, OverdraftOccurred{Balance: -200, OverdraftLimit: 500}}},
		{name: "withdraw further into overdraft records no second overdraft", given: []Event{opened(500, 0), MoneyWithdrawn{Amount: 100, BalanceAfter: -100, At: testNow}}, when: WithdrawMoney{AccountID: "x1", Amount: 100},
			want: []Event{MoneyWithdrawn{Amount: 100, BalanceAfter: -200, At: testNow}}},
		{name: "withdraw beyond overdraft", given: []Event{opened(500, 0), MoneyDeposited{Amount: 100, BalanceAfter: 100}}, when: WithdrawMoney{AccountID: "x1", Amount: 601}, wantCode: RuleViolation, wantRule: RuleInsufficientFunds},
		{name: "withdraw within daily limit", given: []Event{opened(0, 300), MoneyDeposited{Amount: 1000, BalanceAfter: 1000}, MoneyWithdrawn{Amount: 200, BalanceAfter: 800, At: testNow}},
			when: WithdrawMoney{AccountID: "x1", Amount: 100}, want: []Event{MoneyWithdrawn{Amount: 100, BalanceAfter: 700, At: testNow}}},
		{name: "withdraw beyond daily limit", given: []Event{opened(0, 300), MoneyDeposited{Amount: 1000, BalanceAfter: 1000}, MoneyWithdrawn{Amount: 200, BalanceAfter: 800, At: testNow}},
			when: WithdrawMoney{AccountID: "x1", Amount: 101}, wantCode: RuleViolation, wantRule: RuleDailyLimit},
		{name: "daily limit resets the next day", given: []Event{opened(0, 300), MoneyDeposited{Amount: 1000, BalanceAfter: 1000}, MoneyWithdrawn{Amount: 300, BalanceAfter: 700, At: yesterday}},
			when: WithdrawMoney{AccountID: "x1", Amount: 300}, want: []Event{MoneyWithdrawn{Amount: 300, BalanceAfter: 400, At: testNow}}},
		{name: "withdraw from frozen account", given: append(funded, AccountFrozen{Reason: "audit"}), when: WithdrawMoney{AccountID: "x1", Amount: 1}, wantCode: RuleViolation, wantRule: RuleAccountFrozen},
		{name: "withdraw zero", given: funded, when: WithdrawMoney{AccountID: "x1"}, wantCode: Invalid, wantFld: "amount"},

		{name: "freeze", given: funded, when: FreezeAccount{AccountID: "x1", Reason: "audit"}, want: []Event{AccountFrozen{Reason: "audit"}}},
		{name: "freeze twice", given: append(funded, AccountFrozen{Reason: "a"}), when: FreezeAccount{AccountID: "x1", Reason: "b"}, wantCode: RuleViolation, wantRule: RuleAccountFrozen},
		{name: "freeze without reason", given: funded, when: FreezeAccount{AccountID: "x1"}, wantCode: Invalid, wantFld: "reason"},
		{name: "unfreeze", given: append(funded, AccountFrozen{Reason: "a"}), when: UnfreezeAccount{AccountID: "x1"}, want: []Event{AccountUnfrozen{}}},
		{name: "unfreeze an unfrozen account", given: funded, when: UnfreezeAccount{AccountID: "x1"}, wantCode: RuleViolation, wantRule: RuleAccountNotFrozen},
		{name: "withdraw after unfreeze", given: append(funded, AccountFrozen{Reason: "a"}, AccountUnfrozen{}), when: WithdrawMoney{AccountID: "x1", Amount: 1}, want: []Event{MoneyWithdrawn{Amount: 1, BalanceAfter: 999, At: testNow}}},

		{name: "close at zero", given: []Event{open}, when: CloseAccount{AccountID: "x1"}, want: []Event{AccountClosed{}}},
		{name: "close with a balance", given: funded, when: CloseAccount{AccountID: "x1"}, wantCode: RuleViolation, wantRule: RuleBalanceNotZero},
		{name: "close when overdrawn", given: []Event{opened(100, 0), MoneyWithdrawn{Amount: 10, BalanceAfter: -10, At: testNow}}, when: CloseAccount{AccountID: "x1"}, wantCode: RuleViolation, wantRule: RuleBalanceNotZero},
		{name: "close twice", given: []Event{open, AccountClosed{}}, when: CloseAccount{AccountID: "x1"}, wantCode: RuleViolation, wantRule: RuleAccountClosed},

		{name: "interest", given: funded, when: ApplyInterest{AccountID: "x1", RateBasisPoints: 250}, want: []Event{InterestApplied{RateBasisPoints: 250, Amount: 25, BalanceAfter: 1025}}},
		{name: "interest rounds down", given: []Event{open, MoneyDeposited{Amount: 39, BalanceAfter: 39}}, when: ApplyInterest{AccountID: "x1", RateBasisPoints: 250}, want: nil},
		{name: "no interest when overdrawn", given: []Event{opened(100, 0), MoneyWithdrawn{Amount: 10, BalanceAfter: -10, At: testNow}}, when: ApplyInterest{AccountID: "x1", RateBasisPoints: 100}, want: nil},
		{name: "interest rate out of range", given: funded, when: ApplyInterest{AccountID: "x1", RateBasisPoints: 10001}, wantCode: Invalid, wantFld: "rateBasisPoints"},
		{name: "interest on a frozen account", given: append(funded, AccountFrozen{Reason: "a"}), when: ApplyInterest{AccountID: "x1", RateBasisPoints: 100}, wantCode: RuleViolation, wantRule: RuleAccountFrozen},
		{name: "interest on a balance whose product with the rate passes int64", given: []Event{open, MoneyDeposited{Amount: math.MaxInt64 / 2, BalanceAfter: math.MaxInt64 / 2}}, when: ApplyInterest{AccountID: "x1", RateBasisPoints: 100},
			want: []Event{InterestApplied{RateBasisPoints: 100, Amount: math.MaxInt64 / 2 / 100, BalanceAfter: math.MaxInt64/2 + math.MaxInt64/2/100}}},
		{name: "interest of 0.01% on 10^17", given: []Event{open, MoneyDeposited{Amount: 1e17, BalanceAfter: 1e17}}, when: ApplyInterest{AccountID: "x1", RateBasisPoints: 1},
			want: []Event{InterestApplied{RateBasisPoints: 1, Amount: 1e13, BalanceAfter: 1e17 + 1e13}}},
		{name: "interest overflows the balance", given: []Event{open, MoneyDeposited{Amount: math.MaxInt64 - 10, BalanceAfter: math.MaxInt64 - 10}}, when: ApplyInterest{AccountID: "x1", RateBasisPoints: 100}, wantCode: RuleViolation, wantRule: RuleAmountOverflow},
		{name: "fee on a frozen account", given: append(funded, AccountFrozen{Reason: "a"}), when: ChargeFee{AccountID: "x1", Amount: 5, Reason: "card"}, wantCode: RuleViolation, wantRule: RuleAccountFrozen},
		{name: "closing a frozen account", given: []Event{open, AccountFrozen{Reason: "a"}}, when: CloseAccount{AccountID: "x1"}, wantCode: RuleViolation, wantRule: RuleAccountFrozen},

		{name: "fee", given: funded, when: ChargeFee{AccountID: "x1", Amount: 50, Reason: "card"}, want: []Event{FeeCharged{Amount: 50, Reason: "card", BalanceAfter: 950}}},
		{name: "fee into overdraft", given: []Event{opened(100, 0)}, when: ChargeFee{AccountID: "x1", Amount: 50, Reason: "card"},
			want: []Event{FeeCharged{Amount: 50, Reason: "card", BalanceAfter: -50}, OverdraftOccurred{Balance: -50, OverdraftLimit: 100}}},
		{name: "fee beyond overdraft", given: []Event{open}, when: ChargeFee{AccountID: "x1", Amount: 1, Reason: "card"}, wantCode: RuleViolation, wantRule: RuleInsufficientFunds},
		{name: "fee without reason", given: funded, when: ChargeFee{AccountID: "x1", Amount: 1}, wantCode: Invalid, wantFld: "reason"},
	})
}

func TestAccountSnapshotRoundTrip(t *testing.T) {
	a := Accounts.New("x1")
	for _, e := range []Event{opened(100, 300), MoneyDeposited{Amount: 10, BalanceAfter: 10}, MoneyWithdrawn{Amount: 5, BalanceAfter: 5, At: testNow}, AccountFrozen{Reason: "r"}} {
		a.Apply(e)
	}
	raw, err := Accounts.SaveState(a)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Accounts.LoadState("x1", raw)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("snapshot round trip: %+v became %+v", a, b)
	}
	if _, err := Accounts.LoadState("x1", json.RawMessage(`{"Balance": 1, "Unknown": true}`)); err == nil {
		t.Fatal("a snapshot of another shape loaded")
	}
}
