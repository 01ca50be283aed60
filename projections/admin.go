package projections

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
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
func (a *Admin) Rebuild(ctx context.Context, name string) (Status, error) {
	return Rebuild(ctx, a.pool, name)
}

// CancelRebuild is CancelRebuild on the Admin's pool.
func (a *Admin) CancelRebuild(ctx context.Context, name string) ([]Status, error) {
	return CancelRebuild(ctx, a.pool, name)
}

// List is List on the Admin's pool.
func (a *Admin) List(ctx context.Context) ([]Status, error) { return List(ctx, a.pool) }

// Retry is Retry on the Admin's pool.
func (a *Admin) Retry(ctx context.Context, name string) ([]Status, error) {
	return Retry(ctx, a.pool, name)
}

// Skip is Skip on the Admin's pool.
func (a *Admin) Skip(ctx context.Context, name string, position int64) ([]Status, error) {
	return Skip(ctx, a.pool, name, position)
}

// statusColumns are the columns of a projections row that scanStatus reads.
const statusColumns = `name, version, generation, position, status, serving, failures, coalesce(last_error, ''),
	coalesce(failed_position, 0), coalesce(failed_event_id::text, ''), updated_at`

func scanStatus(r pgx.CollectableRow) (Status, error) {
	var s Status
	err := r.Scan(&s.Name, &s.Version, &s.Generation, &s.Position, &s.Status, &s.Serving, &s.Failures, &s.LastError, &s.FailedPosition, &s.FailedEventID, &s.UpdatedAt)
	return s, err
}

// List returns every projection version that is not retired, by name and
// version.
func List(ctx context.Context, pool *pgxpool.Pool) ([]Status, error) {
	rows, err := pool.Query(ctx, `SELECT `+statusColumns+` FROM projections WHERE status <> 'RETIRED' ORDER BY name, version, generation`)
	if err != nil {
		return nil, fmt.Errorf("list projections: %w", err)
	}
	return pgx.CollectRows(rows, scanStatus)
}

// Rebuild starts rebuilding the serving version of a projection from the
// start of the log, as a new generation beside the serving one; queries
// switch to it once it has caught up and the old tables are dropped. The
// process running the projection picks the request up within its poll
// interval. It returns the generation added.
//
// One rebuild of a projection is built at a time. A rebuild that FAILED
// (on an event it cannot fold) is replaced: its generation is retired and
// its tables dropped, as CancelRebuild does, and the new one starts from
// the start of the log (Retry and Skip, instead, take the failed one on
// from where it stopped). A RUNNING one is left to
// finish (CancelRebuild abandons it). Rebuilds of a projection asked for
// at the same time are serialised: exactly one starts, and the others find
// it under way.
//
// Errors: NotFound for an unknown name (one no projection can have is
// refused before the database sees it), RuleViolation (Rule
// REBUILD_IN_PROGRESS) when a rebuild of it is RUNNING.
func Rebuild(ctx context.Context, pool *pgxpool.Pool, name string) (Status, error) {
	if err := checkAdminName(name); err != nil {
		return Status{}, err
	}
	var added Status
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		// The lock is held to the end of the transaction, so a rebuild
		// waiting for it sees the generation the one before it added (each
		// statement reads what committed before it started), not the same
		// max(generation)+1.
		version, generation, err := lockServing(ctx, tx, name)
		if err != nil {
			return err
		}
		// The rows of a rebuild are locked before its tables are dropped:
		// no batch is being applied to a FAILED generation (the runner
		// skips it), and one being applied to a RUNNING generation is not
		// waited for (nothing is dropped then).
		rows, err := tx.Query(ctx, `SELECT `+statusColumns+` FROM projections
			WHERE name = $1 AND version = $2 AND generation > $3 AND status <> 'RETIRED' ORDER BY generation FOR UPDATE`, name, version, generation)
		if err != nil {
			return err
		}
		building, err := pgx.CollectRows(rows, scanStatus)
		if err != nil {
			return err
		}
		for _, b := range building {
			if b.Status != "FAILED" {
				e := domain.Errorf(domain.RuleViolation, "projection %s is already being rebuilt", name)
				e.Rule = "REBUILD_IN_PROGRESS"
				return e
			}
		}
		for _, b := range building {
			if err := retireGeneration(ctx, tx, name, version, b.Generation); err != nil {
				return err
			}
		}
		rows, err = tx.Query(ctx, `INSERT INTO projections (name, version, generation)
			SELECT $1, $2, max(generation) + 1 FROM projections WHERE name = $1 AND version = $2
			RETURNING `+statusColumns, name, version)
		if err != nil {
			return err
		}
		added, err = pgx.CollectExactlyOneRow(rows, scanStatus)
		return err
	})
	if err != nil {
		return Status{}, adminError("rebuild projection "+name, err)
	}
	wake(ctx, pool)
	return added, nil
}

