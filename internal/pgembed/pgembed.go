// Package pgembed runs a private PostgreSQL cluster from the PostgreSQL
// binaries installed on the machine, for `go run .` with no DATABASE_URL and
// for tests.
//
// The cluster listens only on a Unix socket (listen_addresses is empty), in
// a directory that only the server's OS user can enter, so the trust
// authentication that initdb sets up admits no one else. The socket
// directory is <DataDir>/run, or a fresh cqrsgate-pg-* directory under the
// system's temporary directory when that path would be too long for a Unix
// socket. The server runs as a child process (never daemonized); its output
// is appended to <DataDir>/server.log. Started as root (PostgreSQL refuses
// to run as root), the server runs as an unprivileged user, "postgres" by
// default, which is given the data directory.
package pgembed

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// ErrNoBinaries is returned (wrapped) by Start when no PostgreSQL server
// binaries (initdb and postgres) can be found.
var ErrNoBinaries = errors.New("no PostgreSQL server binaries (initdb, postgres) found: install them (Debian/Ubuntu: apt-get install postgresql; Fedora: dnf install postgresql-server; macOS: brew install postgresql) or set DATABASE_URL to use an existing server")

// Options configure Start.
type Options struct {
	// DataDir is the cluster's data directory (PGDATA). Required; made
	// absolute. initdb runs when it is missing or empty.
	DataDir string
	// BinDir holds initdb and postgres. Empty: `pg_config --bindir`, then
	// the newest /usr/lib/postgresql/*/bin, /usr/local/pgsql/bin, then PATH.
	BinDir string
	// Database is created after start-up when missing (default "cqrsgate").
	Database string
	// User is the OS user the server runs as when we are root (default
	// "postgres"). Ignored when we are not root.
	User string
	// Settings are extra server settings, passed as -c name=value (for
	// example fsync, max_connections). They cannot change listen_addresses,
	// unix_socket_directories, unix_socket_permissions or port.
	Settings map[string]string
	// Logger receives start and stop messages (nil: discard).
	Logger *slog.Logger
}

// Cluster is a running PostgreSQL server started by Start. Its methods are
// safe for concurrent use.
type Cluster struct {
	dataDir   string
	socketDir string
	tempSock  bool // socketDir is a temporary directory Stop removes
	logPath   string
	logStart  int64 // size of the server log before this run
	database  string
	log       *slog.Logger

	cmd      *exec.Cmd
	exited   chan struct{} // closed when the server process has exited
	waitErr  error         // the server's exit status, set before exited is closed
	ready    atomic.Bool   // the server accepted a connection
	stopping atomic.Bool   // Stop was called: an exit is expected

	lockMu sync.Mutex
	lock   io.Closer // the data directory's lock (see lockDataDir), held while the server runs; nil once released

	stopOnce sync.Once
	stopErr  error
}

// superuser is the database role initdb creates; it is also the role in
// every URL this package builds.
const superuser = "postgres"

// port only names the socket file (.s.PGSQL.5432): the server listens on no
// TCP port. It is pinned on both sides so that PGPORT in the environment
// cannot make a URL point at the wrong socket.
const port = "5432"

