package projections

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// copyRows writes rows into table with COPY. cols puts a pointer to each
// of a row's columns, in the order of columns, into dst: pgx encodes what
// they point to, so no value is boxed and COPY allocates nothing per row.
func copyRows[T any](ctx context.Context, tx pgx.Tx, table string, columns []string, rows []T, cols func(r *T, dst []any)) error {
	if len(rows) == 0 {
		return nil
	}
	_, err := tx.CopyFrom(ctx, pgx.Identifier{table}, columns, &copySource[T]{rows: rows, cols: cols, buf: make([]any, len(columns))})
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
