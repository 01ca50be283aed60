package domain

import (
	"testing"
	"time"
)

// TestDailyLimitClockSkewAtMidnight: two gateway processes whose clocks
// differ by a second around UTC midnight stamp withdrawals with their own
// clocks; each took the other's day for another and the day's total as 0,
// and the daily limit of 300 was passed several times over in one day.
// The day now only moves forward.
func TestDailyLimitClockSkewAtMidnight(t *testing.T) {
	midnight := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	slow := func(i int) time.Time { return midnight.Add(-time.Second + time.Duration(i)*10*time.Millisecond) } // process B, 1 s behind
	fast := func(i int) time.Time { return midnight.Add(time.Duration(i) * 10 * time.Millisecond) }            // process A
	a := Accounts.New("x1")
	for _, e := range []Event{opened(0, 300), MoneyDeposited{Amount: 10_000, BalanceAfter: 10_000}} {
		a.Apply(e)
	}
	var byDay = map[string]int64{}
	for i := 0; i < 6; i++ {
		now := fast(i)
		if i%2 == 1 {
			now = slow(i)
		}
		evs, err := Accounts.Decide(a, WithdrawMoney{AccountID: "x1", Amount: 300}, now)
		if err != nil {
			continue // refused: the limit held
		}
		for _, e := range evs {
			a.Apply(e)
			if w, ok := e.(MoneyWithdrawn); ok {
				byDay[w.At.Format(time.DateOnly)] += w.Amount
			}
		}
	}
	for day, total := range byDay {
		if total > 300 {
			t.Errorf("%s: %d withdrawn against a daily limit of 300 (%v)", day, total, byDay)
		}
	}
}

// TestDailyLimitClockStepBack: the same with one process whose wall clock
// NTP steps back by a second just after midnight.
func TestDailyLimitClockStepBack(t *testing.T) {
	midnight := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	given := []Event{opened(0, 300), MoneyDeposited{Amount: 10_000, BalanceAfter: 10_000},
		MoneyWithdrawn{Amount: 300, BalanceAfter: 9_700, At: midnight.Add(-2 * time.Second)},       // day 22: limit used
		MoneyWithdrawn{Amount: 300, BalanceAfter: 9_400, At: midnight.Add(200 * time.Millisecond)}, // day 23
	}
	a := Accounts.New("x1")
	for _, e := range given {
		a.Apply(e)
	}
	// clock stepped back to 23:59:59.5 of day 22, whose 300 are spent
	evs, err := Accounts.Decide(a, WithdrawMoney{AccountID: "x1", Amount: 300}, midnight.Add(-500*time.Millisecond))
	if err == nil {
		t.Fatalf("a third 300 passed the daily limit: %v (day 22 now has 600)", evs)
	}
}
