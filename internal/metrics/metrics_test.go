package metrics_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"cqrsgate/domain"
	"cqrsgate/eventstore"
	"cqrsgate/internal/metrics"
	"cqrsgate/internal/pgtest"
	"cqrsgate/projections"
)

func TestMain(m *testing.M) {
	pgtest.Main(m, pgtest.Options{Migrate: pgtest.OnConn(func(ctx context.Context, conn *pgx.Conn) error {
		if err := eventstore.Migrate(ctx, conn); err != nil {
			return err
		}
		return projections.Migrate(ctx, conn)
	})})
}

// scrape answers GET /metrics of m, failing the test unless it is a 200.
func scrape(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	if rec.Code != 200 {
		t.Fatalf("/metrics: %d\n%.600s", rec.Code, body)
	}
	return string(body)
}

// series returns the lines of body holding samples of metric name.
func series(body, name string) []string {
	var out []string
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, name+"{") || strings.HasPrefix(l, name+" ") {
			out = append(out, l)
		}
	}
	return out
}

// rebuilding returns a database whose projection accounts v1 serves
// generation 1 and is being rebuilt as generation 2, its administration,
// an event store and a quiet log.
func rebuilding(t *testing.T) (*pgxpool.Pool, *projections.Admin, *eventstore.Postgres, *slog.Logger) {
	t.Helper()
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	log := slog.New(slog.DiscardHandler)
	store := eventstore.NewPostgres(pool, log, eventstore.Limits{}, eventstore.NewBroadcaster())
	if _, err := pool.Exec(ctx, `INSERT INTO projections (name, version, generation, position, serving) VALUES ('accounts', 1, 1, 0, true)`); err != nil {
		t.Fatal(err)
	}
	admin := projections.NewAdmin(pool)
	if _, err := admin.Rebuild(ctx, "accounts"); err != nil {
		t.Fatal(err)
	}
	return pool, admin, store, log
}

// During a rebuild the projections table holds two non-retired rows of
// one name and version (generations 1 and 2). /metrics must still
// answer, with both rows' series told apart by their generation.
func TestMetricsDuringRebuild(t *testing.T) {
	_, admin, store, log := rebuilding(t)
	m := metrics.New()
	m.Projections(admin, store, log)
	body := scrape(t, m)

	for _, want := range []string{
		`cqrsgate_projection_serving{generation="1",projection="accounts",version="1"} 1`,
		`cqrsgate_projection_serving{generation="2",projection="accounts",version="1"} 0`,
		`cqrsgate_projection_state{generation="1",projection="accounts",serving="true",state="RUNNING",version="1"} 1`,
		`cqrsgate_projection_state{generation="2",projection="accounts",serving="false",state="RUNNING",version="1"} 1`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("no %s in\n%s", want, strings.Join(append(series(body, "cqrsgate_projection_serving"), series(body, "cqrsgate_projection_state")...), "\n"))
		}
	}
	for _, name := range []string{"cqrsgate_projection_position", "cqrsgate_projection_lag_events", "cqrsgate_projection_lag_seconds", "cqrsgate_projection_serving", "cqrsgate_projection_state"} {
		if got := series(body, name); len(got) != 2 {
			t.Errorf("%s: %d series, want 2 (one per generation): %q", name, len(got), got)
		}
	}
	if len(series(body, "go_goroutines")) != 1 {
		t.Error("the Go runtime's metrics are missing")
	}
}

// TestFailedRebuildIsNotAFailedServingProjection: a rebuild that failed
// beside a serving generation leaves every query served (and /readyz
// ready, with a warning), so cqrsgate_projection_state says which of the
// two failed with its serving label, and an alert on
// {serving="true",state="FAILED"} stays quiet for the rebuild. Before,
// the two were the same series but for their generation, and an alert
// on state="FAILED" paged for a rebuild. {state="FAILED"} alone still
// selects both, as it did.
func TestFailedRebuildIsNotAFailedServingProjection(t *testing.T) {
	ctx := context.Background()
	pool, admin, store, log := rebuilding(t)
	fail := func(generation int) {
		t.Helper()
		tag, err := pool.Exec(ctx, `UPDATE projections SET status = 'FAILED', failures = 5, last_error = 'boom', failed_position = 1
			WHERE name = 'accounts' AND version = 1 AND generation = $1`, generation)
		if err != nil || tag.RowsAffected() != 1 {
			t.Fatalf("failing generation %d: %v, %d rows", generation, err, tag.RowsAffected())
		}
	}
	// scrapeState scrapes a fresh Metrics (the projections' reports are
	// reused for a second) and returns its state series.
	scrapeState := func() string {
		m := metrics.New()
		m.Projections(admin, store, log)
		return strings.Join(series(scrape(t, m), "cqrsgate_projection_state"), "\n") + "\n"
	}
	// What alert rules select, as the lines of their series.
	servingFailed := func(body string) []string {
		var out []string
		for _, l := range strings.Split(body, "\n") {
			if strings.Contains(l, `serving="true"`) && strings.Contains(l, `state="FAILED"`) {
				out = append(out, l)
			}
		}
		return out
	}

	fail(2)
	body := scrapeState()
	for _, want := range []string{
		`cqrsgate_projection_state{generation="1",projection="accounts",serving="true",state="RUNNING",version="1"} 1`,
		`cqrsgate_projection_state{generation="2",projection="accounts",serving="false",state="FAILED",version="1"} 1`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("the rebuild failed: no %s in\n%s", want, body)
		}
	}
	if got := servingFailed(body); len(got) != 0 {
		t.Errorf("the rebuild failed, the serving generation runs, yet {serving=\"true\",state=\"FAILED\"} selects %q", got)
	}
	if n := strings.Count(body, `state="FAILED"`); n != 1 {
		t.Errorf("{state=\"FAILED\"} selects %d series, want 1 (the rebuild):\n%s", n, body)
	}

	fail(1)
	body = scrapeState()
	want := `cqrsgate_projection_state{generation="1",projection="accounts",serving="true",state="FAILED",version="1"} 1`
	if got := servingFailed(body); len(got) != 1 || got[0] != want {
		t.Errorf("the serving generation failed: {serving=\"true\",state=\"FAILED\"} selects %q, want %s", got, want)
	}
}

