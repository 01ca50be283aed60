package projections

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"cqrsgate/domain"
)

// Fulfilments projects the fulfilment sagas' events into:
//   - fulfilment_list: one row per saga (state, current step, reason,
//     charge, items) with the saga's folded state, so the current step is
//     decided by the domain's own rules;
//   - fulfilment_steps: every step taken, with its outcome, in order.
type Fulfilments struct{}

var _ Projection = Fulfilments{}

// Name implements Projection.
func (Fulfilments) Name() string { return "fulfilments" }

// Version implements Projection. Version 2: the saga's state (the saga
// column) gained the step in flight and the cancellation's reason, which
// version 1's code cannot load; a rebuild also gives sagas that were
// compensating their current step as the domain now sees it. Version 3:
// a failed step is undone as far as it took effect (the saga state's
// version 4), so a saga compensating after a failed step shows that step
// as its current one. Version 4: a compensation step that found nothing
// to undo is NOTHING_TO_UNDO (FulfilmentStepSucceeded v2), folded by
// this release's own build rather than by one that cannot read it.
func (Fulfilments) Version() int { return 4 }

// EventTypes implements Projection.
func (Fulfilments) EventTypes() []string {
	return []string{"FulfilmentStarted", "FulfilmentStepSucceeded", "FulfilmentStepFailed", "FulfilmentCompensationStarted",
		"FulfilmentFinished", "FulfilmentRetried"}
}

// Tables implements Projection.
func (Fulfilments) Tables() []string { return []string{"fulfilment_list", "fulfilment_steps"} }

// Setup implements Projection.
func (Fulfilments) Setup(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, `
		CREATE TABLE IF NOT EXISTS fulfilment_list (
			id           text PRIMARY KEY,
			tenant       text GENERATED ALWAYS AS (`+tenantOf("id")+`) STORED,
			state        text        NOT NULL,
			current_step text,
			current_sku  text,
			reason       text        NOT NULL DEFAULT '',
			account_id   text        NOT NULL,
			currency     text        NOT NULL,
			amount       bigint      NOT NULL,
			items        jsonb       NOT NULL,
			saga         jsonb       NOT NULL,
			started_at   timestamptz NOT NULL,
			updated_at   timestamptz NOT NULL,
			version      bigint      NOT NULL,
			position     bigint      NOT NULL
		);
		CREATE INDEX IF NOT EXISTS fulfilment_list_tenant ON fulfilment_list (tenant, id);
		CREATE INDEX IF NOT EXISTS fulfilment_list_state ON fulfilment_list (tenant, state, id);
		CREATE INDEX IF NOT EXISTS fulfilment_list_active ON fulfilment_list (id) WHERE state IN ('RUNNING', 'COMPENSATING');
		CREATE TABLE IF NOT EXISTS fulfilment_steps (
			fulfilment_id text        NOT NULL,
			version       bigint      NOT NULL,
			step          text        NOT NULL,
			sku           text        NOT NULL DEFAULT '',
			compensation  boolean     NOT NULL,
			outcome       text        NOT NULL,
			reason        text        NOT NULL DEFAULT '',
			at            timestamptz NOT NULL,
			PRIMARY KEY (fulfilment_id, version)
		);`)
	return err
}

