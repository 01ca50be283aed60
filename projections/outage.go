package projections

import (
	"context"
	"log/slog"
	"time"
)

// outage is a run of failed attempts of one loop that retries (a
// projection's, a process's), so that a database outage is said once per
// loop, not at every retry (every LeaderRetry, for as long as it lasts):
// the first failure of a run is logged at WARN, the others at DEBUG, and
// the first success after them once at INFO. eventstore.Hub logs its
// outages the same way. An outage belongs to the goroutine of its loop.
type outage struct {
	log      *slog.Logger
	failures int       // attempts failed since the last success
	since    time.Time // when the first of them failed
}

// failed logs a failed attempt with msg and args: at WARN when it is the
// first since a success, else at DEBUG with the number of attempts failed
// so far (failedAttempts).
func (o *outage) failed(ctx context.Context, msg string, args ...any) {
	o.failures++
	if o.failures == 1 {
		o.since = time.Now()
		o.log.WarnContext(ctx, msg, args...)
		return
	}
	o.log.DebugContext(ctx, msg, append(args, "failedAttempts", o.failures)...) // said once per outage
}

// over ends the run of failures, if attempts have failed since the last
// success: it logs msg and args at INFO with how many attempts failed
// (failedAttempts) and for how long (failingFor), and the next failure is
// logged at WARN again. It reports whether attempts had failed.
func (o *outage) over(ctx context.Context, msg string, args ...any) bool {
	if o.failures == 0 {
		return false
	}
	o.log.InfoContext(ctx, msg, append(args, "failedAttempts", o.failures, "failingFor", time.Since(o.since).Round(time.Millisecond))...)
	o.failures = 0
	return true
}

// failing reports whether attempts have failed since the last success.
func (o *outage) failing() bool { return o.failures > 0 }
