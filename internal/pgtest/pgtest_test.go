package pgtest_test

import (
	"context"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"cqrsgate/internal/pgtest"
)

func TestMain(m *testing.M) {
	pgtest.Main(m, pgtest.Options{Migrate: pgtest.OnConn(func(ctx context.Context, conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, "CREATE TABLE migrated (v int); INSERT INTO migrated VALUES (42)")
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
	if n != 1 {
		t.Fatalf("b has %d rows, want the template's one row (none written to a)", n)
	}
	var da, db string
	_ = a.QueryRow(ctx, "SELECT current_database()").Scan(&da)
	_ = b.QueryRow(ctx, "SELECT current_database()").Scan(&db)
	if da == db {
		t.Fatalf("both pools use database %s", da)
	}
}

func TestParallelClonesAreDroppedWhenTheirTestsEnd(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	var names []string
	t.Run("group", func(t *testing.T) {
		for i := range 8 {
			t.Run("", func(t *testing.T) {
				t.Parallel()
				conn, err := pgx.Connect(ctx, pgtest.NewDatabase(t))
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close(ctx)
				var v int
				var name string
				if err := conn.QueryRow(ctx, "SELECT v, current_database() FROM migrated").Scan(&v, &name); err != nil || v != 42 {
					t.Fatalf("clone %d: %d, %v", i, v, err)
				}
				mu.Lock()
				names = append(names, name)
				mu.Unlock()
			})
		}
	})
	if len(names) != 8 {
		t.Fatalf("%d clones, want 8", len(names))
	}
	conn, err := pgx.Connect(ctx, pgtest.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var left int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = ANY($1)", names).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Fatalf("%d of the clones %v remain after their tests ended", left, names)
	}
}
