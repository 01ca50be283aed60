package projections

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"cqrsgate/domain"
	"cqrsgate/eventstore"
)

// Status describes one projection version.
type Status struct {
	Name    string
	Version int
	// Generation counts rebuilds of the version (1 for the first build).
	Generation int
	Position   int64 // the checkpoint: last position applied
	// Status is RUNNING, FAILED or RETIRED.
	Status  string
	Serving bool // queries read this version
	// Failures counts consecutive failed attempts; LastError, FailedPosition
	// and FailedEventID describe the latest.
	Failures       int
	LastError      string
	FailedPosition int64
	FailedEventID  string
	UpdatedAt      time.Time
}

// Admin inspects and repairs projections: what the GraphQL admin fields use.
type Admin struct{ pool *pgxpool.Pool }

// NewAdmin returns the projection administration on pool.
func NewAdmin(pool *pgxpool.Pool) *Admin { return &Admin{pool: pool} }

// Rebuild is Rebuild on the Admin's pool.
func (a *Admin) Rebuild(ctx context.Context, name string) error { return Rebuild(ctx, a.pool, name) }

// List is List on the Admin's pool.
func (a *Admin) List(ctx context.Context) ([]Status, error) { return List(ctx, a.pool) }

// Retry is Retry on the Admin's pool.
func (a *Admin) Retry(ctx context.Context, name string) error { return Retry(ctx, a.pool, name) }

// Skip is Skip on the Admin's pool.
func (a *Admin) Skip(ctx context.Context, name string, position int64) error {
	return Skip(ctx, a.pool, name, position)
}

// List returns every projection version that is not retired, by name and
// version.
func List(ctx context.Context, pool *pgxpool.Pool) ([]Status, error) {
	rows, err := pool.Query(ctx, `SELECT name, version, generation, position, status, serving, failures, coalesce(last_error, ''),
			coalesce(failed_position, 0), coalesce(failed_event_id::text, ''), updated_at
		FROM projections WHERE status <> 'RETIRED' ORDER BY name, version, generation`)
	if err != nil {
		return nil, fmt.Errorf("list projections: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Status, error) {
		var s Status
		err := r.Scan(&s.Name, &s.Version, &s.Generation, &s.Position, &s.Status, &s.Serving, &s.Failures, &s.LastError, &s.FailedPosition, &s.FailedEventID, &s.UpdatedAt)
		return s, err
	})
}

// Rebuild starts rebuilding the serving version of a projection from the
// start of the log, as a new generation beside the serving one; queries
// switch to it once it has caught up and the old tables are dropped. The
// process running the projection picks the request up within its poll
// interval. Rebuilds of a projection asked for at the same time are
// serialised: exactly one starts, and the others find it under way.
// Errors: NotFound for an unknown name (one no projection can have is
// refused before the database sees it), RuleViolation (Rule
// REBUILD_IN_PROGRESS) when a rebuild of it is already under way.
func Rebuild(ctx context.Context, pool *pgxpool.Pool, name string) error {
	if err := checkAdminName(name); err != nil {
		return err
	}
	var added, serving bool
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		// The lock is held to the end of the transaction, so a rebuild
		// waiting for it sees the generation the one before it added (each
		// statement reads what committed before it started), not the same
		// max(generation)+1.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, rebuildLockClass, name); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `INSERT INTO projections (name, version, generation)
		SELECT s.name, s.version, (SELECT max(generation) + 1 FROM projections g WHERE g.name = s.name AND g.version = s.version)
		  FROM projections s
		 WHERE s.name = $1 AND s.serving
		   AND NOT EXISTS (SELECT 1 FROM projections b WHERE b.name = s.name AND NOT b.serving AND b.status <> 'RETIRED' AND b.version = s.version)`, name)
		if err != nil {
			return err
		}
		if added = tag.RowsAffected() == 1; added {
			return nil
		}
		return tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM projections WHERE name = $1 AND serving)`, name).Scan(&serving)
	})
	switch {
	case err != nil:
		return fmt.Errorf("rebuild projection %s: %w", name, err)
	case added:
		wake(ctx, pool)
		return nil
	case !serving:
		return domain.Errorf(domain.NotFound, "no serving projection named %q", name)
	}
	e := domain.Errorf(domain.RuleViolation, "projection %s is already being rebuilt", name)
	e.Rule = "REBUILD_IN_PROGRESS"
	return e
}

