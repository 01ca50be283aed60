package projections

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"cqrsgate/domain"
)

// Positions reads the checkpoints of the serving versions of projections.
type Positions struct {
	pool     *pgxpool.Pool
	progress func() <-chan struct{} // wakes when this process's runner advances; nil: poll only
}

// NewPositions returns a reader of checkpoints; progress, when not nil, is
// a Runner's Progress, which wakes waiters as soon as this process moves a
// checkpoint (progress made by other processes is seen by polling).
func NewPositions(pool *pgxpool.Pool, progress func() <-chan struct{}) *Positions {
	return &Positions{pool: pool, progress: progress}
}

// WaitFor waits until the serving versions of every projection in names
// have applied the log up to position, or timeout passes. Errors: a
// *domain.Error with code Stale saying how far behind the projections are
// (a projection not set up yet counts as at 0); ctx's error.
func (p *Positions) WaitFor(ctx context.Context, names []string, position int64, timeout time.Duration) error {
	if position <= 0 {
		return nil
	}
	deadline := time.Now().Add(timeout)
	for {
		var wake <-chan struct{}
		if p.progress != nil {
			wake = p.progress()
		}
		reached, err := p.min(ctx, names)
		if err != nil {
			return err
		}
		if reached >= position {
			return nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			return &domain.Error{
				Code:    domain.Stale,
				Message: fmt.Sprintf("read models have reached position %d, not %d (%d behind) after %s; retry later", reached, position, position-reached, timeout),
				Details: map[string]any{"atLeast": position, "reached": reached, "behind": position - reached},
			}
		}
		t := time.NewTimer(min(left, 25*time.Millisecond))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// min returns the lowest checkpoint among the serving versions of names.
func (p *Positions) min(ctx context.Context, names []string) (int64, error) {
	var reached *int64
	var found int
	err := p.pool.QueryRow(ctx, `SELECT min(position), count(*) FROM projections WHERE name = ANY($1) AND serving`, names).Scan(&reached, &found)
	if err != nil {
		return 0, fmt.Errorf("projection positions: %w", err)
	}
	if found < len(names) || reached == nil {
		return 0, nil // not set up yet: nothing reached
	}
	return *reached, nil
}
