// Package sqlmigrate applies a package's embedded, versioned SQL migrations
// with jackc/tern and checks whether they have been applied. Each package
// that owns tables (eventstore, projections, schemaregistry) keeps its own
// migrations and its own version table.
package sqlmigrate

import (
	"context"
	"fmt"
	"io/fs"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/tern/v2/migrate"
)

// Run applies the migrations found in migrations (files named like
// 001_name.sql, tern's format) that are newer than what versionTable
// records. Concurrent runs from several processes are serialised by tern's
// advisory lock. The error names the failing migration.
func Run(ctx context.Context, conn *pgx.Conn, migrations fs.FS, versionTable string) error {
	m, err := migrate.NewMigrator(ctx, conn, versionTable)
	if err != nil {
		return fmt.Errorf("migrate %s: %w", versionTable, err)
	}
	if err := m.LoadMigrations(migrations); err != nil {
		return fmt.Errorf("migrate %s: load: %w", versionTable, err)
	}
	if err := m.Migrate(ctx); err != nil {
		return fmt.Errorf("migrate %s: %w", versionTable, err)
	}
	return nil
}

// Querier is the part of pgx.Conn and pgxpool.Pool that Applied needs.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Applied reports whether every migration in migrations has been applied,
// reading versionTable without writing anything (readiness checks call it).
func Applied(ctx context.Context, q Querier, migrations fs.FS, versionTable string) (bool, error) {
	files, err := migrate.FindMigrations(migrations)
	if err != nil {
		return false, fmt.Errorf("migrations %s: %w", versionTable, err)
	}
	var exists bool
	if err := q.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", versionTable).Scan(&exists); err != nil {
		return false, fmt.Errorf("migrations %s: %w", versionTable, err)
	}
	if !exists {
		return false, nil
	}
	var v int32
	if err := q.QueryRow(ctx, "SELECT version FROM "+pgx.Identifier{versionTable}.Sanitize()).Scan(&v); err != nil {
		return false, fmt.Errorf("migrations %s: %w", versionTable, err)
	}
	return int(v) >= len(files), nil
}

// Dir returns the directory dir of an embedded file system, where a
// package keeps its migrations. It panics when dir is not there: the
// embedded files are fixed at build time.
func Dir(embedded fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(embedded, dir)
	if err != nil {
		panic(err)
	}
	return sub
}
