package pgtest_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"cqrsgate/internal/pgtest"
)

func TestMain(m *testing.M) {
	pgtest.Main(m, pgtest.Options{Migrate: pgtest.OnConn(func(ctx context.Context, conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, "CREATE TABLE migrated (v int)")
		return err
	})})
}

func TestDatabasesAreIsolatedClonesOfTheTemplate(t *testing.T) {
	ctx := context.Background()
	a, b := pgtest.NewPool(t), pgtest.NewPool(t)
	if _, err := a.Exec(ctx, "INSERT INTO migrated VALUES (1)"); err != nil {
		t.Fatalf("the template's migration is missing in a: %v", err)
	}
	var n int
	if err := b.QueryRow(ctx, "SELECT count(*) FROM migrated").Scan(&n); err != nil {
		t.Fatalf("the template's migration is missing in b: %v", err)
	}
	if n != 0 {
		t.Fatalf("b sees %d rows written to a", n)
	}
	var da, db string
	_ = a.QueryRow(ctx, "SELECT current_database()").Scan(&da)
	_ = b.QueryRow(ctx, "SELECT current_database()").Scan(&db)
	if da == db {
		t.Fatalf("both pools use database %s", da)
	}
}
