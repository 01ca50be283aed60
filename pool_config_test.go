package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"cqrsgate/internal/pgdial"
	"cqrsgate/internal/pgembed"
	"cqrsgate/internal/pgtest"
)

// TestDatabaseURLTCPSettings: the pool's connections dial with TCP
// keepalive and TCP_USER_TIMEOUT, libpq's parameters of DATABASE_URL or
// the defaults (a connection that dies silently is noticed within about
// 30 s, where it hung for the kernel's retransmissions, some 15 minutes),
// and those parameters are not passed to the server, which refuses them;
// an idle connection's ping before it is handed out has 5 s unless the URL
// sets pool_ping_timeout. The embedded PostgreSQL's Unix socket gets the
// same configuration, which TCP's options do not touch.
func TestDatabaseURLTCPSettings(t *testing.T) {
	for _, tc := range []struct {
		url  string
		tcp  pgdial.Settings
		ping time.Duration
	}{
		{"postgres://u:p@db.example:5432/app", pgdial.Defaults(), 5 * time.Second},
		{"postgres://u:p@db.example/app?keepalives=1&keepalives_idle=60&keepalives_interval=10&keepalives_count=5&tcp_user_timeout=45000&pool_ping_timeout=2s",
			pgdial.Settings{Keepalives: true, KeepalivesIdle: time.Minute, KeepalivesInterval: 10 * time.Second, KeepalivesCount: 5, UserTimeout: 45 * time.Second}, 2 * time.Second},
		{"host=db.example user=u keepalives=0 tcp_user_timeout=0 pool_ping_timeout=0s",
			pgdial.Settings{KeepalivesIdle: 15 * time.Second, KeepalivesInterval: 5 * time.Second, KeepalivesCount: 3}, 0},
		{"postgres://postgres@/cqrsgate?host=/tmp/cqrsgate-pg-x&port=5432", pgdial.Defaults(), 5 * time.Second},
	} {
		cfg, err := loadConfig(nil, func(k string) string { return map[string]string{"DATABASE_URL": tc.url}[k] }, io.Discard)
		if err != nil {
			t.Fatalf("%s: %v", tc.url, err)
		}
		poolCfg, tcp, err := poolConfig(cfg.DatabaseURL, true, cfg.DBMaxConns)
		if err != nil {
			t.Fatalf("%s: %v", tc.url, err)
		}
		if tcp != tc.tcp || poolCfg.PingTimeout != tc.ping || poolCfg.ConnConfig.ConnectTimeout != 10*time.Second || poolCfg.ConnConfig.DialFunc == nil {
			t.Errorf("%s: %+v, ping timeout %v, connect timeout %v; want %+v, %v, 10s", tc.url, tcp, poolCfg.PingTimeout, poolCfg.ConnConfig.ConnectTimeout, tc.tcp, tc.ping)
		}
		for k := range poolCfg.ConnConfig.RuntimeParams {
			if strings.HasPrefix(k, "keepalives") || k == "tcp_user_timeout" || strings.HasPrefix(k, "pool_") {
				t.Errorf("%s: %s is sent to the server, which refuses it", tc.url, k)
			}
		}
	}
}

// TestPoolDropsAnIdleConnectionThatDiedSilently: a pool connection that
// died without a word while idle (through a proxy that stops forwarding:
// TCP keepalive cannot see it, the proxy's kernel answers) is found dead
// by the ping it gets before it is used, within pool_ping_timeout, and
// another is made: the statement runs. pgx's ping had no deadline, and the
// statement hung on it for as long as the connection took to die (here,
// for ever; through a NAT, until TCP gave up).
func TestPoolDropsAnIdleConnectionThatDiedSilently(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	ctx := context.Background()
	cluster, err := pgembed.Start(ctx, pgembed.Options{DataDir: pgDataDir(t), Database: "cqrsgate"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cluster.Stop(context.Background()) })
	direct, err := pgx.ParseConfig(cluster.URL())
	if err != nil {
		t.Fatal(err)
	}
	// Closed after the proxy: pgx gives a connection it gave up on 15 s to
	// hear the server close it, which the proxy's end brings at once.
	var pool *pgxpool.Pool
	t.Cleanup(func() {
		if pool != nil {
			pool.Close()
		}
	})
	proxy := pgtest.NewProxy(t, direct)
	url := fmt.Sprintf("postgres://%s@%s/%s?sslmode=disable&pool_ping_timeout=500ms", direct.User, proxy.Addr(), direct.Database)
	poolCfg, _, err := poolConfig(url, true, 2)
	if err != nil {
		t.Fatal(err)
	}
	if pool, err = pgxpool.NewWithConfig(ctx, poolCfg); err != nil {
		t.Fatal(err)
	}
	one := func() error {
		var n int
		return pool.QueryRow(ctx, "SELECT 1").Scan(&n)
	}
	if err := one(); err != nil {
		t.Fatal(err)
	}
	proxy.Blackhole()
	time.Sleep(1100 * time.Millisecond) // idle long enough to be pinged before use
	done := make(chan error, 1)
	lost := time.Now()
	go func() { done <- one() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("after the pool's connection died silently: %v", err)
		}
		t.Logf("answered %v after the connection died, on a new one", time.Since(lost).Round(time.Millisecond))
	case <-time.After(10 * time.Second):
		t.Fatal("a statement still waits, 10 s on, on a pool connection that died silently")
	}
}
