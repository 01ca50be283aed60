package projections

import (
	"context"
	"embed"
	"io/fs"

	"github.com/jackc/pgx/v5"

	"cqrsgate/internal/sqlmigrate"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// VersionTable records which of the projections package's migrations ran.
const VersionTable = "projections_schema_version"

func migrations() fs.FS { return sqlmigrate.Dir(migrationFiles, "migrations") }

// Migrate creates or updates the projections' bookkeeping tables (not the
// read models: each projection creates those for its version when it
// starts). Safe to run from several processes at once.
func Migrate(ctx context.Context, conn *pgx.Conn) error {
	return sqlmigrate.Run(ctx, conn, migrations(), VersionTable)
}

// MigrationsApplied reports whether every migration has been applied.
func MigrationsApplied(ctx context.Context, q sqlmigrate.Querier) (bool, error) {
	return sqlmigrate.Applied(ctx, q, migrations(), VersionTable)
}