// Start initialises the data directory when needed (initdb), stops a server
// that an earlier, crashed run left running on it, starts the server, waits
// until it accepts connections (as long as ctx allows: crash recovery can
// take a while), and creates opts.Database when missing.
// The server is stopped with Stop; should this process die first, the
// kernel asks it for a fast shutdown (Linux parent-death signal).
//
// Errors: ErrNoBinaries (wrapped) when initdb and postgres cannot be found;
// an error naming the directory when, as root, the server's user cannot
// reach the data directory; an error when the data directory is not empty
// but holds no cluster, or is in use by a running server that is not a
// leftover of a crashed run; initdb and server start-up failures, with the
// tail of the server log; ctx's error when it ends first.
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
		return nil, fmt.Errorf("pgembed: data directory %s: %w", opts.DataDir, err)
	}
	bin, err := findBinDir(ctx, opts.BinDir)
	if err != nil {
		return nil, err
	}
	cred, err := serverCredential(opts.User)
	if err != nil {
		return nil, err
	}
	if err := prepareDataDir(dataDir, cred); err != nil {
		return nil, err
	}
	// One Start per data directory at a time, across processes: held until
	// Stop (the kernel drops it when this process dies).
	lock, err := lockDataDir(dataDir)
	if err != nil {
		return nil, err
	}
	started := false
	defer func() {
		if !started {
			_ = lock.Close()
		}
	}()
	if err := stopLeftover(ctx, dataDir, log); err != nil {
		return nil, err
	}
	if cred != nil {
		if err := chownTree(dataDir, cred); err != nil {
			return nil, err
		}
	}
	if err := initIfEmpty(ctx, bin, dataDir, cred, log); err != nil {
		return nil, err
	}
	if err := writeOwner(dataDir); err != nil {
		return nil, err
	}

	c := &Cluster{
		dataDir:  dataDir,
		logPath:  filepath.Join(dataDir, "server.log"),
		database: opts.Database,
		log:      log,
		exited:   make(chan struct{}),
		lock:     lock,
	}
	if err := c.makeSocketDir(cred); err != nil {
		return nil, err
	}
	if err := c.startServer(bin, cred, opts.Settings); err != nil {
		c.removeSocketDir()
		return nil, err
	}
	if err := c.waitReady(ctx); err != nil {
		c.stopAfterFailedStart(ctx)
		return nil, err
	}
	if err := c.createDatabase(ctx, opts.Database); err != nil {
		c.stopAfterFailedStart(ctx)
		return nil, err
	}
	started = true
	log.Info("embedded PostgreSQL started", "url", c.URL(), "dataDir", dataDir, "serverLog", c.logPath, "binDir", bin)
	return c, nil
}

// URL returns the connection URL of the cluster's database (Options.Database),
// for example postgres://postgres@/cqrsgate?host=%2Fdata%2Frun&port=5432&sslmode=disable.
func (c *Cluster) URL() string { return c.URLFor(c.database) }

// URLFor returns the connection URL of database on this cluster, as the
// superuser "postgres" over the cluster's Unix socket.
func (c *Cluster) URLFor(database string) string {
	q := url.Values{}
	q.Set("host", c.socketDir)
	q.Set("port", port)
	q.Set("sslmode", "disable")
	u := url.URL{Scheme: "postgres", User: url.User(superuser), Path: "/" + database, RawQuery: q.Encode()}
	return u.String()
}

// DataDir returns the cluster's absolute data directory.
func (c *Cluster) DataDir() string { return c.dataDir }

// LogFile returns the path of the server log, <DataDir>/server.log.
func (c *Cluster) LogFile() string { return c.logPath }

// Done returns a channel that is closed when the server process has exited,
// whether through Stop or not (a server that dies on its own is also logged
// at Error).
func (c *Cluster) Done() <-chan struct{} { return c.exited }

// Stop shuts the server down and waits for it to exit: a fast shutdown
// (SIGINT: sessions are ended, data is checkpointed). When ctx ends first,
// it asks for an immediate shutdown (SIGQUIT; PostgreSQL recovers from the
// WAL on the next start) and, failing that, kills the server and its
// children. Stop is idempotent: later calls return the first call's result.
//
// Errors: ctx's error (wrapped) when the fast shutdown did not finish in
// time; an error with the server's exit status and log tail when the server
// had already exited on its own before Stop.
func (c *Cluster) Stop(ctx context.Context) error {
	c.stopOnce.Do(func() {
		c.stopErr = c.stop(ctx)
		c.removeSocketDir()
		c.lockMu.Lock()
		if c.lock != nil {
			// Still this process's: another may have started on the data
			// directory once the server exited on its own (see unlock).
			removeOwner(c.dataDir)
		}
		c.lockMu.Unlock()
		c.unlock()
	})
	return c.stopErr
}

// unlock releases the data directory's lock: at Stop, or when the server
// has exited on its own (a Start may then follow, in this process or
// another, while this Cluster is not stopped yet).
func (c *Cluster) unlock() {
	c.lockMu.Lock()
	defer c.lockMu.Unlock()
	if c.lock != nil {
		_ = c.lock.Close()
		c.lock = nil
	}
}

func (c *Cluster) stop(ctx context.Context) error {
	c.stopping.Store(true)
	select {
	case <-c.exited:
		return fmt.Errorf("pgembed: the server had already exited (%v); %s", c.waitErr, tail(c.logPath, c.logStart))
	default:
	}
	pid := c.cmd.Process.Pid
	_ = syscall.Kill(pid, syscall.SIGINT)
	select {
	case <-c.exited:
		c.log.Info("embedded PostgreSQL stopped", "dataDir", c.dataDir)
		return nil
	case <-ctx.Done():
	}
	c.log.Warn("embedded PostgreSQL did not stop in time: immediate shutdown", "dataDir", c.dataDir)
	_ = syscall.Kill(pid, syscall.SIGQUIT)
	select {
	case <-c.exited:
	case <-time.After(10 * time.Second):
		// Backends are in sessions of their own, so killing the process
		// group would miss them: kill the children one by one.
		for _, child := range childPIDs(pid) {
			_ = syscall.Kill(child, syscall.SIGKILL)
		}
		_ = syscall.Kill(pid, syscall.SIGKILL)
		<-c.exited
	}
	return fmt.Errorf("pgembed: the server did not finish a fast shutdown in time and was stopped abruptly (it recovers on the next start): %w", ctx.Err())
}

