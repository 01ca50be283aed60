package pgembed

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TempDataDir returns a data directory path under t.TempDir. As root the
// server runs as another user, which must be able to enter the temporary
// directories (t.TempDir makes them 0700): they are opened for search only.
func TempDataDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "data")
}

// LockDataDir is lockDataDir.
func LockDataDir(dataDir string) (interface{ Close() error }, error) { return lockDataDir(dataDir) }

// WithoutFlock makes flock fail as on a filesystem without it until the
// test ends.
func WithoutFlock(t *testing.T) {
	flock = func(int, int) error { return syscall.ENOTSUP }
	t.Cleanup(func() { flock = syscall.Flock })
}

// ProcessSpace is processSpace: the fields of a lock file that say where
// its pid means something.
func ProcessSpace() string { return processSpace() }
