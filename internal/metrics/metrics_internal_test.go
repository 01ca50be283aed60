package metrics

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"cqrsgate/domain"
	"cqrsgate/projections"
)

// fakeClock is a settable clock for the projections' cache.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func report(name string, version, generation int, serving bool) projections.Report {
	return projections.Report{Status: projections.Status{Name: name, Version: version, Generation: generation, Status: "RUNNING", Serving: serving}}
}

// get answers GET /metrics of m.
func get(m *Metrics) (int, string) {
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	return rec.Code, string(body)
}

// Two generations of one projection version are two series, not a
// collision that fails the scrape.
func TestProjectionGenerationsAreDistinctSeries(t *testing.T) {
	m := New()
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	m.reg.MustRegister(newProjectionCollector(func(context.Context) ([]projections.Report, error) {
		return []projections.Report{report("accounts", 1, 1, true), report("accounts", 1, 2, false)}, nil
	}, slog.New(slog.DiscardHandler), clock.now))
	code, body := get(m)
	if code != 200 {
		t.Fatalf("/metrics: %d\n%.600s", code, body)
	}
	for _, want := range []string{
		`cqrsgate_projection_position{generation="1",projection="accounts",version="1"} 0`,
		`cqrsgate_projection_position{generation="2",projection="accounts",version="1"} 0`,
		`cqrsgate_projection_serving{generation="1",projection="accounts",version="1"} 1`,
		`cqrsgate_projection_serving{generation="2",projection="accounts",version="1"} 0`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("no %s", want)
		}
	}
}

// The projections' reports are read once for the scrapes of a second,
// concurrent ones included, and again after it.
func TestProjectionReportsAreCachedForASecond(t *testing.T) {
	var reads atomic.Int32
	release := make(chan struct{})
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	p := newProjectionCollector(func(context.Context) ([]projections.Report, error) {
		reads.Add(1)
		<-release
		return []projections.Report{report("accounts", 1, 1, true)}, nil
	}, slog.New(slog.DiscardHandler), clock.now)
	reg := prometheus.NewRegistry()
	reg.MustRegister(p)
	gather := func() error {
		mfs, err := reg.Gather()
		if err == nil && len(mfs) != 5 {
			err = fmt.Errorf("%d metric families, want 5", len(mfs))
		}
		return err
	}

	// Concurrent scrapes: one read, its result shared.
	const scrapers = 8
	errs := make(chan error, scrapers)
	for range scrapers {
		go func() { errs <- gather() }()
	}
	for reads.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // let the others reach the collector
	close(release)
	for range scrapers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if n := reads.Load(); n != 1 {
		t.Fatalf("%d concurrent scrapes made %d reads, want 1", scrapers, n)
	}

	// Within the second after the read: no new read.
	clock.add(999 * time.Millisecond)
	if err := gather(); err != nil {
		t.Fatal(err)
	}
	if n := reads.Load(); n != 1 {
		t.Fatalf("a scrape 999ms after the read read again (%d reads)", n)
	}
	// After it: a new read.
	clock.add(time.Millisecond)
	if err := gather(); err != nil {
		t.Fatal(err)
	}
	if n := reads.Load(); n != 2 {
		t.Fatalf("a scrape 1s after the read: %d reads, want 2", n)
	}
}

// A failed read is logged once and spares the database for the second
// after it too; the scrape goes on without the projections' gauges.
func TestProjectionReadFailureIsCached(t *testing.T) {
	var reads atomic.Int32
	var logs bytes.Buffer
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	m := New()
	m.reg.MustRegister(newProjectionCollector(func(context.Context) ([]projections.Report, error) {
		reads.Add(1)
		return nil, errors.New("database down")
	}, slog.New(slog.NewTextHandler(&logs, nil)), clock.now))
	for range 3 {
		code, body := get(m)
		if code != 200 || !strings.Contains(body, "go_goroutines") || strings.Contains(body, "cqrsgate_projection_") {
			t.Fatalf("/metrics with the projections unreadable: %d\n%.600s", code, body)
		}
	}
	if n := reads.Load(); n != 1 {
		t.Errorf("%d reads, want 1", n)
	}
	if n := strings.Count(logs.String(), "database down"); n != 1 {
		t.Errorf("the failure was logged %d times, want once:\n%s", n, logs.String())
	}
}

