package projections_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"cqrsgate/domain"
	"cqrsgate/projections"
)

// deployOptions are Runner options for the deploy tests: quick retries and a
// short rollback grace.
var deployOptions = projections.Options{Poll: 100 * time.Millisecond, LeaderRetry: 100 * time.Millisecond, RollbackGrace: time.Second}

// During a rolling deploy the old version keeps running in the processes
// not yet replaced. Once the new version serves from a running process,
// the old one must not take queries back, even if it was not retired yet
// (the new version's process stopped between its switch and the old
// version's retirement): it retires itself. It serves again, rebuilt, once
// no process has run the new version for the rollback grace.
func TestAnOlderVersionStandsDownWhileANewerOneRuns(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.start(t, deployOptions, projections.Accounts{})
	e.exec(t, domain.OpenAccount{AccountID: "standby", Owner: "o", Currency: "EUR"})
	waitFor(t, "v1 to serve", func() bool {
		s := status(t, e.pool, "accounts", accountsV)
		return s.Serving && s.Position >= e.head(t)
	})

	// Another process runs the next version, which has switched queries to
	// itself and not yet retired this one.
	other := holdNextVersion(t, e)
	nextVersionServes(t, e)
	deposit := e.exec(t, domain.DepositMoney{AccountID: "standby", Amount: 7})
	waitFor(t, "v1 to retire itself", func() bool { return status(t, e.pool, "accounts", accountsV).Name == "" })
	for end := time.Now().Add(2 * deployOptions.RollbackGrace); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if s := status(t, e.pool, "accounts", accountsV); s.Name != "" || !status(t, e.pool, "accounts", accountsV+1).Serving {
			t.Fatalf("v1 came back while a process runs v2: %+v", s)
		}
	}

	// The other process goes away (the deploy is rolled back): the older
	// version is built again and serves, up to date.
	if err := other.Close(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "v1 to serve again", func() bool {
		s := status(t, e.pool, "accounts", accountsV)
		return s.Serving && s.Generation == 2 && s.Position >= deposit.Position
	})
	var balance int64
	if err := e.pool.QueryRow(ctx, `SELECT balance FROM readmodel.account_summary WHERE id = 'standby'`).Scan(&balance); err != nil || balance != 7 {
		t.Fatalf("balance through the views after the rollback: %d, %v; want 7", balance, err)
	}
}

// A version retired by a newer one stays retired while a process runs the
// newer one, even through that process's short losses of its leadership,
// and is built again from the log once none has run it for the rollback
// grace (a deploy rolled back after it completed): the read model does not
// freeze at the newer version's last checkpoint. A process of the old
// version started meanwhile builds nothing.
func TestARetiredVersionIsBuiltAgainWhenTheNewerOneRunsNowhere(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.start(t, deployOptions, projections.Accounts{}) // an old process, never replaced
	e.burst(t, 4, 5, "roll")
	waitFor(t, "v1 to catch up", caughtUp(t, e, "accounts", accountsV, e.head(t)))

	newCtx, stopNew := context.WithCancel(ctx)
	defer stopNew()
	nextOptions := deployOptions
	nextOptions.LeaderRetry = 500 * time.Millisecond // its leadership lapses for that long
	next, err := projections.NewRunner(e.pool, e.store, quiet, nextOptions, nextVersion{projections.Accounts{}})
	if err != nil {
		t.Fatal(err)
	}
	nextDone := make(chan error, 1)
	go func() { nextDone <- next.Run(newCtx) }()
	waitFor(t, "v2 to serve and retire v1", func() bool {
		return status(t, e.pool, "accounts", accountsV+1).Serving && status(t, e.pool, "accounts", accountsV).Name == ""
	})
	e.start(t, deployOptions, projections.Accounts{}) // another old process starts

	// v2's leader loses its session (a connection reset): its process
	// takes the lead again within LeaderRetry, inside the grace.
	var pid int
	key := projections.VersionLockKey("accounts", accountsV+1)
	if err := e.pool.QueryRow(ctx, `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid::bigint = $1 AND objid::bigint = $2`,
		int64(uint64(key)>>32), int64(uint32(uint64(key)))).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	if _, err := e.pool.Exec(ctx, `SELECT pg_terminate_backend($1)`, pid); err != nil {
		t.Fatal(err)
	}
	e.exec(t, domain.DepositMoney{AccountID: "roll-00", Amount: 1000})
	waitFor(t, "v2 to catch up", caughtUp(t, e, "accounts", accountsV+1, e.head(t)))
	for end := time.Now().Add(2 * deployOptions.RollbackGrace); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if s := status(t, e.pool, "accounts", accountsV); s.Name != "" {
			t.Fatalf("v1 came back while v2 runs: %+v", s)
		}
	}
	want := summaries(t, e.pool, "readmodel.account_summary")

	stopNew() // the deploy is rolled back
	<-nextDone
	last := e.exec(t, domain.DepositMoney{AccountID: "roll-01", Amount: 5})
	waitFor(t, "v1 to serve again", func() bool {
		s := status(t, e.pool, "accounts", accountsV)
		return s.Serving && s.Generation == 2 && s.Position >= last.Position
	})
	got := summaries(t, e.pool, "readmodel.account_summary")
	for i := range want {
		if want[i].ID == "roll-01" {
			want[i].Balance += 5
			want[i].Version++
			want[i].Position = last.Position
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%d accounts after the rollback, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("after the rollback: %+v, want %+v", got[i], want[i])
		}
	}
	if s := status(t, e.pool, "accounts", accountsV+1); s.Serving || s.Name == "" {
		t.Errorf("v2 after the rollback: %+v; want it kept, not serving, for the next deploy", s)
	}
	// What v2 left behind is no rebuild of the version serving.
	if _, err := projections.Rebuild(ctx, e.pool, "accounts"); err != nil {
		t.Fatalf("rebuilding v1 after the rollback: %v", err)
	}
	waitFor(t, "the rebuild to serve", func() bool {
		s := status(t, e.pool, "accounts", accountsV)
		return s.Serving && s.Generation == 3
	})
	if got := summaries(t, e.pool, "readmodel.account_summary"); len(got) != len(want) {
		t.Fatalf("%d accounts after the rebuild, want %d", len(got), len(want))
	}
}

