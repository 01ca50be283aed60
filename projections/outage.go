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
	warned   time.Time // when the run was last logged at WARN
	// remind is how often a run that goes on is logged at WARN again
	// (default outageRemind).
	remind time.Duration
}

// outageRemind is how often a run of failures that goes on is said at WARN
// again: a failure that is not an outage (a table dropped by hand, a
// permission taken away) must not go quiet for good after its first line.
const outageRemind = 5 * time.Minute

// failed logs a failed attempt with msg and args: at WARN when it is the
// first since a success, or the first outageRemind after the last WARN
// (with failedAttempts and failingFor), else at DEBUG with the number of
// attempts failed so far (failedAttempts).
func (o *outage) failed(ctx context.Context, msg string, args ...any) {
	o.failures++
	now := time.Now()
	if o.failures == 1 {
		o.since, o.warned = now, now
		o.log.WarnContext(ctx, msg, args...)
		return
	}
	remind := o.remind
	if remind <= 0 {
		remind = outageRemind
	}
	if now.Sub(o.warned) >= remind {
		o.warned = now
		o.log.WarnContext(ctx, msg, append(args, "failedAttempts", o.failures, "failingFor", now.Sub(o.since).Round(time.Second))...)
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
