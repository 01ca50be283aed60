package projections

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"cqrsgate/domain"
)

// Read models key their rows by the tenant-qualified aggregate id
// (domain.Qualify: "<tenant>~<id>", or "<id>" for the default tenant). A
// generated tenant column, computed by tenantOf, serves tenant-scoped list
// queries, and every query takes the caller's tenant: single-row queries
// look the qualified id up, list queries filter on the column, and ids come
// back unqualified, so a tenant sees only its own rows, in its own terms.

// tenantOf returns the SQL expression for the tenant of the qualified id in
// column col (domain.TenantOf).
func tenantOf(col string) string {
	return `CASE WHEN strpos(` + col + `, '` + domain.TenantSeparator + `') > 0 THEN split_part(` + col + `, '` + domain.TenantSeparator + `', 1) ELSE '' END`
}

// plainID returns the id without its tenant.
func plainID(qualified string) string {
	_, id := domain.SplitTenant(qualified)
	return id
}

// rowByID reads the row of tenant's id from query (which takes the
// qualified id as $1). Errors: Invalid for an id holding the separator
// (naming field), NotFound (made by notFound) when there is no row, Unavailable
// while the read model is not built.
func rowByID[T any](ctx context.Context, pool *pgxpool.Pool, what, field, tenant, id, query string, scan pgx.RowToFunc[T], notFound func() error) (T, error) {
	var zero T
	qid, err := domain.QualifyClientName(tenant, field, id)
	if err != nil {
		return zero, err
	}
	rows, err := pool.Query(ctx, query, qid)
	if err != nil {
		return zero, readError(what, err)
	}
	row, err := pgx.CollectExactlyOneRow(rows, scan)
	if errors.Is(err, pgx.ErrNoRows) {
		return zero, notFound()
	}
	if err != nil {
		return zero, readError(what, err)
	}
	return row, nil
}

// ownEvents returns the events of a batch that belong to an instance of
// kind k and, at the same index, the qualified id of that instance. An
// event of one of k's types on a stream that is not one of k's ("ledger-1",
// "acme~ledger-1"; one with no id, "account-") is not an event of any
// instance of k: the read models of k skip it, rather than fail on it or
// file it under an empty id. events is not modified; it is returned as it
// is when every event belongs to k.
func ownEvents[A domain.Aggregate](k *domain.Kind[A], events []domain.RecordedEvent) ([]domain.RecordedEvent, []string) {
	ids := make([]string, 0, len(events))
	var kept []domain.RecordedEvent // nil while nothing is skipped
	for i, re := range events {
		id, ok := k.IDOf(re.StreamID)
		if ok && plainID(id) == "" {
			ok = false
		}
		switch {
		case ok && kept == nil:
			ids = append(ids, id)
		case ok:
			kept, ids = append(kept, re), append(ids, id)
		case kept == nil:
			kept = append(make([]domain.RecordedEvent, 0, len(events)-1), events[:i]...)
		}
	}
	if kept == nil {
		return events, ids
	}
	return kept, ids
}
