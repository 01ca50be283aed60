package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"github.com/jackc/pgx/v5/pgxpool"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"cqrsgate/graph"
	"cqrsgate/internal/auth"
	"cqrsgate/internal/pgdial"
)

// config is every setting of the gateway. Each has a flag and an
// environment variable; a flag given on the command line wins over the
// variable, which wins over the default.
type config struct {
	Addr string
	// DebugAddr, when set, serves the Go profiler (net/http/pprof) there.
	DebugAddr string
	// InsecureDebugAddr allows DebugAddr on an address other than loopback.
	InsecureDebugAddr bool
	DatabaseURL       string
	DataDir           string
	DBMaxConns        int
	LogLevel          slog.Level
	LogFormat         string
	ShutdownTimeout   time.Duration
	// ShutdownDelay is how long, after SIGTERM, the gateway serves on with
	// /readyz answering 503 before it stops accepting requests.
	ShutdownDelay time.Duration
	// BodyReadTimeout bounds the reading of a request body.
	BodyReadTimeout time.Duration
	MaxBodyBytes    int64
	SnapshotEvery   int
	// GCPercent is the garbage collector's target (GOGC) when GOGC is not
	// set: see applyGCPercent.
	GCPercent int
	// GCHeadroomMB caps, in MiB, the garbage GCPercent lets accumulate
	// beyond Go's default target (0: no cap): see internal/gctune.
	GCHeadroomMB   int
	ReadTimeout    time.Duration
	StepTimeout    time.Duration
	AllowedOrigins []string
	// Auth is built from the AUTH_* settings; it is not Enabled when none
	// is set (development mode).
	Auth            *auth.Authenticator
	authConfig      auth.Config
	InsecureDevMode bool
	// The schema registry.
	SchemaPermissiveTypes []string
	SchemaReplaySample    int
	// Demo drives demo commands while the gateway runs.
	Demo bool
	// Limits of operations and clients.
	MaxComplexity, MaxDepth int
	Introspection           bool
	MutationsPerSecond      float64
}

// setting describes one setting for flags, the environment and the README.
type setting struct {
	flag, env, def, usage string
	set                   func(c *config, v string) error
}

