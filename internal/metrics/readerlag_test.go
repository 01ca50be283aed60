package metrics_test

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"cqrsgate/domain"
	"cqrsgate/eventstore"
	"cqrsgate/internal/metrics"
	"cqrsgate/internal/pgtest"
)

// gauge returns the value of the unlabelled gauge name in body, and false
// when body has no sample of it.
func gauge(t *testing.T, body, name string) (float64, bool) {
	t.Helper()
	lines := series(body, name)
	if len(lines) == 0 {
		return 0, false
	}
	v, err := strconv.ParseFloat(strings.TrimPrefix(lines[0], name+" "), 64)
	if err != nil {
		t.Fatalf("%s: %v", lines[0], err)
	}
	return v, true
}

// An open transaction with an id holds back every reader of the log:
// /metrics shows how far (cqrsgate_log_held_back_positions) and for how
// long (cqrsgate_log_held_back_seconds), and both are 0 once it ends.
// Before the watch is first done looking they are left out.
func TestHeldBackReadersGauges(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	log := slog.New(slog.DiscardHandler)
	store := eventstore.NewPostgres(pool, log, eventstore.Limits{}, eventstore.NewBroadcaster())
	watch := eventstore.NewLagWatch(store, log, eventstore.LagWatchOptions{Every: 50 * time.Millisecond})
	m := metrics.New()
	m.ReaderLag(watch)
	if _, ok := gauge(t, scrape(t, m), "cqrsgate_log_held_back_positions"); ok {
		t.Fatal("the gauges are served before the watch has looked")
	}
	watchCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- watch.Run(watchCtx) }()
	defer func() { stop(); <-done }()

	holder, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback(ctx)
	if _, err := holder.Exec(ctx, "SELECT pg_current_xact_id()"); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := store.Append(ctx, "acc-1", domain.ExpectAny, domain.EventData{Type: "AccountOpened", SchemaVersion: 1, Data: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	await := func(what string, ok func(positions, seconds float64) bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			body := scrape(t, m)
			positions, ok1 := gauge(t, body, "cqrsgate_log_held_back_positions")
			seconds, ok2 := gauge(t, body, "cqrsgate_log_held_back_seconds")
			if ok1 && ok2 && ok(positions, seconds) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("no scrape %s within 10s; the last: positions %v (%v), seconds %v (%v)", what, positions, ok1, seconds, ok2)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	await("with the readers held back", func(positions, seconds float64) bool { return positions >= 2 && seconds >= 0.2 })
	if err := holder.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	await("with the readers caught up", func(positions, seconds float64) bool { return positions == 0 && seconds == 0 })
}