// rebuildLockClass is the class (the first key, in the two-int4 key space
// of advisory locks, apart from the runners' bigint ones) of the lock that
// serialises the rebuilds of a projection; the second key is the hash of
// its name.
const rebuildLockClass int32 = 0x63716772 // "cqgr"

// checkAdminName refuses, as unknown, a name no projection can have (see
// checkProjection), before it reaches the database: one holding a NUL or
// bytes that are not UTF-8 would fail there as an internal error.
func checkAdminName(name string) error {
	if !validName.MatchString(name) {
		return domain.Errorf(domain.NotFound, "no projection named %q", name)
	}
	return nil
}

// Retry puts a FAILED projection back to work from where it stopped.
// Errors: NotFound for an unknown name, RuleViolation when it is not failed.
func Retry(ctx context.Context, pool *pgxpool.Pool, name string) error {
	if err := checkAdminName(name); err != nil {
		return err
	}
	tag, err := pool.Exec(ctx, `UPDATE projections SET status = 'RUNNING', failures = 0, updated_at = clock_timestamp()
		WHERE name = $1 AND status = 'FAILED'`, name)
	if err != nil {
		return fmt.Errorf("retry projection %s: %w", name, err)
	}
	if tag.RowsAffected() == 0 {
		return notFailed(ctx, pool, name)
	}
	wake(ctx, pool)
	return nil
}

// Skip moves a FAILED projection past the event at position (the one it
// failed on) and puts it back to work. Errors: NotFound for an unknown
// name, RuleViolation when it is not failed at that position.
func Skip(ctx context.Context, pool *pgxpool.Pool, name string, position int64) error {
	if err := checkAdminName(name); err != nil {
		return err
	}
	tag, err := pool.Exec(ctx, `UPDATE projections SET status = 'RUNNING', failures = 0, position = failed_position, updated_at = clock_timestamp()
		WHERE name = $1 AND status = 'FAILED' AND failed_position = $2`, name, position)
	if err != nil {
		return fmt.Errorf("skip event of projection %s: %w", name, err)
	}
	if tag.RowsAffected() == 0 {
		var failedAt int64
		err := pool.QueryRow(ctx, `SELECT coalesce(failed_position, 0) FROM projections WHERE name = $1 AND status = 'FAILED'`, name).Scan(&failedAt)
		if err == nil {
			e := domain.Errorf(domain.RuleViolation, "projection %s failed at position %d, not %d", name, failedAt, position)
			e.Rule = "WRONG_POSITION"
			return e
		}
		return notFailed(ctx, pool, name)
	}
	wake(ctx, pool)
	return nil
}

// wake nudges the runners of every process (through the event store's
// commit notification, which they wait on) so that an admin request is
// picked up at once rather than at the next poll. It is only a hint: a lost
// notification costs one poll interval.
func wake(ctx context.Context, pool *pgxpool.Pool) {
	_, _ = pool.Exec(ctx, "SELECT pg_notify($1, '0')", eventstore.NotifyChannel)
}

func notFailed(ctx context.Context, pool *pgxpool.Pool, name string) error {
	var exists bool
	if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM projections WHERE name = $1)`, name).Scan(&exists); err != nil {
		return err
	}
	if !exists {
		return domain.Errorf(domain.NotFound, "no projection named %q", name)
	}
	e := domain.Errorf(domain.RuleViolation, "projection %s has not failed", name)
	e.Rule = "NOT_FAILED"
	return e
}

// Report is a projection version's status with how far behind the log it is.
type Report struct {
	Status
	// Lag counts log positions after the checkpoint (including events the
	// projection does not read).
	Lag int64
	// LagSeconds is the age of the oldest event not yet applied (0 when
	// caught up).
	LagSeconds float64
}

// Reports lists every projection version that is not retired with its lag
// behind the log of store.
func (a *Admin) Reports(ctx context.Context, store eventstore.Store) ([]Report, error) {
	list, err := a.List(ctx)
	if err != nil {
		return nil, err
	}
	page, err := store.ReadAll(ctx, eventstore.AllQuery{Limit: 1})
	if err != nil {
		return nil, err
	}
	out := make([]Report, len(list))
	for i, s := range list {
		out[i] = Report{Status: s, Lag: max(page.Head-s.Position, 0)}
		if s.Position < page.Head {
			next, err := store.ReadAll(ctx, eventstore.AllQuery{After: s.Position, Limit: 1})
			if err != nil {
				return nil, err
			}
			if len(next.Events) > 0 {
				out[i].LagSeconds = max(time.Since(next.Events[0].RecordedAt).Seconds(), 0)
			}
		}
	}
	return out, nil
}
