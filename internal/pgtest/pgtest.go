// Package pgtest gives tests a real PostgreSQL: an isolated database per
// test, cloned from a template database that is migrated once per test
// binary. With TEST_DATABASE_URL (or DATABASE_URL) set it uses that server;
// otherwise it starts a throwaway cluster with internal/pgembed. It never
// skips: when PostgreSQL cannot be had, the test binary fails and says why.
//
// Call Main from the package's TestMain, then NewDatabase or NewPool in
// each test.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"cqrsgate/internal/pgembed"
)

// Options configure Main.
type Options struct {
	// Migrate prepares the template database (for example by running
	// migrations). It is called once per test binary with the template
	// database's URL, and must close its connections before it returns
	// (leftovers are terminated).
	Migrate func(ctx context.Context, url string) error
}

// harness is what Main sets up for NewDatabase and URL.
type harness struct {
	serverURL string     // the server as configured (any database on it)
	adminURL  string     // where CREATE/DROP DATABASE are issued
	template  string     // the migrated template database
	prefix    string     // of every database this process creates
	cloneMu   sync.Mutex // a template is copied by one CREATE DATABASE at a time
	n         atomic.Int64
}

// current is the harness of this test binary. It is package state because
// NewDatabase(t) has no other way to reach what TestMain set up; Main sets
// it once, before any test runs.
var current atomic.Pointer[harness]

// setupTimeout bounds starting the server and preparing the template.
const setupTimeout = 2 * time.Minute

// Main runs a package's tests; call it from TestMain. It uses the server
// named by TEST_DATABASE_URL, else DATABASE_URL (any database on it; the
// role needs CREATEDB), else starts an embedded cluster in a temporary
// directory. It creates a template database unique to this process, runs
// opts.Migrate on it, runs the tests, drops every database it created,
// stops the embedded cluster, removes its directory and exits with the
// tests' code. When PostgreSQL cannot be had or the template cannot be
// prepared it prints why and exits with code 1: it never skips.
func Main(m *testing.M, opts Options) {
	os.Exit(run(m, opts))
}

func run(m *testing.M, opts Options) int {
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
		return 1
	}
	setupCtx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()

	serverURL, source := os.Getenv("TEST_DATABASE_URL"), "TEST_DATABASE_URL"
	if serverURL == "" {
		serverURL, source = os.Getenv("DATABASE_URL"), "DATABASE_URL"
	}
	if serverURL == "" {
		cluster, dir, err := startCluster(setupCtx)
		if err != nil {
			return fail(fmt.Errorf("cannot start PostgreSQL for the tests (or set TEST_DATABASE_URL to use a running server): %w", err))
		}
		defer os.RemoveAll(dir)
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := cluster.Stop(ctx); err != nil {
				fmt.Fprintf(os.Stderr, "pgtest: stop PostgreSQL: %v\n", err)
			}
		}()
		serverURL, source = cluster.URL(), "the embedded cluster"
	}

	h, err := newHarness(serverURL)
	if err != nil {
		return fail(fmt.Errorf("%s: %w", source, err))
	}
	if err := h.createTemplate(setupCtx, opts.Migrate); err != nil {
		dropAll(h)
		return fail(fmt.Errorf("%s (%s): %w", source, redact(serverURL), err))
	}
	current.Store(h)
	code := m.Run()
	current.Store(nil)
	if err := dropAll(h); err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: clean-up: %v\n", err)
	}
	return code
}

