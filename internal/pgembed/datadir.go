package pgembed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ownerFile, in the data directory, holds the pid of the process that
// started the server last. A running server whose parent is that process
// is in use; one whose parent is another (init, after a crash) is a
// leftover that Start may stop.
const ownerFile = "pgembed.owner"

// findBinDir returns the directory that holds initdb and postgres.
func findBinDir(ctx context.Context, explicit string) (string, error) {
	has := func(dir string) bool {
		for _, name := range []string{"initdb", "postgres"} {
			fi, err := os.Stat(filepath.Join(dir, name))
			if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
				return false
			}
		}
		return true
	}
	if explicit != "" {
		if has(explicit) {
			return explicit, nil
		}
		return "", fmt.Errorf("pgembed: %s holds no initdb and postgres: %w", explicit, ErrNoBinaries)
	}
	var candidates []string
	if out, err := exec.CommandContext(ctx, "pg_config", "--bindir").Output(); err == nil {
		candidates = append(candidates, strings.TrimSpace(string(out)))
	}
	versions, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortStableFunc(versions, func(a, b string) int { return versionOf(b) - versionOf(a) })
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
	return "", fmt.Errorf("pgembed: looked in pg_config --bindir, /usr/lib/postgresql/*/bin, /usr/local/pgsql/bin and PATH: %w", ErrNoBinaries)
}

// versionOf orders /usr/lib/postgresql/<version>/bin directories: 15 > 9.6.
func versionOf(binDir string) int {
	major, minor, _ := strings.Cut(filepath.Base(filepath.Dir(binDir)), ".")
	m, _ := strconv.Atoi(major)
	n, _ := strconv.Atoi(minor)
	return m*100 + n
}

// serverCredential returns the credential to run initdb and the server
// with: nil when we are not root, the named user's (default "postgres")
// otherwise, with its supplementary groups.
func serverCredential(name string) (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	if name == "" {
		name = "postgres"
	}
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("pgembed: PostgreSQL refuses to run as root and there is no user %q to run it as (create one, e.g. useradd --system %s, or set DATABASE_URL): %w", name, name, err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("pgembed: user %s: %w", name, err)
	}
	if uid == 0 {
		return nil, fmt.Errorf("pgembed: user %s is root, and PostgreSQL refuses to run as root: name an unprivileged user", name)
	}
	cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	if ids, err := u.GroupIds(); err == nil {
		for _, id := range ids {
			if g, err := strconv.ParseUint(id, 10, 32); err == nil {
				cred.Groups = append(cred.Groups, uint32(g))
			}
		}
	}
	return cred, nil
}

// prepareDataDir creates dataDir (mode 0700) and its missing parents. As
// root (cred != nil) it checks that the server's user can reach dataDir.
func prepareDataDir(dataDir string, cred *syscall.Credential) error {
	created, err := mkdirParents(filepath.Dir(dataDir))
	if err != nil {
		return fmt.Errorf("pgembed: create data directory: %w", err)
	}
	if cred != nil {
		// Parents we created must be enterable by the server's user,
		// whatever our umask.
		for _, dir := range created {
			if err := os.Chmod(dir, 0o755); err != nil {
				return fmt.Errorf("pgembed: create data directory: %w", err)
			}
		}
	}
	if err := os.Mkdir(dataDir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("pgembed: create data directory: %w", err)
	}
	fi, err := os.Stat(dataDir)
	if err != nil {
		return fmt.Errorf("pgembed: data directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("pgembed: data directory %s is not a directory", dataDir)
	}
	// Nothing of a directory that is someone else's is changed: its
	// contents are checked before its mode or owner.
	if err := checkClusterOrEmpty(dataDir); err != nil {
		return err
	}
	// PostgreSQL refuses a data directory that others can read.
	if fi.Mode().Perm()&0o027 != 0 {
		if err := os.Chmod(dataDir, 0o700); err != nil {
			return fmt.Errorf("pgembed: data directory: %w", err)
		}
	}
	if cred == nil {
		return nil
	}
	return checkReachable(dataDir, cred)
}

// mkdirParents is os.MkdirAll(dir, 0o755) that returns the directories it
// created, outermost first.
func mkdirParents(dir string) ([]string, error) {
	var missing []string
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		missing = append(missing, d)
		if d == filepath.Dir(d) {
			break
		}
	}
	slices.Reverse(missing)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return missing, nil
}