// Reads that keep failing (the database away for a while, a read a
// second) are said at WARN once, not at each one, and the first that
// succeeds at INFO: each scrape's read logged a WARN for the whole outage.
func TestProjectionReadFailuresAreSaidOncePerOutage(t *testing.T) {
	var down atomic.Bool
	var logs bytes.Buffer
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	m := New()
	m.reg.MustRegister(newProjectionCollector(func(context.Context) ([]projections.Report, error) {
		if down.Load() {
			return nil, errors.New("database down")
		}
		return []projections.Report{report("accounts", 1, 1, true)}, nil
	}, slog.New(slog.NewTextHandler(&logs, nil)), clock.now))
	scrape := func() {
		t.Helper()
		clock.add(projReportsTTL)
		if code, _ := get(m); code != 200 {
			t.Fatalf("/metrics: %d", code)
		}
	}
	for outage := 1; outage <= 2; outage++ {
		down.Store(true)
		for range 5 {
			scrape()
		}
		down.Store(false)
		scrape()
		scrape()
		if w, i := strings.Count(logs.String(), "level=WARN"), strings.Count(logs.String(), "level=INFO msg=\"metrics: reading the projections again\""); w != outage || i != outage {
			t.Fatalf("after outage %d of five failed reads: %d WARN and %d INFO lines, want %d of each:\n%s", outage, w, i, outage, logs.String())
		}
	}
}

// collidingCollector emits two identical series: a gathering error.
type collidingCollector struct{ desc *prometheus.Desc }

func (c collidingCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }
func (c collidingCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, 1)
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, 2)
}

// A collector that fails loses its own series, not the whole scrape; the
// failure is logged and counted.
func TestHandlerContinuesOnError(t *testing.T) {
	var logs bytes.Buffer
	m := New()
	m.log.Store(slog.New(slog.NewTextHandler(&logs, nil)))
	m.reg.MustRegister(collidingCollector{prometheus.NewDesc("test_collision", "Collides.", nil, nil)})
	m.commands.WithLabelValues("OpenAccount", "ok").Inc()
	code, body := get(m)
	if code != 200 {
		t.Fatalf("/metrics with a failing collector: %d\n%.600s", code, body)
	}
	for _, want := range []string{"go_goroutines ", `cqrsgate_commands_total{command="OpenAccount",outcome="ok"} 1`} {
		if !strings.Contains(body, want) {
			t.Errorf("no %s in the scrape", want)
		}
	}
	if !strings.Contains(logs.String(), "test_collision") {
		t.Errorf("the gathering error was not logged: %q", logs.String())
	}
	if _, body := get(m); !strings.Contains(body, `promhttp_metric_handler_errors_total{cause="gathering"} 1`) {
		t.Errorf("the gathering error was not counted:\n%s", body)
	}
}

// blockingCollector holds each Collect until release is closed.
type blockingCollector struct {
	in      *atomic.Int32
	release chan struct{}
	desc    *prometheus.Desc
}

func (c blockingCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }
func (c blockingCollector) Collect(ch chan<- prometheus.Metric) {
	c.in.Add(1)
	<-c.release
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, 1)
}

