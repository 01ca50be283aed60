package projections_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"cqrsgate/domain"
	"cqrsgate/internal/logbuf"
	"cqrsgate/projections"
)

// failedRebuild sets up what used to block a projection for good: the
// serving generation of poison was moved past the poisoned event (skipped),
// and a rebuild, which reads the log from the start, failed on it. It
// returns the position of the poisoned event.
func failedRebuild(t *testing.T, e *env) int64 {
	t.Helper()
	ctx := context.Background()
	e.start(t, projections.Options{MaxFailures: 2, RetryBackoff: 10 * time.Millisecond}, poison{})
	appendMisc(t, e, `{"n": 1}`)
	bad := appendMisc(t, e, `{"poison": true}`).LastPosition
	last := appendMisc(t, e, `{"n": 3}`).LastPosition
	waitFor(t, "poison to fail", func() bool { return status(t, e.pool, "poison", 1).Status == "FAILED" })
	if _, err := projections.Skip(ctx, e.pool, "poison", bad); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "poison to pass the event", caughtUp(t, e, "poison", 1, last))
	added, err := projections.Rebuild(ctx, e.pool, "poison")
	if err != nil {
		t.Fatal(err)
	}
	if added.Generation != 2 || added.Serving || added.Status != "RUNNING" {
		t.Fatalf("Rebuild returned %+v, want generation 2, RUNNING, not serving", added)
	}
	waitFor(t, "the rebuild to fail", func() bool {
		g := generation(t, e, "poison", 2)
		return g.Status == "FAILED" && g.FailedPosition == bad
	})
	if !schemaExists(t, e, projections.GenerationSchema("poison", 1, 2)) {
		t.Fatal("the failed rebuild has no schema")
	}
	return bad
}

