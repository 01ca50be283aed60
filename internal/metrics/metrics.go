// Package metrics is the gateway's Prometheus instrumentation, served at
// /metrics: GraphQL operations, commands, appends, projections, websockets
// and the database pool, with conventional names and base units.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"cqrsgate/domain"
	"cqrsgate/eventstore"
	"cqrsgate/internal/outage"
	"cqrsgate/projections"
)

// Metrics holds the gateway's collectors in their own registry.
type Metrics struct {
	reg *prometheus.Registry

	operations     *prometheus.CounterVec
	operationErrs  *prometheus.CounterVec
	operationTime  *prometheus.HistogramVec
	commands       *prometheus.CounterVec
	commandTime    *prometheus.HistogramVec
	conflicts      prometheus.Counter
	eventsAppended prometheus.Counter
	appends        *prometheus.CounterVec

	// log is where the /metrics handler reports what it could not
	// gather (set by Projections; nil until then).
	log atomic.Pointer[slog.Logger]
}

// New returns the metrics with the Go runtime and process collectors.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := &Metrics{
		reg: reg,
		operations: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cqrsgate_graphql_operations_total",
			Help: "GraphQL operations executed, by type (query, mutation, subscription)."}, []string{"operation"}),
		operationErrs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cqrsgate_graphql_errors_total",
			Help: "Errors in GraphQL responses, by operation type and error code."}, []string{"operation", "code"}),
		operationTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "cqrsgate_graphql_operation_duration_seconds",
			Help:    "Time to an operation's first response, by operation type.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}}, []string{"operation"}),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cqrsgate_commands_total",
			Help: "Commands executed, by command and outcome: ok, or the error's code in lower case (validation, not_found, conflict, " +
				"rule_violation, unauthorized, forbidden, stale, unavailable, internal), or cancelled (the caller went away) " +
				"or timeout (the command's deadline passed)."}, []string{"command", "outcome"}),
		commandTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "cqrsgate_command_duration_seconds",
			Help:    "Time to execute a command (load, decide, append), by command.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1}}, []string{"command"}),
		conflicts: prometheus.NewCounter(prometheus.CounterOpts{Name: "cqrsgate_command_concurrency_conflicts_total",
			Help: "Concurrency races commands lost (each one is retried, up to the limit)."}),
		eventsAppended: prometheus.NewCounter(prometheus.CounterOpts{Name: "cqrsgate_events_appended_total",
			Help: "Events appended to the log by this process."}),
		appends: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cqrsgate_appends_total",
			Help: "Appends to the log by this process, by outcome: ok, duplicate, conflict, invalid, cancelled (the caller went away), " +
				"timeout (the caller's deadline passed) or error (any other failure)."}, []string{"outcome"}),
	}
	reg.MustRegister(m.operations, m.operationErrs, m.operationTime, m.commands, m.commandTime, m.conflicts, m.eventsAppended, m.appends)
	return m
}

// maxScrapesInFlight bounds the /metrics requests served at once; more
// are answered 503.
const maxScrapesInFlight = 4

// Handler serves the metrics in the Prometheus text format. A collector
// that fails (or two series that collide) costs only its own series: the
// rest are served, the error is logged and counted in
// promhttp_metric_handler_errors_total{cause="gathering"}. At most
// maxScrapesInFlight scrapes are served at once; the others get 503.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:            handlerLog{m},
		ErrorHandling:       promhttp.ContinueOnError,
		Registry:            m.reg,
		MaxRequestsInFlight: maxScrapesInFlight,
	})
}

// handlerLog is the promhttp.Logger of Handler: the logger Projections
// was given, if any yet.
type handlerLog struct{ m *Metrics }

func (l handlerLog) Println(v ...any) {
	if log := l.m.log.Load(); log != nil {
		log.Warn("metrics: " + strings.TrimSuffix(fmt.Sprintln(v...), "\n"))
	}
}

// codeOutcomes are the outcome label values of the error codes; any
// other code (there are none) counts as internal, so that the label's
// values stay a fixed set.
var codeOutcomes = map[domain.Code]string{
	"":                   "ok",
	domain.Invalid:       "validation",
	domain.NotFound:      "not_found",
	domain.Conflict:      "conflict",
	domain.RuleViolation: "rule_violation",
	domain.Unauthorized:  "unauthorized",
	domain.Forbidden:     "forbidden",
	domain.Stale:         "stale",
	domain.Unavailable:   "unavailable",
	domain.Internal:      "internal",
}