// stopAfterFailedStart stops a server whose start-up failed, with a bounded
// wait that does not depend on Start's (possibly ended) context.
func (c *Cluster) stopAfterFailedStart(ctx context.Context) {
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	_ = c.Stop(stopCtx)
}

// createDatabase creates name unless it exists, connected to the "postgres"
// database.
func (c *Cluster) createDatabase(ctx context.Context, name string) error {
	conn, err := pgx.Connect(ctx, c.URLFor("postgres"))
	if err != nil {
		return fmt.Errorf("pgembed: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return fmt.Errorf("pgembed: look up database %s: %w", name, err)
	}
	if exists {
		return nil
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P04" { // duplicate_database: created meanwhile
		return nil
	}
	if err != nil {
		return fmt.Errorf("pgembed: create database %s: %w", name, err)
	}
	c.log.Info("created database", "database", name)
	return nil
}

// lockDataDir takes an exclusive flock on dataDir, failing at once when
// another process (or Start in this one) holds it. On a filesystem that
// has no flock (some network filesystems), it takes a lock file beside the
// directory instead (see pidLock).
func lockDataDir(dataDir string) (io.Closer, error) {
	f, err := os.Open(dataDir)
	if err != nil {
		return nil, fmt.Errorf("pgembed: data directory: %w", err)
	}
	if err := flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		switch {
		case errors.Is(err, syscall.EWOULDBLOCK):
			return nil, inUse(dataDir)
		case errors.Is(err, syscall.ENOTSUP), errors.Is(err, syscall.EOPNOTSUPP), errors.Is(err, syscall.ENOLCK), errors.Is(err, syscall.EINVAL):
			return pidLock(dataDir)
		}
		return nil, fmt.Errorf("pgembed: lock data directory %s: %w", dataDir, err)
	}
	return f, nil
}

// flock is syscall.Flock (a variable for tests of filesystems without it).
var flock = syscall.Flock

func inUse(dataDir string) error {
	return fmt.Errorf("pgembed: data directory %s is in use by another cqrsgate (or another Start in this process): stop it or choose another -data-dir", dataDir)
}

// pidLock is the lock of a data directory on a filesystem without flock: a
// file beside it (.<name>.lock, next to the directory the path resolves
// to) that holds the process id, a token of its own, the process space
// the id means something in (the kernel's boot id and the PID namespace)
// and the host name. It is put in place whole with link(2), which fails
// if the file exists, so of processes that lock at once one gets it. A
// file whose process of this process space has died is removed, but only
// by a process holding the takeover file (.<name>.lock.takeover, put in
// place the same way), after reading it again: two processes that both
// found it stale never remove each other's new lock. A file of another
// process space (another container, machine or boot) is held until
// removed by hand: see stale. Closing the lock removes the file if it is
// its own.
func pidLock(dataDir string) (io.Closer, error) {
	real, err := filepath.Abs(dataDir)
	if err != nil {
		return nil, fmt.Errorf("pgembed: data directory: %w", err)
	}
	if r, err := filepath.EvalSymlinks(real); err == nil {
		real = r // one directory named through a symlink is one lock
	}
	path := filepath.Join(filepath.Dir(real), "."+filepath.Base(real)+".lock")
	token := rand.Text() // unique to this lock, among this process's too
	space := processSpace()
	content := []byte(strconv.Itoa(os.Getpid()) + " " + token + " " + space + " " + field(hostnameOf()))
	tmp := path + "." + token + ".tmp"
	defer func() { _ = os.Remove(tmp) }() // also when it could be made but not written
	if err := os.WriteFile(tmp, content, 0o600); err != nil {
		return nil, fmt.Errorf("pgembed: lock file %s: %w", path, err)
	}
	// Known as this process's before the file can name it: another Start
	// in this process that reads it must not take it for a dead one's.
	ownTokens.Store(token, true)
	locked := false
	defer func() {
		if !locked {
			ownTokens.Delete(token)
		}
	}()
	for attempt := 0; attempt < 5; attempt++ {
		err := os.Link(tmp, path)
		if err == nil {
			locked = true
			return lockFile{path, token}, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("pgembed: lock file %s: %w", path, err)
		}
		held, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue // released meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("pgembed: lock file %s: %w", path, err)
		}
		if !stale(held, space) {
			return nil, fmt.Errorf("%w (its lock file %s names %s; remove the file if no cqrsgate uses the directory)", inUse(dataDir), path, holder(held, space))
		}
		if err := takeOver(path, tmp, held); err != nil {
			return nil, err
		}
	}
	return nil, fmt.Errorf("%w (its lock file %s keeps changing hands)", inUse(dataDir), path)
}

