package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"cqrsgate/internal/pgembed"
)

// env is what every scenario shares: the PostgreSQL server, the gateway
// binary and the bench's own executable (for the baseline servers).
type env struct {
	quick     bool
	size      sizes
	serverURL string // a database URL on the server; scenarios make their own databases
	pgVersion string
	cluster   *pgembed.Cluster
	dir       string
	gateway   string // the built gateway binary
	self      string // this executable
	dbs       atomic.Int64
}

func newEnv(ctx context.Context, quick bool) (*env, error) {
	dir, err := os.MkdirTemp("", "cqrsgate-bench-")
	if err != nil {
		return nil, err
	}
	e := &env{quick: quick, size: sizesFor(quick), dir: dir}
	if e.self, err = os.Executable(); err != nil {
		e.close()
		return nil, err
	}
	raiseFileLimit()
	if u := os.Getenv("DATABASE_URL"); u != "" {
		e.serverURL = u
	} else {
		if err := os.Chmod(dir, 0o711); err != nil { // as root the server runs as postgres, which must enter dir
			e.close()
			return nil, err
		}
		fmt.Fprintln(os.Stderr, "bench: starting PostgreSQL (set DATABASE_URL to use a running server)")
		e.cluster, err = pgembed.Start(ctx, pgembed.Options{
			DataDir: filepath.Join(dir, "data"), Database: "postgres",
			// fsync stays on: commits are real.
			Settings: map[string]string{"max_connections": "300", "shared_buffers": "256MB"},
			Logger:   slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		})
		if err != nil {
			e.close()
			return nil, err
		}
		e.serverURL = e.cluster.URL()
	}
	conn, err := pgx.Connect(ctx, e.serverURL)
	if err != nil {
		e.close()
		return nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	_ = conn.QueryRow(ctx, "SELECT current_setting('server_version')").Scan(&e.pgVersion)
	e.pgVersion = "PostgreSQL " + e.pgVersion
	conn.Close(ctx)

	fmt.Fprintln(os.Stderr, "bench: building the gateway")
	e.gateway = filepath.Join(dir, "cqrsgate")
	root, err := moduleRoot()
	if err != nil {
		e.close()
		return nil, err
	}
	build := exec.CommandContext(ctx, "go", "build", "-o", e.gateway, ".")
	build.Dir, build.Stdout, build.Stderr = root, os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		e.close()
		return nil, fmt.Errorf("building the gateway: %w", err)
	}
	return e, nil
}

func (e *env) close() {
	if e.cluster != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_ = e.cluster.Stop(ctx)
		cancel()
	}
	_ = os.RemoveAll(e.dir)
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("run the bench from inside the cqrsgate module")
	}
	return filepath.Dir(mod), nil
}

// raiseFileLimit lifts the open-files limit to its maximum: 10,000
// websocket clients need that many sockets (the children inherit it).
func raiseFileLimit() {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) == nil && l.Cur < l.Max {
		l.Cur = l.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}

// database creates a fresh database and returns its URL and a function
// that drops it.
func (e *env) database(ctx context.Context, name string) (string, func(), error) {
	db := fmt.Sprintf("bench_%s_%d_%d", name, os.Getpid(), e.dbs.Add(1))
	conn, err := pgx.Connect(ctx, e.serverURL)
	if err != nil {
		return "", nil, err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{db}.Sanitize()); err != nil {
		return "", nil, fmt.Errorf("create database: %w", err)
	}
	u, err := url.Parse(e.serverURL)
	if err != nil || u.Scheme == "" {
		return "", nil, fmt.Errorf("DATABASE_URL must be a postgres:// URL")
	}
	u.Path = "/" + db
	drop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if c, err := pgx.Connect(ctx, e.serverURL); err == nil {
			_, _ = c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{db}.Sanitize()+" WITH (FORCE)")
			c.Close(ctx)
		}
	}
	return u.String(), drop, nil
}

// process is a child process serving HTTP on addr.
type process struct {
	cmd  *exec.Cmd
	addr string
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// startGateway runs the gateway on dbURL and waits until /readyz says so.
func (e *env) startGateway(ctx context.Context, dbURL string, extraEnv ...string) (*process, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(e.gateway)
	cmd.SysProcAttr = dieWithParent()
	cmd.Env = append(os.Environ(), append([]string{"ADDR=" + addr, "DATABASE_URL=" + dbURL, "LOG_LEVEL=warn", "DB_MAX_CONNS=40"}, extraEnv...)...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	return start(ctx, cmd, addr, "/readyz")
}

// freshGateway runs the gateway on a new database named after the
// scenario; done stops it and drops the database.
func (e *env) freshGateway(ctx context.Context, name string) (g *process, dbURL string, done func(), err error) {
	dbURL, drop, err := e.database(ctx, name)
	if err != nil {
		return nil, "", nil, err
	}
	if g, err = e.startGateway(ctx, dbURL); err != nil {
		drop()
		return nil, "", nil, err
	}
	return g, dbURL, func() { g.stop(); drop() }, nil
}

// startBaseline runs this executable as one of the baseline servers.
func (e *env) startBaseline(ctx context.Context, flagName string) (*process, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(e.self, "-"+flagName, addr)
	cmd.SysProcAttr = dieWithParent()
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	return start(ctx, cmd, addr, "/ready")
}

func start(ctx context.Context, cmd *exec.Cmd, addr, ready string) (*process, error) {
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &process{cmd: cmd, addr: addr}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + ready)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			p.stop()
			return nil, fmt.Errorf("%s did not become ready: %v", filepath.Base(cmd.Path), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop ends the process (SIGTERM, then SIGKILL after 30s).
func (p *process) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
}

// rss is the process's resident memory in bytes.
func (p *process) rss() (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", p.cmd.Process.Pid)
}

// dieWithParent makes a child (a gateway, a baseline server) get SIGTERM
// when the bench dies without stopping it (killed, or a panic), rather than
// go on serving on loopback. The Go runtime does not end the threads that
// start children, whose exit would also send it.
func dieWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
