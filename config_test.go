package main

import (
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestLoadConfigDefaults(t *testing.T) {
	c, err := loadConfig(nil, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != ":8080" || c.DatabaseURL != "" || c.DataDir != ".cqrsgate/pgdata" || c.DBMaxConns != 20 ||
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
		{[]string{"-addr", ""}, nil, "-addr (ADDR)"},
		{[]string{"-max-body-bytes", "10"}, nil, "-max-body-bytes (MAX_BODY_BYTES)"},
		{nil, map[string]string{"ALLOWED_ORIGINS": "example.com"}, "-allowed-origins (ALLOWED_ORIGINS)"},
		{nil, map[string]string{"READ_TIMEOUT": "2m"}, "-read-timeout (READ_TIMEOUT)"},
	}
	for _, c := range cases {
		_, err := loadConfig(c.args, func(k string) string { return c.env[k] }, io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.name) {
			t.Errorf("%v %v: err = %v, want one naming %s", c.args, c.env, err, c.name)
		}
	}
	if _, err := loadConfig([]string{"-nope"}, func(string) string { return "" }, io.Discard); err == nil {
		t.Error("an unknown flag was accepted")
	}
	if _, err := loadConfig([]string{"extra"}, func(string) string { return "" }, io.Discard); err == nil {
		t.Error("a stray argument was accepted")
	}
}
