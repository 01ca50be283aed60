package projections

import (
	"context"
	"fmt"
	"regexp"

	"github.com/jackc/pgx/v5"

	"cqrsgate/domain"
)

// Shipped returns the read models the gateway runs, in a new slice: a
// new read model is added here, and the gateway (server.go) and the
// GraphQL tests' gateway run it.
func Shipped() []Projection {
	return []Projection{Accounts{}, Orders{}, Products{}, Fulfilments{}}
}

// Projection is a read model built from events.
type Projection interface {
	// Name identifies the projection: lower case letters, digits and '_'.
	Name() string
	// Version changes whenever the tables or the folding logic change; a
	// new version is rebuilt from the start of the log.
	Version() int
	// EventTypes are the types the projection reads (none: all).
	EventTypes() []string
	// Tables are the tables Setup creates that queries may read; each is
	// exposed as readmodel.<table>.
	Tables() []string
	// Setup creates the projection's tables (unqualified names: the
	// transaction's search_path is the version's own schema).
	Setup(ctx context.Context, tx pgx.Tx) error
	// Apply folds events, in position order, into the tables within tx.
	// An error rolls back the whole batch.
	Apply(ctx context.Context, tx pgx.Tx, events []domain.RecordedEvent) error
}

var validName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,40}$`)

// SchemaName returns the schema holding the tables of the first generation
// of a projection version.
func SchemaName(name string, version int) string { return GenerationSchema(name, version, 1) }

// GenerationSchema returns the schema holding the tables of a generation
// of a projection version: rm_<name>_v<version>, with _g<generation> for
// generations made by rebuildProjection.
func GenerationSchema(name string, version, generation int) string {
	if generation <= 1 {
		return fmt.Sprintf("rm_%s_v%d", name, version)
	}
	return fmt.Sprintf("rm_%s_v%d_g%d", name, version, generation)
}

func checkProjection(p Projection) error {
	if !validName.MatchString(p.Name()) {
		return fmt.Errorf("projection name %q: use 1 to 41 lower case letters, digits and '_'", p.Name())
	}
	if p.Version() < 1 {
		return fmt.Errorf("projection %s: version %d is invalid: versions start at 1", p.Name(), p.Version())
	}
	for _, t := range p.Tables() {
		if !validName.MatchString(t) {
			return fmt.Errorf("projection %s: table name %q is invalid", p.Name(), t)
		}
	}
	return nil
}
