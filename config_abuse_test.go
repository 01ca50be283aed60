package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// An operator who sets AUTH_JWT_PUBLIC_KEYS_FILE means to turn JWTs on. A
// file with a byte of whitespace in it is refused ("no PEM PUBLIC KEY
// block found"), but an empty one (a secret mounted before it was filled,
// a truncated file) is taken for "no keys": with nothing else set the
// gateway starts in development mode, every caller an administrator.
func TestEmptyPublicKeysFileIsRefused(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "keys.pem")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	blank := filepath.Join(dir, "blank.pem")
	if err := os.WriteFile(blank, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{blank, empty} {
		c, err := loadConfig(nil, func(k string) string {
			return map[string]string{"AUTH_JWT_PUBLIC_KEYS_FILE": file}[k]
		}, io.Discard)
		if err == nil {
			t.Errorf("AUTH_JWT_PUBLIC_KEYS_FILE=%s (%s): accepted, authentication enabled: %v", filepath.Base(file), map[bool]string{true: "empty", false: "a newline"}[file == empty], c.Auth.Enabled())
		}
	}
}

// MUTATIONS_PER_SECOND=NaN passes the range check (every comparison with
// NaN is false) and then turns the limiter off (NaN > 0 is false too).
func TestMutationsPerSecondNaNIsRefused(t *testing.T) {
	c, err := loadConfig(nil, func(k string) string { return map[string]string{"MUTATIONS_PER_SECOND": "NaN"}[k] }, io.Discard)
	if err == nil {
		t.Errorf("MUTATIONS_PER_SECOND=NaN accepted as %v (the handler then applies no limit: %v > 0 is %v)", c.MutationsPerSecond, c.MutationsPerSecond, c.MutationsPerSecond > 0)
	}
}

// MUTATIONS_PER_SECOND below one a day (1e-300 was accepted) would refuse
// a client's mutations for good after its first: 0 (no limit) or at least
// one a day.
func TestMutationsPerSecondIsZeroOrAtLeastOneADay(t *testing.T) {
	load := func(v string) (config, error) {
		return loadConfig(nil, func(k string) string { return map[string]string{"MUTATIONS_PER_SECOND": v}[k] }, io.Discard)
	}
	for _, v := range []string{"1e-300", "0.00001", "-1", "1000001"} {
		if c, err := load(v); err == nil || !strings.Contains(err.Error(), "-mutations-per-second (MUTATIONS_PER_SECOND)") {
			t.Errorf("MUTATIONS_PER_SECOND=%s: %v, %v; want it refused", v, c.MutationsPerSecond, err)
		}
	}
	for _, v := range []string{"0", "0.0000116", "0.5", "1000000"} {
		if _, err := load(v); err != nil {
			t.Errorf("MUTATIONS_PER_SECOND=%s: %v", v, err)
		}
	}
}

// TestDevModeRefusesForeignOrigins: without authentication every caller is
// an administrator, so ALLOWED_ORIGINS may name only pages served from this
// machine (with * any web page its user visits could open a websocket to
// ws://localhost and act as the administrator), unless development mode is
// acknowledged; with authentication any origin may be allowed.
func TestDevModeRefusesForeignOrigins(t *testing.T) {
	load := func(env map[string]string) error {
		_, err := loadConfig(nil, func(k string) string { return env[k] }, io.Discard)
		return err
	}
	for _, origins := range []string{"*", "https://app.example.com", "http://localhost:3000,https://evil.example"} {
		err := load(map[string]string{"ALLOWED_ORIGINS": origins})
		if err == nil || !strings.Contains(err.Error(), "ALLOWED_ORIGINS") {
			t.Errorf("ALLOWED_ORIGINS=%s without authentication: %v, want it refused", origins, err)
		}
		if err := load(map[string]string{"ALLOWED_ORIGINS": origins, "INSECURE_DEV_MODE": "true"}); err != nil {
			t.Errorf("ALLOWED_ORIGINS=%s with INSECURE_DEV_MODE: %v", origins, err)
		}
		if err := load(map[string]string{"ALLOWED_ORIGINS": origins, "AUTH_JWT_SECRET": strings.Repeat("s", 32)}); err != nil {
			t.Errorf("ALLOWED_ORIGINS=%s with authentication: %v", origins, err)
		}
	}
	for _, origins := range []string{"http://localhost:3000", "http://127.0.0.1:5173,tauri://localhost", "http://app.localhost:8000"} {
		if err := load(map[string]string{"ALLOWED_ORIGINS": origins}); err != nil {
			t.Errorf("ALLOWED_ORIGINS=%s (this machine's pages) without authentication: %v", origins, err)
		}
	}
}