// contextOutcome is "cancelled" for an error caused by a cancelled
// context, "timeout" for one caused by a deadline that passed, else "".
func contextOutcome(err error) string {
	var de *domain.Error
	if errors.As(err, &de) {
		// The error says what it is (an append of unknown outcome is
		// UNAVAILABLE, whatever context error it wraps): its code tells.
		return ""
	}
	switch {
	case errors.Is(err, context.Canceled):
		return "cancelled"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	}
	return ""
}

// commandOutcome is the outcome label of a command that ended with code
// and err: a cancellation or a timeout is told apart from the internal
// error CodeOf makes of it.
func commandOutcome(code domain.Code, err error) string {
	if o := contextOutcome(err); o != "" {
		return o
	}
	if o, ok := codeOutcomes[code]; ok {
		return o
	}
	return "internal"
}

// ObserveCommand is a domain.ServiceOptions.Observe. A command whose
// context was cancelled or timed out (the store returns the context's
// error, which CodeOf makes INTERNAL) is counted as cancelled or timeout,
// from the outcome's Err.
func (m *Metrics) ObserveCommand(o domain.CommandOutcome) {
	m.commands.WithLabelValues(o.Command, commandOutcome(o.Code, o.Err)).Inc()
	m.commandTime.WithLabelValues(o.Command).Observe(o.Duration.Seconds())
	m.conflicts.Add(float64(o.Conflicts))
}

// Operations is a gqlgen operation middleware counting operations, their
// errors and durations.
func (m *Metrics) Operations() graphql.OperationMiddleware {
	// The series of each operation type, looked up once rather than per
	// operation (they start at zero).
	type series struct {
		count prometheus.Counter
		time  prometheus.Observer
	}
	byKind := map[string]series{}
	for _, kind := range []string{"query", "mutation", "subscription", "unknown"} {
		byKind[kind] = series{m.operations.WithLabelValues(kind), m.operationTime.WithLabelValues(kind)}
	}
	return func(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
		rc := graphql.GetOperationContext(ctx)
		kind := "unknown"
		if rc.Operation != nil {
			kind = string(rc.Operation.Operation)
		}
		s := byKind[kind] // an operation is one of the three types
		s.count.Inc()
		start := time.Now()
		responses := next(ctx)
		first := true
		return func(ctx context.Context) *graphql.Response {
			resp := responses(ctx)
			if first {
				first = false
				s.time.Observe(time.Since(start).Seconds())
			}
			if resp != nil {
				for _, e := range resp.Errors {
					code, _ := e.Extensions["code"].(string)
					if code == "" {
						code = "UNKNOWN"
					}
					m.operationErrs.WithLabelValues(kind, code).Inc()
				}
			}
			return resp
		}
	}
}

// RefusedOperation counts an operation refused before it ran (a document
// that did not validate, a limit, a role check, the mutation rate: see
// graph.Config.RefusedOperations), as Operations counts one that runs: in
// cqrsgate_graphql_operations_total by its type ("unknown" when its
// document did not parse) and in cqrsgate_graphql_errors_total by each
// error's code. Operations never sees these.
func (m *Metrics) RefusedOperation(_ context.Context, kind string, codes []string) {
	switch kind {
	case "query", "mutation", "subscription":
	default:
		kind = "unknown"
	}
	m.operations.WithLabelValues(kind).Inc()
	for _, code := range codes {
		if code == "" {
			code = "UNKNOWN"
		}
		m.operationErrs.WithLabelValues(kind, code).Inc()
	}
}

// Store wraps an event store to count appends and the events they write.
func (m *Metrics) Store(s eventstore.Store) eventstore.Store { return &countingStore{Store: s, m: m} }

type countingStore struct {
	eventstore.Store
	m *Metrics
}

// Raw returns the wrapped store's events as stored (see
// eventstore.Schematized.Raw).
func (c *countingStore) Raw() eventstore.Store {
	if r, ok := c.Store.(interface{ Raw() eventstore.Store }); ok {
		return r.Raw()
	}
	return c.Store
}