var settings = []setting{
	{"addr", "ADDR", "127.0.0.1:8080", "HTTP listen address (\":8080\" listens on every interface)", func(c *config, v string) error {
		if err := checkListenAddr(v); err != nil {
			return err
		}
		c.Addr = v
		return nil
	}},
	{"debug-addr", "DEBUG_ADDR", "", "listen address of the Go profiler (/debug/pprof/); empty: off. It is not authenticated, so it must be a loopback address unless -insecure-debug-addr", func(c *config, v string) error {
		if v != "" {
			if err := checkListenAddr(v); err != nil {
				return err
			}
		}
		c.DebugAddr = v
		return nil
	}},
	{"insecure-debug-addr", "INSECURE_DEBUG_ADDR", "false", "allow -debug-addr on an address other than loopback (the profiler is not authenticated)", func(c *config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("must be true or false, got %q", v)
		}
		c.InsecureDebugAddr = b
		return nil
	}},
	{"database-url", "DATABASE_URL", "", "PostgreSQL URL; empty starts an embedded PostgreSQL in -data-dir", func(c *config, v string) error {
		if v != "" && strings.TrimSpace(v) == "" {
			// Not empty, so no embedded server; nothing, so libpq's defaults.
			return errors.New("is only white space: leave it empty for the embedded PostgreSQL, or give a URL")
		}
		if v != "" {
			// Malformed, it is a mistake in the configuration (exit status
			// 2), found before anything starts; pgx leaves the password
			// out of its error.
			pc, err := pgxpool.ParseConfig(v)
			if err != nil {
				return err
			}
			// libpq's TCP parameters, which pgx does not know.
			if _, err := pgdial.Take(pc.ConnConfig.RuntimeParams); err != nil {
				return err
			}
		}
		c.DatabaseURL = v
		return nil
	}},
	{"data-dir", "DATA_DIR", ".cqrsgate/pgdata", "data directory of the embedded PostgreSQL (unused with -database-url)", func(c *config, v string) error {
		if v == "" {
			return errors.New("must not be empty")
		}
		c.DataDir = v
		return nil
	}},
	{"db-max-conns", "DB_MAX_CONNS", "20", "maximum connections in the database pool", wholeNumber(2, 1000, func(c *config, n int) { c.DBMaxConns = n })},
	{"log-level", "LOG_LEVEL", "info", "log level: debug, info, warn or error", func(c *config, v string) error {
		// slog also reads offsets ("error+1000"), which would silence
		// every line, errors included.
		switch strings.ToLower(v) {
		case "debug", "info", "warn", "error":
			return c.LogLevel.UnmarshalText([]byte(v))
		}
		return fmt.Errorf("must be debug, info, warn or error, got %q", v)
	}},
	{"log-format", "LOG_FORMAT", "text", "log format: text or json", func(c *config, v string) error {
		if v != "text" && v != "json" {
			return fmt.Errorf("must be text or json, got %q", v)
		}
		c.LogFormat = v
		return nil
	}},
	{"shutdown-delay", "SHUTDOWN_DELAY", "5s", "on SIGTERM, how long the gateway goes on serving with /readyz answering 503, so that load balancers stop sending it requests, before it stops accepting them (0: none; SIGINT skips it)", func(c *config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > 5*time.Minute {
			return fmt.Errorf("must be a duration from 0 to 5m, got %q", v)
		}
		c.ShutdownDelay = d
		return nil
	}},
	{"shutdown-timeout", "SHUTDOWN_TIMEOUT", "15s", "how long shutdown waits for requests in flight", func(c *config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d < 100*time.Millisecond || d > time.Hour {
			return fmt.Errorf("must be a duration from 100ms to 1h, such as 15s, got %q", v)
		}
		c.ShutdownTimeout = d
		return nil
	}},
	{"body-read-timeout", "BODY_READ_TIMEOUT", "30s", "how long a client may take to send a request body once its headers are in; a slower one is cut off (websockets are not affected)", func(c *config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d < 100*time.Millisecond || d > 10*time.Minute {
			return fmt.Errorf("must be a duration from 100ms to 10m, got %q", v)
		}
		c.BodyReadTimeout = d
		return nil
	}},
	{"max-body-bytes", "MAX_BODY_BYTES", "16777216", "largest accepted GraphQL request body, in bytes (at most 1 GiB)", func(c *config, v string) error {
		// A body is read into memory whole.
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1024 || n > maxBodyBytes {
			return fmt.Errorf("must be a whole number from 1024 to %d (1 GiB), got %q", maxBodyBytes, v)
		}
		c.MaxBodyBytes = n
		return nil
	}},
	{"gc-percent", "GC_PERCENT", "400", "garbage collector target as GOGC has it (heap growth in percent of the live heap before a collection), used when GOGC is not set", wholeNumber(25, 10_000, func(c *config, n int) { c.GCPercent = n })},
	{"gc-headroom-mb", "GC_HEADROOM_MB", "64", "the most garbage, in MiB, that GC_PERCENT lets accumulate beyond what Go's default target (100) would: with a larger live heap the target falls toward 100 (0: no cap)", wholeNumber(0, 1<<20, func(c *config, n int) { c.GCHeadroomMB = n })},
	{"snapshot-every", "SNAPSHOT_EVERY", "100", "save an aggregate snapshot every this many events (0 disables snapshots)", func(c *config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 1_000_000 {
			return fmt.Errorf("must be a whole number from 0 to 1000000, got %q", v)
		}
		c.SnapshotEvery = n
		if n == 0 {
			c.SnapshotEvery = -1 // the command service's "disabled"
		}
		return nil
	}},
	{"read-timeout", "READ_TIMEOUT", "5s", "how long a query with atLeast waits for the read models before failing with STALE", func(c *config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 || d > time.Minute {
			return fmt.Errorf("must be a positive duration of at most 1m, got %q", v)
		}
		c.ReadTimeout = d
		return nil
	}},
	{"fulfilment-step-timeout", "FULFILMENT_STEP_TIMEOUT", "30s", "how long a fulfilment saga step may take (retrying technical failures) before the saga is compensated and ends TIMED_OUT", func(c *config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d < 100*time.Millisecond || d > 24*time.Hour {
			return fmt.Errorf("must be a duration from 100ms to 24h, got %q", v)
		}
		c.StepTimeout = d
		return nil
	}},
	{"allowed-origins", "ALLOWED_ORIGINS", "", "comma-separated origins (scheme://host[:port]) allowed to open websockets besides the gateway's own host, or *; non-browser clients are always allowed", func(c *config, v string) error {
		c.AllowedOrigins = nil
		for _, o := range strings.Split(v, ",") {
			if o = strings.TrimSpace(o); o == "" {
				continue
			}
			if err := checkOrigin(o); err != nil {
				return err
			}
			c.AllowedOrigins = append(c.AllowedOrigins, o)
		}
		return nil
	}},
	{"auth-jwt-secret", "AUTH_JWT_SECRET", "", "HMAC secret (at least 32 bytes, no white space at either end) that verifies HS256/384/512 bearer tokens; prefer the variable to the flag, which other users can see", func(c *config, v string) error {
		if err := checkUntrimmed(v, "the secret", "every token signed with the secret would be refused"); err != nil {
			return err
		}
		c.authConfig.HMACSecret = []byte(v)
		return nil
	}},
	{"auth-jwt-public-keys-file", "AUTH_JWT_PUBLIC_KEYS_FILE", "", "PEM file (at most 1 MiB) of RSA (2048 bits or more), ECDSA (P-256, P-384, P-521) and Ed25519 public keys (PUBLIC KEY blocks) that verify RS*/PS*, ES* and EdDSA bearer tokens", func(c *config, v string) error {
		if v == "" {
			return nil
		}
		pem, err := readKeysFile(v)
		if err != nil {
			return err
		}
		if len(bytes.TrimSpace(pem)) == 0 {
			// Taken for no keys, it would start development mode.
			return fmt.Errorf("%s is empty: it must hold the PUBLIC KEY blocks that verify tokens", v)
		}
		c.authConfig.PublicKeysPEM = pem
		return nil
	}},
	{"auth-jwt-issuer", "AUTH_JWT_ISSUER", "", "when set, a token's iss claim must equal it", func(c *config, v string) error {
		if err := checkUntrimmed(v, "the issuer", "every token would be refused (its iss is not that)"); err != nil {
			return err
		}
		c.authConfig.Issuer = v
		return nil
	}},
	{"auth-jwt-audience", "AUTH_JWT_AUDIENCE", "", "when set, a token's aud claim must contain it", func(c *config, v string) error {
		if err := checkUntrimmed(v, "the audience", "every token would be refused (its aud does not hold that)"); err != nil {
			return err
		}
		c.authConfig.Audience = v
		return nil
	}},
	{"auth-roles-claim", "AUTH_ROLES_CLAIM", "roles", "the token claim that holds the caller's roles (reader, writer, admin): an array or a space-separated string", func(c *config, v string) error {
		if v == "" {
			return errors.New("must not be empty")
		}
		if err := checkUntrimmed(v, "the claim's name", "no token has such a claim, so every token would have no role"); err != nil {
			return err
		}
		c.authConfig.RolesClaim = v
		return nil
	}},
	{"auth-tenant-claim", "AUTH_TENANT_CLAIM", "tenant", "the token claim that holds the caller's tenant", func(c *config, v string) error {
		if v == "" {
			return errors.New("must not be empty")
		}
		if err := checkUntrimmed(v, "the claim's name", "no token has such a claim, so a tenant's token would be taken for one without a tenant, and see the default tenant's data"); err != nil {
			return err
		}
		c.authConfig.TenantClaim = v
		return nil
	}},
	{"auth-api-keys", "AUTH_API_KEYS", "", "static API keys for services, comma-separated name:roles:key, roles joined by + (e.g. billing:writer:s3cr3t-key-0123456789), name@tenant for a key scoped to a tenant; prefer the variable to the flag", func(c *config, v string) error {
		c.authConfig.APIKeys = nil
		for i, item := range strings.Split(v, ",") {
			if item = strings.TrimSpace(item); item == "" {
				continue
			}
			name, rest, ok1 := strings.Cut(item, ":")
			roles, key, ok2 := strings.Cut(rest, ":")
			// Spaces around the colons are not part of the name or the key:
			// a key kept with a space before it matched nothing, as a
			// presented credential is read without one.
			name, key = strings.TrimSpace(name), strings.TrimSpace(key)
			if !ok1 || !ok2 || name == "" || key == "" {
				return fmt.Errorf("entry %d is not name:roles:key", i+1)
			}
			k := auth.APIKey{Name: name, Key: key}
			if n, tenant, ok := strings.Cut(name, "@"); ok {
				if n == "" || tenant == "" {
					// An empty tenant would make a tenant's key a
					// gateway-wide one.
					return fmt.Errorf("API key %q: name@tenant needs both a name and a tenant (drop the @ for a key that is not scoped to a tenant)", name)
				}
				k.Name, k.Tenant = n, tenant
			}
			for _, r := range strings.Split(roles, "+") {
				// Spaces around a role are not part of it, as around the
				// colons; its case is ("Writer" is refused, as a token's
				// "Writer" is not writer).
				role, err := auth.ParseRole(strings.TrimSpace(r))
				if err != nil {
					return fmt.Errorf("API key %q: %w", name, err)
				}
				k.Roles = append(k.Roles, role)
			}
			c.authConfig.APIKeys = append(c.authConfig.APIKeys, k)
		}
		return nil
	}},
	{"schema-permissive-types", "SCHEMA_PERMISSIVE_TYPES", "", "comma-separated patterns (* and ? wildcards, e.g. Audit*) of event types appended without a registered schema; any other type without one is refused", func(c *config, v string) error {
		c.SchemaPermissiveTypes = nil
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p == "" {
				continue
			}
			if _, err := path.Match(p, ""); err != nil {
				return fmt.Errorf("%q is not a valid pattern", p)
			}
			c.SchemaPermissiveTypes = append(c.SchemaPermissiveTypes, p)
		}
		return nil
	}},
	{"schema-replay-sample", "SCHEMA_REPLAY_SAMPLE", "10000", "how many stored events of each schema version a schema change replays through the migrations before it is accepted (the oldest; 0: all)", func(c *config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return fmt.Errorf("must be a whole number, 0 or more, got %q", v)
		}
		c.SchemaReplaySample = n
		return nil
	}},
	{"max-query-complexity", "MAX_QUERY_COMPLEXITY", "20000", "largest accepted operation complexity: every field counts 1, a list field its children times the items it asks for (first)", func(c *config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 10 {
			return fmt.Errorf("must be a whole number of at least 10, got %q", v)
		}
		c.MaxComplexity = n
		return nil
	}},
	{"max-query-depth", "MAX_QUERY_DEPTH", "12", "deepest accepted nesting of an operation's selections (introspection aside)", wholeNumber(2, 100, func(c *config, n int) { c.MaxDepth = n })},
	{"introspection", "INTROSPECTION", "true", "answer introspection queries (__schema, __type); false refuses them with INTROSPECTION_DISABLED", func(c *config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("must be true or false, got %q", v)
		}
		c.Introspection = b
		return nil
	}},
	{"mutations-per-second", "MUTATIONS_PER_SECOND", "0", "mutations each client (credential subject, or IP address) may send per second, with bursts of twice that; beyond, RATE_LIMITED; 0: no limit", func(c *config, v string) error {
		// Below one a day (1e-300, say), a client's first mutations would
		// be its last: RATE_LIMITED for good, its retries capped at a day.
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || !(f == 0 || f >= minMutationsPerSecond && f <= 1e6) { // NaN too
			return fmt.Errorf("must be 0 (no limit) or a number from 0.0000116 (one a day) to 1000000, got %q", v)
		}
		c.MutationsPerSecond = f
		return nil
	}},
	{"demo", "DEMO", "false", "drive a stream of demo commands (accounts, orders, stock) while the gateway runs, so the dashboard has something to show", func(c *config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("must be true or false, got %q", v)
		}
		c.Demo = b
		return nil
	}},
	{"insecure-dev-mode", "INSECURE_DEV_MODE", "false", "allow development mode (no authentication: every caller is an administrator) on an address other than loopback", func(c *config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("must be true or false, got %q", v)
		}
		c.InsecureDevMode = b
		return nil
	}},
}

