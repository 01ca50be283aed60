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

// flocklessDataDir makes a data directory on a filesystem taken to have no
// flock, and names the lock file beside it.
func flocklessDataDir(t *testing.T) (dir, lockPath string) {
	t.Helper()
	pgembed.WithoutFlock(t)
	dir = pgembed.TempDataDir(t)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir, filepath.Join(filepath.Dir(dir), ".data.lock")
}

// On a filesystem without flock (some network filesystems) the data
// directory is still locked, by a file beside it that holds the process
// id: a second lock is refused while the first is held, and a file left
// by a process that died is taken over. The gateway did not start there.
func TestDataDirLockWithoutFlock(t *testing.T) {
	dir, lockPath := flocklessDataDir(t)
	first, err := pgembed.LockDataDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pgembed.LockDataDir(dir); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("a second lock while the first is held: %v, want in use", err)
	}
	if b, err := os.ReadFile(lockPath); err != nil || !strings.HasPrefix(string(b), strconv.Itoa(os.Getpid())+" ") {
		t.Fatalf("lock file %s: %q %v, want this process's id first", lockPath, b, err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	// A file left by a process that has died.
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(lockPath, []byte(strconv.Itoa(dead.Process.Pid)+" tok "+pgembed.ProcessSpace()+" host"), 0o600); err != nil {
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

// Of processes that lock at once, on a fresh directory or over a stale
// lock file, one gets the lock: a reader of a lock file not yet written, or
// two that found it stale, each removed the other's and both held it.
func TestDataDirLockWithoutFlockHasOneHolder(t *testing.T) {
	pgembed.WithoutFlock(t)
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	for _, staleFile := range []bool{false, true} {
		for iter := 0; iter < 200; iter++ {
			dir := filepath.Join(t.TempDir(), "data")
			if err := os.MkdirAll(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if staleFile {
				if err := os.WriteFile(filepath.Join(filepath.Dir(dir), ".data.lock"), []byte(strconv.Itoa(dead.Process.Pid)+" tok "+pgembed.ProcessSpace()+" host"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			var wg sync.WaitGroup
			var mu sync.Mutex
			var held []interface{ Close() error }
			start := make(chan struct{})
			for range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					if l, err := pgembed.LockDataDir(dir); err == nil {
						mu.Lock()
						held = append(held, l)
						mu.Unlock()
					}
				}()
			}
			close(start)
			wg.Wait()
			for _, l := range held {
				_ = l.Close()
			}
			if len(held) != 1 {
				t.Fatalf("stale file %v, round %d: %d holders, want 1", staleFile, iter, len(held))
			}
		}
	}
}

// A lock file naming this process with a token it does not hold is not
// this process's: it is taken over. A data directory named through a
// symlink is the same lock.
func TestDataDirLockWithoutFlockOwnPidAndSymlinks(t *testing.T) {
	dir, lockPath := flocklessDataDir(t)
	if err := os.WriteFile(lockPath, []byte(strconv.Itoa(os.Getpid())+" tok "+pgembed.ProcessSpace()+" host"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := pgembed.LockDataDir(dir)
	if err != nil {
		t.Fatalf("over a lock file of this process's id, not held: %v", err)
	}
	defer l.Close()
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	if _, err := pgembed.LockDataDir(link); err == nil || !strings.Contains(err.Error(), ".data.lock") {
		t.Fatalf("the same directory through a symlink: %v, want in use naming the lock file", err)
	}
}

// A lock file of another process space (another container on a shared
// volume, whose PID 1 may be this one's id, even under one host name;
// another machine or boot) counts as held; closing a lock whose file was
// removed by hand and replaced leaves the other's file.
func TestDataDirLockWithoutFlockOtherHostsAndClose(t *testing.T) {
	dir, lockPath := flocklessDataDir(t)
	// Another container's (its PID namespace), another machine's or boot's
	// (the boot id), even of this process's id (two containers' PID 1, of
	// one host name), and files of another format: all held.
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	boot, ns, _ := strings.Cut(pgembed.ProcessSpace(), " ")
	for _, content := range []string{
		strconv.Itoa(os.Getpid()) + " tok " + boot + " pid:[1] another-container",
		strconv.Itoa(dead.Process.Pid) + " tok " + boot + " pid:[1] another-container",
		strconv.Itoa(dead.Process.Pid) + " tok 00000000-another-boot " + ns + " another-container",
		strconv.Itoa(os.Getpid()) + " tok - - another-container",
		strconv.Itoa(dead.Process.Pid),
		strconv.Itoa(dead.Process.Pid) + " tok",
		strconv.Itoa(dead.Process.Pid) + " tok host",
	} {
		if err := os.WriteFile(lockPath, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if l, err := pgembed.LockDataDir(dir); err == nil {
			l.Close()
			t.Fatalf("over the lock file %q: locked, want in use", content)
		} else if !strings.Contains(err.Error(), ".data.lock") {
			t.Fatalf("over the lock file %q: %v, want in use naming the file", content, err)
		}
	}
	if err := os.Remove(lockPath); err != nil {
		t.Fatal(err)
	}
	first, err := pgembed.LockDataDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(lockPath); err != nil { // by hand
		t.Fatal(err)
	}
	second, err := pgembed.LockDataDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if third, err := pgembed.LockDataDir(dir); err == nil {
		third.Close()
		t.Fatal("a third lock taken while the second is held: the first's Close removed the second's file")
	}
	// No temporary files are left beside the directory.
	entries, _ := os.ReadDir(filepath.Dir(dir))
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmp") || strings.HasSuffix(e.Name(), ".takeover") {
			t.Errorf("left behind: %s", e.Name())
		}
	}
}
