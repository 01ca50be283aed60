package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"
)

// config is every setting of the gateway. Each has a flag and an
// environment variable; a flag given on the command line wins over the
// variable, which wins over the default.
type config struct {
	Addr            string
	DatabaseURL     string
	DataDir         string
	DBMaxConns      int
	LogLevel        slog.Level
	LogFormat       string
	ShutdownTimeout time.Duration
	MaxBodyBytes    int64
	SnapshotEvery   int
	ReadTimeout     time.Duration
	AllowedOrigins  []string
}

// setting describes one setting for flags, the environment and the README.
type setting struct {
	flag, env, def, usage string
	set                   func(c *config, v string) error
}

var settings = []setting{
	{"addr", "ADDR", ":8080", "HTTP listen address", func(c *config, v string) error {
		if v == "" {
			return errors.New("must not be empty")
		}
		c.Addr = v
		return nil
	}},
	{"database-url", "DATABASE_URL", "", "PostgreSQL URL; empty starts an embedded PostgreSQL in -data-dir", func(c *config, v string) error {
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
	{"db-max-conns", "DB_MAX_CONNS", "20", "maximum connections in the database pool", func(c *config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 2 || n > 1000 {
			return fmt.Errorf("must be a whole number from 2 to 1000, got %q", v)
		}
		c.DBMaxConns = n
		return nil
	}},
	{"log-level", "LOG_LEVEL", "info", "log level: debug, info, warn or error", func(c *config, v string) error {
		return c.LogLevel.UnmarshalText([]byte(v))
	}},
	{"log-format", "LOG_FORMAT", "text", "log format: text or json", func(c *config, v string) error {
		if v != "text" && v != "json" {
			return fmt.Errorf("must be text or json, got %q", v)
		}
		c.LogFormat = v
		return nil
	}},
	{"shutdown-timeout", "SHUTDOWN_TIMEOUT", "15s", "how long shutdown waits for requests in flight", func(c *config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return fmt.Errorf("must be a positive duration such as 15s, got %q", v)
		}
		c.ShutdownTimeout = d
		return nil
	}},
	{"max-body-bytes", "MAX_BODY_BYTES", "16777216", "largest accepted GraphQL request body, in bytes", func(c *config, v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1024 {
			return fmt.Errorf("must be a whole number of at least 1024, got %q", v)
		}
		c.MaxBodyBytes = n
		return nil
	}},
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
	{"allowed-origins", "ALLOWED_ORIGINS", "", "comma-separated origins (scheme://host[:port]) allowed to open websockets, or *; empty allows only the gateway's own host and non-browser clients", func(c *config, v string) error {
		c.AllowedOrigins = nil
		for _, o := range strings.Split(v, ",") {
			if o = strings.TrimSpace(o); o == "" {
				continue
			}
			if o != "*" && !strings.Contains(o, "://") {
				return fmt.Errorf("%q is not an origin such as https://app.example.com", o)
			}
			c.AllowedOrigins = append(c.AllowedOrigins, o)
		}
		return nil
	}},
}

// loadConfig reads the settings from args and getenv. An invalid value is
// an error that names the setting (flag and variable).
func loadConfig(args []string, getenv func(string) string, usageOut io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("cqrsgate", flag.ContinueOnError)
	fs.SetOutput(usageOut)
	values := make(map[string]*string, len(settings))
	for _, s := range settings {
		values[s.flag] = fs.String(s.flag, s.def, s.usage+" (env "+s.env+")")
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
	return c, nil
}

func lookup(getenv func(string) string, name string) (string, bool) {
	v := getenv(name)
	return v, v != ""
}
