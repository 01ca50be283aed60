// Package tracing wires OpenTelemetry tracing through the gateway: HTTP
// request, GraphQL operation, command, append and, for the events an
// append wrote, the projection batches that apply them (linked through the
// W3C traceparent stored in each event's metadata). It is off unless the
// standard OTEL_* variables configure an exporter (and off with
// OTEL_SDK_DISABLED=true). Only OTLP over HTTP (http/protobuf) is supported;
// span attribute values are cut at DefaultAttributeValueLength.
package tracing

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	sdkresource "go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"cqrsgate/domain"
	"cqrsgate/eventstore"
)

// Name is the instrumentation scope of cqrsgate's spans.
const Name = "cqrsgate"

// Propagator carries trace context in W3C traceparent/tracestate headers
// and event metadata.
var Propagator = propagation.TraceContext{}

// Enabled reports whether tp exports spans (Setup found an exporter).
func Enabled(tp trace.TracerProvider) bool {
	_, off := tp.(noop.TracerProvider)
	return !off
}

// Setup returns the tracer provider the OTEL_* variables ask for (see the
// package documentation), and the function that flushes and stops it. An
// invalid setting is an error that names the variable; OTEL_SDK_DISABLED=true
// turns tracing off. getenv must read the process's environment (os.Getenv):
// the exporter and the SDK read their other settings from it.
//
// It routes OpenTelemetry's errors (a failed export, say) to log, at WARN,
// at most one line every ErrorLogInterval (see ErrorLog), and its other
// diagnostics to log at debug levels (logr's V(n) as slog level -n).
func Setup(ctx context.Context, getenv func(string) string, log *slog.Logger) (trace.TracerProvider, func(context.Context) error, error) {
	if log == nil {
		log = slog.Default()
	}
	otel.SetErrorHandler(NewErrorLog(log, ErrorLogInterval))
	// Its diagnostics too (a provider created, a batch exported, at debug
	// level): they went to the standard library's logger, lines of
	// another format in the gateway's log.
	otel.SetLogger(logr.FromSlogHandler(log.Handler()))
	on, err := tracesOn(getenv)
	if err != nil {
		return nil, nil, err
	}
	if !on {
		return noop.NewTracerProvider(), func(context.Context) error { return nil }, nil
	}
	limits, err := spanLimits(getenv)
	if err != nil {
		return nil, nil, err
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("OpenTelemetry exporter: %w", err)
	}
	res, err := sdkresource.Merge(sdkresource.Default(), sdkresource.NewSchemaless(semconv.ServiceName(serviceName(getenv))))
	if err != nil {
		return nil, nil, fmt.Errorf("OpenTelemetry resource: %w", err)
	}
	tp := newProvider(limits, sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	return tp, tp.Shutdown, nil
}

// newProvider is the SDK's tracer provider with limits and opts.
func newProvider(limits sdktrace.SpanLimits, opts ...sdktrace.TracerProviderOption) *sdktrace.TracerProvider {
	return sdktrace.NewTracerProvider(append([]sdktrace.TracerProviderOption{sdktrace.WithRawSpanLimits(limits)}, opts...)...)
}

// ErrorLogInterval is how often, at most, an OpenTelemetry error is
// logged: an unreachable collector fails every export.
const ErrorLogInterval = 10 * time.Second

// ErrorLog is an OpenTelemetry error handler (otel.SetErrorHandler) that
// logs each error at WARN, at most one every interval: the errors that
// come meanwhile are counted, and the next line logged says how many
// ("suppressed").
type ErrorLog struct {
	log      *slog.Logger
	interval time.Duration
	now      func() time.Time

	mu         sync.Mutex
	last       time.Time // when a line was last logged
	suppressed int       // errors not logged since
}

// NewErrorLog returns an ErrorLog writing to log.
func NewErrorLog(log *slog.Logger, interval time.Duration) *ErrorLog {
	return &ErrorLog{log: log, interval: interval, now: time.Now}
}

// Handle logs err unless a line was logged less than the interval ago.
func (e *ErrorLog) Handle(err error) {
	if err == nil {
		return
	}
	e.mu.Lock()
	now := e.now()
	if !e.last.IsZero() && now.Sub(e.last) < e.interval {
		e.suppressed++
		e.mu.Unlock()
		return
	}
	n := e.suppressed
	e.last, e.suppressed = now, 0
	e.mu.Unlock()
	attrs := []slog.Attr{slog.String("err", err.Error())}
	if n > 0 {
		attrs = append(attrs, slog.Int("suppressed", n))
	}
	e.log.LogAttrs(context.Background(), slog.LevelWarn, "OpenTelemetry error", attrs...)
}

func serviceName(getenv func(string) string) string {
	if s := getenv("OTEL_SERVICE_NAME"); s != "" {
		return s
	}
	return "cqrsgate"
}

// Store wraps an event store: each append is a span, and the span's trace
// context is stored in the events' metadata ("traceparent") so that the
// projections applying them can link back to it.
func Store(s eventstore.Store, tp trace.TracerProvider) eventstore.Store {
	return &tracedStore{Store: s, tracer: tp.Tracer(Name)}
}

type tracedStore struct {
	eventstore.Store
	tracer trace.Tracer
}

// Raw returns the wrapped store's events as stored (see
// eventstore.Schematized.Raw).
func (s *tracedStore) Raw() eventstore.Store {
	if r, ok := s.Store.(interface{ Raw() eventstore.Store }); ok {
		return r.Raw()
	}
	return s.Store
}

func (s *tracedStore) Append(ctx context.Context, stream string, expected domain.ExpectedVersion, events ...domain.EventData) (domain.AppendResult, error) {
	ctx, span := s.tracer.Start(ctx, "eventstore.append", trace.WithAttributes(
		attribute.String("cqrsgate.stream", stream), attribute.Int("cqrsgate.events", len(events))))
	defer span.End()
	if span.SpanContext().IsValid() {
		carrier := propagation.MapCarrier{}
		Propagator.Inject(ctx, carrier)
		if tp := carrier.Get("traceparent"); tp != "" {
			withTrace := make([]domain.EventData, len(events))
			for i, e := range events {
				e.Metadata = setMeta(e.Metadata, "traceparent", tp)
				withTrace[i] = e
			}
			events = withTrace
		}
	}
	res, err := s.Store.Append(ctx, stream, expected, events...)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, string(domain.CodeOf(err)))
	} else {
		span.SetAttributes(attribute.Int64("cqrsgate.position", res.LastPosition), attribute.Bool("cqrsgate.duplicate", res.Duplicate))
	}
	return res, err
}

