package outage

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// A run of failures is said at WARN once, then at DEBUG, and at WARN again
// every remind while it goes on: a failure that is not an outage (a table
// dropped by hand) does not go quiet for good after its first line.
func TestOutageWarnsAgainWhileItGoesOn(t *testing.T) {
	var buf bytes.Buffer
	o := &Outage{Log: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), Remind: 50 * time.Millisecond}
	ctx := context.Background()
	levels := func() string {
		var out []string
		for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
			_, rest, _ := strings.Cut(line, "level=")
			level, _, _ := strings.Cut(rest, " ")
			out = append(out, level)
		}
		buf.Reset()
		return strings.Join(out, " ")
	}
	o.Failed(ctx, "stopped")
	o.Failed(ctx, "stopped")
	o.Failed(ctx, "stopped")
	if got := levels(); got != "WARN DEBUG DEBUG" {
		t.Fatalf("three failures logged at %s, want WARN DEBUG DEBUG", got)
	}
	time.Sleep(60 * time.Millisecond)
	o.Failed(ctx, "stopped")
	o.Failed(ctx, "stopped")
	if got := levels(); got != "WARN DEBUG" {
		t.Fatalf("failures after remind logged at %s, want WARN DEBUG", got)
	}
	if !o.Over(ctx, "running again") || levels() != "INFO" || o.Over(ctx, "running again") {
		t.Fatal("the end of the run is not said once at INFO")
	}
	o.Failed(ctx, "stopped")
	if got := levels(); got != "WARN" {
		t.Fatalf("a new run's first failure logged at %s, want WARN", got)
	}
}