// CancelRebuild abandons the rebuild of projection name under way, RUNNING
// or FAILED: its generation is retired and its tables dropped, as the
// runner drops a generation once queries read a newer one, and the serving
// generation goes on as before. It returns the generations cancelled, as
// they stood (one: a projection has one rebuild at a time).
//
// It is safe while a runner, in this process or another, is applying a
// batch to the rebuild: the drop waits for that batch's transaction to end,
// and the runner then finds the generation gone, forgets it and goes on
// with the serving one. A cancel and the rebuild's switch-over to serving
// take the same lock, one after the other: a cancel after the switch finds
// no rebuild under way (the new generation serves, the old one is
// dropped), and a switch after the cancel does not happen. A newer
// version that a rolling deploy builds is not a rebuild: its process
// would only build it again.
//
// Errors: NotFound for an unknown name (or one that no generation serves),
// RuleViolation (Rule NO_REBUILD_IN_PROGRESS) when no rebuild of it is
// under way.
func CancelRebuild(ctx context.Context, pool *pgxpool.Pool, name string) ([]Status, error) {
	if err := checkAdminName(name); err != nil {
		return nil, err
	}
	var cancelled []Status
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		version, generation, err := lockServing(ctx, tx, name)
		if err != nil {
			return err
		}
		// Not locked: a batch being applied holds the tables and moves the
		// row last, so the row is marked after the drop (retireGeneration).
		rows, err := tx.Query(ctx, `SELECT `+statusColumns+` FROM projections
			WHERE name = $1 AND version = $2 AND generation > $3 AND status <> 'RETIRED' ORDER BY generation`, name, version, generation)
		if err != nil {
			return err
		}
		if cancelled, err = pgx.CollectRows(rows, scanStatus); err != nil {
			return err
		}
		if len(cancelled) == 0 {
			e := domain.Errorf(domain.RuleViolation, "projection %s is not being rebuilt", name)
			e.Rule = "NO_REBUILD_IN_PROGRESS"
			return e
		}
		for _, c := range cancelled {
			if err := retireGeneration(ctx, tx, name, version, c.Generation); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, adminError("cancel rebuild of projection "+name, err)
	}
	wake(ctx, pool) // the runner forgets the generation at once
	return cancelled, nil
}

// lockServing takes, in tx, the lock on what generations of projection
// name exist and serve (lockGenerations) and returns the version and
// generation that serve. Errors: NotFound when none does.
func lockServing(ctx context.Context, tx pgx.Tx, name string) (version, generation int, err error) {
	if err := lockGenerations(ctx, tx, name); err != nil {
		return 0, 0, err
	}
	err = tx.QueryRow(ctx, `SELECT version, generation FROM projections WHERE name = $1 AND serving`, name).Scan(&version, &generation)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, 0, domain.Errorf(domain.NotFound, "no serving projection named %q", name)
	}
	return version, generation, err
}

// lockGenerations takes, in tx (to its end), the lock that serialises what
// changes the generations of projection name: Rebuild, CancelRebuild, a
// runner setting a generation up and a switch-over to serving.
func lockGenerations(ctx context.Context, tx pgx.Tx, name string) error {
	_, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, rebuildLockClass, name)
	return err
}