// setMeta returns metadata (a JSON object, or empty) with key set.
func setMeta(meta json.RawMessage, key, value string) json.RawMessage {
	m := map[string]json.RawMessage{}
	if len(meta) > 0 && json.Unmarshal(meta, &m) != nil {
		return meta // not an object: the store will refuse it as it is
	}
	if _, ok := m[key]; ok {
		return meta
	}
	v, _ := json.Marshal(value)
	m[key] = v
	out, err := json.Marshal(m)
	if err != nil {
		return meta
	}
	return out
}

// ProjectionBatch is a projections.Options.Trace: a span per batch a
// projection applies, linked to the trace of each event's append.
func ProjectionBatch(tp trace.TracerProvider) func(ctx context.Context, projection string, events []domain.RecordedEvent) (context.Context, func(error)) {
	tracer := tp.Tracer(Name)
	return func(ctx context.Context, projection string, events []domain.RecordedEvent) (context.Context, func(error)) {
		var links []trace.Link
		seen := map[trace.TraceID]bool{}
		for _, e := range events {
			var meta map[string]any
			if json.Unmarshal(e.Metadata, &meta) != nil {
				continue
			}
			tpv, _ := meta["traceparent"].(string)
			if tpv == "" {
				continue
			}
			sc := trace.SpanContextFromContext(Propagator.Extract(ctx, propagation.MapCarrier{"traceparent": tpv}))
			if sc.IsValid() && !seen[sc.TraceID()] && len(links) < 128 {
				seen[sc.TraceID()] = true
				links = append(links, trace.Link{SpanContext: sc})
			}
		}
		ctx, span := tracer.Start(ctx, "projection.apply "+projection, trace.WithLinks(links...), trace.WithAttributes(
			attribute.String("cqrsgate.projection", projection), attribute.Int("cqrsgate.events", len(events))))
		return ctx, func(err error) {
			if err != nil {
				span.RecordError(err)
				span.SetStatus(codes.Error, err.Error())
			}
			span.End()
		}
	}
}