// Scrapes beyond maxScrapesInFlight are refused, not queued.
func TestHandlerBoundsScrapesInFlight(t *testing.T) {
	m := New()
	var in atomic.Int32
	c := blockingCollector{in: &in, release: make(chan struct{}), desc: prometheus.NewDesc("test_blocking", "Blocks.", nil, nil)}
	m.reg.MustRegister(c)
	h := m.Handler()
	codes := make(chan int, maxScrapesInFlight)
	for range maxScrapesInFlight {
		go func() {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
			codes <- rec.Code
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for in.Load() < maxScrapesInFlight {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d scrapes reached the collector", in.Load(), maxScrapesInFlight)
		}
		time.Sleep(time.Millisecond)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 503 {
		t.Errorf("scrape %d: %d, want 503", maxScrapesInFlight+1, rec.Code)
	}
	close(c.release)
	for range maxScrapesInFlight {
		if code := <-codes; code != 200 {
			t.Errorf("a scrape in flight: %d", code)
		}
	}
}

func TestCommandOutcomes(t *testing.T) {
	for _, c := range []struct {
		code domain.Code
		err  error
		want string
	}{
		{"", nil, "ok"},
		{domain.Invalid, domain.Errorf(domain.Invalid, "bad"), "validation"},
		{domain.NotFound, nil, "not_found"},
		{domain.RuleViolation, nil, "rule_violation"},
		{domain.Internal, errors.New("boom"), "internal"},
		{domain.Internal, fmt.Errorf("read stream: %w", context.Canceled), "cancelled"},
		{domain.Internal, fmt.Errorf("read stream: %w", context.DeadlineExceeded), "timeout"},
		{domain.Unavailable, &domain.Error{Code: domain.Unavailable, Err: context.DeadlineExceeded}, "unavailable"}, // what the client was told
		{domain.Code("SOMETHING_NEW"), nil, "internal"},
	} {
		if got := commandOutcome(c.code, c.err); got != c.want {
			t.Errorf("commandOutcome(%q, %v) = %q, want %q", c.code, c.err, got, c.want)
		}
	}
}

// A command that ended for its context is counted as cancelled or
// timeout, not as an internal error, when its error is known.
func TestObserveCommandCancelled(t *testing.T) {
	m := New()
	m.ObserveCommand(domain.CommandOutcome{Command: "OpenAccount", Code: domain.Internal, Err: context.Canceled})
	m.ObserveCommand(domain.CommandOutcome{Command: "OpenAccount", Code: domain.Internal, Err: context.DeadlineExceeded})
	_, body := get(m)
	for _, want := range []string{
		`cqrsgate_commands_total{command="OpenAccount",outcome="cancelled"} 1`,
		`cqrsgate_commands_total{command="OpenAccount",outcome="timeout"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("no %s", want)
		}
	}
	if strings.Contains(body, `outcome="internal"`) {
		t.Error("counted as internal")
	}
}

// TestRefusedOperationsAreCounted: operations refused before they run are
// counted by type and by each error's code, as those that run are; a type
// that is none of the three (a document that did not parse) is "unknown".
func TestRefusedOperationsAreCounted(t *testing.T) {
	m := New()
	m.RefusedOperation(context.Background(), "query", []string{"DEPTH_LIMIT_EXCEEDED"})
	m.RefusedOperation(context.Background(), "", []string{"GRAPHQL_PARSE_FAILED", ""})
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, want := range []string{
		`cqrsgate_graphql_operations_total{operation="query"} 1`,
		`cqrsgate_graphql_operations_total{operation="unknown"} 1`,
		`cqrsgate_graphql_errors_total{code="DEPTH_LIMIT_EXCEEDED",operation="query"} 1`,
		`cqrsgate_graphql_errors_total{code="GRAPHQL_PARSE_FAILED",operation="unknown"} 1`,
		`cqrsgate_graphql_errors_total{code="UNKNOWN",operation="unknown"} 1`,
	} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("no %s in\n%s", want, grepLines(rec.Body.String(), "cqrsgate_graphql_"))
		}
	}
}

func grepLines(text, prefix string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, prefix) && !strings.Contains(l, "_bucket") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestUnknownOutcomeIsNotCancelled: an append of unknown outcome is
// UNAVAILABLE to its client ("whether it committed is unknown"), wrapping
// the context's error; the metrics said the caller cancelled (so nothing
// written), not what the client was told.
func TestUnknownOutcomeIsNotCancelled(t *testing.T) {
	err := &domain.Error{Code: domain.Unavailable, Message: "whether it committed is unknown",
		Err: fmt.Errorf("append s: %w", context.Canceled)}
	if got := commandOutcome(domain.CodeOf(err), err); got != "unavailable" {
		t.Errorf("command outcome %q, want unavailable (the code the client got)", got)
	}
}
