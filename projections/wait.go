package projections

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"cqrsgate/domain"
)

// Positions reads how far the serving versions of projections have
// applied the log.
type Positions struct {
	pool   *pgxpool.Pool
	runner *Runner // this process's; nil: checkpoints only, polled
}

// NewPositions returns a reader of projection positions: their
// checkpoints and, for each projection that runner (when not nil) serves
// from this process, how far past its checkpoint it has read over events
// it does not read (see Runner.Passed). The runner's progress wakes
// waiters as soon as it moves; progress made by other processes is seen by
// polling.
func NewPositions(pool *pgxpool.Pool, runner *Runner) *Positions {
	return &Positions{pool: pool, runner: runner}
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
		if p.runner != nil {
			wake = p.runner.Progress()
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

// min returns the lowest position among the serving versions of names.
func (p *Positions) min(ctx context.Context, names []string) (int64, error) {
	rows, err := p.pool.Query(ctx, `SELECT name, position FROM projections WHERE name = ANY($1) AND serving`, names)
	if err != nil {
		return 0, fmt.Errorf("projection positions: %w", err)
	}
	at := map[string]int64{}
	var name string
	var position int64
	_, err = pgx.ForEachRow(rows, []any{&name, &position}, func() error {
		at[name] = position
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("projection positions: %w", err)
	}
	var reached int64
	for i, n := range names {
		pos, ok := at[n]
		if !ok {
			return 0, nil // not set up yet: nothing reached
		}
		if p.runner != nil {
			if passed, ok := p.runner.Passed(n); ok {
				pos = max(pos, passed)
			}
		}
		if i == 0 || pos < reached {
			reached = pos
		}
	}
	return reached, nil
}
