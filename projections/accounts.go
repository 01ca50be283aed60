package projections

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"cqrsgate/domain"
)

// Accounts projects the account events into:
//   - account_summary: one row per account (owner, currency, balance,
//     status, limits, last activity, version and position of the last change);
//   - account_statement: one row per money movement with the running balance;
//   - bank_totals: per currency, the number of accounts and the sum of balances.
type Accounts struct{}

var _ Projection = Accounts{}

// Name implements Projection.
func (Accounts) Name() string { return "accounts" }

// Version implements Projection.
func (Accounts) Version() int { return 1 }

// EventTypes implements Projection.
func (Accounts) EventTypes() []string {
	return []string{"AccountOpened", "MoneyDeposited", "MoneyWithdrawn", "OverdraftOccurred", "AccountFrozen",
		"AccountUnfrozen", "AccountClosed", "InterestApplied", "FeeCharged"}
}

// Tables implements Projection.
func (Accounts) Tables() []string {
	return []string{"account_summary", "account_statement", "bank_totals"}
}

// Setup implements Projection.
func (Accounts) Setup(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, `
		CREATE TABLE IF NOT EXISTS account_summary (
			id                     text PRIMARY KEY,
			owner                  text        NOT NULL,
			currency               text        NOT NULL,
			balance                bigint      NOT NULL DEFAULT 0,
			status                 text        NOT NULL,
			overdraft_limit        bigint      NOT NULL,
			daily_withdrawal_limit bigint      NOT NULL,
			opened_at              timestamptz NOT NULL,
			last_activity_at       timestamptz NOT NULL,
			version                bigint      NOT NULL,
			position               bigint      NOT NULL
		);
		CREATE INDEX IF NOT EXISTS account_summary_owner ON account_summary (owner, id);
		CREATE TABLE IF NOT EXISTS account_statement (
			account_id    text        NOT NULL,
			version       bigint      NOT NULL,
			position      bigint      NOT NULL,
			kind          text        NOT NULL,
			amount        bigint      NOT NULL,
			balance_after bigint      NOT NULL,
			description   text        NOT NULL DEFAULT '',
			recorded_at   timestamptz NOT NULL,
			PRIMARY KEY (account_id, version)
		);
		CREATE TABLE IF NOT EXISTS bank_totals (
			currency      text PRIMARY KEY,
			accounts      bigint NOT NULL DEFAULT 0,
			total_balance bigint NOT NULL DEFAULT 0
		);`)
	return err
}

// Apply implements Projection.
func (Accounts) Apply(ctx context.Context, tx pgx.Tx, events []domain.RecordedEvent) error {
	b := &pgx.Batch{}
	for _, re := range events {
		e, err := domain.Accounts.Decode(re.Type, re.SchemaVersion, re.Data)
		if err != nil {
			return fmt.Errorf("event %s at %d: %w", re.Type, re.Position, err)
		}
		id := strings.TrimPrefix(re.StreamID, domain.Accounts.Name+"-")
		touch := func(set string, args ...any) {
			all := append([]any{id, re.StreamVersion, re.Position, re.RecordedAt}, args...)
			b.Queue(`UPDATE account_summary SET version = $2, position = $3, last_activity_at = $4`+set+` WHERE id = $1`, all...)
		}
		money := func(kind string, amount, after int64, desc string) {
			b.Queue(`UPDATE bank_totals SET total_balance = total_balance + ($2 - (SELECT balance FROM account_summary WHERE id = $1))
				WHERE currency = (SELECT currency FROM account_summary WHERE id = $1)`, id, after)
			touch(", balance = $5", after)
			b.Queue(`INSERT INTO account_statement (account_id, version, position, kind, amount, balance_after, description, recorded_at)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, id, re.StreamVersion, re.Position, kind, amount, after, desc, re.RecordedAt)
		}
		switch e := e.(type) {
		case domain.AccountOpened:
			b.Queue(`INSERT INTO account_summary (id, owner, currency, status, overdraft_limit, daily_withdrawal_limit, opened_at, last_activity_at, version, position)
				VALUES ($1, $2, $3, 'OPEN', $4, $5, $6, $7, $8, $9)`,
				id, e.Owner, e.Currency, e.OverdraftLimit, e.DailyWithdrawalLimit, e.OpenedAt, re.RecordedAt, re.StreamVersion, re.Position)
			b.Queue(`INSERT INTO bank_totals (currency, accounts) VALUES ($1, 1)
				ON CONFLICT (currency) DO UPDATE SET accounts = bank_totals.accounts + 1`, e.Currency)
		case domain.MoneyDeposited:
			money("DEPOSIT", e.Amount, e.BalanceAfter, "")
		case domain.MoneyWithdrawn:
			money("WITHDRAWAL", -e.Amount, e.BalanceAfter, "")
		case domain.InterestApplied:
			money("INTEREST", e.Amount, e.BalanceAfter, fmt.Sprintf("%d basis points", e.RateBasisPoints))
		case domain.FeeCharged:
			money("FEE", -e.Amount, e.BalanceAfter, e.Reason)
		case domain.AccountFrozen:
			touch(", status = 'FROZEN'")
		case domain.AccountUnfrozen:
			touch(", status = 'OPEN'")
		case domain.AccountClosed:
			touch(", status = 'CLOSED'")
			b.Queue(`UPDATE bank_totals SET accounts = accounts - 1 WHERE currency = (SELECT currency FROM account_summary WHERE id = $1)`, id)
		case domain.OverdraftOccurred:
			touch("")
		}
	}
	return tx.SendBatch(ctx, b).Close()
}
