package pgembed

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestStartStopsALeftoverServer: a server that an earlier run started and
// left running without a parent (an orphan, as after a crash that the
// parent-death signal did not cover) is stopped, with a warning, and the
// new server starts on the data directory.
func TestStartStopsALeftoverServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dataDir := TempDataDir(t)
	c, err := Start(ctx, Options{DataDir: dataDir})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}

	// The orphan: started by a shell that exits at once.
	bin, err := findBinDir(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	cred, err := serverCredential("")
	if err != nil {
		t.Fatal(err)
	}
	sh := exec.CommandContext(ctx, "/bin/sh", "-c", `"$@" >/dev/null 2>&1 </dev/null &`, "sh",
		filepath.Join(bin, "postgres"), "-D", dataDir, "-c", "listen_addresses=",
		"-c", "unix_socket_directories="+filepath.Join(dataDir, "run"))
	sh.Dir = dataDir
	sh.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true}
	if err := sh.Run(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dataDir, ownerFile), []byte(strconv.Itoa(sh.Process.Pid)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var orphan int
	for orphan == 0 || !processAlive(orphan) {
		if ctx.Err() != nil {
			t.Fatal("the orphan server did not start")
		}
		time.Sleep(20 * time.Millisecond)
		orphan = readPID(filepath.Join(dataDir, "postmaster.pid"))
	}

	var logged bytes.Buffer
	c, err = Start(ctx, Options{DataDir: dataDir, Logger: slog.New(slog.NewTextHandler(&logged, nil))})
	if err != nil {
		_ = syscall.Kill(orphan, syscall.SIGQUIT)
		t.Fatal(err)
	}
	defer c.Stop(ctx)
	if processAlive(orphan) {
		t.Errorf("the leftover server (pid %d) still runs", orphan)
	}
	if !strings.Contains(logged.String(), "left running") {
		t.Errorf("stopping the leftover was not logged:\n%s", logged.String())
	}
}

// TestStartRemovesAStalePIDFileWhosePidWasReused: a postmaster.pid left by
// a server that is gone, whose pid now belongs to another live process of
// the server's user (PostgreSQL then refuses to start: "lock file already
// exists"), is removed with a warning and the server starts. The other
// process is left alone.
func TestStartRemovesAStalePIDFileWhosePidWasReused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dataDir := TempDataDir(t)
	c, err := Start(ctx, Options{DataDir: dataDir})
	if err != nil {
		t.Fatal(err)
	}
	pidFile := filepath.Join(dataDir, "postmaster.pid")
	lock, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}

	// Another process of the server's user, with the server's old pid.
	other := pidOfAnotherProcess(t, pidFile, lock)

	var logged bytes.Buffer
	c, err = Start(ctx, Options{DataDir: dataDir, Logger: slog.New(slog.NewTextHandler(&logged, nil))})
	if err != nil {
		t.Fatalf("Start with a stale postmaster.pid whose pid was reused: %v", err)
	}
	defer c.Stop(ctx)
	if !processAlive(other) {
		t.Error("the process that reused the pid was stopped")
	}
	if !strings.Contains(logged.String(), "stale postmaster.pid") {
		t.Errorf("removing the stale postmaster.pid was not logged:\n%s", logged.String())
	}
}

// TestStartLeavesThePIDFileOfAServerThatAnswers: when the pid in
// postmaster.pid is not a server of the data directory but something
// accepts connections on the socket the file names, the file is not
// removed and Start fails.
func TestStartLeavesThePIDFileOfAServerThatAnswers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dataDir := TempDataDir(t)
	first, err := Start(ctx, Options{DataDir: dataDir})
	if err != nil {
		t.Fatal(err)
	}
	defer first.Stop(ctx)
	pidFile := filepath.Join(dataDir, "postmaster.pid")
	lock, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	// The file names another live process of the server's user, yet the
	// server still answers on the socket it names.
	pidOfAnotherProcess(t, pidFile, lock)
	defer os.WriteFile(pidFile, lock, 0o600)
	changed, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := Start(ctx, Options{DataDir: dataDir}); err == nil {
		_ = c.Stop(ctx)
		t.Fatal("Start succeeded on a data directory whose server answers")
	}
	if b, _ := os.ReadFile(pidFile); !bytes.Equal(b, changed) {
		t.Fatalf("postmaster.pid was changed: %q", b)
	}
}

// pidOfAnotherProcess starts a process of the server's user that lives
// until the test ends and writes its pid into pidFile in place of the one
// in lock (the file's old content), as a pid reused after a crash would be.
// It returns the pid.
func pidOfAnotherProcess(t *testing.T, pidFile string, lock []byte) int {
	t.Helper()
	cred, err := serverCredential("")
	if err != nil {
		t.Fatal(err)
	}
	other := exec.Command("/bin/sleep", "300")
	other.Dir = "/"
	other.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = other.Process.Kill(); _ = other.Wait() })
	_, rest, _ := strings.Cut(string(lock), "\n")
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(other.Process.Pid)+"\n"+rest), 0o600); err != nil {
		t.Fatal(err)
	}
	if cred != nil {
		if err := os.Chown(pidFile, int(cred.Uid), int(cred.Gid)); err != nil {
			t.Fatal(err)
		}
	}
	return other.Process.Pid
}
