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
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	dataDir := filepath.Join(dir, "data")
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
