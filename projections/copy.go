package projections

import (
	"context"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// copyAbove is the number of rows above which copyRows uses COPY: below,
// COPY's set-up (and its second round trip) costs PostgreSQL more than one
// INSERT of the rows does. A projection keeping up with the log writes a
// few rows per batch; one catching up writes thousands.
const copyAbove = 64

// copyRows writes rows into table: with COPY when there are many, else with
// one INSERT. cols puts a pointer to each of a row's columns, in the order
// of columns, into dst: pgx encodes what they point to, so no value is
// boxed and COPY allocates nothing per row.
func copyRows[T any](ctx context.Context, tx pgx.Tx, table string, columns []string, rows []T, cols func(r *T, dst []any)) error {
	if len(rows) == 0 {
		return nil
	}
	if len(rows) <= copyAbove {
		return insertRows(ctx, tx, table, columns, rows, cols)
	}
	_, err := tx.CopyFrom(ctx, pgx.Identifier{table}, columns, &copySource[T]{rows: rows, cols: cols, buf: make([]any, len(columns))})
	return err
}

// insertRows is copyRows' INSERT ... VALUES, its parameters typed by the
// table's columns.
func insertRows[T any](ctx context.Context, tx pgx.Tx, table string, columns []string, rows []T, cols func(r *T, dst []any)) error {
	var sql strings.Builder
	sql.WriteString("INSERT INTO " + pgx.Identifier{table}.Sanitize() + " (")
	for i, c := range columns {
		if i > 0 {
			sql.WriteString(", ")
		}
		sql.WriteString(pgx.Identifier{c}.Sanitize())
	}
	sql.WriteString(") VALUES ")
	args := make([]any, len(rows)*len(columns))
	for r := range rows {
		if r > 0 {
			sql.WriteString(", ")
		}
		sql.WriteByte('(')
		for c := range columns {
			if c > 0 {
				sql.WriteString(", ")
			}
			sql.WriteString("$" + strconv.Itoa(r*len(columns)+c+1))
		}
		sql.WriteByte(')')
		cols(&rows[r], args[r*len(columns):(r+1)*len(columns)])
	}
	// One round trip, not prepared: each row count is another statement.
	_, err := tx.Exec(ctx, sql.String(), append([]any{pgx.QueryExecModeExec}, args...)...)
	return err
}

// copySource is the pgx.CopyFromSource of copyRows.
type copySource[T any] struct {
	rows []T
	cols func(r *T, dst []any)
	next int
	buf  []any
}

func (s *copySource[T]) Next() bool {
	s.next++
	return s.next <= len(s.rows)
}

func (s *copySource[T]) Values() ([]any, error) {
	s.cols(&s.rows[s.next-1], s.buf)
	return s.buf, nil
}

func (s *copySource[T]) Err() error { return nil }
