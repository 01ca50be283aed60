package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

type ctxRequestID struct{}

func testRequestID(ctx context.Context) string {
	id, _ := ctx.Value(ctxRequestID{}).(string)
	return id
}

// decodeLines parses the JSON log lines in buf.
func decodeLines(t *testing.T, buf *bytes.Buffer) []string {
	t.Helper()
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if l == "" {
			continue
		}
		if !json.Valid([]byte(l)) {
			t.Fatalf("not a JSON line: %s", l)
		}
		lines = append(lines, l)
	}
	buf.Reset()
	return lines
}

// Lines logged with a request's context (log.InfoContext(ctx, ...)) carry
// its request id, once: many lines of a request had none.
func TestLogLinesCarryTheRequestID(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(withRequestID(slog.NewJSONHandler(&buf, nil), testRequestID))
	ctx := context.WithValue(context.Background(), ctxRequestID{}, "req-1")
	count := func(line string) int { return strings.Count(line, `"requestId"`) }

	log.InfoContext(ctx, "snapshot failed", "err", "disk full")
	log.InfoContext(ctx, "graphql", "requestId", "req-1", "operation", "query")
	log.InfoContext(ctx, "explicit", "requestId", "other")
	log.With("requestId", "bound").InfoContext(ctx, "bound with With")
	log.With("requestId", "bound").WithGroup("g").InfoContext(ctx, "bound, then a group", "k", "v")
	log.Info("no context")
	log.InfoContext(context.Background(), "a context without a request")
	log.With("component", "runner").InfoContext(ctx, "with attrs")
	log.WithGroup("g").InfoContext(ctx, "in a group", "k", "v")
	log.WithGroup("").InfoContext(ctx, "empty group")
	lines := decodeLines(t, &buf)
	want := []struct {
		n    int
		frag string
	}{
		{1, `"requestId":"req-1"`},
		{1, `"requestId":"req-1"`},
		{1, `"requestId":"other"`},
		{1, `"requestId":"bound"`},
		{1, `"requestId":"bound"`},
		{0, ""},
		{0, ""},
		{1, `"component":"runner","requestId":"req-1"`},
		{1, `"g":{"k":"v","requestId":"req-1"}`},
		{1, `"requestId":"req-1"`},
	}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), strings.Join(lines, "\n"))
	}
	for i, w := range want {
		if count(lines[i]) != w.n || !strings.Contains(lines[i], w.frag) {
			t.Errorf("line %d: %s\nwant %d request id(s), with %s", i, lines[i], w.n, w.frag)
		}
	}

	// The record handed to the handler is not changed: another handler
	// given the same record sees it as it was.
	r := slog.NewRecord(time.Now(), slog.LevelInfo, "shared", 0)
	r.AddAttrs(slog.Int("a", 1), slog.Int("b", 2), slog.Int("c", 3), slog.Int("d", 4), slog.Int("e", 5))
	h := withRequestID(slog.NewJSONHandler(&buf, nil), testRequestID)
	if err := h.Handle(ctx, r); err != nil {
		t.Fatal(err)
	}
	if r.NumAttrs() != 5 {
		t.Errorf("the caller's record has %d attributes after Handle, want 5", r.NumAttrs())
	}
	if l := decodeLines(t, &buf); len(l) != 1 || count(l[0]) != 1 {
		t.Errorf("%v", l)
	}
	// Levels are the wrapped handler's.
	quiet := withRequestID(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}), testRequestID)
	if quiet.Enabled(ctx, slog.LevelInfo) || !quiet.WithAttrs(nil).Enabled(ctx, slog.LevelWarn) {
		t.Error("Enabled is not the wrapped handler's")
	}
}

