package projections_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"cqrsgate/domain"
	"cqrsgate/eventstore"
	"cqrsgate/projections"
)

// A newer version's process switches queries to itself and dies before it
// retires the older version (the case TestAnOlderVersionStandsDownWhileANewerOneRuns
// covers, with the newer process gone). The older version applied one more
// event than the newer had at the switch. For the rollback grace the older
// version keeps up without serving; this process's Positions must not
// answer atLeast from the older version's in-memory position: queries read
// the newer version's tables, which lack the event.
func TestWaitForUsesOnlyTheServingVersionsPosition(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	opts := deployOptions
	opts.RollbackGrace = time.Minute
	closed := new(atomic.Bool)
	r := e.start(t, opts, gated{projections.Accounts{}, closed})
	e.exec(t, domain.OpenAccount{AccountID: "rw", Owner: "o", Currency: "EUR"})
	waitFor(t, "v1 to serve", func() bool {
		s := status(t, e.pool, "accounts", accountsV)
		return s.Serving && s.Position >= e.head(t)
	})
	switchedAt := e.head(t)

	// A deposit is read by v1 (serving, as far as it knows) and held in Apply.
	closed.Store(true)
	deposit := e.exec(t, domain.DepositMoney{AccountID: "rw", Amount: 7})
	time.Sleep(300 * time.Millisecond)

	// Meanwhile v2's process, caught up to just before the deposit, switches
	// the views to its tables and dies (its lock is free).
	v1, v2 := projections.SchemaName("accounts", accountsV), projections.SchemaName("accounts", accountsV+1)
	if err := pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
		stmts := []string{`CREATE SCHEMA ` + v2}
		for _, tbl := range []string{"account_summary", "account_statement", "bank_totals"} {
			stmts = append(stmts,
				`CREATE TABLE `+v2+`.`+tbl+` AS SELECT * FROM `+v1+`.`+tbl,
				`DROP VIEW readmodel.`+tbl,
				`CREATE VIEW readmodel.`+tbl+` AS SELECT * FROM `+v2+`.`+tbl)
		}
		stmts = append(stmts, `UPDATE projections SET serving = false WHERE name = 'accounts'`)
		for _, s := range stmts {
			if _, err := tx.Exec(ctx, s); err != nil {
				return err
			}
		}
		_, err := tx.Exec(ctx, `INSERT INTO projections (name, version, generation, position, serving) VALUES ('accounts', $1, 1, $2, true)`, accountsV+1, switchedAt)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	closed.Store(false) // v1 applies the deposit
	waitFor(t, "v1 to apply the deposit", caughtUp(t, e, "accounts", accountsV, deposit.Position))
	time.Sleep(500 * time.Millisecond) // v1 has re-read its rows: it does not serve

	var balance int64
	if err := e.pool.QueryRow(ctx, `SELECT balance FROM readmodel.account_summary WHERE id = 'rw'`).Scan(&balance); err != nil {
		t.Fatal(err)
	}
	err := projections.NewPositions(e.pool, r).WaitFor(ctx, []string{"accounts"}, deposit.Position, 300*time.Millisecond)
	if domain.CodeOf(err) != domain.Stale {
		p, _ := r.Passed("accounts")
		t.Fatalf("WaitFor(atLeast %d) = %v; the serving version v%d is at %d (balance through the views %d, deposit missing), "+
			"but Passed (v%d, not serving) = %d", deposit.Position, err, accountsV+1, switchedAt, balance, accountsV, p)
	}
}

// holdAfterFirstRead lets the test act between a runner's first read of the
// log (a new version catching up: the log is short, so it has caught up)
// and what the runner does with it, then holds every later read.
type holdAfterFirstRead struct {
	eventstore.Store
	calls   atomic.Int32
	read    chan struct{} // closed once the first read has read
	proceed chan struct{} // the first read returns once closed
	release chan struct{} // later reads run once closed
}

func (h *holdAfterFirstRead) ReadAll(ctx context.Context, q eventstore.AllQuery) (eventstore.Page, error) {
	p, err := h.Store.ReadAll(ctx, q)
	if h.calls.Add(1) == 1 {
		close(h.read)
		<-h.proceed
		return p, err
	}
	select {
	case <-h.release:
	case <-ctx.Done():
		return eventstore.Page{}, ctx.Err()
	}
	return h.Store.ReadAll(ctx, q)
}

// A newer version built by another process switches the views to itself
// once its last read came back short, without looking at how far the
// serving version has got: an event committed after that read, which the
// serving version has applied (and atLeast has confirmed), disappears from
// the read model at the switch.
func TestASwitchNeverMovesTheServingReadModelBackwards(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a := e.start(t, deployOptions, projections.Accounts{})
	e.exec(t, domain.OpenAccount{AccountID: "sw", Owner: "o", Currency: "EUR"})
	waitFor(t, "v1 to serve", func() bool {
		s := status(t, e.pool, "accounts", accountsV)
		return s.Serving && s.Position >= e.head(t)
	})

	// Another process (a rolling deploy) runs the next version.
	hold := &holdAfterFirstRead{Store: e.store, read: make(chan struct{}), proceed: make(chan struct{}), release: make(chan struct{})}
	var releaseOnce sync.Once
	release := func() { releaseOnce.Do(func() { close(hold.release) }) }
	defer release()
	b, err := projections.NewRunner(e.pool, hold, quiet, deployOptions, nextVersion{projections.Accounts{}})
	if err != nil {
		t.Fatal(err)
	}
	bctx, stopB := context.WithCancel(ctx)
	bDone := make(chan error, 1)
	go func() { bDone <- b.Run(bctx) }()
	defer func() { stopB(); <-bDone }()
	<-hold.read // v2 has read the whole log: it is about to catch up

	// A client deposits and reads its write back through v1, which serves.
	deposit := e.exec(t, domain.DepositMoney{AccountID: "sw", Amount: 7})
	if err := projections.NewPositions(e.pool, a).WaitFor(ctx, []string{"accounts"}, deposit.Position, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	balance := func() int64 {
		var n int64
		if err := e.pool.QueryRow(ctx, `SELECT balance FROM readmodel.account_summary WHERE id = 'sw'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if got := balance(); got != 7 {
		t.Fatalf("balance after atLeast %d: %d, want 7", deposit.Position, got)
	}

	close(hold.proceed) // v2 applies what it read and may switch
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if status(t, e.pool, "accounts", accountsV+1).Serving {
			break
		}
	}
	check := func() {
		if got, s := balance(), status(t, e.pool, "accounts", accountsV+1); s.Serving && got != 7 {
			t.Fatalf("after v2's switch the balance read back at position %d is %d again (v2 serves at position %d): "+
				"the read model went back past a write atLeast had confirmed", deposit.Position, got, s.Position)
		}
	}
	check()
	release() // v2 reads on
	waitFor(t, "v2 to serve", func() bool { return status(t, e.pool, "accounts", accountsV+1).Serving })
	check()
}
