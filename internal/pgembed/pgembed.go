// Package pgembed runs a private PostgreSQL cluster from the PostgreSQL
// binaries installed on the machine, for `go run .` with no DATABASE_URL and
// for tests.
//
// The cluster listens only on a Unix socket, in a directory that only the
// server's OS user can enter, so the trust authentication that initdb sets
// up admits no one else. The server runs as a child process; its log is
// written to <DataDir>/server.log. Started as root (PostgreSQL refuses to
// run as root), the server runs as an unprivileged user, "postgres" by
// default, which owns the data directory.
package pgembed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrNoBinaries is returned (wrapped) when no PostgreSQL server binaries
// can be found.
var ErrNoBinaries = errors.New("no PostgreSQL server binaries found: install them (Debian/Ubuntu: apt-get install postgresql) or set DATABASE_URL to use an existing server")

// Options configure Start.
type Options struct {
	// DataDir is the cluster's data directory (PGDATA); initdb runs when it
	// is missing or empty. Required.
	DataDir string
	// BinDir holds initdb and postgres. Empty: `pg_config --bindir`, then
	// the newest /usr/lib/postgresql/*/bin, /usr/local/pgsql/bin, then PATH.
	BinDir string
	// Database is created when missing (default "cqrsgate").
	Database string
	// User is the OS user the server runs as when we are root (default
	// "postgres"). Ignored otherwise.
	User string
	// Settings are extra server settings, passed as -c name=value.
	Settings map[string]string
	// Logger receives start and stop messages (nil: discard).
	Logger *slog.Logger
}

// Cluster is a running PostgreSQL server started by Start.
type Cluster struct {
	dataDir   string
	socketDir string
	tempSock  bool
	cmd       *exec.Cmd
	exited    chan struct{}
	log       *slog.Logger
	database  string
	stopOnce  sync.Once
	stopErr   error
}

// superuser is the database role initdb creates.
const superuser = "postgres"

// Start initialises the data directory when needed, starts the server and
// waits until it accepts connections, then creates opts.Database when
// missing. Errors: ErrNoBinaries (wrapped); a data directory the server's
// user cannot reach; initdb or server start-up failures, with the tail of
// the server log.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.DataDir == "" {
		return nil, errors.New("pgembed: a data directory is required")
	}
	if opts.Database == "" {
		opts.Database = "cqrsgate"
	}
	dataDir, err := filepath.Abs(opts.DataDir)
	if err != nil {
		return nil, fmt.Errorf("pgembed: data directory: %w", err)
	}
	bin, err := findBinDir(opts.BinDir)
	if err != nil {
		return nil, err
	}
	cred, err := serverCredential(opts.User)
	if err != nil {
		return nil, err
	}
	// Parents we create must be enterable by the server's user; the data
	// directory itself is private (PostgreSQL insists on 0700).
	if err := os.MkdirAll(filepath.Dir(dataDir), 0o755); err != nil {
		return nil, fmt.Errorf("pgembed: create data directory: %w", err)
	}
	if err := os.Mkdir(dataDir, 0o700); err != nil && !os.IsExist(err) {
		return nil, fmt.Errorf("pgembed: create data directory: %w", err)
	}
	if cred != nil {
		if err := checkReachable(dataDir, cred); err != nil {
			return nil, err
		}
		if err := chownTree(dataDir, cred); err != nil {
			return nil, err
		}
	}
	if err := initIfEmpty(ctx, bin, dataDir, cred, log); err != nil {
		return nil, err
	}
	if err := stopLeftover(ctx, dataDir, log); err != nil {
		return nil, err
	}

	c := &Cluster{dataDir: dataDir, log: log, database: opts.Database, exited: make(chan struct{})}
	if err := c.makeSocketDir(cred); err != nil {
		return nil, err
	}
	if err := c.startServer(ctx, bin, cred, opts.Settings); err != nil {
		c.removeSocketDir()
		return nil, err
	}
	if err := c.createDatabase(ctx, opts.Database); err != nil {
		_ = c.Stop(context.WithoutCancel(ctx))
		return nil, err
	}
	log.Info("embedded PostgreSQL started", "dataDir", dataDir, "url", c.URL(), "binDir", bin)
	return c, nil
}

// URL returns the connection URL of the cluster's default database.
func (c *Cluster) URL() string { return c.URLFor(c.database) }

// URLFor returns the connection URL of database on this cluster.
func (c *Cluster) URLFor(database string) string {
	u := url.URL{Scheme: "postgres", User: url.User(superuser), Host: "", Path: "/" + database}
	q := url.Values{}
	q.Set("host", c.socketDir)
	q.Set("sslmode", "disable")
	u.RawQuery = q.Encode()
	return u.String()
}

// DataDir returns the cluster's absolute data directory.
func (c *Cluster) DataDir() string { return c.dataDir }

