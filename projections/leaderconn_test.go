package projections_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"cqrsgate/domain"
	"cqrsgate/eventstore"
	"cqrsgate/internal/logbuf"
	"cqrsgate/internal/pgtest"
	"cqrsgate/projections"
)

// TestLeaderConnectionThatDiedSilentlyIsGivenUp: the connection that holds
// a projection's lock dies without the network saying so (a NAT, proxy or
// firewall dropping its state, a failover address moving: no reset, no
// close), simulated by a proxy that stops forwarding it. Its next ping
// (the runner pings it several times a second) must answer within
// LeaderCheckTimeout; it does not, and the runner steps down, logging
// why, and leads again once the lock is free: when the server, its own
// keepalive giving up, ends the dead session. The ping had no deadline:
// the projection hung on it until TCP gave up (here, for ever), and
// stayed stopped after the server let the lock go.
func TestLeaderConnectionThatDiedSilentlyIsGivenUp(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	direct, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	// The runner's pool connects directly; its leader connection, made
	// with the pool's ConnConfig, through the proxy.
	var pool *pgxpool.Pool
	t.Cleanup(func() { // after the proxy, which ends the connections pgx gave up on
		if pool != nil {
			pool.Close()
		}
	})
	proxy := pgtest.NewProxy(t, direct.ConnConfig)
	cfg := direct.Copy()
	cfg.ConnConfig = proxy.ConnConfig(direct.ConnConfig)
	cfg.BeforeConnect = func(_ context.Context, c *pgx.ConnConfig) error {
		c.Host, c.Port, c.Fallbacks = direct.ConnConfig.Host, direct.ConnConfig.Port, nil
		return nil
	}
	if pool, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	store := eventstore.NewPostgres(pool, quiet, eventstore.Limits{}, eventstore.NewBroadcaster())
	logs := &logbuf.Buffer{}
	r, err := projections.NewRunner(pool, store, slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		projections.Options{Poll: 100 * time.Millisecond, LeaderRetry: 100 * time.Millisecond, LeaderCheckTimeout: 500 * time.Millisecond},
		dropsConn{attempts: &atomic.Int32{}})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(runCtx) }()
	t.Cleanup(func() { stop(); <-done })

	applied := func(within time.Duration) bool {
		t.Helper()
		res, err := store.Append(ctx, "misc-1", domain.ExpectAny, domain.EventData{Type: "Misc", SchemaVersion: 1, Data: json.RawMessage(`{"n": 1}`)})
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(within)
		for time.Now().Before(deadline) {
			if status(t, pool, "dropsconn", 1).Position >= res.LastPosition {
				return true
			}
			time.Sleep(20 * time.Millisecond)
		}
		return false
	}
	if !applied(10 * time.Second) {
		t.Fatal("the projection did not apply an event")
	}
	if n := proxy.Accepted(); n != 1 {
		t.Fatalf("%d leader connections made, want 1", n)
	}

	proxy.Blackhole()
	lost := time.Now()
	for !strings.Contains(logs.String(), "leader connection did not answer within 500ms") {
		if time.Since(lost) > 10*time.Second {
			t.Fatalf("10 s after the leader connection died silently, the runner has not given it up:\n%s", logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("given up %v after it died", time.Since(lost).Round(time.Millisecond))

	// The server still holds the lock for the dead session: nobody runs
	// the projection until it ends it.
	proxy.EndServerSides()
	if !applied(10 * time.Second) {
		t.Fatalf("the projection did not apply an event once the server had ended the dead session:\n%s", logs)
	}
}
