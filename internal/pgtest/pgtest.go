// Package pgtest gives tests a real PostgreSQL: an isolated database per
// test, cloned from a template database that is migrated once per test
// binary. With TEST_DATABASE_URL (or DATABASE_URL) set it uses that server;
// otherwise it starts a throwaway cluster with internal/pgembed. It never
// skips: when PostgreSQL cannot be had, the test binary fails and says why.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
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
	// migrations); it gets the template's URL and is called once.
	Migrate func(ctx context.Context, url string) error
}

var (
	serverURL  string // a URL on the server, database part to be replaced
	template   string // the template database's name
	prefix     string // prefix of every database this process creates
	cloneMu    sync.Mutex
	counter    atomic.Int64
	configured bool
)

// Main runs a package's tests: call it from TestMain. It exits the process.
func Main(m *testing.M, opts Options) {
	os.Exit(run(m, opts))
}

func run(m *testing.M, opts Options) int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	base := os.Getenv("TEST_DATABASE_URL")
	if base == "" {
		base = os.Getenv("DATABASE_URL")
	}
	if base == "" {
		dir, err := os.MkdirTemp("", "cqrsgate-test-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "pgtest:", err)
			return 1
		}
		defer os.RemoveAll(dir)
		_ = os.Chmod(dir, 0o755) // the server's user must be able to enter it
		cluster, err := pgembed.Start(ctx, pgembed.Options{
			DataDir:  filepath.Join(dir, "data"),
			Database: "postgres",
			Logger:   slog.New(slog.DiscardHandler),
			Settings: map[string]string{"max_connections": "300", "shared_buffers": "64MB"},
		})
		if err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: cannot start PostgreSQL for the tests: %v\n(set TEST_DATABASE_URL to use an existing server)\n", err)
			return 1
		}
		defer func() {
			stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_ = cluster.Stop(stopCtx)
		}()
		base = cluster.URL()
	}
	serverURL = base
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	prefix = fmt.Sprintf("cqrsgate_test_%d_%s", os.Getpid(), hex.EncodeToString(suffix))
	template = prefix + "_template"
	if err := createTemplate(ctx, opts); err != nil {
		fmt.Fprintln(os.Stderr, "pgtest:", err)
		return 1
	}
	configured = true
	code := m.Run()
	dropCtx, cancelDrop := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancelDrop()
	if err := dropAll(dropCtx); err != nil {
		fmt.Fprintln(os.Stderr, "pgtest: clean-up:", err)
	}
	return code
}

func createTemplate(ctx context.Context, opts Options) error {
	conn, err := pgx.Connect(ctx, URLFor(defaultDatabase()))
	if err != nil {
		return fmt.Errorf("connect to %s: %w", redact(serverURL), err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{template}.Sanitize()); err != nil {
		return fmt.Errorf("create template database: %w", err)
	}
	if opts.Migrate != nil {
		if err := opts.Migrate(ctx, URLFor(template)); err != nil {
			return fmt.Errorf("prepare template database: %w", err)
		}
	}
	return nil
}

// dropAll drops every database this process created.
func dropAll(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, URLFor(defaultDatabase()))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT datname FROM pg_database WHERE starts_with(datname, $1)", prefix)
	if err != nil {
		return err
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	for _, name := range names {
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			return err
		}
	}
	return nil
}

// defaultDatabase is the database named in the server URL, for
// administrative connections.
func defaultDatabase() string {
	u, err := url.Parse(serverURL)
	if err != nil || strings.Trim(u.Path, "/") == "" {
		return "postgres"
	}
	return strings.Trim(u.Path, "/")
}

// URL returns the URL of the server the tests use (its default database).
func URL() string { return serverURL }

// URLFor returns the URL of database on the test server.
func URLFor(database string) string {
	u, err := url.Parse(serverURL)
	if err != nil {
		panic(fmt.Sprintf("pgtest: bad server URL: %v", err))
	}
	u.Path = "/" + database
	q := u.Query()
	q.Del("dbname")
	u.RawQuery = q.Encode()
	return u.String()
}

// NewDatabase creates a database cloned from the template, drops it when
// the test ends, and returns its URL. It fails the test on error.
func NewDatabase(t testing.TB) string {
	t.Helper()
	if !configured {
		t.Fatal("pgtest: call pgtest.Main from the package's TestMain")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	name := fmt.Sprintf("%s_%d", prefix, counter.Add(1))
	conn, err := pgx.Connect(ctx, URLFor(defaultDatabase()))
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	defer conn.Close(ctx)
	cloneMu.Lock() // a template cannot be copied by two clones at once
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" TEMPLATE "+pgx.Identifier{template}.Sanitize())
	cloneMu.Unlock()
	if err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, URLFor(defaultDatabase()))
		if err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	return URLFor(name)
}

// NewPool returns a connection pool on a fresh NewDatabase database,
// closed when the test ends.
func NewPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), NewDatabase(t))
	if err != nil {
		t.Fatalf("pgtest: pool: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// redact hides a URL's password for messages.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// OnConn adapts a function that prepares a database over one connection
// (such as eventstore.Migrate) into an Options.Migrate.
func OnConn(f func(ctx context.Context, conn *pgx.Conn) error) func(ctx context.Context, url string) error {
	return func(ctx context.Context, url string) error {
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		return f(ctx, conn)
	}
}
