package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
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

// AUTH_JWT_PUBLIC_KEYS_FILE was read whole, whatever it was: /dev/zero
// filled memory until the process was killed, a named pipe held start-up
// until something wrote to it, and keys followed by a gigabyte were read.
// It must be a regular file of at most a MiB.
func TestPublicKeysFileIsARegularFileOfAtMostAMiB(t *testing.T) {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	key := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	dir := t.TempDir()
	load := func(file string) (config, error) {
		return loadConfig(nil, func(k string) string {
			return map[string]string{"AUTH_JWT_PUBLIC_KEYS_FILE": file}[k]
		}, io.Discard)
	}

	good := filepath.Join(dir, "keys.pem")
	if err := os.WriteFile(good, append(key, bytes.Repeat([]byte("\n"), maxKeysFile-len(key))...), 0o600); err != nil {
		t.Fatal(err)
	}
	if c, err := load(good); err != nil || !c.Auth.Enabled() {
		t.Fatalf("a key in a file of exactly %d bytes: %v", maxKeysFile, err)
	}
	large := filepath.Join(dir, "large.pem")
	if err := os.WriteFile(large, append(key, bytes.Repeat([]byte("\n"), maxKeysFile)...), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := load(large); err == nil || !strings.Contains(err.Error(), "AUTH_JWT_PUBLIC_KEYS_FILE") || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("a key and a MiB of newlines: %v, want it refused as too large", err)
	}
	if _, err := load("/dev/null"); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("/dev/null: %v, want it refused as not a regular file", err)
	}

	fifo := filepath.Join(dir, "keys.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := load(fifo); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("a named pipe: %v, want it refused as not a regular file", err)
		}
	case <-time.After(5 * time.Second):
		// Let it go: open the pipe for writing, and close it.
		if w, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
			w.Close()
		}
		<-done
		t.Errorf("a named pipe: start-up waited for a writer")
	}
}

// AUTH_API_KEYS written with spaces after the colons kept them in the key
// (" key..."), and a presented credential is read without them: the key
// matched nothing, and its service was refused "unknown API key".
func TestAPIKeysAreReadWithoutSpacesAroundTheColons(t *testing.T) {
	c, err := loadConfig(nil, func(k string) string {
		return map[string]string{"AUTH_API_KEYS": "billing : writer : billing-key-0123456789, shop@acme: reader :shop-key-0123456789"}[k]
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ key, name, tenant string }{{"billing-key-0123456789", "billing", ""}, {"shop-key-0123456789", "shop", "acme"}} {
		p, err := c.Auth.Authenticate(tc.key)
		if err != nil || p.Subject != tc.name || p.Tenant != tc.tenant {
			t.Errorf("%s: %+v, %v, want the key of %s@%s", tc.key, p, err, tc.name, tc.tenant)
		}
	}
}

// AUTH_JWT_SECRET with a line end at its end (a Kubernetes secret made
// from a file that ends with one, a CRLF file read with $(cat file)) was
// taken with it: every token was refused, with nothing at start to say
// why. A setting of the AUTH_* kind
// that is matched byte for byte (the secret, the issuer, the audience, the
// claims' names) is refused at start when it begins or ends with white
// space, saying where and which character, never the value; within it,
// white space is kept.
func TestAuthSettingsWithWhiteSpaceAtAnEndAreRefused(t *testing.T) {
	secret := strings.Repeat("s3cret", 6)
	load := func(env map[string]string) (config, error) {
		if _, ok := env["AUTH_JWT_SECRET"]; !ok {
			env["AUTH_JWT_SECRET"] = secret
		}
		return loadConfig(nil, func(k string) string { return env[k] }, io.Discard)
	}
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"AUTH_JWT_SECRET": secret + "\n"}, "invalid setting -auth-jwt-secret (AUTH_JWT_SECRET): the secret ends with white space (U+000A"},
		{map[string]string{"AUTH_JWT_SECRET": secret + "\r"}, "the secret ends with white space (U+000D: a line end, kept from the file"},
		{map[string]string{"AUTH_JWT_SECRET": " " + secret}, "the secret begins with white space (U+0020"},
		{map[string]string{"AUTH_JWT_SECRET": strings.Repeat(" ", 40)}, "the secret is only white space"},
		{map[string]string{"AUTH_JWT_ISSUER": "https://id.example.com\n"}, "-auth-jwt-issuer (AUTH_JWT_ISSUER): the issuer ends with white space"},
		{map[string]string{"AUTH_JWT_AUDIENCE": "\tcqrsgate"}, "-auth-jwt-audience (AUTH_JWT_AUDIENCE): the audience begins with white space (U+0009"},
		{map[string]string{"AUTH_ROLES_CLAIM": "roles\n"}, "-auth-roles-claim (AUTH_ROLES_CLAIM): the claim's name ends with white space"},
		{map[string]string{"AUTH_TENANT_CLAIM": "tenant\u00a0"}, "-auth-tenant-claim (AUTH_TENANT_CLAIM): the claim's name ends with white space (U+00A0"},
	} {
		_, err := load(tc.env)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want %q", tc.env, err, tc.want)
			continue
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("%q: the error shows the secret: %v", tc.env, err)
		}
	}
	// White space within is part of the value.
	c, err := load(map[string]string{"AUTH_JWT_SECRET": "a secret of words, 32 bytes or more", "AUTH_JWT_ISSUER": "Example IdP"})
	if err != nil || string(c.authConfig.HMACSecret) != "a secret of words, 32 bytes or more" || c.authConfig.Issuer != "Example IdP" {
		t.Fatalf("a secret and an issuer with spaces within: %q %q, %v", c.authConfig.HMACSecret, c.authConfig.Issuer, err)
	}
}

// AUTH_API_KEYS roles were read in any case ("Writer", "ADMIN"), as a
// token's were. Role names are matched exactly now, in tokens too: a key
// configured with "Writer" is refused at start, saying which name was
// meant, rather than taken for writer (or for no role). Spaces around a
// role are not part of it, as around the colons.
func TestAPIKeyRolesAreNamedExactly(t *testing.T) {
	load := func(keys string) (config, error) {
		return loadConfig(nil, func(k string) string { return map[string]string{"AUTH_API_KEYS": keys}[k] }, io.Discard)
	}
	for keys, want := range map[string]string{
		"billing:Writer:billing-key-0123456789":     `-auth-api-keys (AUTH_API_KEYS): API key "billing": unknown role "Writer": role names are matched exactly (in lower case, without white space): did you mean "writer"?`,
		"ops:ADMIN:ops-key-0123456789":              `did you mean "admin"?`,
		"dash:reader+Writer:dash-key-0123456789":    `unknown role "Writer"`,
		"dash@acme:READER:dash-key-0123456789":      `API key "dash@acme": unknown role "READER"`,
		"dash:reader+superuser:dash-key-0123456789": `unknown role "superuser" (want reader, writer or admin)`,
	} {
		if _, err := load(keys); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want %q", keys, err, want)
		}
	}
	c, err := load("billing: writer + reader :billing-key-0123456789")
	if err != nil {
		t.Fatal(err)
	}
	if p, err := c.Auth.Authenticate("billing-key-0123456789"); err != nil || !p.Has("writer") || p.Has("admin") {
		t.Errorf("billing: writer + reader: %+v, %v", p, err)
	}
}
