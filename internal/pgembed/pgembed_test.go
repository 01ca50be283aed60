package pgembed_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"cqrsgate/internal/pgembed"
)

func dataDir(t *testing.T) string {
	// Not t.TempDir: its parent is private to us, and as root the server
	// runs as another user that must be able to enter it.
	dir, err := os.MkdirTemp("", "pgembed-test-")
	if err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(dir, 0o755)
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "data")
}

func TestStartStopRestartKeepsData(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := dataDir(t)
	c, err := pgembed.Start(ctx, pgembed.Options{DataDir: dir, Database: "app"})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, c.URL())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('still here')"); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(ctx); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "postmaster.pid")); !os.IsNotExist(err) {
		t.Fatalf("server still running after Stop: %v", err)
	}

	c, err = pgembed.Start(ctx, pgembed.Options{DataDir: dir, Database: "app"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop(ctx)
	conn, err = pgx.Connect(ctx, c.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var v string
	if err := conn.QueryRow(ctx, "SELECT v FROM kept").Scan(&v); err != nil || v != "still here" {
		t.Fatalf("after restart: %q, %v", v, err)
	}
}

func TestMissingBinaries(t *testing.T) {
	_, err := pgembed.Start(context.Background(), pgembed.Options{DataDir: dataDir(t), BinDir: t.TempDir()})
	if !errors.Is(err, pgembed.ErrNoBinaries) {
		t.Fatalf("err = %v, want ErrNoBinaries", err)
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

func TestLongDataDirUsesShortSocketPath(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	long := filepath.Join(dataDir(t), "a-rather-long-directory-name-to-push-the-socket-path", "past-the-unix-socket-limit")
	c, err := pgembed.Start(ctx, pgembed.Options{DataDir: long})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop(ctx)
	conn, err := pgx.Connect(ctx, c.URL())
	if err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
}

func TestSecondStartOnABusyDataDirFailsAndLeavesTheFirstRunning(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := dataDir(t)
	first, err := pgembed.Start(ctx, pgembed.Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer first.Stop(ctx)
	if _, err := pgembed.Start(ctx, pgembed.Options{DataDir: dir}); err == nil {
		t.Fatal("a second Start on a data directory in use succeeded")
	}
	conn, err := pgx.Connect(ctx, first.URL())
	if err != nil {
		t.Fatalf("the first server was disturbed by the second Start: %v", err)
	}
	conn.Close(ctx)
}