func appendMisc(t *testing.T, e *env, data string) domain.AppendResult {
	t.Helper()
	res, err := e.store.Append(context.Background(), "misc-1", domain.ExpectAny, domain.EventData{Type: "Misc", SchemaVersion: 1, Data: json.RawMessage(data)})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// generation returns the status of a generation of version 1 of
// projection name that is not retired (zero when there is none).
func generation(t *testing.T, e *env, name string, g int) projections.Status {
	t.Helper()
	list, err := projections.List(context.Background(), e.pool)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range list {
		if s.Name == name && s.Version == 1 && s.Generation == g {
			return s
		}
	}
	return projections.Status{}
}

// live returns the generations of projection name that are not retired.
func live(t *testing.T, e *env, name string) []int {
	t.Helper()
	list, err := projections.List(context.Background(), e.pool)
	if err != nil {
		t.Fatal(err)
	}
	var gs []int
	for _, s := range list {
		if s.Name == name {
			gs = append(gs, s.Generation)
		}
	}
	return gs
}

func schemaExists(t *testing.T, e *env, schema string) bool {
	t.Helper()
	var exists bool
	if err := e.pool.QueryRow(context.Background(), `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, schema).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	return exists
}

func seenEvents(t *testing.T, e *env) int {
	t.Helper()
	var n int
	if err := e.pool.QueryRow(context.Background(), `SELECT count(*) FROM readmodel.seen_events`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestCancelAFailedRebuild: a rebuild generation that FAILED blocked the
// projection for good: every other rebuild was refused
// (REBUILD_IN_PROGRESS), and retry and skip only took it on. CancelRebuild
// retires it and drops its tables; the serving generation goes on, and a
// new rebuild can start.
func TestCancelAFailedRebuild(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	bad := failedRebuild(t, e)

	cancelled, err := projections.CancelRebuild(ctx, e.pool, "poison")
	if err != nil {
		t.Fatalf("CancelRebuild: %v", err)
	}
	if len(cancelled) != 1 || cancelled[0].Generation != 2 || cancelled[0].Status != "FAILED" || cancelled[0].FailedPosition != bad {
		t.Fatalf("CancelRebuild returned %+v, want generation 2 as it stood (FAILED at %d)", cancelled, bad)
	}
	if gs := live(t, e, "poison"); len(gs) != 1 || gs[0] != 1 {
		t.Fatalf("live generations after the cancel: %v, want [1]", gs)
	}
	if schemaExists(t, e, projections.GenerationSchema("poison", 1, 2)) {
		t.Fatal("the cancelled rebuild's schema was not dropped")
	}
	var st string
	if err := e.pool.QueryRow(ctx, `SELECT status FROM projections WHERE name = 'poison' AND generation = 2`).Scan(&st); err != nil || st != "RETIRED" {
		t.Fatalf("the cancelled generation's row: %q, %v; want RETIRED", st, err)
	}

	// The serving generation goes on.
	more := appendMisc(t, e, `{"n": 4}`).LastPosition
	waitFor(t, "generation 1 to go on", caughtUp(t, e, "poison", 1, more))
	if n := seenEvents(t, e); n != 3 {
		t.Fatalf("the serving read model has %d events, want 3", n)
	}

	for what, c := range map[string]struct {
		err  error
		code domain.Code
		rule string
	}{
		"a second cancel":     {errOf(projections.CancelRebuild(ctx, e.pool, "poison")), domain.RuleViolation, "NO_REBUILD_IN_PROGRESS"},
		"an unknown name":     {errOf(projections.CancelRebuild(ctx, e.pool, "nope")), domain.NotFound, ""},
		"Admin.CancelRebuild": {errOf(projections.NewAdmin(e.pool).CancelRebuild(ctx, "poison")), domain.RuleViolation, "NO_REBUILD_IN_PROGRESS"},
	} {
		var de *domain.Error
		if !errors.As(c.err, &de) || de.Code != c.code || de.Rule != c.rule {
			t.Errorf("%s: %v, want %s %s", what, c.err, c.code, c.rule)
		}
	}

	// A rebuild starts again, as generation 3.
	added, err := projections.Rebuild(ctx, e.pool, "poison")
	if err != nil || added.Generation != 3 {
		t.Fatalf("a rebuild after the cancel: %+v, %v; want generation 3", added, err)
	}
}

// TestRebuildReplacesAFailedRebuild: rebuildProjection, asked for while a
// rebuild has FAILED, starts over in a new generation where it was refused
// (REBUILD_IN_PROGRESS); the failed one is dropped. Skip then moves the
// new one past the event (and acts on it alone: the serving generation has
// not failed), and it takes over.
func TestRebuildReplacesAFailedRebuild(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	bad := failedRebuild(t, e)

	added, err := projections.Rebuild(ctx, e.pool, "poison")
	if err != nil {
		t.Fatalf("a rebuild while the rebuild before it has failed: %v", err)
	}
	if added.Generation != 3 || added.Status != "RUNNING" || added.Position != 0 {
		t.Fatalf("Rebuild returned %+v, want generation 3 RUNNING from the start", added)
	}
	if schemaExists(t, e, projections.GenerationSchema("poison", 1, 2)) {
		t.Fatal("the failed rebuild's schema was not dropped")
	}
	if gs := live(t, e, "poison"); len(gs) != 2 || gs[0] != 1 || gs[1] != 3 {
		t.Fatalf("live generations: %v, want [1 3]", gs)
	}
	waitFor(t, "the new rebuild to fail on the same event", func() bool { return generation(t, e, "poison", 3).Status == "FAILED" })
	skipped, err := projections.Skip(ctx, e.pool, "poison", bad)
	if err != nil {
		t.Fatal(err)
	}
	if len(skipped) != 1 || skipped[0].Generation != 3 || skipped[0].Status != "RUNNING" {
		t.Fatalf("Skip returned %+v, want generation 3 alone, RUNNING", skipped)
	}
	waitFor(t, "generation 3 to serve", func() bool {
		gs := live(t, e, "poison")
		return len(gs) == 1 && gs[0] == 3 && generation(t, e, "poison", 3).Serving
	})
	if n := seenEvents(t, e); n != 2 {
		t.Fatalf("the rebuilt read model has %d events, want 2", n)
	}
}

// held is a projection (poison) whose Apply, in generation 2, once, has
// written the batch's rows (so its transaction holds the tables) and then
// closes entered and waits until release is closed.
type held struct {
	poison
	entered, release chan struct{}
	once             *sync.Once
}

func (h held) Apply(ctx context.Context, tx pgx.Tx, events []domain.RecordedEvent) error {
	if err := h.poison.Apply(ctx, tx, events); err != nil {
		return err
	}
	var schema string
	if err := tx.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		return err
	}
	if strings.HasSuffix(schema, "_g2") {
		h.once.Do(func() {
			close(h.entered)
			<-h.release
		})
	}
	return nil
}

// TestCancelARebuildMidBatch: a cancel that comes while the runner applies
// a batch to the rebuild waits for that batch, and the runner then forgets
// the generation and goes on with the serving one, without stopping (it
// used to stop on the rebuild's missing tables or row, and start over
// after LeaderRetry, holding up the serving generation as well).
func TestCancelARebuildMidBatch(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	logs := &logbuf.Buffer{}
	h := held{entered: make(chan struct{}), release: make(chan struct{}), once: &sync.Once{}}
	r, err := projections.NewRunner(e.pool, e.store, slog.New(slog.NewTextHandler(logs, nil)),
		projections.Options{BatchSize: 2, CatchUpBatchSize: 2, Poll: 50 * time.Millisecond, LeaderRetry: time.Minute}, h)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(runCtx) }()
	defer func() { stop(); <-done }()
	var last int64
	for i := range 10 {
		last = appendMisc(t, e, fmt.Sprintf(`{"n": %d}`, i)).LastPosition
	}
	waitFor(t, "generation 1 to catch up", caughtUp(t, e, "poison", 1, last))
	if _, err := projections.Rebuild(ctx, e.pool, "poison"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-h.entered:
	case <-time.After(20 * time.Second):
		t.Fatal("the rebuild applied no batch")
	}
	type result struct {
		cancelled []projections.Status
		err       error
	}
	cancelled := make(chan result, 1)
	go func() {
		list, err := projections.CancelRebuild(ctx, e.pool, "poison")
		cancelled <- result{list, err}
	}()
	// The cancel waits for the batch's transaction (its tables are locked).
	waitFor(t, "the cancel to wait for the batch", func() bool {
		var waiting bool
		err := e.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE NOT granted AND locktype = 'relation')`).Scan(&waiting)
		return err == nil && waiting
	})
	select {
	case res := <-cancelled:
		t.Fatalf("the cancel returned (%+v, %v) while a batch of the rebuild was being applied", res.cancelled, res.err)
	default:
	}
	close(h.release)
	var res result
	select {
	case res = <-cancelled:
	case <-time.After(20 * time.Second):
		t.Fatal("the cancel did not return once the batch was applied")
	}
	if res.err != nil || len(res.cancelled) != 1 || res.cancelled[0].Generation != 2 {
		t.Fatalf("CancelRebuild: %+v, %v; want generation 2", res.cancelled, res.err)
	}
	if schemaExists(t, e, projections.GenerationSchema("poison", 1, 2)) {
		t.Fatal("the cancelled rebuild's schema was not dropped")
	}
	// The serving generation goes on, and its runner did not stop.
	more := appendMisc(t, e, `{"n": 10}`).LastPosition
	waitFor(t, "generation 1 to go on", caughtUp(t, e, "poison", 1, more))
	time.Sleep(300 * time.Millisecond) // the runner's copy of the rows is at most 250 ms old
	if gs := live(t, e, "poison"); len(gs) != 1 || gs[0] != 1 {
		t.Fatalf("live generations: %v, want [1]", gs)
	}
	if s := logs.String(); strings.Contains(s, "level=WARN") || strings.Contains(s, "level=ERROR") {
		t.Fatalf("the runner complained about the cancel:\n%s", s)
	}
	if n := seenEvents(t, e); n != 11 {
		t.Fatalf("the serving read model has %d events, want 11", n)
	}
}