// Apply implements Projection: each saga touched is folded in memory from
// its stored state (the domain aggregate's snapshot) and written back once.
// Events on a stream that is not a saga's are skipped (ownEvents).
func (Fulfilments) Apply(ctx context.Context, tx pgx.Tx, events []domain.RecordedEvent) error {
	type row struct {
		saga      *domain.Fulfilment
		startedAt time.Time
		updatedAt time.Time
		version   int64
		position  int64
	}
	events, streamIDs := ownEvents(domain.Fulfilments, events)
	if len(events) == 0 {
		return nil
	}
	touched := map[string]*row{}
	var ids []string
	for _, id := range streamIDs {
		if _, ok := touched[id]; !ok {
			touched[id] = nil
			ids = append(ids, id)
		}
	}
	rows, err := tx.Query(ctx, `SELECT id, saga, started_at FROM fulfilment_list WHERE id = ANY($1)`, ids)
	if err != nil {
		return err
	}
	for rows.Next() {
		var id string
		var state json.RawMessage
		var started time.Time
		if err := rows.Scan(&id, &state, &started); err != nil {
			rows.Close()
			return err
		}
		saga, err := domain.Fulfilments.LoadState(plainID(id), state)
		if err != nil {
			rows.Close()
			return fmt.Errorf("fulfilment %s: stored state: %w", id, err)
		}
		touched[id] = &row{saga: saga, startedAt: started}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	var steps [][]any
	for i, re := range events {
		e, err := domain.Fulfilments.Decode(re.Type, re.SchemaVersion, re.Data)
		if err != nil {
			return fmt.Errorf("event %s at %d: %w", re.Type, re.Position, err)
		}
		id := streamIDs[i]
		r := touched[id]
		if r == nil {
			started, ok := e.(domain.FulfilmentStarted)
			if !ok {
				return fmt.Errorf("event %s at %d for fulfilment %s, which never started", re.Type, re.Position, id)
			}
			r = &row{saga: domain.Fulfilments.New(plainID(id)), startedAt: started.StartedAt}
			touched[id] = r
		}
		r.saga.Apply(e)
		r.updatedAt, r.version, r.position = re.RecordedAt, re.StreamVersion, re.Position
		switch e := e.(type) {
		case domain.FulfilmentStepSucceeded:
			outcome := "SUCCEEDED"
			if e.NothingToUndo {
				outcome = "NOTHING_TO_UNDO"
			}
			steps = append(steps, []any{id, re.StreamVersion, e.Step, e.Sku, e.Compensation, outcome, "", e.At})
		case domain.FulfilmentStepFailed:
			steps = append(steps, []any{id, re.StreamVersion, e.Step, e.Sku, e.Compensation, "FAILED", e.Reason, e.At})
		}
	}
	b := &pgx.Batch{}
	for _, id := range ids {
		r := touched[id]
		state, err := domain.Fulfilments.SaveState(r.saga)
		if err != nil {
			return err
		}
		items, err := json.Marshal(r.saga.Items())
		if err != nil {
			return err
		}
		var step, sku *string
		if s, ok := r.saga.Next(); ok {
			step, sku = &s.Name, &s.Sku
		}
		b.Queue(`INSERT INTO fulfilment_list (id, state, current_step, current_sku, reason, account_id, currency, amount, items, saga, started_at, updated_at, version, position)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
			ON CONFLICT (id) DO UPDATE SET state = excluded.state, current_step = excluded.current_step, current_sku = excluded.current_sku,
				reason = excluded.reason, saga = excluded.saga, updated_at = excluded.updated_at, version = excluded.version, position = excluded.position`,
			id, r.saga.State(), step, sku, r.saga.Reason(), r.saga.AccountID(), r.saga.Currency(), r.saga.Amount(), items, state,
			r.startedAt, r.updatedAt, r.version, r.position)
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("fulfilments: %w", err)
	}
	if len(steps) > 0 {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"fulfilment_steps"},
			[]string{"fulfilment_id", "version", "step", "sku", "compensation", "outcome", "reason", "at"}, pgx.CopyFromRows(steps)); err != nil {
			return fmt.Errorf("fulfilment steps: %w", err)
		}
	}
	return nil
}

// FulfilmentSummary is a row of the fulfilment list.
type FulfilmentSummary struct {
	OrderID, State string
	// CurrentStep and CurrentSku name the step the saga is at ("" when it
	// has ended or FAILED).
	CurrentStep, CurrentSku string
	Reason                  string
	AccountID, Currency     string
	Amount                  int64
	Items                   []domain.FulfilmentItem
	StartedAt, UpdatedAt    time.Time
	Version, Position       int64
}

// FulfilmentStepEntry is a step a saga took.
type FulfilmentStepEntry struct {
	Version      int64
	Step, Sku    string
	Compensation bool
	Outcome      string // SUCCEEDED, FAILED or NOTHING_TO_UNDO
	Reason       string
	At           time.Time
}

// FulfilmentQueries reads the fulfilments read model.
type FulfilmentQueries struct{ pool *pgxpool.Pool }

// NewFulfilmentQueries returns the fulfilment queries on pool.
func NewFulfilmentQueries(pool *pgxpool.Pool) *FulfilmentQueries {
	return &FulfilmentQueries{pool: pool}
}

const fulfilmentColumns = `id, state, coalesce(current_step, ''), coalesce(current_sku, ''), reason, account_id, currency, amount, items, started_at, updated_at, version, position`

