package pgtest

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// dirPrefix names the temporary directories of embedded clusters:
// <dirPrefix><pid>-<random>, so that the directory of a test binary that
// was killed (a test timeout, Ctrl-C) can be recognised and removed later.
const dirPrefix = "cqrsgate-pgtest-"

// sweepStaleDirs removes the cluster directories under tmp whose test
// binary has exited and whose server no longer runs. Errors are ignored:
// this is housekeeping.
func sweepStaleDirs(tmp string) {
	dirs, _ := filepath.Glob(filepath.Join(tmp, dirPrefix+"*"))
	for _, dir := range dirs {
		pidText, _, ok := strings.Cut(strings.TrimPrefix(filepath.Base(dir), dirPrefix), "-")
		pid, err := strconv.Atoi(pidText)
		if !ok || err != nil || pid <= 0 || pid == os.Getpid() || alive(pid) {
			continue
		}
		if server := readPID(filepath.Join(dir, "data", "postmaster.pid")); server > 0 && alive(server) {
			continue // still shutting down; next time
		}
		_ = os.RemoveAll(dir)
	}
}

// alive reports whether a process with this pid exists (a zombie counts:
// erring on the side of keeping a directory).
func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// readPID returns the number on the first line of path (0 if none).
func readPID(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, _ := strconv.Atoi(strings.TrimSpace(first))
	return pid
}