// Stop shuts the server down (fast shutdown: open sessions are ended,
// data is flushed) and waits for it to exit; when ctx ends first it kills
// the server (crash-safe: PostgreSQL recovers on the next start). Stop is
// idempotent and returns the first outcome.
func (c *Cluster) Stop(ctx context.Context) error {
	c.stopOnce.Do(func() {
		defer c.removeSocketDir()
		select {
		case <-c.exited:
			return
		default:
		}
		_ = c.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-c.exited:
			c.log.Info("embedded PostgreSQL stopped", "dataDir", c.dataDir)
		case <-ctx.Done():
			_ = c.cmd.Process.Kill()
			<-c.exited
			c.stopErr = fmt.Errorf("pgembed: server did not stop in time and was killed: %w", ctx.Err())
		}
	})
	return c.stopErr
}

func (c *Cluster) startServer(ctx context.Context, bin string, cred *syscall.Credential, settings map[string]string) error {
	logPath := filepath.Join(c.dataDir, "server.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("pgembed: server log: %w", err)
	}
	defer logFile.Close() // the child keeps its own descriptor
	if cred != nil {
		_ = os.Chown(logPath, int(cred.Uid), int(cred.Gid))
	}
	args := []string{"-D", c.dataDir, "-c", "listen_addresses=", "-c", "unix_socket_directories=" + c.socketDir,
		"-c", "unix_socket_permissions=0700"}
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		args = append(args, "-c", k+"="+settings[k])
	}
	cmd := exec.Command(filepath.Join(bin, "postgres"), args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Pdeathsig: if this process dies without stopping the server, the
	// kernel asks the server for a fast shutdown.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGINT, Setpgid: true}
	// Pdeathsig fires when the thread that started the child exits, so the
	// child is started from a goroutine locked to its thread, which lives
	// until the child has exited.
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return // the locked thread is discarded with the goroutine
		}
		started <- nil
		_ = cmd.Wait()
		close(c.exited)
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("pgembed: start postgres: %w", err)
	}
	c.cmd = cmd

	deadline := time.Now().Add(60 * time.Second)
	for {
		conn, err := pgx.Connect(ctx, c.URLFor("postgres"))
		if err == nil {
			_ = conn.Close(ctx)
			return nil
		}
		select {
		case <-c.exited:
			return fmt.Errorf("pgembed: postgres exited during start-up: %s", tail(logPath))
		case <-ctx.Done():
			_ = c.Stop(context.WithoutCancel(ctx))
			return fmt.Errorf("pgembed: waiting for postgres: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = c.Stop(context.WithoutCancel(ctx))
			return fmt.Errorf("pgembed: postgres did not accept connections within 60s: %v; %s", err, tail(logPath))
		}
	}
}

func (c *Cluster) createDatabase(ctx context.Context, name string) error {
	conn, err := pgx.Connect(ctx, c.URLFor("postgres"))
	if err != nil {
		return fmt.Errorf("pgembed: connect: %w", err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return fmt.Errorf("pgembed: look up database %s: %w", name, err)
	}
	if exists {
		return nil
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return fmt.Errorf("pgembed: create database %s: %w", name, err)
	}
	return nil
}

// makeSocketDir creates the directory for the server's socket: <DataDir>/run
// when its socket path fits the 107-byte limit, otherwise a fresh directory
// under the system's temporary directory. Only the server's user may enter it.
func (c *Cluster) makeSocketDir(cred *syscall.Credential) error {
	dir := filepath.Join(c.dataDir, "run")
	if len(dir)+len("/.s.PGSQL.5432") > 100 {
		tmp, err := os.MkdirTemp("", "cqrsgate-pg-")
		if err != nil {
			return fmt.Errorf("pgembed: socket directory: %w", err)
		}
		dir, c.tempSock = tmp, true
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("pgembed: socket directory: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("pgembed: socket directory: %w", err)
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return fmt.Errorf("pgembed: socket directory: %w", err)
		}
	}
	c.socketDir = dir
	return nil
}

func (c *Cluster) removeSocketDir() {
	if c.tempSock {
		_ = os.RemoveAll(c.socketDir)
	}
}

// initIfEmpty runs initdb when dataDir has no cluster yet.
func initIfEmpty(ctx context.Context, bin, dataDir string, cred *syscall.Credential, log *slog.Logger) error {
	if _, err := os.Stat(filepath.Join(dataDir, "PG_VERSION")); err == nil {
		return nil
	}
	entries, err := os.ReadDir(dataDir)
	if err != nil {
		return fmt.Errorf("pgembed: read data directory: %w", err)
	}
	if len(entries) > 0 {
		return fmt.Errorf("pgembed: %s is not empty but holds no PostgreSQL cluster (no PG_VERSION): choose another data directory", dataDir)
	}
	log.Info("initialising embedded PostgreSQL cluster", "dataDir", dataDir)
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "initdb"), "-D", dataDir, "-U", superuser, "-A", "trust",
		"-E", "UTF8", "--locale=C", "--no-instructions")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	cmd.Dir = os.TempDir() // initdb run as another user must be able to stat its working directory
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pgembed: initdb: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// stopLeftover stops a server that an earlier, crashed run left running on
// dataDir (an orphan, adopted by init), so that this run can start its own.
// A server whose parent is still alive belongs to a running process (another
// gateway on the same data directory): that is an error, not a leftover.
func stopLeftover(ctx context.Context, dataDir string, log *slog.Logger) error {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return nil
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	if err != nil || pid <= 0 {
		return nil
	}
	proc, err := os.FindProcess(pid)
	if err != nil || proc.Signal(syscall.Signal(0)) != nil {
		return nil // stale: PostgreSQL removes it itself
	}
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if !strings.Contains(string(cmdline), dataDir) {
		return nil // the pid was reused by something else; PostgreSQL will see that too
	}
	if ppid := parentPID(pid); ppid > 1 {
		return fmt.Errorf("pgembed: data directory %s is in use by a PostgreSQL server (pid %d) that process %d started: stop that process (another cqrsgate?) or choose another -data-dir", dataDir, pid, ppid)
	}
	log.Warn("stopping a PostgreSQL left running on the data directory by an earlier run", "pid", pid, "dataDir", dataDir)
	_ = proc.Signal(syscall.SIGINT)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if proc.Signal(syscall.Signal(0)) != nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("pgembed: a PostgreSQL server (pid %d) left running on %s did not stop", pid, dataDir)
}

