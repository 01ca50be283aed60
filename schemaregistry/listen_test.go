package schemaregistry_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"cqrsgate/internal/pgtest"
	"cqrsgate/schemaregistry"
)

// runRegistry runs r until the test ends.
func runRegistry(t *testing.T, r *schemaregistry.Registry) {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(ctx) }()
	t.Cleanup(func() { stop(); <-done })
}

// seen waits up to within for r to know eventType without being asked
// (Latest reads its copy only).
func seen(r *schemaregistry.Registry, eventType string, within time.Duration) bool {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if r.Latest(eventType) > 0 {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// TestRegistryNoticesAConnectionThatDiedSilently: the connection Run
// listens on dies without the network saying so (a NAT, proxy or firewall
// dropping its state, a failover address moving: no reset, no close),
// simulated by a proxy that stops forwarding. Its check of the revision,
// after ListenCheckAfter without a notification, must answer within
// ListenCheckTimeout; it does not, and the connection is made again, so
// that other processes' changes reach this one again. The check had no
// deadline: Run hung on it until TCP gave up (here, for ever), and this
// process never heard of another's registrations meanwhile.
func TestRegistryNoticesAConnectionThatDiedSilently(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	other, err := pgxpool.New(ctx, url) // another process, not through the proxy
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(other.Close)
	direct, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	// Closed after the proxy, which ends the connections pgx gave up on
	// (it waits up to 15 s for the server to close them).
	var pool *pgxpool.Pool
	t.Cleanup(func() {
		if pool != nil {
			pool.Close()
		}
	})
	proxy := pgtest.NewProxy(t, direct.ConnConfig)
	cfg := direct.Copy()
	cfg.ConnConfig = proxy.ConnConfig(direct.ConnConfig)
	cfg.PingTimeout = 500 * time.Millisecond // as the gateway's pool (pool_ping_timeout)
	if pool, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	r, err := schemaregistry.New(ctx, pool, nil, log, schemaregistry.Options{ListenCheckAfter: 100 * time.Millisecond, ListenCheckTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	runRegistry(t, r)
	writer, err := schemaregistry.New(ctx, other, nil, log, schemaregistry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	register := func(eventType string) {
		t.Helper()
		if _, err := writer.Register(ctx, schemaregistry.Registration{Type: eventType, Schema: json.RawMessage(`{"type": "object"}`)}); err != nil {
			t.Fatal(err)
		}
	}

	register("Before")
	if !seen(r, "Before", 5*time.Second) {
		t.Fatal("another process's registration was not seen through the proxy")
	}
	time.Sleep(time.Second) // quiet: checked several times
	accepted := proxy.Accepted()
	register("Quiet")
	if !seen(r, "Quiet", 5*time.Second) {
		t.Fatal("another process's registration was not seen after a quiet second")
	}
	if n := proxy.Accepted(); n != accepted {
		t.Fatalf("a quiet listening connection that answers its checks was made again: %d connections, then %d", accepted, n)
	}

	proxy.Blackhole()
	lost := time.Now()
	register("After")
	if !seen(r, "After", 10*time.Second) {
		t.Fatal("10 s after its listening connection died silently, the registry has not seen another process's registration")
	}
	t.Logf("seen %v after the loss", time.Since(lost).Round(time.Millisecond))
}

// TestRegistryListensAgainPromptlyAfterEachLoss: each time its listening
// connection is ended (an operator's pg_terminate_backend, a proxy
// recycling connections, one that did not answer its check), Run listens
// again after its first backoff, a second. The backoff grew with every
// loss over the process's life, to 30 s: after a few losses, other
// processes' changes went unseen for that long each time.
func TestRegistryListensAgainPromptlyAfterEachLoss(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	r, err := schemaregistry.New(ctx, pool, nil, slog.New(slog.DiscardHandler), schemaregistry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	runRegistry(t, r)
	// listening waits up to within for a listening connection of the
	// registry's it has not ended before, and ends it.
	ended := map[int32]bool{}
	listening := func(within time.Duration) bool {
		t.Helper()
		deadline := time.Now().Add(within)
		for time.Now().Before(deadline) {
			var pids []int32
			err := pool.QueryRow(ctx, `SELECT coalesce(array_agg(pid), '{}') FROM pg_stat_activity
				WHERE datname = current_database() AND query = 'LISTEN `+schemaregistry.Channel+`'`).Scan(&pids)
			if err != nil {
				t.Fatal(err)
			}
			for _, pid := range pids {
				if !ended[pid] {
					ended[pid] = true
					if _, err := pool.Exec(ctx, "SELECT pg_terminate_backend($1)", pid); err != nil {
						t.Fatal(err)
					}
					return true
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
		return false
	}
	if !listening(5 * time.Second) {
		t.Fatal("the registry did not listen")
	}
	for loss := 1; loss <= 4; loss++ {
		if !listening(3 * time.Second) {
			t.Fatalf("loss %d: the registry did not listen again within 3 s", loss)
		}
	}
}
