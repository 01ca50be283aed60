package projections

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"cqrsgate/domain"
)

// AccountSummary is a row of the account summary read model.
type AccountSummary struct {
	ID, Owner, Currency, Status         string
	Balance, OverdraftLimit, DailyLimit int64
	OpenedAt, LastActivityAt            time.Time
	Version, Position                   int64
}

// StatementLine is a row of an account statement.
type StatementLine struct {
	Version, Position    int64
	Kind                 string // DEPOSIT, WITHDRAWAL, INTEREST or FEE
	Amount, BalanceAfter int64  // Amount is negative for debits
	Description          string
	RecordedAt           time.Time
}

// BankTotal is the number of open accounts and their total balance in one currency.
type BankTotal struct {
	Currency string
	Accounts int64
	// TotalBalance is the sum of the balances as a decimal integer, exact
	// at any size (a sum of Longs need not be one: see Long).
	TotalBalance string
}

// AccountFilter narrows ListAccounts; empty fields match everything.
type AccountFilter struct {
	Owner, Status, Currency string
}

// Page limits for list queries.
const (
	DefaultPageSize = 20
	MaxPageSize     = 500
)

const summaryColumns = `id, owner, currency, status, balance, overdraft_limit, daily_withdrawal_limit, opened_at, last_activity_at, version, position`

func scanSummary(r pgx.CollectableRow) (AccountSummary, error) {
	var a AccountSummary
	err := r.Scan(&a.ID, &a.Owner, &a.Currency, &a.Status, &a.Balance, &a.OverdraftLimit, &a.DailyLimit, &a.OpenedAt, &a.LastActivityAt, &a.Version, &a.Position)
	a.ID = plainID(a.ID)
	return a, err
}

// AccountQueries reads the accounts read model.
type AccountQueries struct{ pool *pgxpool.Pool }

// NewAccountQueries returns the account queries on pool.
func NewAccountQueries(pool *pgxpool.Pool) *AccountQueries { return &AccountQueries{pool: pool} }

// Account returns tenant's account id, or a NotFound *domain.Error.
func (q *AccountQueries) Account(ctx context.Context, tenant, id string) (AccountSummary, error) {
	return rowByID(ctx, q.pool, "account", "id", tenant, id, `SELECT `+summaryColumns+` FROM readmodel.account_summary WHERE id = $1`, scanSummary,
		func() error { return domain.Errorf(domain.NotFound, "account %s not found", id) })
}

// Accounts returns up to first of tenant's accounts matching f, ordered by
// id, after the cursor after (""), the cursor of the last one when more
// follow, and the total number matching. Errors: Invalid for a bad cursor
// or size.
func (q *AccountQueries) Accounts(ctx context.Context, tenant string, f AccountFilter, first int, after string) ([]AccountSummary, string, int, error) {
	first, err := pageSize(first)
	if err != nil {
		return nil, "", 0, err
	}
	afterID, err := decodeCursor("account", after)
	if err != nil {
		return nil, "", 0, err
	}
	for _, v := range []struct{ field, value string }{{"filter.owner", f.Owner}, {"filter.status", f.Status}, {"filter.currency", f.Currency}} {
		if err := domain.CheckStorable(v.field, v.value); err != nil {
			return nil, "", 0, err
		}
	}
	where := `tenant = $4 AND ($1 = '' OR owner = $1) AND ($2 = '' OR status = $2) AND ($3 = '' OR currency = $3)`
	// Within one tenant, qualified ids sort as the plain ids do.
	return countedPage(ctx, q.pool, "accounts", first,
		`SELECT count(*) FROM readmodel.account_summary WHERE `+where, []any{f.Owner, f.Status, f.Currency, tenant},
		`SELECT `+summaryColumns+` FROM readmodel.account_summary WHERE `+where+` AND id > $5 ORDER BY id LIMIT $6`,
		[]any{f.Owner, f.Status, f.Currency, tenant, domain.Qualify(tenant, afterID), first + 1},
		scanSummary, AccountCursor)
}

