package projections_test

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"cqrsgate/domain"
	"cqrsgate/projections"
)

// dropsConn is a projection whose database connection is ended under it
// (pg_terminate_backend, as an operator, a failover or a proxy recycling
// connections would) on its first `drops` attempts at any batch.
type dropsConn struct {
	drops    int32
	attempts *atomic.Int32
}

func (dropsConn) Name() string         { return "dropsconn" }
func (dropsConn) Version() int         { return 1 }
func (dropsConn) EventTypes() []string { return nil }
func (dropsConn) Tables() []string     { return []string{"dropped_seen"} }
func (dropsConn) Setup(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS dropped_seen (position bigint PRIMARY KEY)`)
	return err
}
func (d dropsConn) Apply(ctx context.Context, tx pgx.Tx, events []domain.RecordedEvent) error {
	if d.attempts.Add(1) <= d.drops {
		_, err := tx.Exec(ctx, `SELECT pg_terminate_backend(pg_backend_pid())`)
		return err
	}
	for _, e := range events {
		if _, err := tx.Exec(ctx, `INSERT INTO dropped_seen VALUES ($1)`, e.Position); err != nil {
			return err
		}
	}
	return nil
}

// TestLostConnectionIsNotAFailedEvent: a batch whose connection is lost
// under it (the database ended it) is tried again with backoff, and the
// attempts do not count towards MaxFailures: the event is not at fault.
// Before, MaxFailures lost connections in a row (a few seconds of a
// failover) stopped the projection FAILED on a sound event, for good until
// an administrator retried it, and /readyz answered 503 meanwhile.
func TestLostConnectionIsNotAFailedEvent(t *testing.T) {
	e := newEnv(t)
	var attempts atomic.Int32
	e.start(t, projections.Options{MaxFailures: 2, RetryBackoff: 10 * time.Millisecond}, dropsConn{drops: 4, attempts: &attempts})
	res, err := e.store.Append(context.Background(), "misc-1", domain.ExpectAny, domain.EventData{Type: "Misc", SchemaVersion: 1, Data: json.RawMessage(`{"n": 1}`)})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the projection to apply the event or fail", func() bool {
		s := status(t, e.pool, "dropsconn", 1)
		return s.Position >= res.LastPosition || s.Status == "FAILED"
	})
	if s := status(t, e.pool, "dropsconn", 1); s.Status != "RUNNING" || s.Position < res.LastPosition || s.Failures != 0 {
		t.Fatalf("after %d attempts whose connection was lost: %+v, want RUNNING at %d", attempts.Load(), s, res.LastPosition)
	}
}
