package eventstore_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"cqrsgate/domain"
	"cqrsgate/eventstore"
	"cqrsgate/eventstore/eventstoretest"
	"cqrsgate/internal/logbuf"
	"cqrsgate/internal/pgtest"
)

// holdTransaction opens a transaction with an id on a connection of its
// own named application, and returns its server process's id and what
// ends it.
func holdTransaction(t *testing.T, pool *pgxpool.Pool, application string) (pid int32, end func()) {
	t.Helper()
	ctx := context.Background()
	cfg := pool.Config().ConnConfig.Copy()
	cfg.RuntimeParams["application_name"] = application
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(ctx) })
	if err := conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "BEGIN; SELECT pg_current_xact_id()"); err != nil {
		t.Fatal(err)
	}
	return pid, func() {
		if _, err := conn.Exec(ctx, "COMMIT"); err != nil {
			t.Fatal(err)
		}
	}
}

// waitLag waits (10s at most) for a look of w that satisfies ok.
func waitLag(t *testing.T, w *eventstore.LagWatch, what string, ok func(eventstore.ReaderLag) bool) eventstore.ReaderLag {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		lag, looked := w.Latest()
		if looked && ok(lag) {
			return lag
		}
		if time.Now().After(deadline) {
			t.Fatalf("no look %s within 10s; the latest: %+v (looked: %v)", what, lag, looked)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitLog waits (10s at most) for a line of logs that holds every one of
// want, and returns it.
func waitLog(t *testing.T, logs *logbuf.Buffer, want ...string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, line := range strings.Split(logs.String(), "\n") {
			found := true
			for _, w := range want {
				found = found && strings.Contains(line, w)
			}
			if found {
				return line
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log line with %q within 10s; the log:\n%s", want, logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestLagWatchNamesTheTransactionHoldingTheReadersBack: a transaction with
// an id held open anywhere on the server holds back every reader of the
// log (gap safety), while appends go on succeeding. Nothing showed it:
// subscribers stalled and nobody knew why. The watch reports how far the
// readers are behind and for how long, logs at WARN once they have been
// held back longer than WarnAfter, naming the transaction (its process,
// application, state and age), and at INFO once it ends.
func TestLagWatchNamesTheTransactionHoldingTheReadersBack(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	store := newPostgres(t, pool)
	appendOne(t, store, "acc-0", "Opened")
	logs := &logbuf.Buffer{}
	watch := eventstore.NewLagWatch(store, slog.New(slog.NewTextHandler(logs, nil)),
		eventstore.LagWatchOptions{Every: 50 * time.Millisecond, WarnAfter: 500 * time.Millisecond})
	watchCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- watch.Run(watchCtx) }()
	defer func() { stop(); <-done }()
	waitLag(t, watch, "with the readers caught up", func(l eventstore.ReaderLag) bool {
		return l.Readable == l.Committed && l.Committed > 0 && l.Waiting == 0
	})

	pid, end := holdTransaction(t, pool, "held-open-by-test")
	var last int64
	for i := range 3 {
		res, err := store.Append(ctx, fmt.Sprintf("acc-%d", i+1), domain.ExpectAny, eventstoretest.Ev("Opened", 1))
		if err != nil {
			t.Fatal(err)
		}
		last = res.LastPosition
	}
	lag := waitLag(t, watch, "with the readers held back past WarnAfter", func(l eventstore.ReaderLag) bool {
		return l.Waiting >= 500*time.Millisecond
	})
	if lag.Committed != last || lag.Behind() < 3 {
		t.Errorf("held back: committed %d, behind %d; want committed %d, behind at least 3", lag.Committed, lag.Behind(), last)
	}
	switch h := lag.Holder; {
	case h == nil:
		t.Fatalf("the transaction holding the readers back was not found: %v", lag.HolderErr)
	case h.PID != pid || h.ApplicationName != "held-open-by-test" || h.State != "idle in transaction" || h.XactAge < lag.Waiting:
		t.Errorf("holder %+v; want pid %d, application held-open-by-test, idle in transaction for at least %v", *h, pid, lag.Waiting)
	}
	line := waitLog(t, logs, "level=WARN", "holds back every reader of the log", fmt.Sprintf("holderPid=%d", pid), "holderApplication=held-open-by-test", `holderState="idle in transaction"`)
	t.Log(line)

	end()
	waitLag(t, watch, "with the readers caught up again", func(l eventstore.ReaderLag) bool {
		return l.Readable == last && l.Waiting == 0 && l.Behind() == 0
	})
	waitLog(t, logs, "level=INFO", "readers of the log no longer held back")
	if n := strings.Count(logs.String(), "level=WARN"); n != 1 {
		t.Errorf("%d warnings for one stretch (shorter than a minute); want 1:\n%s", n, logs)
	}
}

// TestLagWatchUnderARoleThatMayNotSeeOtherSessions: a gateway whose role
// may not read other roles' activity (no pg_read_all_stats) still gets the
// lag and the holder's process, application and user; what it may not see
// (the state, the transaction's age) is said to be unknown.
func TestLagWatchUnderARoleThatMayNotSeeOtherSessions(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	admin, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(admin.Close) // after the role's cleanup
	role := fmt.Sprintf("lagwatch_%d", time.Now().UnixNano())
	if _, err := admin.Exec(ctx, `CREATE ROLE `+role+`; GRANT SELECT ON events TO `+role); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, err := admin.Exec(ctx, `REVOKE ALL ON events FROM `+role+`; DROP ROLE `+role)
		if err != nil {
			t.Error(err)
		}
	})
	appendOne(t, newPostgres(t, admin), "acc-0", "Opened")
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.AfterConnect = func(ctx context.Context, conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, "SET ROLE "+role)
		return err
	}
	restricted, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer restricted.Close()
	logs := &logbuf.Buffer{}
	watch := eventstore.NewLagWatch(newPostgres(t, restricted), slog.New(slog.NewTextHandler(logs, nil)),
		eventstore.LagWatchOptions{Every: 50 * time.Millisecond, WarnAfter: 300 * time.Millisecond})
	watchCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- watch.Run(watchCtx) }()
	defer func() { stop(); <-done }()

	pid, end := holdTransaction(t, admin, "held-open-by-test")
	defer end()
	appendOne(t, newPostgres(t, admin), "acc-1", "Opened")
	lag := waitLag(t, watch, "with the readers held back past WarnAfter", func(l eventstore.ReaderLag) bool {
		return l.Waiting >= 300*time.Millisecond
	})
	if lag.Behind() < 1 {
		t.Errorf("behind %d; want at least 1", lag.Behind())
	}
	if h := lag.Holder; h == nil || h.PID != pid || h.ApplicationName != "held-open-by-test" {
		t.Fatalf("holder %+v (err %v); want pid %d, application held-open-by-test", h, lag.HolderErr, pid)
	}
	if h := lag.Holder; h.XactAge != -1 || h.State != "" {
		t.Errorf("holder %+v: its state and age were seen, without pg_read_all_stats (then this test tests nothing)", *h)
	}
	waitLog(t, logs, "level=WARN", fmt.Sprintf("holderPid=%d", pid), "holderApplication=held-open-by-test", `holderState=unknown`, `holderXactAge="unknown (`)
}