// checkReachable fails when the server's user cannot enter (search) every
// parent directory of dataDir. ACLs are not consulted.
func checkReachable(dataDir string, cred *syscall.Credential) error {
	for dir := filepath.Dir(dataDir); ; dir = filepath.Dir(dir) {
		fi, err := os.Stat(dir)
		if err != nil {
			return fmt.Errorf("pgembed: data directory parent: %w", err)
		}
		if !canSearch(fi, cred) {
			return fmt.Errorf("pgembed: the PostgreSQL server runs as uid %d, which cannot enter %s (mode %v, the data directory %s is inside it): choose a data directory that user can reach, e.g. -data-dir /var/lib/cqrsgate/pgdata or one under /tmp",
				cred.Uid, dir, fi.Mode().Perm(), dataDir)
		}
		if dir == filepath.Dir(dir) {
			return nil
		}
	}
}

// canSearch reports whether cred may enter the directory fi describes,
// following the owner, group, other permission classes.
func canSearch(fi fs.FileInfo, cred *syscall.Credential) bool {
	mode := fi.Mode().Perm()
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return true // cannot tell: let the server report it
	}
	switch {
	case st.Uid == cred.Uid:
		return mode&0o100 != 0
	case st.Gid == cred.Gid || slices.Contains(cred.Groups, st.Gid):
		return mode&0o010 != 0
	default:
		return mode&0o001 != 0
	}
}

// chownTree gives root and everything below it to cred's user. Files that
// vanish meanwhile are skipped.
func chownTree(root string, cred *syscall.Credential) error {
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err == nil {
			var info fs.FileInfo
			if info, err = d.Info(); err == nil {
				if st, ok := info.Sys().(*syscall.Stat_t); ok && st.Uid == cred.Uid && st.Gid == cred.Gid {
					return nil
				}
				err = os.Lchown(path, int(cred.Uid), int(cred.Gid))
			}
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("pgembed: give %s to the server's user: %w", path, err)
		}
		return nil
	})
}

// checkClusterOrEmpty fails unless dataDir holds a PostgreSQL cluster
// (PG_VERSION) or nothing at all: a wrong -data-dir is refused before
// anything in it is touched.
func checkClusterOrEmpty(dataDir string) error {
	if _, err := os.Lstat(filepath.Join(dataDir, "PG_VERSION")); err == nil {
		return nil
	}
	f, err := os.Open(dataDir)
	if err != nil {
		return fmt.Errorf("pgembed: read data directory: %w", err)
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("pgembed: read data directory: %w", err)
	}
	if len(names) > 0 {
		return fmt.Errorf("pgembed: %s is not empty but holds no PostgreSQL cluster (no PG_VERSION): choose another data directory (it was left as it is)", dataDir)
	}
	return nil
}

