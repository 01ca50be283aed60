package eventstore

import (
	"context"
	"embed"
	"io/fs"

	"github.com/jackc/pgx/v5"

	"cqrsgate/internal/sqlmigrate"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// VersionTable is the table in which the event store records which of its
// migrations have been applied.
const VersionTable = "eventstore_schema_version"

func migrations() fs.FS { return sqlmigrate.Dir(migrationFiles, "migrations") }

// Migrate brings the event store's tables up to date by applying its
// embedded, versioned SQL migrations (jackc/tern) on conn. It is safe to run
// from several processes at once. It returns an error naming the migration
// that failed.
func Migrate(ctx context.Context, conn *pgx.Conn) error {
	return sqlmigrate.Run(ctx, conn, migrations(), VersionTable)
}

// MigrationsApplied reports whether every migration of the event store has
// been applied, without writing anything; readiness checks use it.
func MigrationsApplied(ctx context.Context, q sqlmigrate.Querier) (bool, error) {
	return sqlmigrate.Applied(ctx, q, migrations(), VersionTable)
}
