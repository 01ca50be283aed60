package projections

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"cqrsgate/domain"
)

// Status describes one projection version.
type Status struct {
	Name     string
	Version  int
	Position int64 // the checkpoint: last position applied
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
	rows, err := pool.Query(ctx, `SELECT name, version, position, status, serving, failures, coalesce(last_error, ''),
			coalesce(failed_position, 0), coalesce(failed_event_id::text, ''), updated_at
		FROM projections WHERE status <> 'RETIRED' ORDER BY name, version`)
	if err != nil {
		return nil, fmt.Errorf("list projections: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Status, error) {
		var s Status
		err := r.Scan(&s.Name, &s.Version, &s.Position, &s.Status, &s.Serving, &s.Failures, &s.LastError, &s.FailedPosition, &s.FailedEventID, &s.UpdatedAt)
		return s, err
	})
}

// Retry puts a FAILED projection back to work from where it stopped.
// Errors: NotFound for an unknown name, RuleViolation when it is not failed.
func Retry(ctx context.Context, pool *pgxpool.Pool, name string) error {
	tag, err := pool.Exec(ctx, `UPDATE projections SET status = 'RUNNING', failures = 0, updated_at = clock_timestamp()
		WHERE name = $1 AND status = 'FAILED'`, name)
	if err != nil {
		return fmt.Errorf("retry projection %s: %w", name, err)
	}
	if tag.RowsAffected() == 0 {
		return notFailed(ctx, pool, name)
	}
	return nil
}

// Skip moves a FAILED projection past the event at position (the one it
// failed on) and puts it back to work. Errors: NotFound for an unknown
// name, RuleViolation when it is not failed at that position.
func Skip(ctx context.Context, pool *pgxpool.Pool, name string, position int64) error {
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
	return nil
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
