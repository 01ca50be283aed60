package pgembed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// maxSocketPath is the longest socket path we use: sun_path holds 108 bytes
// including the terminating NUL; keep a margin.
const maxSocketPath = 100

// socketFile is the name of the server's socket in its socket directory.
const socketFile = ".s.PGSQL." + port

// startServer starts `postgres -D dataDir` as a child process. The server's
// own settings (listen_addresses, socket directory and permissions, port)
// come after settings, so that settings cannot open the server to others.
func (c *Cluster) startServer(bin string, cred *syscall.Credential, settings map[string]string) error {
	logFile, err := os.OpenFile(c.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("pgembed: server log: %w", err)
	}
	defer logFile.Close() // the child has its own descriptor
	if cred != nil {
		if err := os.Chown(c.logPath, int(cred.Uid), int(cred.Gid)); err != nil {
			return fmt.Errorf("pgembed: server log: %w", err)
		}
	}
	logStart, _ := logFile.Seek(0, io.SeekEnd)

	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	args := []string{"-D", c.dataDir}
	for _, k := range keys {
		args = append(args, "-c", k+"="+settings[k])
	}
	args = append(args,
		"-c", "listen_addresses=",
		"-c", "unix_socket_directories="+quoteListItem(c.socketDir),
		"-c", "unix_socket_permissions=0700",
		"-c", "port="+port,
	)
	cmd := exec.Command(filepath.Join(bin, "postgres"), args...)
	cmd.Dir = c.dataDir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: cred,
		// Should this process die without calling Stop, the kernel asks
		// the server for a fast shutdown.
		Pdeathsig: syscall.SIGINT,
		// Own process group: a Ctrl-C at the terminal reaches only us, and
		// we stop the server after the components that use it.
		Setpgid: true,
	}

	// The parent-death signal fires when the *thread* that started the
	// child exits, so the child is started from a goroutine locked to its
	// thread, which lives until the child has exited. The goroutine never
	// unlocks: its thread ends with it.
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		c.waitErr = cmd.Wait()
		if !c.stopping.Load() && c.ready.Load() {
			c.log.Error("embedded PostgreSQL exited unexpectedly", "err", c.waitErr, "serverLog", c.logPath)
			c.unlock()
		}
		close(c.exited)
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("pgembed: start %s: %w", cmd.Path, err)
	}
	c.cmd = cmd
	c.logStart = logStart
	return nil
}

// waitReady waits until the server accepts connections. It fails fast,
// with the tail of the server log, when the server exits.
func (c *Cluster) waitReady(ctx context.Context) error {
	url := c.URLFor("postgres")
	begun := time.Now()
	nextNote := begun.Add(5 * time.Second)
	for {
		attemptCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		conn, err := pgx.Connect(attemptCtx, url)
		cancel()
		if err == nil {
			_ = conn.Close(ctx)
			// Another server on the same socket path answers too: ours is
			// ready once it holds the data directory's lock file.
			if readPID(filepath.Join(c.dataDir, "postmaster.pid")) == c.cmd.Process.Pid {
				c.ready.Store(true)
				return nil
			}
			err = errors.New("a server that is not ours answers on the socket")
		}
		select {
		case <-c.exited:
			return fmt.Errorf("pgembed: the server exited during start-up (%v); %s", c.waitErr, tail(c.logPath, c.logStart))
		case <-ctx.Done():
			return fmt.Errorf("pgembed: waiting for the server to accept connections (last error: %v): %w; %s", err, ctx.Err(), tail(c.logPath, c.logStart))
		case <-time.After(25 * time.Millisecond):
		}
		if now := time.Now(); now.After(nextNote) {
			c.log.Info("still waiting for embedded PostgreSQL to accept connections (crash recovery?)", "waited", now.Sub(begun).Round(time.Second), "serverLog", c.logPath)
			nextNote = now.Add(5 * time.Second)
		}
	}
}

// makeSocketDir creates the directory for the server's socket:
// <DataDir>/run when the socket path fits, otherwise a fresh directory under
// the system's temporary directory. Only the server's user may enter it.
func (c *Cluster) makeSocketDir(cred *syscall.Credential) error {
	dir := filepath.Join(c.dataDir, "run")
	if len(dir)+1+len(socketFile) > maxSocketPath {
		tmp, err := os.MkdirTemp("", "cqrsgate-pg-")
		if err != nil {
			return fmt.Errorf("pgembed: socket directory: %w", err)
		}
		dir, c.tempSock = tmp, true
		if len(dir)+1+len(socketFile) > maxSocketPath {
			_ = os.Remove(dir)
			return fmt.Errorf("pgembed: socket directory %s: path too long for a Unix socket (set TMPDIR to a shorter directory)", dir)
		}
	} else if err := os.Mkdir(dir, 0o700); err != nil && !os.IsExist(err) {
		return fmt.Errorf("pgembed: socket directory: %w", err)
	}
	c.socketDir = dir
	if err := os.Chmod(dir, 0o700); err != nil {
		c.removeSocketDir()
		return fmt.Errorf("pgembed: socket directory: %w", err)
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			c.removeSocketDir()
			return fmt.Errorf("pgembed: socket directory: %w", err)
		}
	}
	return nil
}

// removeSocketDir removes a temporary socket directory.
func (c *Cluster) removeSocketDir() {
	if c.tempSock {
		_ = os.RemoveAll(c.socketDir)
	}
}

// quoteListItem quotes s as one element of a PostgreSQL list setting such
// as unix_socket_directories, so that commas and spaces in it are kept.
func quoteListItem(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// procStat returns pid's state letter and parent pid from /proc.
func procStat(pid int) (state byte, ppid int, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, false
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, false
	}
	fields := strings.Fields(string(b[i+1:]))
	if len(fields) < 2 {
		return 0, 0, false
	}
	ppid, err = strconv.Atoi(fields[1])
	if err != nil || len(fields[0]) == 0 {
		return 0, 0, false
	}
	return fields[0][0], ppid, true
}

// processAlive reports whether pid is a live (not zombie) process.
func processAlive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && err != syscall.EPERM {
		return false
	}
	state, _, ok := procStat(pid)
	if !ok {
		return true // no /proc: trust kill(2)
	}
	return state != 'Z' && state != 'X'
}

// childPIDs returns the pids of pid's child processes.
func childPIDs(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var children []int
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if _, ppid, ok := procStat(child); ok && ppid == pid {
			children = append(children, child)
		}
	}
	return children
}

// tail returns the last lines that the server wrote to its log from offset
// from on, for error messages.
func tail(path string, from int64) string {
	f, err := os.Open(path)
	if err != nil {
		return "(no server log)"
	}
	defer f.Close()
	const max = 64 << 10
	if end, err := f.Seek(0, io.SeekEnd); err == nil && end-from > max {
		from = end - max
	}
	if _, err := f.Seek(from, io.SeekStart); err != nil {
		return "(unreadable server log " + path + ")"
	}
	b, _ := io.ReadAll(io.LimitReader(f, max))
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return "server log " + path + ":\n" + strings.Join(lines, "\n")
}
