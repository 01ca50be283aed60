package pgembed_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"cqrsgate/internal/pgembed"
)

// dataDir returns a data directory path under t.TempDir that the server's
// user can reach (see pgembed.TempDataDir).
func dataDir(t *testing.T) string { return pgembed.TempDataDir(t) }

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func start(t *testing.T, ctx context.Context, opts pgembed.Options) *pgembed.Cluster {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	c, err := pgembed.Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop(context.Background()) })
	return c
}

func exec1(t *testing.T, ctx context.Context, url, sql string, args ...any) {
	t.Helper()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Fatal(err)
	}
}

func queryString(t *testing.T, ctx context.Context, url, sql string) string {
	t.Helper()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var s string
	if err := conn.QueryRow(ctx, sql).Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestStartStopRestartKeepsData(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	goroutines := runtime.NumGoroutine()
	dir := dataDir(t)
	opts := pgembed.Options{DataDir: dir, Database: "app", Settings: map[string]string{"max_connections": "50"}}
	c := start(t, ctx, opts)
	if c.DataDir() != dir {
		t.Errorf("DataDir() = %s, want %s", c.DataDir(), dir)
	}
	if !strings.HasPrefix(c.URL(), "postgres://postgres@/app?") {
		t.Errorf("URL() = %s", c.URL())
	}
	if got := queryString(t, ctx, c.URL(), "SELECT current_setting('max_connections')"); got != "50" {
		t.Errorf("max_connections = %s, want the setting 50", got)
	}
	if got := queryString(t, ctx, c.URL(), "SELECT current_setting('listen_addresses')"); got != "" {
		t.Errorf("listen_addresses = %q, want none", got)
	}
	exec1(t, ctx, c.URL(), "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('still here')")
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(ctx); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	select {
	case <-c.Done():
	default:
		t.Fatal("Done not closed after Stop")
	}
	if _, err := os.Stat(filepath.Join(dir, "postmaster.pid")); !os.IsNotExist(err) {
		t.Fatalf("server still running after Stop: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "server.log")); err != nil || fi.Size() == 0 {
		t.Fatalf("no server log: %v", err)
	}
	waitGoroutines(t, goroutines)

	c = start(t, ctx, opts) // no initdb: the same cluster
	if got := queryString(t, ctx, c.URL(), "SELECT v FROM kept"); got != "still here" {
		t.Fatalf("after restart: %q", got)
	}
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	waitGoroutines(t, goroutines)
}

// waitGoroutines fails unless the number of goroutines drops back to at
// most want (goroutines exit shortly after the work they wait for).
func waitGoroutines(t *testing.T, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > want {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines, want at most %d:\n%s", runtime.NumGoroutine(), want, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestMissingBinaries(t *testing.T) {
	_, err := pgembed.Start(context.Background(), pgembed.Options{DataDir: dataDir(t), BinDir: t.TempDir()})
	if !errors.Is(err, pgembed.ErrNoBinaries) {
		t.Fatalf("err = %v, want ErrNoBinaries", err)
	}
	if !strings.Contains(err.Error(), "apt-get install postgresql") || !strings.Contains(err.Error(), "DATABASE_URL") {
		t.Errorf("the error does not say what to do: %v", err)
	}
}

func TestRefusesNonEmptyNonClusterDir(t *testing.T) {
	dir := dataDir(t)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := pgembed.Start(context.Background(), pgembed.Options{DataDir: dir})
	if err == nil {
		t.Fatal("Start used a non-empty directory that holds no cluster")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "notes.txt")); string(b) != "mine" {
		t.Fatal("Start changed a file it does not own")
	}
}

// TestUnreachableDataDir: as root, a data directory inside a directory the
// server's user cannot enter is refused with an error naming it; otherwise
// the server runs as us and the directory is fine.
func TestUnreachableDataDir(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	private := t.TempDir() // 0700, ours
	dir := filepath.Join(private, "data")
	c, err := pgembed.Start(ctx, pgembed.Options{DataDir: dir, Logger: testLogger(t)})
	if os.Geteuid() != 0 {
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		return
	}
	if err == nil {
		_ = c.Stop(ctx)
		t.Fatal("Start as root used a data directory the server's user cannot reach")
	}
	if !strings.Contains(err.Error(), private) || !strings.Contains(err.Error(), "data-dir") {
		t.Fatalf("the error does not name the directory or suggest another: %v", err)
	}
}

func TestLongDataDirUsesShortSocketPath(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	long := filepath.Join(dataDir(t), "a-rather-long-directory-name-to-push-the-socket-path", "past-the-unix-socket-limit")
	c := start(t, ctx, pgembed.Options{DataDir: long})
	if got := queryString(t, ctx, c.URL(), "SELECT current_database()"); got != "cqrsgate" {
		t.Fatalf("current_database() = %s", got)
	}
}

func TestSecondStartOnABusyDataDirFailsAndLeavesTheFirstRunning(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := dataDir(t)
	first := start(t, ctx, pgembed.Options{DataDir: dir})
	if c, err := pgembed.Start(ctx, pgembed.Options{DataDir: dir}); err == nil {
		_ = c.Stop(ctx)
		t.Fatal("a second Start on a data directory in use succeeded")
	}
	if got := queryString(t, ctx, first.URL(), "SELECT 'ok'"); got != "ok" {
		t.Fatal("the first server was disturbed by the second Start")
	}
}

func TestStopReportsAServerThatDiedOnItsOwn(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := dataDir(t)
	c := start(t, ctx, pgembed.Options{DataDir: dir})
	pid := postmasterPID(t, dir)
	if err := syscall.Kill(pid, syscall.SIGQUIT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Done():
	case <-ctx.Done():
		t.Fatal("Done not closed after the server exited")
	}
	if err := c.Stop(ctx); err == nil {
		t.Fatal("Stop returned nil for a server that had died")
	}
	// The cluster recovers on the next start.
	start(t, ctx, pgembed.Options{DataDir: dir})
}

func TestStopWithAnExpiredContextStopsTheServerAbruptly(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := dataDir(t)
	c := start(t, ctx, pgembed.Options{DataDir: dir})
	exec1(t, ctx, c.URL(), "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('committed')")
	expired, cancelExpired := context.WithCancel(ctx)
	cancelExpired()
	if err := c.Stop(expired); !errors.Is(err, context.Canceled) {
		t.Fatalf("Stop(expired) = %v, want context.Canceled", err)
	}
	select {
	case <-c.Done():
	default:
		t.Fatal("Stop returned before the server exited")
	}
	c = start(t, ctx, pgembed.Options{DataDir: dir}) // crash recovery
	if got := queryString(t, ctx, c.URL(), "SELECT v FROM kept"); got != "committed" {
		t.Fatalf("after recovery: %q", got)
	}
}

// helperEnv makes the test binary run TestHelperServer as a process that
// starts a cluster on the named data directory and waits to be killed.
const helperEnv = "PGEMBED_TEST_HELPER_DATADIR"

// TestHelperServer is not a test: TestCrashedParent runs it in a
// subprocess. Run directly, it does nothing.
func TestHelperServer(t *testing.T) {
	dir := os.Getenv(helperEnv)
	if dir == "" {
		return
	}
	c, err := pgembed.Start(context.Background(), pgembed.Options{DataDir: dir})
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("ready", c.URL())
	time.Sleep(time.Minute)
	os.Exit(1)
}

// TestCrashedParent: when the process that started the server is killed,
// the server shuts down, and the next Start on the data directory works
// and finds the data.
func TestCrashedParent(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := dataDir(t)
	helper := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperServer$", "-test.count=1")
	helper.Env = append(os.Environ(), helperEnv+"="+dir)
	var stderr bytes.Buffer
	helper.Stderr = &stderr
	out, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	var url string
	for sc := bufio.NewScanner(out); sc.Scan(); {
		if u, ok := strings.CutPrefix(sc.Text(), "ready "); ok {
			url = u
			break
		}
		t.Log("helper:", sc.Text())
	}
	if url == "" {
		_ = helper.Process.Kill()
		_ = helper.Wait()
		t.Fatalf("the helper did not start a server: %s", stderr.String())
	}
	exec1(t, ctx, url, "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('before the crash')")
	pid := postmasterPID(t, dir)

	_ = helper.Process.Kill()
	_ = helper.Wait()
	// Start right away: the orphaned server may still be shutting down.
	// (Had it not stopped, the new one could not start.)
	c := start(t, ctx, pgembed.Options{DataDir: dir})
	if postmasterPID(t, dir) == pid {
		t.Fatalf("the server of the killed process (pid %d) still runs", pid)
	}
	if got := queryString(t, ctx, c.URL(), "SELECT v FROM kept"); got != "before the crash" {
		t.Fatalf("after the crash: %q", got)
	}
}

func postmasterPID(t *testing.T, dataDir string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(first)
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// TestRefusedDataDirIsLeftAsItWas: a non-empty directory that holds no
// cluster (a wrong -data-dir) is refused before its mode or, as root, its
// owner or anything in it is changed.
func TestRefusedDataDirIsLeftAsItWas(t *testing.T) {
	dir := dataDir(t)
	if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "sub", "notes.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	type state struct {
		mode     os.FileMode
		uid, gid uint32
	}
	stateOf := func(path string) state {
		fi, err := os.Lstat(path)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		return state{fi.Mode(), st.Uid, st.Gid}
	}
	paths := []string{dir, filepath.Join(dir, "sub"), filepath.Join(dir, "sub", "notes.txt")}
	before := map[string]state{}
	for _, p := range paths {
		before[p] = stateOf(p)
	}
	_, err := pgembed.Start(context.Background(), pgembed.Options{DataDir: dir, Logger: testLogger(t)})
	if err == nil || !strings.Contains(err.Error(), "holds no PostgreSQL cluster") {
		t.Fatalf("Start on a directory without a cluster: %v", err)
	}
	for _, p := range paths {
		if got := stateOf(p); got != before[p] {
			t.Errorf("%s: mode %v uid %d gid %d, was mode %v uid %d gid %d", p, got.mode, got.uid, got.gid, before[p].mode, before[p].uid, before[p].gid)
		}
	}
}