// initIfEmpty runs initdb when dataDir holds no cluster yet. It refuses a
// non-empty directory without a cluster, and empties dataDir again when
// initdb fails.
func initIfEmpty(ctx context.Context, bin, dataDir string, cred *syscall.Credential, log *slog.Logger) error {
	if _, err := os.Stat(filepath.Join(dataDir, "PG_VERSION")); err == nil {
		return nil
	}
	if err := checkClusterOrEmpty(dataDir); err != nil {
		return err
	}
	log.Info("initialising embedded PostgreSQL cluster", "dataDir", dataDir)
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "initdb"), "-D", dataDir, "-U", superuser, "-A", "trust",
		"-E", "UTF8", "--locale=C")
	cmd.Dir = dataDir // the server's user must be able to enter its working directory
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := cmd.CombinedOutput(); err != nil {
		if entries, rerr := os.ReadDir(dataDir); rerr == nil {
			for _, e := range entries {
				_ = os.RemoveAll(filepath.Join(dataDir, e.Name()))
			}
		}
		return fmt.Errorf("pgembed: initdb %s: %w: %s", dataDir, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// stopLeftover stops a server that an earlier run of this package started
// on dataDir and left running when its process died (the server's parent
// is no longer the process recorded in the owner file). A server whose
// parent is still that process, or that this package did not start, is in
// use: that is an error. A postmaster.pid whose process is gone is left to
// PostgreSQL, which removes it; one whose pid now belongs to another
// process is removed here when it is certainly stale (see
// removeStalePIDFile), as PostgreSQL would refuse it.
func stopLeftover(ctx context.Context, dataDir string, log *slog.Logger) error {
	pidFile := filepath.Join(dataDir, "postmaster.pid")
	pid := readPID(pidFile)
	if pid <= 0 || !processAlive(pid) {
		return nil
	}
	if !isPostmasterOf(pid, dataDir) {
		return removeStalePIDFile(pidFile, pid, dataDir, log)
	}
	_, ppid, _ := procStat(pid)
	owner := readPID(filepath.Join(dataDir, ownerFile))
	switch {
	case ppid == os.Getpid():
		return fmt.Errorf("pgembed: data directory %s is in use by a PostgreSQL server (pid %d) that this process started", dataDir, pid)
	case owner <= 0:
		return fmt.Errorf("pgembed: data directory %s is in use by a PostgreSQL server (pid %d) that cqrsgate did not start: stop it (pg_ctl -D %s stop), choose another -data-dir, or point DATABASE_URL at it", dataDir, pid, dataDir)
	case ppid == owner:
		return fmt.Errorf("pgembed: data directory %s is in use by a PostgreSQL server (pid %d) that process %d started (another cqrsgate?): stop that process or choose another -data-dir", dataDir, pid, ppid)
	}
	log.Warn("stopping a PostgreSQL server left running on the data directory by an earlier run", "pid", pid, "dataDir", dataDir)
	_ = syscall.Kill(pid, syscall.SIGINT)
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for processAlive(pid) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("pgembed: the PostgreSQL server (pid %d) left running on %s did not stop: %w", pid, dataDir, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	log.Info("stopped the leftover PostgreSQL server", "pid", pid)
	return nil
}

// removeStalePIDFile removes postmaster.pid when its pid, alive, is not a
// server of dataDir: the server that wrote it is gone and the pid was
// reused. PostgreSQL cannot tell (it sees a live process of its user and
// refuses to start), so this does what an operator would after checking:
// it deletes the file, but only when everything says it is stale. The
// process's command line and working directory (a postmaster's is its data
// directory) are readable and name another directory, the file is complete,
// and nothing accepts connections on the socket or the addresses it
// records. Otherwise the file is left to PostgreSQL, which reports it.
func removeStalePIDFile(pidFile string, pid int, dataDir string, log *slog.Logger) error {
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return nil // cannot tell
	}
	cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid))
	if err != nil || sameDir(cwd, dataDir) {
		return nil
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return nil
	}
	// Lines: pid, data directory, start time, port, socket directory,
	// listen addresses, shared memory key, status.
	lines := strings.Split(string(b), "\n")
	if len(lines) < 6 {
		return nil // a server is still writing it, or it is not PostgreSQL's
	}
	port, socketDir, listen := strings.TrimSpace(lines[3]), strings.TrimSpace(lines[4]), strings.TrimSpace(lines[5])
	if _, err := strconv.Atoi(port); err != nil {
		return nil
	}
	if accepts(socketDir, listen, port) {
		return nil
	}
	if err := os.Remove(pidFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("pgembed: remove the stale %s: %w", pidFile, err)
	}
	command, _, _ := strings.Cut(string(cmdline), "\x00")
	log.Warn("removed a stale postmaster.pid: its server is gone and its pid now belongs to another process",
		"pid", pid, "process", command, "dataDir", dataDir)
	return nil
}

// accepts reports whether a server accepts connections on the Unix socket
// in socketDir or on the TCP addresses in listen (PostgreSQL's
// listen_addresses), at port.
func accepts(socketDir, listen, port string) bool {
	var targets [][2]string
	if socketDir != "" {
		targets = append(targets, [2]string{"unix", filepath.Join(socketDir, ".s.PGSQL."+port)})
	}
	for _, host := range strings.Split(listen, ",") {
		switch host = strings.TrimSpace(host); host {
		case "":
			continue
		case "*", "0.0.0.0":
			host = "127.0.0.1"
		case "::":
			host = "::1"
		}
		targets = append(targets, [2]string{"tcp", net.JoinHostPort(host, port)})
	}
	for _, t := range targets {
		if c, err := net.DialTimeout(t[0], t[1], time.Second); err == nil {
			_ = c.Close()
			return true
		}
	}
	return false
}

// sameDir reports whether a and b name the same directory.
func sameDir(a, b string) bool {
	fa, err1 := os.Stat(a)
	fb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(fa, fb)
}

// isPostmasterOf reports whether pid's command line has dataDir as an
// argument (as in postgres -D dataDir), which guards against a reused pid.
func isPostmasterOf(pid int, dataDir string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false // then PostgreSQL itself reports the lock file
	}
	return slices.Contains(strings.Split(string(b), "\x00"), dataDir)
}

// readPID returns the number on the first line of path (0 if none).
func readPID(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil {
		return 0
	}
	return pid
}

// writeOwner records this process as the one that starts the server.
func writeOwner(dataDir string) error {
	if err := os.WriteFile(filepath.Join(dataDir, ownerFile), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600); err != nil {
		return fmt.Errorf("pgembed: record the server's owner: %w", err)
	}
	return nil
}

// removeOwner removes the owner file if it still names this process.
func removeOwner(dataDir string) {
	path := filepath.Join(dataDir, ownerFile)
	if readPID(path) == os.Getpid() {
		_ = os.Remove(path)
	}
}