// Statement returns up to first lines of an account's statement in version
// order after the cursor after, the next cursor when more follow, and the
// number of lines. Errors: NotFound for an account tenant does not have,
// Invalid for a bad cursor or size.
func (q *AccountQueries) Statement(ctx context.Context, tenant, id string, first int, after string) ([]StatementLine, string, int, error) {
	first, err := pageSize(first)
	if err != nil {
		return nil, "", 0, err
	}
	afterVersion := int64(0)
	if after != "" {
		s, err := decodeCursor("statement", after)
		if err == nil {
			afterVersion, err = strconv.ParseInt(s, 10, 64)
		}
		if err != nil || afterVersion < 0 {
			return nil, "", 0, domain.InvalidField("after", "invalid cursor")
		}
	}
	if _, err := q.Account(ctx, tenant, id); err != nil {
		return nil, "", 0, err
	}
	id = domain.Qualify(tenant, id)
	return countedPage(ctx, q.pool, "statement", first,
		`SELECT count(*) FROM readmodel.account_statement WHERE account_id = $1`, []any{id},
		`SELECT version, position, kind, amount, balance_after, description, recorded_at FROM readmodel.account_statement
		WHERE account_id = $1 AND version > $2 ORDER BY version LIMIT $3`, []any{id, afterVersion, first + 1},
		pgx.RowToStructByPos[StatementLine], StatementCursor)
}

// BankTotals returns tenant's totals per currency, by currency.
func (q *AccountQueries) BankTotals(ctx context.Context, tenant string) ([]BankTotal, error) {
	rows, err := q.pool.Query(ctx, `SELECT currency, accounts, total_balance::text FROM readmodel.bank_totals WHERE tenant = $1 ORDER BY currency`, tenant)
	if err != nil {
		return nil, readError("bank totals", err)
	}
	totals, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (BankTotal, error) {
		var t BankTotal
		err := row.Scan(&t.Currency, &t.Accounts, &t.TotalBalance)
		return t, err
	})
	if err != nil {
		return nil, readError("bank totals", err)
	}
	return totals, nil
}

func pageSize(first int) (int, error) {
	switch {
	case first == 0:
		return DefaultPageSize, nil
	case first < 0 || first > MaxPageSize:
		return 0, domain.InvalidField("first", "first must be 1 to %d, got %d", MaxPageSize, first)
	}
	return first, nil
}

// Cursors are opaque to clients: base64 of the list's name and the sort
// key, "account:acc-1". The name makes a cursor of one list (or one order)
// invalid in another, where its key would be taken for a key of that list
// and give a wrong page.
func encodeCursor(list, key string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(list + ":" + key))
}

// decodeCursor returns the key of a cursor of list ("" for none), or an
// Invalid error on after.
func decodeCursor(list, c string) (string, error) {
	if c == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	// Every cursor encodes text the read models hold: valid UTF-8 without
	// NUL, which PostgreSQL's text cannot take either.
	if err != nil || !utf8.Valid(b) || bytes.IndexByte(b, 0) >= 0 {
		return "", domain.InvalidField("after", "invalid cursor")
	}
	key, ok := strings.CutPrefix(string(b), list+":")
	if !ok {
		return "", domain.InvalidField("after", "invalid cursor: not one of this list (%s)", list)
	}
	return key, nil
}

// readError wraps a failed read; a read model that does not exist yet (its
// projection has not started) is reported as Unavailable.
// countedPage reads, in one round trip, how many rows match (countSQL)
// and a keyset page of up to first+1 rows (pageSQL, which asks for
// first+1): it returns at most first rows, the cursor past the last when
// more follow, and the count. what names the read model in errors.
func countedPage[T any](ctx context.Context, pool *pgxpool.Pool, what string, first int,
	countSQL string, countArgs []any, pageSQL string, pageArgs []any,
	scan pgx.RowToFunc[T], cursor func(T) string) ([]T, string, int, error) {
	b := &pgx.Batch{}
	b.Queue(countSQL, countArgs...)
	b.Queue(pageSQL, pageArgs...)
	br := pool.SendBatch(ctx, b)
	defer br.Close()
	var total int
	if err := br.QueryRow().Scan(&total); err != nil {
		return nil, "", 0, readError(what, err)
	}
	rows, err := br.Query()
	if err != nil {
		return nil, "", 0, readError(what, err)
	}
	list, err := pgx.CollectRows(rows, scan)
	if err != nil {
		return nil, "", 0, readError(what, err)
	}
	next := ""
	if len(list) > first {
		list = list[:first]
		next = cursor(list[first-1])
	}
	return list, next, total, nil
}

func readError(what string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if isUndefinedTable(err) {
		return &domain.Error{Code: domain.Unavailable, Message: "the " + what + " read model is not built yet; retry shortly", Err: err}
	}
	return fmt.Errorf("read %s: %w", what, err)
}

// AccountCursor returns the cursor that pages past a.
func AccountCursor(a AccountSummary) string { return encodeCursor("account", a.ID) }

// StatementCursor returns the cursor that pages past l.
func StatementCursor(l StatementLine) string { return encodeCursor("statement", fmt.Sprint(l.Version)) }
