// Package metrics is the gateway's Prometheus instrumentation, served at
// /metrics: GraphQL operations, commands, appends, projections, websockets
// and the database pool, with conventional names and base units.
package metrics

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"cqrsgate/domain"
	"cqrsgate/eventstore"
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
			Help: "Commands executed, by command and outcome (ok or the error code)."}, []string{"command", "outcome"}),
		commandTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "cqrsgate_command_duration_seconds",
			Help:    "Time to execute a command (load, decide, append), by command.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1}}, []string{"command"}),
		conflicts: prometheus.NewCounter(prometheus.CounterOpts{Name: "cqrsgate_command_concurrency_conflicts_total",
			Help: "Concurrency races commands lost (each one is retried, up to the limit)."}),
		eventsAppended: prometheus.NewCounter(prometheus.CounterOpts{Name: "cqrsgate_events_appended_total",
			Help: "Events appended to the log by this process."}),
		appends: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cqrsgate_appends_total",
			Help: "Appends to the log by this process, by outcome (ok, duplicate, conflict, invalid, error)."}, []string{"outcome"}),
	}
	reg.MustRegister(m.operations, m.operationErrs, m.operationTime, m.commands, m.commandTime, m.conflicts, m.eventsAppended, m.appends)
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// ObserveCommand is a domain.ServiceOptions.Observe.
func (m *Metrics) ObserveCommand(o domain.CommandOutcome) {
	outcome := "ok"
	if o.Code != "" {
		outcome = strings.ToLower(string(o.Code))
	}
	m.commands.WithLabelValues(o.Command, outcome).Inc()
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
	switch code := domain.CodeOf(err); {
	case err == nil && res.Duplicate:
		c.m.appends.WithLabelValues("duplicate").Inc()
	case err == nil:
		c.m.appends.WithLabelValues("ok").Inc()
		c.m.eventsAppended.Add(float64(len(res.Events)))
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

var (
	projPosition = prometheus.NewDesc("cqrsgate_projection_position", "The last log position a projection applied.", []string{"projection", "version"}, nil)
	projLag      = prometheus.NewDesc("cqrsgate_projection_lag_events", "Log positions after a projection's checkpoint.", []string{"projection", "version"}, nil)
	projLagSec   = prometheus.NewDesc("cqrsgate_projection_lag_seconds", "Age of the oldest event a projection has not applied (0 when caught up).", []string{"projection", "version"}, nil)
	projState    = prometheus.NewDesc("cqrsgate_projection_state", "1 for a projection's current state (RUNNING or FAILED), by version.", []string{"projection", "version", "state"}, nil)
	projServing  = prometheus.NewDesc("cqrsgate_projection_serving", "1 for the version queries read.", []string{"projection", "version"}, nil)
)

// Projections registers the projections' gauges, read from the database
// at each scrape (at most 2 seconds; a failure is logged and the gauges
// are left out of that scrape).
func (m *Metrics) Projections(admin *projections.Admin, store eventstore.Store, log *slog.Logger) {
	m.reg.MustRegister(&projectionCollector{admin: admin, store: store, log: log})
}

type projectionCollector struct {
	admin *projections.Admin
	store eventstore.Store
	log   *slog.Logger
}

func (p *projectionCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- projPosition
	ch <- projLag
	ch <- projLagSec
	ch <- projState
	ch <- projServing
}

func (p *projectionCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	list, err := p.admin.Reports(ctx, p.store)
	if err != nil {
		p.log.Warn("metrics: reading the projections", "err", err)
		return
	}
	for _, s := range list {
		v := strconv.Itoa(s.Version)
		ch <- prometheus.MustNewConstMetric(projPosition, prometheus.GaugeValue, float64(s.Position), s.Name, v)
		ch <- prometheus.MustNewConstMetric(projLag, prometheus.GaugeValue, float64(s.Lag), s.Name, v)
		ch <- prometheus.MustNewConstMetric(projLagSec, prometheus.GaugeValue, s.LagSeconds, s.Name, v)
		ch <- prometheus.MustNewConstMetric(projState, prometheus.GaugeValue, 1, s.Name, v, s.Status.Status)
		serving := 0.0
		if s.Serving {
			serving = 1
		}
		ch <- prometheus.MustNewConstMetric(projServing, prometheus.GaugeValue, serving, s.Name, v)
	}
}
