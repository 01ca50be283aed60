package main

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"strings"
	"testing"
	"time"
)

func TestLoadConfigDefaults(t *testing.T) {
	c, err := loadConfig(nil, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "127.0.0.1:8080" || c.Auth.Enabled() || c.DatabaseURL != "" || c.DataDir != ".cqrsgate/pgdata" || c.DBMaxConns != 20 ||
		c.LogLevel != slog.LevelInfo || c.LogFormat != "text" || c.ShutdownTimeout != 15*time.Second {
		t.Fatalf("defaults = %+v", c)
	}
}

func TestLoadConfigPrecedence(t *testing.T) {
	env := map[string]string{"ADDR": ":9000", "DATA_DIR": "/tmp/x", "LOG_LEVEL": "debug"}
	c, err := loadConfig([]string{"-addr", "127.0.0.1:7000"}, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "127.0.0.1:7000" || c.DataDir != "/tmp/x" || c.LogLevel != slog.LevelDebug {
		t.Fatalf("flag should win over env, env over default: %+v", c)
	}
}

func TestLoadConfigRejectsBadValues(t *testing.T) {
	cases := []struct {
		args []string
		env  map[string]string
		name string
	}{
		{[]string{"-db-max-conns", "x"}, nil, "-db-max-conns (DB_MAX_CONNS)"},
		{nil, map[string]string{"DB_MAX_CONNS": "1"}, "-db-max-conns (DB_MAX_CONNS)"},
		{nil, map[string]string{"LOG_LEVEL": "loud"}, "-log-level (LOG_LEVEL)"},
		{nil, map[string]string{"LOG_FORMAT": "xml"}, "-log-format (LOG_FORMAT)"},
		{nil, map[string]string{"SHUTDOWN_TIMEOUT": "-1s"}, "-shutdown-timeout (SHUTDOWN_TIMEOUT)"},
		{nil, map[string]string{"SHUTDOWN_TIMEOUT": "1ns"}, "-shutdown-timeout (SHUTDOWN_TIMEOUT)"},
		{nil, map[string]string{"SHUTDOWN_TIMEOUT": "100000h"}, "-shutdown-timeout (SHUTDOWN_TIMEOUT)"},
		{nil, map[string]string{"LOG_LEVEL": "error+1000"}, "-log-level (LOG_LEVEL): must be debug, info, warn or error"},
		{nil, map[string]string{"DATABASE_URL": " \t"}, "-database-url (DATABASE_URL): is only white space"},
		{nil, map[string]string{"DATABASE_URL": "postgres://u:s3cret@host:notaport/db"}, "-database-url (DATABASE_URL): cannot parse"},
		{nil, map[string]string{"DATABASE_URL": "postgres://u@h/db?pool_max_conns=many"}, "-database-url (DATABASE_URL)"},
		{nil, map[string]string{"DATABASE_URL": "postgres://u:s3cret@h/db?keepalives_idle=30s"}, "-database-url (DATABASE_URL): keepalives_idle must be a whole number of seconds"},
		{nil, map[string]string{"DATABASE_URL": "host=h user=u password=s3cret tcp_user_timeout=-5"}, "-database-url (DATABASE_URL): tcp_user_timeout must be a whole number of milliseconds"},
		{nil, map[string]string{"DATABASE_URL": "postgres://u:s3cret@h/db?keepalives=on"}, "-database-url (DATABASE_URL): keepalives must be 1 (on) or 0 (off)"},
		{nil, map[string]string{"BODY_READ_TIMEOUT": "1ns"}, "-body-read-timeout (BODY_READ_TIMEOUT)"},
		{[]string{"-addr", ""}, nil, "-addr (ADDR)"},
		{[]string{"-max-body-bytes", "10"}, nil, "-max-body-bytes (MAX_BODY_BYTES)"},
		{nil, map[string]string{"ALLOWED_ORIGINS": "example.com"}, "-allowed-origins (ALLOWED_ORIGINS)"},
		{nil, map[string]string{"READ_TIMEOUT": "2m"}, "-read-timeout (READ_TIMEOUT)"},
		{nil, map[string]string{"AUTH_API_KEYS": "just-a-key"}, "-auth-api-keys (AUTH_API_KEYS): entry 1 is not name:roles:key"},
		{nil, map[string]string{"AUTH_API_KEYS": "svc:root:0123456789abcdef"}, `unknown role "root"`},
		{nil, map[string]string{"AUTH_API_KEYS": "svc:reader:short"}, "AUTH_*): API key \"svc\": a key must be at least 16 characters"},
		{nil, map[string]string{"AUTH_API_KEYS": "svc@ac~me:reader:0123456789abcdef"}, "API key \"svc\": tenant \"ac~me\" may contain only"},
		{nil, map[string]string{"AUTH_JWT_SECRET": "too short"}, "AUTH_*): the JWT HMAC secret must be at least 32 bytes"},
		{nil, map[string]string{"AUTH_JWT_PUBLIC_KEYS_FILE": "/nonexistent/keys.pem"}, "-auth-jwt-public-keys-file (AUTH_JWT_PUBLIC_KEYS_FILE)"},
		{nil, map[string]string{"INSECURE_DEV_MODE": "maybe"}, "-insecure-dev-mode (INSECURE_DEV_MODE)"},
		{nil, map[string]string{"DEBUG_ADDR": "6060"}, "-debug-addr (DEBUG_ADDR): must be host:port"},
		{nil, map[string]string{"GC_PERCENT": "10"}, "-gc-percent (GC_PERCENT): must be a whole number from 25 to 10000"},
		{[]string{"-gc-percent", "off"}, nil, "-gc-percent (GC_PERCENT)"},
		{nil, map[string]string{"GC_HEADROOM_MB": "-1"}, "-gc-headroom-mb (GC_HEADROOM_MB): must be a whole number from 0 to 1048576"},
		{[]string{"-gc-headroom-mb", "64MiB"}, nil, "-gc-headroom-mb (GC_HEADROOM_MB)"},
	}
	for _, c := range cases {
		_, err := loadConfig(c.args, func(k string) string { return c.env[k] }, io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.name) || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%v %v: err = %v, want one naming %s (and no password)", c.args, c.env, err, c.name)
		}
	}
	if _, err := loadConfig([]string{"-nope"}, func(string) string { return "" }, io.Discard); err == nil {
		t.Error("an unknown flag was accepted")
	}
	if _, err := loadConfig([]string{"extra"}, func(string) string { return "" }, io.Discard); err == nil {
		t.Error("a stray argument was accepted")
	}
}

func TestDevelopmentModeOnlyOnLoopbackUnlessAcknowledged(t *testing.T) {
	load := func(env map[string]string) (config, error) {
		return loadConfig(nil, func(k string) string { return env[k] }, io.Discard)
	}
	for _, addr := range []string{"127.0.0.1:8080", "localhost:9000", "[::1]:8080"} {
		if _, err := load(map[string]string{"ADDR": addr}); err != nil {
			t.Errorf("development mode on %s: %v", addr, err)
		}
	}
	for _, addr := range []string{":8080", "0.0.0.0:8080", "192.168.1.10:8080"} {
		_, err := load(map[string]string{"ADDR": addr})
		if err == nil || !strings.Contains(err.Error(), "refusing to run without authentication") || !strings.Contains(err.Error(), "INSECURE_DEV_MODE") {
			t.Errorf("development mode on %s: err = %v, want a refusal that names INSECURE_DEV_MODE", addr, err)
		}
		if c, err := load(map[string]string{"ADDR": addr, "INSECURE_DEV_MODE": "true"}); err != nil || c.Auth.Enabled() {
			t.Errorf("acknowledged development mode on %s: %v", addr, err)
		}
		c, err := load(map[string]string{"ADDR": addr, "AUTH_API_KEYS": "billing:writer+reader:0123456789abcdef, ops:admin:fedcba9876543210, app@acme:writer:acme-0123456789abcdef"})
		if err != nil || !c.Auth.Enabled() {
			t.Fatalf("with API keys on %s: %v", addr, err)
		}
		p, err := c.Auth.Authenticate("Bearer fedcba9876543210")
		if err != nil || p.Subject != "ops" || !p.Has("admin") || p.Tenant != "" {
			t.Errorf("the configured admin key: %+v, %v", p, err)
		}
		p, err = c.Auth.Authenticate("acme-0123456789abcdef")
		if err != nil || p.Subject != "app" || p.Tenant != "acme" || !p.Has("writer") {
			t.Errorf("the tenant's key: %+v, %v", p, err)
		}
	}
}

func TestEverySettingIsInTheREADME(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range settings {
		def := "`" + s.def + "`"
		if s.def == "" {
			def = "(empty)"
		}
		row := fmt.Sprintf("| `-%s` | `%s` | %s |", s.flag, s.env, def)
		if !strings.Contains(string(readme), row) {
			t.Errorf("README's configuration table has no row %q", row)
		}
	}
}

func TestSwitchesNeedNoValue(t *testing.T) {
	c, err := loadConfig([]string{"-demo", "-insecure-dev-mode", "-introspection=false", "-addr", ":9999"}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Demo || !c.InsecureDevMode || c.Introspection {
		t.Fatalf("switches: demo %v, insecure %v, introspection %v", c.Demo, c.InsecureDevMode, c.Introspection)
	}
	if _, err := loadConfig([]string{"-demo=maybe"}, func(string) string { return "" }, io.Discard); err == nil || !strings.Contains(err.Error(), "-demo (DEMO)") {
		t.Fatalf("-demo=maybe: %v", err)
	}
}

// TestDebugAddrServesTheProfiler: DEBUG_ADDR serves /debug/pprof/ there
// (but not the command line), and stop closes it.
func TestDebugAddrServesTheProfiler(t *testing.T) {
	c, err := loadConfig(nil, func(k string) string { return map[string]string{"DEBUG_ADDR": "127.0.0.1:0"}[k] }, io.Discard)
	if err != nil || c.DebugAddr != "127.0.0.1:0" {
		t.Fatalf("DEBUG_ADDR: %q, %v", c.DebugAddr, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	stop, err := serveDebug(addr, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + addr + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "goroutine profile: total") {
		t.Fatalf("profiler answered %d: %.100s", resp.StatusCode, body)
	}
	// Not the command line: it would show every flag, secrets included.
	resp, err = http.Get("http://" + addr + "/debug/pprof/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK || strings.Contains(string(body), os.Args[0]) {
		t.Fatalf("/debug/pprof/cmdline answered %d: %.200s", resp.StatusCode, body)
	}
	// Nor a request for another name (a web page that had its name
	// resolve to 127.0.0.1: DNS rebinding).
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/debug/pprof/goroutine?debug=2", nil)
	req.Host = "rebind.attacker.example:" + strings.Split(addr, ":")[1]
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		t.Fatalf("the profiler answered a request for Host %s with 200 (%d bytes of goroutine stacks)", req.Host, len(body))
	}
	if _, err := serveDebug(addr, slog.New(slog.DiscardHandler)); err == nil {
		t.Error("a second listener on the same address was accepted")
	}
	stop()
	if _, err := http.Get("http://" + addr + "/debug/pprof/"); err == nil {
		t.Error("the profiler still answers after stop")
	}
}

func TestGCPercentUnlessGOGCIsSet(t *testing.T) {
	before := debug.SetGCPercent(100)
	defer debug.SetGCPercent(before)
	c, err := loadConfig(nil, func(string) string { return "" }, io.Discard)
	if err != nil || c.GCPercent != 400 || c.GCHeadroomMB != 64 {
		t.Fatalf("default GCPercent = %d, GCHeadroomMB = %d, %v", c.GCPercent, c.GCHeadroomMB, err)
	}
	c.GCPercent = 250
	if got, tuner := applyGCPercent(c, func(k string) string { return map[string]string{"GOGC": "150"}[k] }); got != 0 || tuner != nil || debug.SetGCPercent(100) != 100 {
		t.Fatal("GC_PERCENT overrode GOGC")
	}
	got, tuner := applyGCPercent(c, func(string) string { return "" })
	if tuner == nil {
		t.Fatal("no tuner without GOGC")
	}
	tuner.Stop()
	if got != 250 || debug.SetGCPercent(100) != 250 {
		t.Fatalf("GC_PERCENT not applied: %d", got)
	}
}

// TestLoadConfigRefusesWhatCannotWork: settings that would fail late (an
// address that cannot be listened on), never match (an origin with a
// path) or grant more than they say (a tenant's API key with the tenant
// left empty, a profiler open to other hosts) stop start-up with an error
// naming the setting.
func TestLoadConfigRefusesWhatCannotWork(t *testing.T) {
	cases := []struct {
		env  map[string]string
		name string
	}{
		{map[string]string{"ADDR": "127.0.0.1:99999"}, "-addr (ADDR)"},
		{map[string]string{"ADDR": "127.0.0.1:http-alt-nope"}, "-addr (ADDR)"},
		{map[string]string{"ADDR": "localhost"}, "-addr (ADDR): must be host:port"},
		{map[string]string{"ADDR": "127.0.0.1:"}, "-addr (ADDR): must be host:port"},
		{map[string]string{"DEBUG_ADDR": "127.0.0.1:70000"}, "-debug-addr (DEBUG_ADDR)"},
		{map[string]string{"DEBUG_ADDR": ":6060"}, "-debug-addr (DEBUG_ADDR): :6060 is not a loopback address"},
		{map[string]string{"DEBUG_ADDR": "0.0.0.0:6060"}, "INSECURE_DEBUG_ADDR"},
		{map[string]string{"ALLOWED_ORIGINS": "https://app.example.com/"}, "-allowed-origins (ALLOWED_ORIGINS): \"https://app.example.com/\" is not an origin"},
		{map[string]string{"ALLOWED_ORIGINS": "https://ok.example, https://app.example.com/app"}, "write https://app.example.com"},
		{map[string]string{"ALLOWED_ORIGINS": "app.example.com:443"}, "-allowed-origins (ALLOWED_ORIGINS)"},
		{map[string]string{"ALLOWED_ORIGINS": "https://"}, "-allowed-origins (ALLOWED_ORIGINS)"},
		{map[string]string{"AUTH_API_KEYS": "shop@:admin:0123456789abcdef"}, "-auth-api-keys (AUTH_API_KEYS): API key \"shop@\": name@tenant needs both"},
		{map[string]string{"AUTH_API_KEYS": "@acme:admin:0123456789abcdef"}, "-auth-api-keys (AUTH_API_KEYS)"},
		{map[string]string{"SHUTDOWN_DELAY": "-1s"}, "-shutdown-delay (SHUTDOWN_DELAY)"},
		{map[string]string{"BODY_READ_TIMEOUT": "0s"}, "-body-read-timeout (BODY_READ_TIMEOUT)"},
	}
	for _, c := range cases {
		_, err := loadConfig(nil, func(k string) string { return c.env[k] }, io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.name) {
			t.Errorf("%v: err = %v, want one naming %s", c.env, err, c.name)
		}
	}
	for _, env := range []map[string]string{
		{"ADDR": "127.0.0.1:0"},
		{"ADDR": "[::1]:8080", "DEBUG_ADDR": "localhost:6060"},
		{"DEBUG_ADDR": "[::1]:6060"},
		{"DEBUG_ADDR": "0.0.0.0:6060", "INSECURE_DEBUG_ADDR": "true"},
		// With authentication: without, only this machine's pages may be allowed.
		{"ALLOWED_ORIGINS": "https://app.example.com, http://localhost:3000,*", "AUTH_JWT_SECRET": strings.Repeat("s", 32)},
		// Apps in web views and browser extensions send origins of their own.
		{"ALLOWED_ORIGINS": "capacitor://localhost,tauri://localhost,chrome-extension://abcdefghijklmnopabcdefghijklmnop", "AUTH_JWT_SECRET": strings.Repeat("s", 32)},
		{"SHUTDOWN_DELAY": "0"},
	} {
		if _, err := loadConfig(nil, func(k string) string { return env[k] }, io.Discard); err != nil {
			t.Errorf("%v: %v", env, err)
		}
	}
}

// TestMaxBodyBytesIsBounded: MAX_BODY_BYTES is at most 1 GiB (a body is
// read into memory whole). At the largest int64 the body reader's limit + 1
// overflowed, and every request without a Content-Length (chunked)
// panicked in the handler, unanswered.
func TestMaxBodyBytesIsBounded(t *testing.T) {
	for _, v := range []string{"9223372036854775807", "1073741825"} {
		_, err := loadConfig(nil, func(k string) string { return map[string]string{"MAX_BODY_BYTES": v}[k] }, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "-max-body-bytes (MAX_BODY_BYTES): must be a whole number from 1024 to 1073741824") {
			t.Errorf("MAX_BODY_BYTES=%s: %v", v, err)
		}
	}
	c, err := loadConfig(nil, func(k string) string { return map[string]string{"MAX_BODY_BYTES": "1073741824"}[k] }, io.Discard)
	if err != nil || c.MaxBodyBytes != 1<<30 {
		t.Errorf("MAX_BODY_BYTES=1073741824: %d %v", c.MaxBodyBytes, err)
	}
}