// gated blocks Apply while closed is set.
type gated struct {
	projections.Projection
	closed *atomic.Bool
}

func (g gated) Apply(ctx context.Context, tx pgx.Tx, evs []domain.RecordedEvent) error {
	for g.closed.Load() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return g.Projection.Apply(ctx, tx, evs)
}

// The rollback grace is a run of sightings of a free lock: a newer
// version's lock seen free once, long ago (before a slow rebuild of the
// older version), then held while the rebuild runs, and freed for 300 ms by
// a restart of its process when the rebuild catches up, is no rollback: the
// older version does not take queries back.
func TestRollbackGraceIsContinuous(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	closed := serveGated(t, e, deployOptions)
	lockV2 := func() *pgx.Conn { return holdNextVersion(t, e) }
	other := lockV2()
	nextVersionServes(t, e)
	waitFor(t, "v1 to retire itself", func() bool { return status(t, e.pool, "accounts", accountsV).Name == "" })

	closed.Store(true) // the v1 rebuild will be slow
	other.Close(ctx)   // v2 goes away (rollback)...
	waitFor(t, "v1 generation 2 to be registered", func() bool { return status(t, e.pool, "accounts", accountsV).Generation == 2 })
	back := lockV2()
	time.Sleep(3 * deployOptions.RollbackGrace)

	back.Close(ctx)
	freedAt := time.Now()
	closed.Store(false)
	var took time.Duration
	for time.Since(freedAt) < 300*time.Millisecond {
		if status(t, e.pool, "accounts", accountsV).Serving {
			took = time.Since(freedAt)
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	again := lockV2()
	defer again.Close(ctx)
	if took > 0 {
		t.Fatalf("v1 took queries back %v after v2's lock was freed (grace %v), though v2 ran for the last 3s", took, deployOptions.RollbackGrace)
	}
}

// nextVersionServes makes the accounts projection's next version the one
// serving, as its process would once caught up (its row only: no tables,
// views left as they are).
func nextVersionServes(t *testing.T, e *env) {
	t.Helper()
	ctx := context.Background()
	if err := pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE projections SET serving = false WHERE name = 'accounts'`); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO projections (name, version, generation, position, serving) VALUES ('accounts', $1, 1, $2, true)`, accountsV+1, e.head(t))
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

// A rollback whose rebuild takes long completes whatever LeaderRetry is: a
// caught-up older version waiting out the grace looks at the newer
// version's lock every LeaderRetry, so its sightings make one run. With a
// LeaderRetry under about 83 ms they did not (the loop looked every 250 ms,
// more than three LeaderRetry apart), and it waited for good.
func TestARollbackCompletesWithAShortLeaderRetry(t *testing.T) {
	opts := projections.Options{Poll: 2 * time.Second, LeaderRetry: 30 * time.Millisecond, RollbackGrace: 500 * time.Millisecond}
	e := newEnv(t)
	ctx := context.Background()
	closed := serveGated(t, e, opts)
	other := holdNextVersion(t, e)
	nextVersionServes(t, e)
	waitFor(t, "v1 to retire itself", func() bool { return status(t, e.pool, "accounts", accountsV).Name == "" })
	closed.Store(true) // rebuilding v1 from the log takes a while
	other.Close(ctx)   // rollback: no process runs v2 any more
	waitFor(t, "v1 generation 2 to be registered", func() bool { return status(t, e.pool, "accounts", accountsV).Generation == 2 })
	time.Sleep(time.Second)
	closed.Store(false)
	waitFor(t, "v1 generation 2 to catch up", caughtUp(t, e, "accounts", accountsV, e.head(t)))
	start := time.Now()
	for time.Since(start) < 10*time.Second {
		if status(t, e.pool, "accounts", accountsV).Serving {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("v1 caught up but never serves: %+v / v2 %+v (grace %v)", status(t, e.pool, "accounts", accountsV), status(t, e.pool, "accounts", accountsV+1), opts.RollbackGrace)
}

// holdNextVersion stands in for a process running the accounts
// projection's next version: the connection holds that version's advisory
// lock until it is closed (or the test ends).
func holdNextVersion(t *testing.T, e *env) *pgx.Conn {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.ConnectConfig(ctx, e.pool.Config().ConnConfig.Copy())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(ctx) })
	if _, err := c.Exec(ctx, "SELECT pg_advisory_lock($1)", projections.VersionLockKey("accounts", accountsV+1)); err != nil {
		t.Fatal(err)
	}
	return c
}

// serveGated runs the accounts projection with opts, its batches held back
// while the flag it returns is set, and waits until it serves an account.
func serveGated(t *testing.T, e *env, opts projections.Options) *atomic.Bool {
	t.Helper()
	closed := new(atomic.Bool)
	e.start(t, opts, gated{projections.Accounts{}, closed})
	e.exec(t, domain.OpenAccount{AccountID: "g", Owner: "o", Currency: "EUR"})
	waitFor(t, "v1 to serve", func() bool {
		s := status(t, e.pool, "accounts", accountsV)
		return s.Serving && s.Position >= e.head(t)
	})
	return closed
}
