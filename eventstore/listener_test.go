package eventstore_test

import (
	"context"
	"testing"
	"time"

	"cqrsgate/eventstore"
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