// ownTokens are the tokens of the lock files this process holds or is
// putting in place.
var ownTokens sync.Map

// stale reports whether a lock file's content ("<pid> <token> <boot id>
// <pid namespace> <host>") names no running process; space is this
// process's (processSpace). Pids say so only
// within one boot of one kernel and one PID namespace (two containers
// are each other's PID 1): a file of this process space is stale when its
// process has died, or names this process with a token it does not hold
// (a lock this process left, which it does not hold now). A file of
// another process space (another container, another machine on a shared
// filesystem, a boot before this one), in another format, or unreadable
// in part cannot be judged from here: it counts as held, and is removed
// by hand.
func stale(content []byte, space string) bool {
	f := strings.Fields(string(content))
	if len(f) == 0 {
		return true // nothing written: no process holds it
	}
	if len(f) != 5 {
		return false
	}
	pid, err := strconv.Atoi(f[0])
	if err != nil || pid <= 0 {
		return false
	}
	if f[2]+" "+f[3] != space || f[2] == "-" || f[3] == "-" {
		return false
	}
	if pid == os.Getpid() {
		_, mine := ownTokens.Load(f[1])
		return !mine
	}
	return !alive(pid)
}

// holder describes the process a lock file names, for the in-use error;
// space is this process's.
func holder(content []byte, space string) string {
	f := strings.Fields(string(content))
	switch {
	case len(f) == 5 && f[2]+" "+f[3] == space:
		return "process " + f[0] + " of this host"
	case len(f) == 5:
		return "process " + f[0] + " of host " + f[4] + " (another container, machine or boot: it cannot be checked from here)"
	case len(f) >= 1:
		return "process " + f[0]
	}
	return "no process"
}

// processSpace is where this process's id means something: the kernel's
// boot id and the PID namespace, two fields ("-" for one unknown).
func processSpace() string {
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		boot = nil
	}
	ns, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		ns = ""
	}
	return field(string(boot)) + " " + field(ns)
}

func hostnameOf() string {
	h, _ := os.Hostname()
	return h
}

// field is s as one field of a lock file: no spaces, "-" when empty.
func field(s string) string {
	s = strings.Join(strings.Fields(s), "")
	if s == "" {
		return "-"
	}
	return s
}

// takeOver removes the stale lock file path if it still holds content,
// while holding the takeover file (tmp linked to path.takeover). A
// takeover file older than a minute was left by a process that died
// taking over, and is removed.
func takeOver(path, tmp string, content []byte) error {
	guard := path + ".takeover"
	if err := os.Link(tmp, guard); err != nil {
		if !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("pgembed: lock file %s: %w", guard, err)
		}
		if st, serr := os.Stat(guard); serr == nil && time.Since(st.ModTime()) > time.Minute {
			_ = os.Remove(guard)
		} else {
			time.Sleep(10 * time.Millisecond) // another process is taking over: look again
		}
		return nil
	}
	defer func() { _ = os.Remove(guard) }()
	if again, err := os.ReadFile(path); err == nil && bytes.Equal(again, content) {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("pgembed: stale lock file %s: %w", path, err)
		}
	}
	return nil
}

// alive reports whether a process pid exists (one of another user's
// answers EPERM).
func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// lockFile is a pidLock's lock: closing it removes the file, if it is
// still this lock's (one removed by hand may have been replaced by
// another process's, which stays).
func (l lockFile) Close() error {
	defer ownTokens.Delete(l.token)
	b, err := os.ReadFile(l.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if f := strings.Fields(string(b)); len(f) < 2 || f[1] != l.token {
		return nil
	}
	return os.Remove(l.path)
}

type lockFile struct{ path, token string }
