package pgembed

import (
	"os"
	"path/filepath"
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
