package projections_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"cqrsgate/domain"
	"cqrsgate/eventstore"
	"cqrsgate/projections"
)

const childEnv = "CQRSGATE_PROJECTION_CHILD_DB"

// counting adds one per event to a counter and records each position: an
// event applied twice shows as a counter above the number of positions, a
// skipped one as a missing position.
type counting struct{}

func (counting) Name() string         { return "counting" }
func (counting) Version() int         { return 1 }
func (counting) EventTypes() []string { return []string{"Tick"} }
func (counting) Tables() []string     { return []string{"tick_count", "tick_positions"} }
func (counting) Setup(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS tick_count (id int PRIMARY KEY, n bigint NOT NULL);
		INSERT INTO tick_count VALUES (1, 0) ON CONFLICT DO NOTHING;
		CREATE TABLE IF NOT EXISTS tick_positions (position bigint NOT NULL)`)
	return err
}
func (counting) Apply(ctx context.Context, tx pgx.Tx, events []domain.RecordedEvent) error {
	for _, e := range events {
		if _, err := tx.Exec(ctx, `UPDATE tick_count SET n = n + 1 WHERE id = 1`); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO tick_positions VALUES ($1)`, e.Position); err != nil {
			return err
		}
		time.Sleep(2 * time.Millisecond) // widen the window for the kill to land mid-batch
	}
	return nil
}

// runChild is the killed process: it runs the counting projection on url
// until it is killed.
func runChild(url string) {
	runRunnerChild(url, func(s eventstore.Store) eventstore.Store { return s },
		projections.Options{BatchSize: 40, Poll: 50 * time.Millisecond, LeaderRetry: 50 * time.Millisecond}, counting{})
}

// runRunnerChild runs a projection runner with projections ps on url, its
// store wrapped by wrap, until the process is killed (the crash tests'
// child processes).
func runRunnerChild(url string, wrap func(eventstore.Store) eventstore.Store, opts projections.Options, ps ...projections.Projection) {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	store := wrap(eventstore.NewPostgres(pool, quiet, eventstore.Limits{}, eventstore.NewBroadcaster()))
	r, err := projections.NewRunner(pool, store, quiet, opts, ps...)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	_ = r.Run(ctx)
}

// TestKillMidBatchLosesNothingAndAppliesNothingTwice kills a projection
// process with SIGKILL at random moments, several times, restarting it each
// time; in the end every event is applied exactly once.
func TestKillMidBatchLosesNothingAndAppliesNothingTwice(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	const total = 1500
	var last int64
	for i := 0; i < total; i += 100 {
		batch := make([]domain.EventData, 100)
		for j := range batch {
			batch[j] = domain.EventData{Type: "Tick", SchemaVersion: 1, Data: json.RawMessage(fmt.Sprintf(`{"i": %d}`, i+j))}
		}
		res, err := e.store.Append(ctx, fmt.Sprintf("tick-%d", i), domain.ExpectAny, batch...)
		if err != nil {
			t.Fatal(err)
		}
		last = res.LastPosition
	}
	url := e.pool.Config().ConnString()
	kills := 0
	for round := 0; round < 6; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"="+url)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(150+rand.IntN(250)) * time.Millisecond)
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
		kills++
		// The killed session's lock is released when PostgreSQL notices;
		// wait for that so the next process can lead.
		waitFor(t, "the killed process's session to end", func() bool {
			var n int
			_ = e.pool.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted`).Scan(&n)
			return n == 0
		})
	}
	progress := status(t, e.pool, "counting", 1).Position
	t.Logf("%d kills; the projection had reached position %d of %d", kills, progress, last)
	if progress >= last {
		t.Log("the projection finished before the last kill: the kills landed early or late, not mid-batch only")
	}
	// A final process finishes the job.
	e.start(t, projections.Options{BatchSize: 40}, counting{})
	waitFor(t, "the projection to finish", caughtUp(t, e, "counting", 1, last))
	var n, distinct, rows int64
	if err := e.pool.QueryRow(ctx, `SELECT (SELECT n FROM readmodel.tick_count), (SELECT count(DISTINCT position) FROM readmodel.tick_positions), (SELECT count(*) FROM readmodel.tick_positions)`).Scan(&n, &distinct, &rows); err != nil {
		t.Fatal(err)
	}
	if n != total || distinct != total || rows != total {
		t.Fatalf("counter %d, %d positions (%d distinct) for %d events: applied twice or lost", n, rows, distinct, total)
	}
}
