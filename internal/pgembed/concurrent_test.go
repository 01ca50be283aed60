package pgembed_test

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"cqrsgate/internal/pgembed"
)

// TestConcurrentStartsOnAFreshDataDir: two gateways started at once on a
// fresh data directory (a restart loop and an operator, two replicas on one
// volume): one may lose, but one wins, and the loser does not touch the
// winner's cluster. The loser's initdb failed ("exists but is not empty")
// and its clean-up deleted everything in the directory, under the winner's
// initdb: both failed.
func TestConcurrentStartsOnAFreshDataDir(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := dataDir(t)
	var wg sync.WaitGroup
	clusters := make([]*pgembed.Cluster, 2)
	errs := make([]error, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			clusters[i], errs[i] = pgembed.Start(ctx, pgembed.Options{DataDir: dir, Logger: testLogger(t)})
		}()
	}
	wg.Wait()
	var winner *pgembed.Cluster
	for i, c := range clusters {
		if c != nil {
			t.Cleanup(func() { _ = c.Stop(context.Background()) })
			winner = c
		} else {
			t.Logf("start %d: %.300v", i, errs[i])
		}
	}
	if winner == nil {
		t.Fatal("both concurrent Starts failed")
	}
	if _, err := os.Stat(filepath.Join(dir, "PG_VERSION")); err != nil {
		t.Fatalf("the winner's cluster lost its files: %v", err)
	}
	if got := queryString(t, ctx, winner.URL(), "SELECT 'ok'"); got != "ok" {
		t.Fatal("winner does not answer")
	}
}