// TestCancelDoesNotRaceTheSwitchOver: a cancel that comes as the rebuild
// switches to serving either cancels it (the old generation serves on) or
// finds none under way (the new one serves): never a serving generation
// whose tables were dropped, nor two generations left.
func TestCancelDoesNotRaceTheSwitchOver(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.start(t, projections.Options{Poll: 20 * time.Millisecond, LeaderRetry: 20 * time.Millisecond}, poison{})
	var last int64
	for i := range 20 {
		last = appendMisc(t, e, fmt.Sprintf(`{"n": %d}`, i)).LastPosition
	}
	waitFor(t, "generation 1 to catch up", caughtUp(t, e, "poison", 1, last))
	outcomes := map[string]int{}
	for i := range 8 {
		if _, err := projections.Rebuild(ctx, e.pool, "poison"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(i*3) * time.Millisecond)
		_, err := projections.CancelRebuild(ctx, e.pool, "poison")
		var de *domain.Error
		switch {
		case err == nil:
			outcomes["cancelled"]++
		case errors.As(err, &de) && de.Rule == "NO_REBUILD_IN_PROGRESS":
			outcomes["switched first"]++
		default:
			t.Fatalf("CancelRebuild: %v", err)
		}
		waitFor(t, "one generation to be left", func() bool { return len(live(t, e, "poison")) == 1 })
		serving := live(t, e, "poison")[0]
		if !generation(t, e, "poison", serving).Serving {
			t.Fatalf("generation %d is left and does not serve", serving)
		}
		if n := seenEvents(t, e); n != 20 {
			t.Fatalf("round %d: the read model has %d events, want 20", i, n)
		}
		var schemas []string
		rows, err := e.pool.Query(ctx, `SELECT nspname FROM pg_namespace WHERE nspname LIKE 'rm\_poison\_%' ORDER BY 1`)
		if err != nil {
			t.Fatal(err)
		}
		if schemas, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			t.Fatal(err)
		}
		if len(schemas) != 1 || schemas[0] != projections.GenerationSchema("poison", 1, serving) {
			t.Fatalf("round %d: schemas %v with generation %d serving", i, schemas, serving)
		}
	}
	t.Logf("outcomes: %v", outcomes)
}
