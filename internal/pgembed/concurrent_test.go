package pgembed_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
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

// On a filesystem without flock (some network filesystems) the data
// directory is still locked, by a file beside it that holds the process
// id: a second lock is refused while the first is held, and a file left
// by a process that died is taken over. The gateway did not start there.
func TestDataDirLockWithoutFlock(t *testing.T) {
	pgembed.WithoutFlock(t)
	dir := pgembed.TempDataDir(t)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	first, err := pgembed.LockDataDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pgembed.LockDataDir(dir); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("a second lock while the first is held: %v, want in use", err)
	}
	lockPath := filepath.Join(filepath.Dir(dir), ".data.lock")
	if b, err := os.ReadFile(lockPath); err != nil || string(b) != strconv.Itoa(os.Getpid()) {
		t.Fatalf("lock file %s: %q %v, want this process's id", lockPath, b, err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	// A file left by a process that has died.
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(lockPath, []byte(strconv.Itoa(dead.Process.Pid)), 0o600); err != nil {
		t.Fatal(err)
	}
	again, err := pgembed.LockDataDir(dir)
	if err != nil {
		t.Fatalf("over a dead process's lock file: %v", err)
	}
	if err := again.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(lockPath); !os.IsNotExist(err) {
		t.Fatalf("the lock file is left after Close: %v", err)
	}
}
