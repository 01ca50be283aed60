package projections_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"cqrsgate/domain"
	"cqrsgate/internal/logbuf"
	"cqrsgate/internal/pgtest"
	"cqrsgate/projections"
)

// idleProcess is a process that handles every event at once.
type idleProcess struct{}

func (idleProcess) Name() string                                       { return "idle" }
func (idleProcess) EventTypes() []string                               { return []string{"AccountOpened"} }
func (idleProcess) Tick(context.Context) error                         { return nil }
func (idleProcess) TickEvery() time.Duration                           { return time.Hour }
func (idleProcess) Handle(context.Context, domain.RecordedEvent) error { return nil }

// setConnections lets connections to pool's database (allow) or refuses
// them and ends every one it has (a database outage, as the runners see
// it: every query fails, every connection attempt too).
func setConnections(t *testing.T, pool *pgxpool.Pool, allow bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, pgtest.URLFor("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	name := pool.Config().ConnConfig.Database
	if _, err := conn.Exec(ctx, fmt.Sprintf(`ALTER DATABASE %s ALLOW_CONNECTIONS %t`, pgx.Identifier{name}.Sanitize(), allow)); err != nil {
		t.Fatal(err)
	}
	if allow {
		return
	}
	if _, err := conn.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1`, name); err != nil {
		t.Fatal(err)
	}
}

// logLine is a line of a JSON slog handler's output.
type logLine struct {
	Level string `json:"level"`
	Msg   string `json:"msg"`
	// Of is the projection or the process the line is about.
	Projection string `json:"projection"`
	Process    string `json:"process"`
}

func (l logLine) of() string { return l.Projection + l.Process }

// logLines parses what a JSON handler wrote to logs.
func logLines(t *testing.T, logs *logbuf.Buffer) []logLine {
	t.Helper()
	var out []logLine
	for _, s := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		if s == "" {
			continue
		}
		var l logLine
		if err := json.Unmarshal([]byte(s), &l); err != nil {
			t.Fatalf("log line %q: %v", s, err)
		}
		out = append(out, l)
	}
	return out
}

// count counts the lines about name for which keep holds.
func count(lines []logLine, name string, keep func(logLine) bool) int {
	n := 0
	for _, l := range lines {
		if l.of() == name && keep(l) {
			n++
		}
	}
	return n
}

// TestDatabaseOutageIsLoggedOncePerOutage: while the database is away,
// the runners retry every LeaderRetry, and each projection and process
// says so once at WARN, then at DEBUG, and once at INFO when it runs
// again; a second outage is said again. Before, every retry of every
// projection and process was a WARN line (with the default LeaderRetry,
// five projections' and the saga's every 2 seconds for the whole outage),
// which buried what mattered, and nothing said when they ran again.
func TestDatabaseOutageIsLoggedOncePerOutage(t *testing.T) {
	e := newEnv(t)
	logs := &logbuf.Buffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the runners' log:\n%s", logs)
		}
	})
	runner, err := projections.NewRunner(e.pool, e.store, log, projections.Options{Poll: 50 * time.Millisecond, LeaderRetry: 50 * time.Millisecond},
		projections.Accounts{}, projections.Orders{})
	if err != nil {
		t.Fatal(err)
	}
	process, err := projections.NewProcessRunner(e.pool, e.store, log, projections.ProcessOptions{Poll: 50 * time.Millisecond, LeaderRetry: 50 * time.Millisecond}, idleProcess{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = runner.Run(ctx) })
	wg.Go(func() { _ = process.Run(ctx) })
	t.Cleanup(func() { stop(); wg.Wait() })
	t.Cleanup(func() { setConnections(t, e.pool, true) }) // first, should the test stop during an outage
	names := []string{"accounts", "orders", "idle"}
	running := func(l logLine) bool {
		return l.Level == "INFO" && (l.Msg == "running projection" || l.Msg == "running process")
	}
	waitFor(t, "the projections and the process to run", func() bool {
		lines := logLines(t, logs)
		for _, name := range names {
			if count(lines, name, running) != 1 {
				return false
			}
		}
		return true
	})

	stopped := func(l logLine) bool { return strings.HasSuffix(l.Msg, " stopped; retrying") }
	warned := func(l logLine) bool { return l.Level == "WARN" || l.Level == "ERROR" }
	again := func(l logLine) bool {
		return l.Level == "INFO" && (l.Msg == "running projection again" || l.Msg == "running process again")
	}
	for outage := 1; outage <= 2; outage++ {
		before := logLines(t, logs)
		setConnections(t, e.pool, false)
		// Enough retries that each would have been a WARN line before.
		waitFor(t, fmt.Sprintf("outage %d: five retries of each", outage), func() bool {
			lines := logLines(t, logs)
			for _, name := range names {
				if count(lines, name, stopped)-count(before, name, stopped) < 5 {
					return false
				}
			}
			return true
		})
		lines := logLines(t, logs)
		for _, name := range names {
			if n := count(lines, name, warned) - count(before, name, warned); n != 1 {
				t.Errorf("outage %d: %d WARN lines about %s, want 1 (then DEBUG)", outage, n, name)
			}
			if n := count(lines, name, func(l logLine) bool { return stopped(l) && l.Level == "DEBUG" }); n < 4 {
				t.Errorf("outage %d: %d DEBUG lines about %s's retries, want at least 4", outage, n, name)
			}
			if n := count(lines, name, again) - count(before, name, again); n != 0 {
				t.Errorf("outage %d: %s said it ran again %d times while the database was away", outage, name, n)
			}
		}

		setConnections(t, e.pool, true)
		waitFor(t, fmt.Sprintf("outage %d: the projections and the process to say they run again", outage), func() bool {
			lines := logLines(t, logs)
			for _, name := range names {
				if count(lines, name, again) < outage {
					return false
				}
			}
			return true
		})
		// Running indeed: an event appended now is applied.
		res := e.exec(t, domain.OpenAccount{AccountID: fmt.Sprintf("after-%d", outage), Owner: "ada", Currency: "EUR"})
		waitFor(t, "the accounts projection to apply an event appended after the outage", caughtUp(t, e, "accounts", projections.Accounts{}.Version(), res.Position))
		waitFor(t, "the process to read it", func() bool { return process.Position() >= res.Position })

		lines = logLines(t, logs)
		for _, name := range names {
			if n := count(lines, name, again); n != outage {
				t.Errorf("after outage %d: %s said %d times that it runs again, want %d", outage, name, n, outage)
			}
			if n := count(lines, name, warned); n != outage {
				t.Errorf("after outage %d: %d WARN lines about %s, want %d (one per outage)", outage, n, name, outage)
			}
			if n := count(lines, name, running); n != 1 {
				t.Errorf("after outage %d: %s said %d times at INFO that it started running, want 1 (at start; then \"again\")", outage, name, n)
			}
		}
	}
}

// TestLostConnectionIsLoggedOnce: a batch whose connection is lost under
// it, again and again, is said once at WARN, then at DEBUG, and once at
// INFO when the projection applies it. Before, each attempt was a WARN
// line, and none said when it was applied.
func TestLostConnectionIsLoggedOnce(t *testing.T) {
	e := newEnv(t)
	logs := &logbuf.Buffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the runner's log:\n%s", logs)
		}
	})
	var attempts atomic.Int32
	runner, err := projections.NewRunner(e.pool, e.store, log, projections.Options{Poll: 50 * time.Millisecond, LeaderRetry: 50 * time.Millisecond, RetryBackoff: 10 * time.Millisecond},
		dropsConn{drops: 4, attempts: &attempts})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = runner.Run(ctx) })
	t.Cleanup(func() { stop(); wg.Wait() })
	res, err := e.store.Append(context.Background(), "misc-1", domain.ExpectAny, domain.EventData{Type: "Misc", SchemaVersion: 1, Data: json.RawMessage(`{"n": 1}`)})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the projection to apply the event", caughtUp(t, e, "dropsconn", 1, res.LastPosition))
	// It says so in the round that applied it, just after the commit.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if count(logLines(t, logs), "dropsconn", func(l logLine) bool { return l.Msg == "running projection again" }) > 0 {
			break
		}
	}

	lost := func(l logLine) bool { return l.Msg == "projection lost its database connection; retrying" }
	lines := logLines(t, logs)
	for _, c := range []struct {
		what string
		keep func(logLine) bool
		want int
	}{
		{"WARN lines", func(l logLine) bool { return l.Level == "WARN" || l.Level == "ERROR" }, 1},
		{"WARN lines of a lost connection", func(l logLine) bool { return lost(l) && l.Level == "WARN" }, 1},
		{"DEBUG lines of a lost connection", func(l logLine) bool { return lost(l) && l.Level == "DEBUG" }, 3},
		{"INFO lines of running again", func(l logLine) bool { return l.Msg == "running projection again" && l.Level == "INFO" }, 1},
	} {
		if n := count(lines, "dropsconn", c.keep); n != c.want {
			t.Errorf("%d %s after %d lost connections, want %d", n, c.what, attempts.Load()-1, c.want)
		}
	}
}
