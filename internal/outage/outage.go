// Package outage says a run of failures of a loop that retries (a
// projection's, a process's, the metrics' reads of the projections) once,
// not at every retry: see Outage.
package outage

import (
	"context"
	"log/slog"
	"time"
)

// Outage is a run of failed attempts of one loop that retries (a
// projection's, a process's, a collector's), so that a database outage is
// said once per loop, not at every retry (for as long as it lasts):
// the first failure of a run is logged at WARN, the others at DEBUG, and
// the first success after them once at INFO. eventstore.Hub logs its
// outages the same way. An Outage belongs to the goroutine of its loop (or
// is used under its owner's lock). Log is where it logs; the zero value of
// the rest is a loop that has not failed.
type Outage struct {
	Log      *slog.Logger
	failures int       // attempts failed since the last success
	since    time.Time // when the first of them failed
	warned   time.Time // when the run was last logged at WARN
	// Remind is how often a run that goes on is logged at WARN again
	// (default DefaultRemind).
	Remind time.Duration
}

// DefaultRemind is how often a run of failures that goes on is said at WARN
// again: a failure that is not an outage (a table dropped by hand, a
// permission taken away) must not go quiet for good after its first line.
const DefaultRemind = 5 * time.Minute

// Failed logs a failed attempt with msg and args: at WARN when it is the
// first since a success, or the first Remind after the last WARN
// (with failedAttempts and failingFor), else at DEBUG with the number of
// attempts failed so far (failedAttempts).
func (o *Outage) Failed(ctx context.Context, msg string, args ...any) {
	o.failures++
	now := time.Now()
	if o.failures == 1 {
		o.since, o.warned = now, now
		o.Log.WarnContext(ctx, msg, args...)
		return
	}
	remind := o.Remind
	if remind <= 0 {
		remind = DefaultRemind
	}
	if now.Sub(o.warned) >= remind {
		o.warned = now
		o.Log.WarnContext(ctx, msg, append(args, "failedAttempts", o.failures, "failingFor", now.Sub(o.since).Round(time.Second))...)
		return
	}
	o.Log.DebugContext(ctx, msg, append(args, "failedAttempts", o.failures)...) // said once per outage
}

// Over ends the run of failures, if attempts have failed since the last
// success: it logs msg and args at INFO with how many attempts failed
// (failedAttempts) and for how long (failingFor), and the next failure is
// logged at WARN again. It reports whether attempts had failed.
func (o *Outage) Over(ctx context.Context, msg string, args ...any) bool {
	if o.failures == 0 {
		return false
	}
	o.Log.InfoContext(ctx, msg, append(args, "failedAttempts", o.failures, "failingFor", time.Since(o.since).Round(time.Millisecond))...)
	o.failures = 0
	return true
}

// Failing reports whether attempts have failed since the last success.
func (o *Outage) Failing() bool { return o.failures > 0 }