func (c *countingStore) Append(ctx context.Context, stream string, expected domain.ExpectedVersion, events ...domain.EventData) (domain.AppendResult, error) {
	res, err := c.Store.Append(ctx, stream, expected, events...)
	ctxOutcome := contextOutcome(err)
	switch code := domain.CodeOf(err); {
	case err == nil && res.Duplicate:
		c.m.appends.WithLabelValues("duplicate").Inc()
	case err == nil:
		c.m.appends.WithLabelValues("ok").Inc()
		c.m.eventsAppended.Add(float64(len(res.Events)))
	case ctxOutcome != "":
		// The store returns the context's error as is: CodeOf makes it
		// internal, which it is not.
		c.m.appends.WithLabelValues(ctxOutcome).Inc()
	case code == domain.Conflict:
		c.m.appends.WithLabelValues("conflict").Inc()
	case code == domain.Invalid:
		c.m.appends.WithLabelValues("invalid").Inc()
	default:
		c.m.appends.WithLabelValues("error").Inc()
	}
	return res, err
}

// Websockets is what the gateway's websocket transport reports.
type Websockets interface {
	Connections() int
	Subscriptions() int
	Dropped() int64
	SharedPayloads() int64
}

// Gateway registers the gauges read at each scrape: websocket connections
// and subscriptions, slow clients dropped, shared log payloads, and the
// database pool.
func (m *Metrics) Gateway(ws Websockets, pool *pgxpool.Pool) {
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "cqrsgate_websocket_connections", Help: "Open websocket connections."},
			func() float64 { return float64(ws.Connections()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "cqrsgate_websocket_subscriptions", Help: "Operations running on websocket connections."},
			func() float64 { return float64(ws.Subscriptions()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "cqrsgate_websocket_dropped_clients_total", Help: "Websocket clients disconnected for not reading fast enough (close code 1013)."},
			func() float64 { return float64(ws.Dropped()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "cqrsgate_websocket_shared_payloads_total",
			Help: "Log subscription payloads sent without executing the operation: another subscription with the same selection had encoded the event."},
			func() float64 { return float64(ws.SharedPayloads()) }),
		&poolCollector{pool: pool},
	)
}

var (
	poolConns    = prometheus.NewDesc("cqrsgate_db_pool_connections", "Database pool connections by state.", []string{"state"}, nil)
	poolMax      = prometheus.NewDesc("cqrsgate_db_pool_max_connections", "The pool's maximum size.", nil, nil)
	poolAcquires = prometheus.NewDesc("cqrsgate_db_pool_acquires_total", "Connections acquired from the pool.", nil, nil)
	poolWait     = prometheus.NewDesc("cqrsgate_db_pool_acquire_wait_seconds_total", "Time spent waiting for a pool connection.", nil, nil)
	poolEmpty    = prometheus.NewDesc("cqrsgate_db_pool_empty_acquires_total", "Acquires that had to wait because the pool was empty.", nil, nil)
)

type poolCollector struct{ pool *pgxpool.Pool }

func (p *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- poolConns
	ch <- poolMax
	ch <- poolAcquires
	ch <- poolWait
	ch <- poolEmpty
}

func (p *poolCollector) Collect(ch chan<- prometheus.Metric) {
	s := p.pool.Stat()
	ch <- prometheus.MustNewConstMetric(poolConns, prometheus.GaugeValue, float64(s.AcquiredConns()), "acquired")
	ch <- prometheus.MustNewConstMetric(poolConns, prometheus.GaugeValue, float64(s.IdleConns()), "idle")
	ch <- prometheus.MustNewConstMetric(poolConns, prometheus.GaugeValue, float64(s.ConstructingConns()), "constructing")
	ch <- prometheus.MustNewConstMetric(poolMax, prometheus.GaugeValue, float64(s.MaxConns()))
	ch <- prometheus.MustNewConstMetric(poolAcquires, prometheus.CounterValue, float64(s.AcquireCount()))
	ch <- prometheus.MustNewConstMetric(poolWait, prometheus.CounterValue, s.AcquireDuration().Seconds())
	ch <- prometheus.MustNewConstMetric(poolEmpty, prometheus.CounterValue, float64(s.EmptyAcquireCount()))
}

// projLabels are the labels of the projection gauges: one projection
// version may have two generations at once, the serving one and its
// rebuild.
var projLabels = []string{"projection", "version", "generation"}