// parentPID returns pid's parent process id from /proc (0 if unknown).
func parentPID(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) is in parentheses and may contain spaces.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	fields := strings.Fields(s[i+1:])
	if len(fields) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(fields[1])
	return ppid
}

// findBinDir returns the directory that holds initdb and postgres.
func findBinDir(explicit string) (string, error) {
	has := func(dir string) bool {
		for _, name := range []string{"initdb", "postgres"} {
			if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
				return false
			}
		}
		return true
	}
	if explicit != "" {
		if has(explicit) {
			return explicit, nil
		}
		return "", fmt.Errorf("pgembed: %s has no initdb and postgres: %w", explicit, ErrNoBinaries)
	}
	var candidates []string
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		candidates = append(candidates, strings.TrimSpace(string(out)))
	}
	versions, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(versions, func(i, j int) bool { return versionOf(versions[i]) > versionOf(versions[j]) })
	candidates = append(candidates, versions...)
	candidates = append(candidates, "/usr/local/pgsql/bin")
	if p, err := exec.LookPath("postgres"); err == nil {
		candidates = append(candidates, filepath.Dir(p))
	}
	for _, dir := range candidates {
		if has(dir) {
			return dir, nil
		}
	}
	return "", fmt.Errorf("pgembed: %w", ErrNoBinaries)
}

func versionOf(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// serverCredential returns the credential to run the server with: nil when
// we are not root, the named user's otherwise.
func serverCredential(name string) (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	if name == "" {
		name = "postgres"
	}
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("pgembed: PostgreSQL refuses to run as root and there is no %q user to run it as (create one, e.g. useradd --system %s, or set DATABASE_URL): %w", name, name, err)
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// checkReachable fails when the server's user cannot enter every parent
// directory of dataDir.
func checkReachable(dataDir string, cred *syscall.Credential) error {
	for dir := filepath.Dir(dataDir); ; dir = filepath.Dir(dir) {
		fi, err := os.Stat(dir)
		if err != nil {
			return fmt.Errorf("pgembed: %w", err)
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		mode := fi.Mode().Perm()
		canEnter := mode&0o001 != 0 ||
			ok && st.Uid == cred.Uid && mode&0o100 != 0 ||
			ok && st.Gid == cred.Gid && mode&0o010 != 0
		if !canEnter {
			return fmt.Errorf("pgembed: the PostgreSQL server runs as uid %d, which cannot enter %s (mode %v): choose a data directory it can reach, e.g. -data-dir /var/lib/cqrsgate/pgdata or one under /tmp", cred.Uid, dir, mode)
		}
		if dir == "/" || dir == filepath.Dir(dir) {
			return nil
		}
	}
}

func chownTree(root string, cred *syscall.Credential) error {
	return filepath.Walk(root, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok && st.Uid == cred.Uid && st.Gid == cred.Gid {
			return nil
		}
		if err := os.Lchown(path, int(cred.Uid), int(cred.Gid)); err != nil {
			return fmt.Errorf("pgembed: give %s to the server's user: %w", path, err)
		}
		return nil
	})
}

// tail returns the last lines of the server log, for error messages.
func tail(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return "(no server log)"
	}
	defer f.Close()
	b, _ := io.ReadAll(io.LimitReader(f, 1<<20))
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 10 {
		lines = lines[len(lines)-10:]
	}
	return "server log " + path + ":\n" + strings.Join(lines, "\n")
}
