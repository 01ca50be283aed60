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