var (
	projPosition = prometheus.NewDesc("cqrsgate_projection_position", "The last log position a projection applied, by version and generation.", projLabels, nil)
	projLag      = prometheus.NewDesc("cqrsgate_projection_lag_events", "Log positions after a projection's checkpoint, by version and generation.", projLabels, nil)
	projLagSec   = prometheus.NewDesc("cqrsgate_projection_lag_seconds", "Age of the oldest event a projection has not applied (0 when caught up), by version and generation.", projLabels, nil)
	projState    = prometheus.NewDesc("cqrsgate_projection_state", "1 for a projection's current state (RUNNING or FAILED), by version and generation; "+
		`serving is "true" for the generation queries read, "false" for one they do not (a rebuild beside it, a version another release runs).`,
		[]string{"projection", "version", "generation", "serving", "state"}, nil)
	projServing = prometheus.NewDesc("cqrsgate_projection_serving", "1 for the version and generation queries read, else 0 (a rebuild's generation until it takes over).", projLabels, nil)
)

// projReportsTTL is how long the projections' reports read for a scrape
// serve the following ones.
const projReportsTTL = time.Second

// projReadTimeout bounds reading the projections' reports.
const projReadTimeout = 2 * time.Second

// Projections registers the projections' gauges, read from the database
// (at most 2 seconds) for a scrape and reused by the scrapes of the
// following second; concurrent scrapes share one read. A failure is
// logged and the gauges are left out of the scrapes it serves.
func (m *Metrics) Projections(admin *projections.Admin, store eventstore.Store, log *slog.Logger) {
	m.log.Store(log)
	m.reg.MustRegister(newProjectionCollector(func(ctx context.Context) ([]projections.Report, error) {
		return admin.Reports(ctx, store)
	}, log, time.Now))
}

// projectionCollector collects the projection gauges from the reports
// read, which it keeps for projReportsTTL.
type projectionCollector struct {
	read func(ctx context.Context) ([]projections.Report, error)
	log  *slog.Logger
	now  func() time.Time

	// mu is held while reading: a scrape that arrives during a read
	// waits for it and uses its result.
	mu      sync.Mutex
	at      time.Time // when the last read ended (zero before the first)
	list    []projections.Report
	err     error
	failing *outage.Outage // the reads failing in a row: said once, not at each scrape
}

func newProjectionCollector(read func(ctx context.Context) ([]projections.Report, error), log *slog.Logger, now func() time.Time) *projectionCollector {
	return &projectionCollector{read: read, log: log, now: now, failing: &outage.Outage{Log: log}}
}

// reports returns the last read's reports if it ended less than
// projReportsTTL ago, else reads them.
func (p *projectionCollector) reports() ([]projections.Report, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.at.IsZero() {
		if age := p.now().Sub(p.at); age >= 0 && age < projReportsTTL {
			return p.list, p.err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), projReadTimeout)
	defer cancel()
	p.list, p.err = p.read(ctx)
	p.at = p.now()
	if p.err != nil {
		p.list = nil
		p.failing.Failed(ctx, "metrics: reading the projections failed; their gauges are left out", "err", p.err)
	} else {
		p.failing.Over(ctx, "metrics: reading the projections again")
	}
	return p.list, p.err
}

func (p *projectionCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- projPosition
	ch <- projLag
	ch <- projLagSec
	ch <- projState
	ch <- projServing
}

func (p *projectionCollector) Collect(ch chan<- prometheus.Metric) {
	list, err := p.reports()
	if err != nil {
		return
	}
	for _, s := range list {
		v, g := strconv.Itoa(s.Version), strconv.Itoa(s.Generation)
		ch <- prometheus.MustNewConstMetric(projPosition, prometheus.GaugeValue, float64(s.Position), s.Name, v, g)
		ch <- prometheus.MustNewConstMetric(projLag, prometheus.GaugeValue, float64(s.Lag), s.Name, v, g)
		ch <- prometheus.MustNewConstMetric(projLagSec, prometheus.GaugeValue, s.LagSeconds, s.Name, v, g)
		// The serving label lets an alert on a FAILED generation that
		// queries read (the one /readyz fails on) leave out a failed
		// rebuild, which /readyz only warns of. It adds no series: a
		// generation has one value of it at a time.
		ch <- prometheus.MustNewConstMetric(projState, prometheus.GaugeValue, 1, s.Name, v, g, strconv.FormatBool(s.Serving), s.Status.Status)
		serving := 0.0
		if s.Serving {
			serving = 1
		}
		ch <- prometheus.MustNewConstMetric(projServing, prometheus.GaugeValue, serving, s.Name, v, g)
	}
}
