package eventstore_test

import (
	"context"
	"testing"
	"time"

	"cqrsgate/domain"
	"cqrsgate/eventstore"
	"cqrsgate/eventstore/eventstoretest"
	"cqrsgate/internal/pgtest"
)

// TestListenerReconnectsPromptlyAfterEachLoss: each time its connection is
// ended (an operator's pg_terminate_backend, a proxy recycling
// connections), the Listener listens again within its first backoff and
// wakes the followers (commits may have been missed meanwhile). Its
// backoff grew with every loss over the process's life, so that after a
// few it was 5 seconds away each time: 5 seconds of commits by other
// processes seen only by the followers' polls.
func TestListenerReconnectsPromptlyAfterEachLoss(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	wake := eventstore.NewBroadcaster()
	lis := eventstore.NewListener(pool.Config().ConnConfig.Copy(), wake, quietLogger())
	lisCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- lis.Run(lisCtx) }()
	defer func() { stop(); <-done }()
	<-lis.Ready()
	for loss := 1; loss <= 6; loss++ {
		woken := wake.Changed()
		for {
			var ended int
			err := pool.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
				WHERE datname = current_database() AND query = 'LISTEN `+eventstore.NotifyChannel+`'`).Scan(&ended)
			if err != nil {
				t.Fatal(err)
			}
			if ended > 0 {
				break
			}
			time.Sleep(10 * time.Millisecond) // not listening yet
		}
		select {
		case <-woken:
		case <-time.After(time.Second):
			t.Fatalf("loss %d: the listener did not listen again within a second", loss)
		}
	}
}

// TestListenerNoticesAConnectionThatDiedSilently: a LISTEN connection that
// dies without the network saying so (a NAT, proxy or firewall dropping
// its state, a failover address moving: no reset, no close), simulated
// by a proxy that stops forwarding, is noticed by the Listener's check
// (a round trip after CheckAfter without a notification, which must
// answer within CheckTimeout) and made again, so that other processes'
// commits wake this one's followers again. The Listener waited on it for
// notifications that never came, until TCP keepalive gave up (minutes):
// meanwhile other processes' commits reached the followers only at their
// polls. A quiet connection that answers is kept.
func TestListenerNoticesAConnectionThatDiedSilently(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	proxy := pgtest.NewProxy(t, pool.Config().ConnConfig)
	wake := eventstore.NewBroadcaster()
	lis := eventstore.NewListener(proxy.ConnConfig(pool.Config().ConnConfig), wake, quietLogger())
	lis.CheckAfter, lis.CheckTimeout = 100*time.Millisecond, time.Second
	lisCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- lis.Run(lisCtx) }()
	defer func() { stop(); <-done }()
	<-lis.Ready()
	other := newPostgres(t, pool) // another process: its commits reach this one by NOTIFY only

	// heard appends in another process until the Listener passes one of
	// its notifications on, or within fails.
	heard := func(within time.Duration) bool {
		t.Helper()
		deadline := time.Now().Add(within)
		for time.Now().Before(deadline) {
			res, err := other.Append(ctx, "other", domain.ExpectAny, eventstoretest.Ev("Opened", 1))
			if err != nil {
				t.Fatal(err)
			}
			for range 10 {
				if wake.Latest() >= res.LastPosition {
					return true
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		return false
	}
	if !heard(5 * time.Second) {
		t.Fatal("another process's commit was not passed on through the proxy")
	}
	time.Sleep(time.Second) // quiet: checked several times
	if n := proxy.Accepted(); n != 1 {
		t.Fatalf("a quiet connection that answers its checks was made again: %d connections", n)
	}
	if !heard(5 * time.Second) {
		t.Fatal("another process's commit was not passed on after a quiet second")
	}

	proxy.Blackhole()
	lost := time.Now()
	if !heard(5 * time.Second) {
		t.Fatal("5s after the connection died silently, the listener has not listened again")
	}
	t.Logf("listening again within %v of the loss", time.Since(lost).Round(time.Millisecond))
}