// Stopping the tracer provider is bounded by the shutdown timeout, at
// most maxTracingFlush: with a collector that did not answer it took 30 s
// and more after everything else had stopped.
func TestFlushTracingIsBounded(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	blocked := func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
	for _, c := range []struct{ shutdown, want time.Duration }{
		{200 * time.Millisecond, 200 * time.Millisecond},
		{time.Hour, maxTracingFlush},
	} {
		start := time.Now()
		flushTracing(context.Background(), blocked, c.shutdown, log)
		if took := time.Since(start); took < c.want || took > c.want+3*time.Second {
			t.Errorf("SHUTDOWN_TIMEOUT=%v: stopping the tracer provider took %v, want %v", c.shutdown, took, c.want)
		}
		if lines := decodeLines(t, &buf); len(lines) != 1 || !strings.Contains(lines[0], `"level":"WARN"`) {
			t.Errorf("a flush that timed out logged %v, want one WARN line", lines)
		}
	}
	// A cancelled parent (the signal's context) does not cut it short.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	flushTracing(ctx, func(ctx context.Context) error { return ctx.Err() }, time.Second, log)
	if lines := decodeLines(t, &buf); len(lines) != 0 {
		t.Errorf("a flush that succeeded logged %v", lines)
	}
}

// An invalid OpenTelemetry setting stops start-up, naming the variable,
// before PostgreSQL is started.
func TestAnInvalidOTelSettingStopsStartUp(t *testing.T) {
	bin := buildBinary(t)
	dataDir := pgDataDir(t)
	for _, kv := range [][2]string{
		{"OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318"},
		{"OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"},
	} {
		cmd := exec.Command(bin, "-addr", "127.0.0.1:0", "-data-dir", dataDir)
		cmd.Env = append(os.Environ(), kv[0]+"="+kv[1], "OTEL_TRACES_EXPORTER=otlp")
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(string(out), kv[0]) {
			t.Errorf("%s=%s: exit %v, want status 2 and a message naming it:\n%s", kv[0], kv[1], err, out)
		}
	}
	if _, err := os.Stat(dataDir); !os.IsNotExist(err) {
		t.Errorf("PostgreSQL was started (data directory: %v)", err)
	}
}

// TestASilentCollectorDoesNotHoldUpTheExit: with an OTLP collector that
// accepts connections and never answers, SIGTERM stopped the gateway 30 s
// after everything else had (the last spans' export had no deadline),
// and OpenTelemetry's error was a plain line in the JSON log. Also: a
// request's log line carries its request id once.
func TestASilentCollectorDoesNotHoldUpTheExit(t *testing.T) {
	ln := silentListener(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+ln.Addr().String())
	bin := buildBinary(t)
	g := startGatewayOn(t, bin, pgDataDir(t), "127.0.0.1:0", "-shutdown-timeout", "1s")
	if d := g.graphql(`{ __typename }`); d["__typename"] != "Query" {
		t.Fatalf("%v", d)
	}
	start := time.Now()
	if err := g.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-g.done:
		if err != nil {
			t.Fatalf("gateway exited with %v\n%s", err, g.logs)
		}
	case <-time.After(25 * time.Second):
		_ = g.cmd.Process.Kill()
		t.Fatalf("the gateway still runs 25 s after SIGTERM (SHUTDOWN_TIMEOUT=1s) with a silent collector\n%s", g.logs)
	}
	took := time.Since(start)
	if took > 15*time.Second {
		t.Errorf("the gateway took %v to stop (SHUTDOWN_TIMEOUT=1s) with a silent collector\n%s", took, g.logs)
	}
	logs := g.logs.String()
	if !strings.Contains(logs, "OpenTelemetry: the last spans were not all exported") {
		t.Errorf("no warning that spans were lost:\n%s", logs)
	}
	graphqlLines := 0
	for _, l := range strings.Split(strings.TrimSpace(logs), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(l), &rec) != nil {
			t.Errorf("a line that is not JSON in the JSON log: %s", l)
			continue
		}
		if rec["msg"] == "graphql" {
			graphqlLines++
			if n := strings.Count(l, `"requestId"`); n != 1 {
				t.Errorf("the operation's line has %d request ids: %s", n, l)
			}
		}
	}
	if graphqlLines == 0 {
		t.Errorf("no graphql line logged:\n%s", logs)
	}
}
