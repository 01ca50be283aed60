package projections

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"cqrsgate/domain"
)

// Accounts projects the account events into:
//   - account_summary: one row per account (owner, currency, balance,
//     status, limits, last activity, version and position of the last change);
//   - account_statement: one row per money movement with the running balance;
//   - bank_totals: per tenant and currency, the number of accounts and the
//     sum of balances.
//
// Rows are keyed by the tenant-qualified account id (domain.Qualify); the
// generated tenant column serves the tenant-scoped list queries.
type Accounts struct{}

var _ Projection = Accounts{}

// Name implements Projection.
func (Accounts) Name() string { return "accounts" }

// Version implements Projection.
func (Accounts) Version() int { return 4 } // 2: tenants; 3: exact totals; 4: pay-outs of closed accounts

// EventTypes implements Projection.
func (Accounts) EventTypes() []string {
	return []string{"AccountOpened", "MoneyDeposited", "MoneyWithdrawn", "OverdraftOccurred", "AccountFrozen",
		"AccountUnfrozen", "AccountClosed", "InterestApplied", "FeeCharged", "ClosedAccountPaidOut"}
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
			tenant                 text GENERATED ALWAYS AS (`+tenantOf("id")+`) STORED,
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
		CREATE INDEX IF NOT EXISTS account_summary_tenant ON account_summary (tenant, id);
		CREATE INDEX IF NOT EXISTS account_summary_owner ON account_summary (tenant, owner, id);
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
			tenant        text   NOT NULL,
			currency      text   NOT NULL,
			accounts      bigint NOT NULL DEFAULT 0,
			total_balance numeric NOT NULL DEFAULT 0, -- a sum of balances: beyond 64 bits, it must not wrap
			PRIMARY KEY (tenant, currency)
		);`)
	return err
}

// Apply implements Projection. It folds the batch in memory (one state per
// account touched) and writes in bulk: the accounts touched are read once;
// accounts opened in the batch go in with COPY and the others are written
// back with one upsert; the statement lines go in with COPY, and the
// totals with one upsert. Events on a stream that is not an account's are
// skipped (ownEvents).
func (Accounts) Apply(ctx context.Context, tx pgx.Tx, events []domain.RecordedEvent) error {
	type row struct {
		id, owner, currency, status string
		balance, overdraft, daily   int64
		openedAt, lastActivity      time.Time
		version, position           int64
		opened                      bool // in this batch: no row yet
	}
	events, streamIDs := ownEvents(domain.Accounts, events)
	if len(events) == 0 {
		return nil
	}
	touched := map[string]*row{}
	var ids []string
	for _, id := range streamIDs {
		if _, ok := touched[id]; !ok {
			touched[id] = nil
			ids = append(ids, id)
		}
	}
	rows, err := tx.Query(ctx, `SELECT id, owner, currency, status, balance, overdraft_limit, daily_withdrawal_limit, opened_at, last_activity_at, version, position
		FROM account_summary WHERE id = ANY($1)`, ids)
	if err != nil {
		return err
	}
	for rows.Next() {
		r := &row{}
		if err := rows.Scan(&r.id, &r.owner, &r.currency, &r.status, &r.balance, &r.overdraft, &r.daily, &r.openedAt, &r.lastActivity, &r.version, &r.position); err != nil {
			rows.Close()
			return err
		}
		touched[r.id] = r
	}
	if err := rows.Err(); err != nil {
		return err
	}
	type totalsKey struct{ tenant, currency string }
	type totals struct {
		accounts int64
		balance  sum
	}
	deltas := map[totalsKey]*totals{}
	delta := func(r *row) *totals {
		k := totalsKey{domain.TenantOf(r.id), r.currency}
		d := deltas[k]
		if d == nil {
			d = &totals{}
			deltas[k] = d
		}
		return d
	}
	type line struct {
		account           string
		version, position int64
		kind              string
		amount, after     int64
		description       string
		at                time.Time
	}
	statement := make([]line, 0, len(events))
	for i, re := range events {
		e, err := decodeAccountEvent(re)
		if err != nil {
			return fmt.Errorf("event %s at %d: %w", re.Type, re.Position, err)
		}
		id := streamIDs[i]
		r := touched[id]
		if opened, ok := e.(domain.AccountOpened); ok {
			if r != nil {
				return fmt.Errorf("account %s opened twice (position %d)", id, re.Position)
			}
			r = &row{id: id, owner: opened.Owner, currency: opened.Currency, status: "OPEN", overdraft: opened.OverdraftLimit,
				daily: opened.DailyWithdrawalLimit, openedAt: opened.OpenedAt, opened: true}
			touched[id] = r
			delta(r).accounts++
		}
		if r == nil {
			return fmt.Errorf("event %s at %d for account %s, which was never opened", re.Type, re.Position, id)
		}
		money := func(kind string, amount, after int64, desc string) {
			d := delta(r)
			d.balance.add(after)
			d.balance.sub(r.balance)
			r.balance = after
			statement = append(statement, line{id, re.StreamVersion, re.Position, kind, amount, after, desc, re.RecordedAt})
		}
		switch e := e.(type) {
		case domain.MoneyDeposited:
			money("DEPOSIT", e.Amount, e.BalanceAfter, "")
		case domain.MoneyWithdrawn:
			money("WITHDRAWAL", -e.Amount, e.BalanceAfter, "")
		case domain.InterestApplied:
			money("INTEREST", e.Amount, e.BalanceAfter, fmt.Sprintf("%d basis points", e.RateBasisPoints))
		case domain.FeeCharged:
			money("FEE", -e.Amount, e.BalanceAfter, e.Reason)
		case domain.AccountFrozen:
			r.status = "FROZEN"
		case domain.AccountUnfrozen:
			r.status = "OPEN"
		case domain.AccountClosed:
			r.status = "CLOSED"
			delta(r).accounts--
		case domain.ClosedAccountPaidOut:
			money("PAYOUT", -e.Amount, r.balance-e.Amount, "closed account paid out")
		}
		r.version, r.position, r.lastActivity = re.StreamVersion, re.Position, re.RecordedAt
	}

	// Accounts opened in this batch have no row yet: COPY.
	var opened, changed []*row
	for _, id := range ids {
		if r := touched[id]; r.opened {
			opened = append(opened, r)
		} else {
			changed = append(changed, r)
		}
	}
	w := &pgx.Batch{}
	if n := len(changed); n > 0 {
		var (
			idCol, owners, currencies, statuses = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
			balances, overdrafts, dailies       = make([]int64, n), make([]int64, n), make([]int64, n)
			openedAts, lastActivities           = make([]time.Time, n), make([]time.Time, n)
			versions, positions                 = make([]int64, n), make([]int64, n)
		)
		for i, r := range changed {
			idCol[i], owners[i], currencies[i], statuses[i] = r.id, r.owner, r.currency, r.status
			balances[i], overdrafts[i], dailies[i] = r.balance, r.overdraft, r.daily
			openedAts[i], lastActivities[i], versions[i], positions[i] = r.openedAt, r.lastActivity, r.version, r.position
		}
		w.Queue(`INSERT INTO account_summary (id, owner, currency, status, balance, overdraft_limit, daily_withdrawal_limit, opened_at, last_activity_at, version, position)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[], $7::bigint[], $8::timestamptz[], $9::timestamptz[], $10::bigint[], $11::bigint[])
		ON CONFLICT (id) DO UPDATE SET status = excluded.status, balance = excluded.balance, last_activity_at = excluded.last_activity_at,
			version = excluded.version, position = excluded.position`,
			idCol, owners, currencies, statuses, balances, overdrafts, dailies, openedAts, lastActivities, versions, positions)
	}
	if len(deltas) > 0 {
		var tenants, currencies, sums []string
		var counts []int64
		for k, d := range deltas {
			tenants, currencies, counts, sums = append(tenants, k.tenant), append(currencies, k.currency), append(counts, d.accounts), append(sums, d.balance.String())
		}
		w.Queue(`INSERT INTO bank_totals (tenant, currency, accounts, total_balance) SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::numeric[])
			ON CONFLICT (tenant, currency) DO UPDATE SET accounts = bank_totals.accounts + excluded.accounts, total_balance = bank_totals.total_balance + excluded.total_balance`,
			tenants, currencies, counts, sums)
	}
	if w.Len() > 0 {
		if err := tx.SendBatch(ctx, w).Close(); err != nil {
			return fmt.Errorf("account summaries and totals: %w", err)
		}
	}
	if err := copyRows(ctx, tx, "account_summary",
		[]string{"id", "owner", "currency", "status", "balance", "overdraft_limit", "daily_withdrawal_limit", "opened_at", "last_activity_at", "version", "position"},
		opened, func(r **row, dst []any) {
			x := *r
			dst[0], dst[1], dst[2], dst[3], dst[4], dst[5] = &x.id, &x.owner, &x.currency, &x.status, &x.balance, &x.overdraft
			dst[6], dst[7], dst[8], dst[9], dst[10] = &x.daily, &x.openedAt, &x.lastActivity, &x.version, &x.position
		}); err != nil {
		return fmt.Errorf("new account summaries: %w", err)
	}
	if err := copyRows(ctx, tx, "account_statement",
		[]string{"account_id", "version", "position", "kind", "amount", "balance_after", "description", "recorded_at"},
		statement, func(l *line, dst []any) {
			dst[0], dst[1], dst[2], dst[3], dst[4], dst[5], dst[6], dst[7] = &l.account, &l.version, &l.position, &l.kind, &l.amount, &l.after, &l.description, &l.at
		}); err != nil {
		return fmt.Errorf("account statement: %w", err)
	}
	return nil
}