// startCluster starts an embedded cluster for this test binary in a fresh
// temporary directory, after removing those that killed test binaries
// left behind. It returns the cluster and the directory to remove.
func startCluster(ctx context.Context) (*pgembed.Cluster, string, error) {
	sweepStaleDirs(os.TempDir())
	dir, err := os.MkdirTemp("", fmt.Sprintf("%s%d-", dirPrefix, os.Getpid()))
	if err != nil {
		return nil, "", err
	}
	// As root the server runs as another user, which must enter dir.
	if err := os.Chmod(dir, 0o711); err != nil {
		_ = os.RemoveAll(dir)
		return nil, "", err
	}
	cluster, err := pgembed.Start(ctx, pgembed.Options{
		DataDir:  filepath.Join(dir, "data"),
		Database: "postgres",
		// fsync stays on, so that benchmarks measure real commits.
		Settings: map[string]string{"max_connections": "300", "shared_buffers": "64MB"},
		Logger:   slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, "", err
	}
	return cluster, dir, nil
}

// newHarness names this process's databases: unique per process, so that
// test binaries sharing a server never collide.
func newHarness(serverURL string) (*harness, error) {
	adminURL, err := adminURL(serverURL)
	if err != nil {
		return nil, err
	}
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	prefix := fmt.Sprintf("cqrsgate_test_%d_%s", os.Getpid(), hex.EncodeToString(suffix))
	return &harness{serverURL: serverURL, adminURL: adminURL, template: prefix + "_template", prefix: prefix}, nil
}

// createTemplate creates the template database, runs migrate on it, and
// then closes it to connections so that it can be cloned.
func (h *harness) createTemplate(ctx context.Context, migrate func(ctx context.Context, url string) error) error {
	conn, err := pgx.Connect(ctx, h.adminURL)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.Background())
	tmpl := pgx.Identifier{h.template}.Sanitize()
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+tmpl); err != nil {
		return fmt.Errorf("create the template database (the role needs CREATEDB): %w", err)
	}
	if migrate != nil {
		url, err := withDatabase(h.serverURL, h.template)
		if err != nil {
			return err
		}
		if err := migrate(ctx, url); err != nil {
			return fmt.Errorf("prepare the template database: %w", err)
		}
	}
	if _, err := conn.Exec(ctx, "ALTER DATABASE "+tmpl+" ALLOW_CONNECTIONS false"); err != nil {
		return fmt.Errorf("close the template database: %w", err)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", h.template); err != nil {
		return fmt.Errorf("close the template database: %w", err)
	}
	return nil
}

// dropAll drops every database this process created.
func dropAll(h *harness) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, h.adminURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT datname FROM pg_database WHERE starts_with(datname, $1)", h.prefix+"_")
	if err != nil {
		return err
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	for _, name := range names {
		if err := dropDatabase(ctx, conn, name); err != nil {
			return err
		}
	}
	return nil
}

func dropDatabase(ctx context.Context, conn *pgx.Conn, name string) error {
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	return nil
}

// URL returns the URL of the server the tests use, as configured (some
// database on it), for tests that need the raw server. It is empty outside
// Main.
func URL() string {
	if h := current.Load(); h != nil {
		return h.serverURL
	}
	return ""
}

// URLFor returns the URL of database on the test server. It is empty
// outside Main.
func URLFor(database string) string {
	h := current.Load()
	if h == nil {
		return ""
	}
	u, _ := withDatabase(h.serverURL, database) // the URL was checked by Main
	return u
}

// NewDatabase creates a database cloned from the template (so already
// migrated), drops it (WITH (FORCE)) when the test ends, and returns its
// URL. It fails the test (t.Fatal) when Main was not called or the database
// cannot be created.
func NewDatabase(t testing.TB) string {
	t.Helper()
	h := current.Load()
	if h == nil {
		t.Fatal("pgtest: call pgtest.Main from the package's TestMain")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	name := fmt.Sprintf("%s_%d", h.prefix, h.n.Add(1))
	url, err := withDatabase(h.serverURL, name)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	conn, err := pgx.Connect(ctx, h.adminURL)
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	defer conn.Close(ctx)
	h.cloneMu.Lock()
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" TEMPLATE "+pgx.Identifier{h.template}.Sanitize())
	h.cloneMu.Unlock()
	if err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		conn, err := pgx.Connect(ctx, h.adminURL)
		if err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if err := dropDatabase(ctx, conn, name); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return url
}

// NewPool returns a connection pool on a fresh NewDatabase database; the
// pool is closed when the test ends (before the database is dropped). It
// fails the test (t.Fatal) on error.
func NewPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	url := NewDatabase(t)
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatalf("pgtest: pool: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// OnConn adapts a function that prepares a database over one connection
// (such as eventstore.Migrate) into an Options.Migrate; the connection is
// closed afterwards. Errors: the connection's and f's, wrapped.
func OnConn(f func(ctx context.Context, conn *pgx.Conn) error) func(ctx context.Context, url string) error {
	return func(ctx context.Context, url string) error {
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			return fmt.Errorf("connect: %w", err)
		}
		defer conn.Close(context.Background())
		return f(ctx, conn)
	}
}