// contextStore is a Postgres store whose Append answers a done
// context's error as the store does when the context ends during its
// queries (wrapped, not a *domain.Error), whatever the group commit
// would make of it.
type contextStore struct{ eventstore.Store }

func (s contextStore) Append(ctx context.Context, stream string, expected domain.ExpectedVersion, events ...domain.EventData) (domain.AppendResult, error) {
	if err := ctx.Err(); err != nil {
		return domain.AppendResult{}, fmt.Errorf("append to %s: %w", stream, err)
	}
	return s.Store.Append(ctx, stream, expected, events...)
}

// An append whose caller went away, or whose deadline passed, is neither
// ok nor an error of the store: it counts as cancelled or timeout.
func TestCancelledAndTimedOutAppends(t *testing.T) {
	pool := pgtest.NewPool(t)
	log := slog.New(slog.DiscardHandler)
	m := metrics.New()
	store := m.Store(contextStore{eventstore.NewPostgres(pool, log, eventstore.Limits{}, eventstore.NewBroadcaster())})
	ev := domain.EventData{Type: "Noted", SchemaVersion: 1, Data: json.RawMessage(`{"n":1}`)}

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := store.Append(cancelled, "note-1", domain.ExpectNoStream, ev); !errors.Is(err, context.Canceled) {
		t.Fatalf("append with a cancelled context: %v", err)
	}
	expired, cancel2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel2()
	if _, err := store.Append(expired, "note-2", domain.ExpectNoStream, ev); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("append past its deadline: %v", err)
	}
	if _, err := store.Append(context.Background(), "note-3", domain.ExpectNoStream, ev); err != nil {
		t.Fatal(err)
	}

	got := strings.Join(series(scrape(t, m), "cqrsgate_appends_total"), "\n")
	for _, want := range []string{
		`cqrsgate_appends_total{outcome="cancelled"} 1`,
		`cqrsgate_appends_total{outcome="timeout"} 1`,
		`cqrsgate_appends_total{outcome="ok"} 1`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("no %s in\n%s", want, got)
		}
	}
	if strings.Contains(got, `outcome="error"`) {
		t.Errorf("a cancelled or timed-out append counted as an error:\n%s", got)
	}
}

// TestCancelledCommandIsNotInternal: a command whose caller has gone is
// counted as cancelled, not as an internal error (operators chased
// internal errors that were clients going away), and writes nothing.
func TestCancelledCommandIsNotInternal(t *testing.T) {
	pool := pgtest.NewPool(t)
	log := slog.New(slog.DiscardHandler)
	m := metrics.New()
	pg := eventstore.NewPostgres(pool, log, eventstore.Limits{}, eventstore.NewBroadcaster())
	store := m.Store(pg)
	svc := domain.NewService(store, log, time.Now, domain.ServiceOptions{Observe: m.ObserveCommand})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := domain.Execute(ctx, svc, domain.Accounts, domain.OpenAccount{AccountID: "c1", Owner: "ada", Currency: "EUR"}, domain.CommandMeta{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if !strings.Contains(rec.Body.String(), `cqrsgate_commands_total{command="OpenAccount",outcome="cancelled"} 1`) {
		for _, l := range strings.Split(rec.Body.String(), "\n") {
			if strings.HasPrefix(l, "cqrsgate_commands_total") {
				t.Errorf("%s", l)
			}
		}
		t.Fatal("a cancelled command was not counted as cancelled")
	}
	if v, _ := pg.StreamVersion(context.Background(), "account-c1"); v != 0 {
		t.Fatalf("the cancelled command wrote: stream version %d", v)
	}
}