func scanFulfilment(r pgx.CollectableRow) (FulfilmentSummary, error) {
	var f FulfilmentSummary
	var items json.RawMessage
	err := r.Scan(&f.OrderID, &f.State, &f.CurrentStep, &f.CurrentSku, &f.Reason, &f.AccountID, &f.Currency, &f.Amount, &items,
		&f.StartedAt, &f.UpdatedAt, &f.Version, &f.Position)
	if err == nil {
		err = json.Unmarshal(items, &f.Items)
	}
	f.OrderID = plainID(f.OrderID)
	return f, err
}

// Fulfilment returns the saga of tenant's order orderID, or a NotFound
// *domain.Error.
func (q *FulfilmentQueries) Fulfilment(ctx context.Context, tenant, orderID string) (FulfilmentSummary, error) {
	return rowByID(ctx, q.pool, "fulfilment", "orderId", tenant, orderID, `SELECT `+fulfilmentColumns+` FROM readmodel.fulfilment_list WHERE id = $1`, scanFulfilment,
		func() error { return domain.Errorf(domain.NotFound, "order %s has no fulfilment", orderID) })
}

// Fulfilments returns up to first of tenant's sagas, those in state when
// it is not "", by order id after the cursor after, the next cursor when
// more follow, and the number matching. Errors: Invalid for a bad cursor
// or size.
func (q *FulfilmentQueries) Fulfilments(ctx context.Context, tenant, state string, first int, after string) ([]FulfilmentSummary, string, int, error) {
	first, err := pageSize(first)
	if err != nil {
		return nil, "", 0, err
	}
	afterID, err := decodeCursor("fulfilment", after)
	if err != nil {
		return nil, "", 0, err
	}
	where := `tenant = $1 AND ($2 = '' OR state = $2)`
	return countedPage(ctx, q.pool, "fulfilments", first,
		`SELECT count(*) FROM readmodel.fulfilment_list WHERE `+where, []any{tenant, state},
		`SELECT `+fulfilmentColumns+` FROM readmodel.fulfilment_list WHERE `+where+` AND id > $3 ORDER BY id LIMIT $4`,
		[]any{tenant, state, domain.Qualify(tenant, afterID), first + 1},
		scanFulfilment, FulfilmentCursor)
}

// FulfilmentCursor returns the cursor that pages past f.
func FulfilmentCursor(f FulfilmentSummary) string { return encodeCursor("fulfilment", f.OrderID) }

// Steps returns the steps of tenant's given sagas, in one query, in order.
func (q *FulfilmentQueries) Steps(ctx context.Context, tenant string, orderIDs []string) (map[string][]FulfilmentStepEntry, error) {
	rows, err := q.pool.Query(ctx, `SELECT fulfilment_id, version, step, sku, compensation, outcome, reason, at FROM readmodel.fulfilment_steps
		WHERE fulfilment_id = ANY($1) ORDER BY fulfilment_id, version`, qualifyAll(tenant, orderIDs))
	if err != nil {
		return nil, readError("fulfilment steps", err)
	}
	out := map[string][]FulfilmentStepEntry{}
	for rows.Next() {
		var id string
		var s FulfilmentStepEntry
		if err := rows.Scan(&id, &s.Version, &s.Step, &s.Sku, &s.Compensation, &s.Outcome, &s.Reason, &s.At); err != nil {
			rows.Close()
			return nil, readError("fulfilment steps", err)
		}
		out[plainID(id)] = append(out[plainID(id)], s)
	}
	if err := rows.Err(); err != nil {
		return nil, readError("fulfilment steps", err)
	}
	return out, nil
}

// Active returns the qualified order ids (every tenant's) of up to limit
// sagas that are running or compensating, those longest without a change
// first (overdue ones before the others), for the fulfilment process to
// check their deadlines after a restart (domain.FulfilmentOptions.Active).
func (q *FulfilmentQueries) Active(ctx context.Context, limit int) ([]string, error) {
	rows, err := q.pool.Query(ctx, `SELECT id FROM readmodel.fulfilment_list WHERE state IN ('RUNNING', 'COMPENSATING') ORDER BY updated_at, id LIMIT $1`, limit)
	if err != nil {
		return nil, readError("active fulfilments", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, readError("active fulfilments", err)
	}
	return ids, nil
}