// minMutationsPerSecond is the lowest MUTATIONS_PER_SECOND but 0 (no
// limit): one mutation a day.
const minMutationsPerSecond = 1.0 / 86400

// maxBodyBytes is the largest MAX_BODY_BYTES, 1 GiB.
const maxBodyBytes = 1 << 30

// loadConfig reads the settings from args and getenv. An invalid value is
// an error that names the setting (flag and variable).
func loadConfig(args []string, getenv func(string) string, usageOut io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("cqrsgate", flag.ContinueOnError)
	fs.SetOutput(usageOut)
	values := make(map[string]*string, len(settings))
	for _, s := range settings {
		v := s.def
		values[s.flag] = &v
		if s.def == "true" || s.def == "false" {
			// A switch: -demo alone means -demo=true.
			fs.Var((*boolFlag)(&v), s.flag, s.usage+" (env "+s.env+")")
		} else {
			fs.StringVar(&v, s.flag, s.def, s.usage+" (env "+s.env+")")
		}
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for _, s := range settings {
		v := *values[s.flag]
		if !given[s.flag] {
			if ev, ok := lookup(getenv, s.env); ok {
				v = ev
			}
		}
		if err := s.set(&c, v); err != nil {
			return c, fmt.Errorf("invalid setting -%s (%s): %w", s.flag, s.env, err)
		}
	}
	a, err := auth.New(c.authConfig)
	if err != nil {
		return c, fmt.Errorf("invalid authentication settings (AUTH_*): %w", err)
	}
	c.Auth = a
	if c.DebugAddr != "" && !c.InsecureDebugAddr && !loopback(c.DebugAddr) {
		return c, fmt.Errorf("invalid setting -debug-addr (DEBUG_ADDR): %s is not a loopback address, and the profiler is not authenticated: "+
			"listen on 127.0.0.1 (reach it through an SSH tunnel or kubectl port-forward), or acknowledge it with -insecure-debug-addr (INSECURE_DEBUG_ADDR=true)", c.DebugAddr)
	}
	if !a.Enabled() && !c.InsecureDevMode && !loopback(c.Addr) {
		return c, fmt.Errorf("refusing to run without authentication on %s, which is not a loopback address: "+
			"configure AUTH_JWT_SECRET, AUTH_JWT_PUBLIC_KEYS_FILE or AUTH_API_KEYS, listen on 127.0.0.1, "+
			"or acknowledge development mode with -insecure-dev-mode (INSECURE_DEV_MODE=true)", c.Addr)
	}
	if !a.Enabled() && !c.InsecureDevMode {
		// Every caller is an administrator: a page of another site allowed
		// to open websockets could act as one through its visitor's browser.
		for _, o := range c.AllowedOrigins {
			if !loopbackOrigin(o) {
				return c, fmt.Errorf("invalid setting -allowed-origins (ALLOWED_ORIGINS): %s is not a page served from this machine, and without authentication "+
					"every caller is an administrator, so its pages could act as one through their visitors' browsers: allow only origins on localhost, "+
					"configure authentication (AUTH_*), or acknowledge development mode with -insecure-dev-mode (INSECURE_DEV_MODE=true)", o)
			}
		}
	}
	return c, nil
}

// maxKeysFile is the largest AUTH_JWT_PUBLIC_KEYS_FILE read: a few
// hundred keys.
const maxKeysFile = 1 << 20

// readKeysFile reads the public keys file name: a regular file of at most
// maxKeysFile bytes. Anything else (a device such as /dev/zero, read for
// ever into memory; a named pipe, which blocks start-up until written to;
// a file far too large for keys) is an error.
func readKeysFile(name string) ([]byte, error) {
	fi, err := os.Stat(name) // before opening: opening a named pipe waits for a writer
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file (%s): it must be a PEM file of PUBLIC KEY blocks", name, fi.Mode().Type())
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxKeysFile+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxKeysFile {
		return nil, fmt.Errorf("%s is larger than %d bytes, too large for a file of public keys", name, maxKeysFile)
	}
	return data, nil
}

// checkUntrimmed refuses a setting v, what (its kind, "the secret"), that
// begins or ends with white space: a line end kept from the file it came
// from (a Kubernetes secret made with --from-file, "echo s | base64", a
// CRLF file read with $(cat file)), which the gateway would take as part
// of the value, and why that would fail. It is refused rather than trimmed: the operator
// learns of it at start, and the value in force is the one given. The
// error names the character and where it is, never the value.
func checkUntrimmed(v, what, why string) error {
	trimmed := strings.TrimSpace(v)
	if trimmed == v {
		return nil
	}
	if trimmed == "" {
		return fmt.Errorf("%s is only white space: %s", what, why)
	}
	r, _ := utf8.DecodeRuneInString(v)
	where := "begins"
	if !unicode.IsSpace(r) {
		r, _ = utf8.DecodeLastRuneInString(v)
		where = "ends"
	}
	hint := ""
	if r == '\n' || r == '\r' {
		hint = ": a line end, kept from the file or the Kubernetes secret it came from?"
	}
	return fmt.Errorf("%s %s with white space (%U%s), which would be taken as part of it: %s; remove it", what, where, r, hint, why)
}

// loopbackOrigin reports whether an ALLOWED_ORIGINS entry (checked by
// checkOrigin) names pages served from this machine.
func loopbackOrigin(o string) bool {
	if o == "*" {
		return false
	}
	u, err := url.Parse(o)
	return err == nil && graph.LoopbackHost(u.Host)
}

// checkListenAddr checks that addr is host:port with a port that can be
// listened on (a number from 0 to 65535, or a service name).
func checkListenAddr(addr string) error {
	if addr == "" {
		return errors.New("must not be empty")
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" {
		return fmt.Errorf("must be host:port (127.0.0.1:8080, or :8080 for every interface), got %q", addr)
	}
	if _, err := net.LookupPort("tcp", port); err != nil {
		return fmt.Errorf("%q has no valid port: want a number from 0 to 65535", addr)
	}
	return nil
}

// checkOrigin checks an ALLOWED_ORIGINS entry: "*" or an origin as
// browsers send it, scheme://host[:port] with no path (not even "/"),
// query, fragment or user.
func checkOrigin(o string) error {
	if o == "*" {
		return nil
	}
	// Any scheme: apps in web views and extensions send their own
	// (capacitor://localhost, tauri://localhost, chrome-extension://<id>).
	u, err := url.Parse(o)
	if err != nil || u.Scheme == "" || u.Host == "" || u.Opaque != "" {
		return fmt.Errorf("%q is not an origin such as https://app.example.com", o)
	}
	if u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil || strings.HasSuffix(o, "?") || strings.HasSuffix(o, "#") {
		return fmt.Errorf("%q is not an origin: browsers send scheme://host[:port] alone, with no path (not even a trailing /), so it would never match; write %s://%s", o, u.Scheme, u.Host)
	}
	return nil
}

// loopback reports whether addr (host:port) listens on loopback only.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func lookup(getenv func(string) string, name string) (string, bool) {
	v := getenv(name)
	return v, v != ""
}

// boolFlag is a setting that may be given as a bare switch (-demo); its
// value is checked by the setting like any other.
type boolFlag string

func (b *boolFlag) String() string     { return string(*b) }
func (b *boolFlag) Set(v string) error { *b = boolFlag(v); return nil }
func (b *boolFlag) IsBoolFlag() bool   { return true }

// wholeNumber parses a setting that is a whole number from lo to hi.
func wholeNumber(lo, hi int, set func(c *config, n int)) func(c *config, v string) error {
	return func(c *config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < lo || n > hi {
			return fmt.Errorf("must be a whole number from %d to %d, got %q", lo, hi, v)
		}
		set(c, n)
		return nil
	}
}