// adminError returns err as it is when it is a domain error (the caller's
// to see), else wrapped with what failed.
func adminError(what string, err error) error {
	var de *domain.Error
	if errors.As(err, &de) {
		return err
	}
	return fmt.Errorf("%s: %w", what, err)
}

// rebuildLockClass is the class (the first key, in the two-int4 key space
// of advisory locks, apart from the runners' bigint ones) of the lock that
// serialises the changes to a projection's generations (see
// lockGenerations); the second key is the hash of its name.
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

// Retry puts every FAILED generation of projection name (whatever its
// version: the serving one, a rebuild, a version another release runs)
// back to work from where it stopped, and returns them, by version and
// generation. Errors: NotFound for an unknown name, RuleViolation (Rule
// NOT_FAILED) when none has failed.
func Retry(ctx context.Context, pool *pgxpool.Pool, name string) ([]Status, error) {
	if err := checkAdminName(name); err != nil {
		return nil, err
	}
	rows, err := pool.Query(ctx, `UPDATE projections SET status = 'RUNNING', failures = 0, updated_at = clock_timestamp()
		WHERE name = $1 AND status = 'FAILED' RETURNING `+statusColumns, name)
	if err != nil {
		return nil, fmt.Errorf("retry projection %s: %w", name, err)
	}
	retried, err := pgx.CollectRows(rows, scanStatus)
	if err != nil {
		return nil, fmt.Errorf("retry projection %s: %w", name, err)
	}
	if len(retried) == 0 {
		return nil, notFailed(ctx, pool, name)
	}
	wake(ctx, pool)
	return byGeneration(retried), nil
}

// Skip moves every FAILED generation of projection name that failed on the
// event at position past it and puts it back to work (a rebuild that
// fails on the event the serving generation failed on is moved past it as
// well), and returns them, by version and generation. Errors: NotFound for
// an unknown name, RuleViolation when none has failed (Rule NOT_FAILED) or
// none failed at that position (Rule WRONG_POSITION).
func Skip(ctx context.Context, pool *pgxpool.Pool, name string, position int64) ([]Status, error) {
	if err := checkAdminName(name); err != nil {
		return nil, err
	}
	rows, err := pool.Query(ctx, `UPDATE projections SET status = 'RUNNING', failures = 0, position = failed_position, updated_at = clock_timestamp()
		WHERE name = $1 AND status = 'FAILED' AND failed_position = $2 RETURNING `+statusColumns, name, position)
	if err != nil {
		return nil, fmt.Errorf("skip event of projection %s: %w", name, err)
	}
	skipped, err := pgx.CollectRows(rows, scanStatus)
	if err != nil {
		return nil, fmt.Errorf("skip event of projection %s: %w", name, err)
	}
	if len(skipped) == 0 {
		var failedAt []int64 // where its failed generations stopped
		err := pool.QueryRow(ctx, `SELECT array_agg(DISTINCT coalesce(failed_position, 0) ORDER BY coalesce(failed_position, 0)) FROM projections WHERE name = $1 AND status = 'FAILED'`, name).Scan(&failedAt)
		if err != nil {
			return nil, fmt.Errorf("skip event of projection %s: %w", name, err)
		}
		if len(failedAt) == 0 {
			return nil, notFailed(ctx, pool, name)
		}
		at := strings.Trim(fmt.Sprint(failedAt), "[]")
		if len(failedAt) > 1 {
			at = "positions " + strings.ReplaceAll(at, " ", ", ")
		} else {
			at = "position " + at
		}
		e := domain.Errorf(domain.RuleViolation, "projection %s failed at %s, not %d", name, at, position)
		e.Rule = "WRONG_POSITION"
		return nil, e
	}
	wake(ctx, pool)
	return byGeneration(skipped), nil
}

// byGeneration sorts list by version and generation (the order of
// UPDATE ... RETURNING is not defined).
func byGeneration(list []Status) []Status {
	slices.SortFunc(list, func(a, b Status) int {
		return cmp.Or(cmp.Compare(a.Version, b.Version), cmp.Compare(a.Generation, b.Generation))
	})
	return list
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
