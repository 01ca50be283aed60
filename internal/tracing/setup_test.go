package tracing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"cqrsgate/internal/logbuf"
)

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func setup(t *testing.T, getenv func(string) string) (bool, error) {
	t.Helper()
	tp, stop, err := Setup(context.Background(), getenv, slog.New(slog.DiscardHandler))
	if err != nil {
		return false, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := stop(ctx); err != nil {
		t.Errorf("stopping the tracer provider: %v", err)
	}
	return Enabled(tp), nil
}

// An endpoint the exporter cannot use (no scheme, not a URL) was taken:
// tracing was "on" and sent every span to https://localhost:4318, or
// failed every export. Each is refused, naming the variable.
func TestSetupRefusesBadEndpoints(t *testing.T) {
	bad := []string{
		"collector:4318", "127.0.0.1:18498", "http://[::1", "localhost", "ftp://collector:4318",
		"http://", "http://:4318", "http://collector:99999", "http://collector:4318?x=1", "http://collector:4318#top",
		"http://user:s3cret@collector:4318",
	}
	for _, name := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"} {
		for _, v := range bad {
			_, err := setup(t, env(name, v))
			if err == nil || !strings.Contains(err.Error(), name) {
				t.Errorf("%s=%s: %v, want it refused naming %s", name, v, err, name)
				continue
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("%s=%s: the error shows the password: %v", name, v, err)
			}
		}
	}
	_, err := setup(t, env("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318"))
	if err == nil || !strings.Contains(err.Error(), "http://collector:4318") {
		t.Errorf("an endpoint without a scheme: %v, want the hint http://collector:4318", err)
	}
}

func TestSetupAcceptsEndpoints(t *testing.T) {
	for _, v := range []string{"http://collector:4318", "https://otel.example.com", "http://[::1]:4318/base/", " http://127.0.0.1:4318 "} {
		for _, name := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"} {
			on, err := setup(t, env(name, v))
			if err != nil || !on {
				t.Errorf("%s=%q: on %v, %v", name, v, on, err)
			}
		}
	}
	if on, err := setup(t, env("OTEL_TRACES_EXPORTER", "otlp")); err != nil || !on {
		t.Errorf("OTEL_TRACES_EXPORTER=otlp: on %v, %v", on, err)
	}
	if on, err := setup(t, env()); err != nil || on {
		t.Errorf("no setting: on %v, %v", on, err)
	}
}

// OTEL_EXPORTER_OTLP_PROTOCOL=grpc was ignored: the exporter spoke
// OTLP/HTTP to a gRPC port. Its two OTLP/HTTP encodings are taken.
func TestSetupRefusesProtocolsOtherThanHTTP(t *testing.T) {
	for _, name := range []string{"OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"} {
		for _, v := range []string{"grpc", "HTTP/PROTOBUF"} {
			_, err := setup(t, env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317", name, v))
			if err == nil || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "only http/protobuf and http/json are supported") {
				t.Errorf("%s=%s: %v, want it refused naming the variable", name, v, err)
			}
		}
		for _, v := range []string{"http/protobuf", "http/json"} {
			if on, err := setup(t, env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318", name, v)); err != nil || !on {
				t.Errorf("%s=%s: on %v, %v", name, v, on, err)
			}
		}
	}
}

// TestATracesSettingOverridesTheGeneralOne: the exporter reads a TRACES_
// setting before the general one, which is then not checked (a gRPC
// endpoint and protocol for other signals beside HTTP ones for traces).
func TestATracesSettingOverridesTheGeneralOne(t *testing.T) {
	for _, e := range [][]string{
		{"OTEL_EXPORTER_OTLP_PROTOCOL", "grpc", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:4318/v1/traces"},
		{"OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:4318/v1/traces"},
	} {
		if on, err := setup(t, env(e...)); err != nil || !on {
			t.Errorf("%v: on %v, %v", e, on, err)
		}
	}
	// Alone, the general one is read, and checked.
	if _, err := setup(t, env("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317")); err == nil {
		t.Error("OTEL_EXPORTER_OTLP_ENDPOINT=collector:4317 alone was taken")
	}
}

func TestSetupHonoursSDKDisabled(t *testing.T) {
	for _, v := range []string{"true", "TRUE", "True", " true "} {
		on, err := setup(t, env("OTEL_SDK_DISABLED", v, "OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318", "OTEL_TRACES_EXPORTER", "otlp"))
		if err != nil || on {
			t.Errorf("OTEL_SDK_DISABLED=%q: on %v, %v; want tracing off", v, on, err)
		}
	}
	if on, err := setup(t, env("OTEL_SDK_DISABLED", "false", "OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")); err != nil || !on {
		t.Errorf("OTEL_SDK_DISABLED=false: on %v, %v", on, err)
	}
	if _, err := setup(t, env("OTEL_SDK_DISABLED", "yes", "OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")); err == nil || !strings.Contains(err.Error(), "OTEL_SDK_DISABLED") {
		t.Errorf("OTEL_SDK_DISABLED=yes: %v, want it refused", err)
	}
}

// The other settings the exporter and the SDK read: a value they would
// ignore (with a line outside the gateway's log) is refused, naming it.
func TestSetupRefusesOtherBadSettings(t *testing.T) {
	for _, kv := range [][2]string{
		{"OTEL_TRACES_EXPORTER", "zipkin"},
		{"OTEL_EXPORTER_OTLP_TIMEOUT", "10s"},
		{"OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "0"},
		{"OTEL_EXPORTER_OTLP_COMPRESSION", "br"},
		{"OTEL_EXPORTER_OTLP_HEADERS", "authorization"},
		{"OTEL_EXPORTER_OTLP_TRACES_HEADERS", "api-key=x,"},
		{"OTEL_EXPORTER_OTLP_CERTIFICATE", "/nonexistent/ca.pem"},
		{"OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "/nonexistent/cert.pem"},
		{"OTEL_TRACES_SAMPLER", "sometimes"},
		{"OTEL_TRACES_SAMPLER_ARG", "2"},
		{"OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "0"},
		{"OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "lots"},
	} {
		getenv := env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318", kv[0], kv[1], "OTEL_TRACES_SAMPLER", "traceidratio")
		if kv[0] == "OTEL_TRACES_SAMPLER" {
			getenv = env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318", kv[0], kv[1])
		}
		if _, err := setup(t, getenv); err == nil || !strings.Contains(err.Error(), kv[0]) {
			t.Errorf("%s=%s: %v, want it refused naming the variable", kv[0], kv[1], err)
		}
	}
	// Header values are credentials: never in the message.
	_, err := setup(t, env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318", "OTEL_EXPORTER_OTLP_HEADERS", "api-key=s3cret%zz"))
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("a header value that is not URL-encoded: %v (refused, without the value)", err)
	}
	on, err := setup(t, env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318", "OTEL_EXPORTER_OTLP_HEADERS", "api-key=a%20b, x-tenant=t1",
		"OTEL_EXPORTER_OTLP_TIMEOUT", "5000", "OTEL_EXPORTER_OTLP_COMPRESSION", "gzip", "OTEL_TRACES_SAMPLER", "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG", "0.25"))
	if err != nil || !on {
		t.Errorf("valid settings: on %v, %v", on, err)
	}
}

// The batch span processor's settings and the span count limits, which
// the SDK reads itself: OTEL_BSP_MAX_QUEUE_SIZE=-5 panicked at start (a
// channel of negative size), a queue of 10^12 spans was allocated whole,
// OTEL_BSP_SCHEDULE_DELAY=0 had the processor spin a core, and a value
// that is not a number (or has a space the SDK does not trim) was taken
// for the default without a word. Each is refused, naming the variable.
func TestSetupRefusesBadBatchAndLimitSettings(t *testing.T) {
	for _, kv := range [][2]string{
		{"OTEL_BSP_MAX_QUEUE_SIZE", "-5"},
		{"OTEL_BSP_MAX_QUEUE_SIZE", "1000000000000"},
		{"OTEL_BSP_MAX_QUEUE_SIZE", "0"},
		{"OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "-1"},
		{"OTEL_BSP_SCHEDULE_DELAY", "0"},
		{"OTEL_BSP_SCHEDULE_DELAY", "-100"},
		{"OTEL_BSP_SCHEDULE_DELAY", "5s"},
		{"OTEL_BSP_SCHEDULE_DELAY", "9223372036854"}, // its milliseconds overflow a duration
		{"OTEL_BSP_EXPORT_TIMEOUT", "abc"},
		{"OTEL_BSP_MAX_QUEUE_SIZE", " 2048"},
		{"OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "many"},
		{"OTEL_ATTRIBUTE_COUNT_LIMIT", "1.5"},
		{"OTEL_SPAN_EVENT_COUNT_LIMIT", "x"},
		{"OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT", "x"},
		{"OTEL_SPAN_LINK_COUNT_LIMIT", "x"},
		{"OTEL_LINK_ATTRIBUTE_COUNT_LIMIT", "x"},
	} {
		_, err := setup(t, env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318", kv[0], kv[1]))
		if err == nil || !strings.Contains(err.Error(), "invalid setting "+kv[0]) {
			t.Errorf("%s=%q: %v, want it refused naming the variable", kv[0], kv[1], err)
		}
	}
	on, err := setup(t, env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318", "OTEL_BSP_SCHEDULE_DELAY", "1000",
		"OTEL_BSP_EXPORT_TIMEOUT", "10000", "OTEL_BSP_MAX_QUEUE_SIZE", "4096", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "256",
		"OTEL_SPAN_EVENT_COUNT_LIMIT", "-1", "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "64"))
	if err != nil || !on {
		t.Errorf("valid settings: on %v, %v", on, err)
	}
}

// A client-controlled string in an attribute (an operation name, a
// stream id) is cut at DefaultAttributeValueLength: it made spans of any
// size.
func TestAttributeValuesAreCut(t *testing.T) {
	for _, c := range []struct {
		getenv func(string) string
		want   int
	}{
		{env(), DefaultAttributeValueLength},
		{env("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "64"), 64},
		{env("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "100", "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "64"), 64},
	} {
		limits, err := spanLimits(c.getenv)
		if err != nil {
			t.Fatal(err)
		}
		exp := tracetest.NewInMemoryExporter()
		tp := newProvider(limits, sdktrace.WithSyncer(exp))
		_, span := tp.Tracer(Name).Start(context.Background(), "op")
		span.SetAttributes(attribute.String("cqrsgate.stream", strings.Repeat("x", 10<<10)))
		span.End()
		spans := exp.GetSpans() // before Shutdown, which empties the exporter
		_ = tp.Shutdown(context.Background())
		if len(spans) != 1 || len(spans[0].Attributes) != 1 {
			t.Fatalf("spans: %+v", spans)
		}
		if got := len(spans[0].Attributes[0].Value.AsString()); got != c.want {
			t.Errorf("a 10 KB attribute value recorded as %d bytes, want %d", got, c.want)
		}
	}
}

// OpenTelemetry's errors (a failed export) were plain lines of the
// standard library's logger in the gateway's JSON log: they go to the
// gateway's logger at WARN.
func TestSetupRoutesOpenTelemetryErrorsToTheLog(t *testing.T) {
	var buf logbuf.Buffer
	_, stop, err := Setup(context.Background(), env(), slog.New(slog.NewJSONHandler(&buf, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer stop(context.Background())
	otel.Handle(errors.New("traces export: connection refused"))
	if out := buf.String(); !strings.Contains(out, `"level":"WARN"`) || !strings.Contains(out, "traces export: connection refused") {
		t.Fatalf("otel.Handle logged %q", out)
	}
}

// An unreachable collector fails every export: one line every interval,
// with the count of the errors not logged.
func TestErrorLogIsRateLimited(t *testing.T) {
	var buf logbuf.Buffer
	e := NewErrorLog(slog.New(slog.NewTextHandler(&buf, nil)), 10*time.Second)
	now := time.Unix(1000, 0)
	e.now = func() time.Time { return now }
	for i := 0; i < 5; i++ {
		e.Handle(fmt.Errorf("export %d failed", i))
		now = now.Add(time.Second)
	}
	now = now.Add(6 * time.Second) // 11 s after the first
	e.Handle(errors.New("export 5 failed"))
	e.Handle(nil)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2:\n%s", len(lines), buf.String())
	}
	if !strings.Contains(lines[0], "level=WARN") || !strings.Contains(lines[0], "export 0 failed") || strings.Contains(lines[0], "suppressed") {
		t.Errorf("first line: %s", lines[0])
	}
	if !strings.Contains(lines[1], "export 5 failed") || !strings.Contains(lines[1], "suppressed=4") {
		t.Errorf("second line: %s", lines[1])
	}
}

// TestANegativeAttributeLengthIsNoLimit: a negative length is the SDK's "no
// limit", and taken as such.
func TestANegativeAttributeLengthIsNoLimit(t *testing.T) {
	limits, err := spanLimits(env("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "-1"))
	if err != nil || limits.AttributeValueLengthLimit >= 0 {
		t.Fatalf("limit -1: %+v, %v, want no limit", limits.AttributeValueLengthLimit, err)
	}
}

// OpenTelemetry's diagnostics (here the SDK's "TracerProvider created", at
// logr's V(4)) go to the gateway's logger, at debug level: they were lines
// of the standard library's logger, another format in the gateway's log.
func TestSetupRoutesOpenTelemetryDiagnosticsToTheLog(t *testing.T) {
	var buf logbuf.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.Level(-8)}))
	_, stop, err := Setup(context.Background(), env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1"), log)
	if err != nil {
		t.Fatal(err)
	}
	defer stop(context.Background())
	if out := buf.String(); !strings.Contains(out, "TracerProvider created") || !strings.Contains(out, `"level":"DEBUG`) {
		t.Fatalf("the SDK's diagnostics in the log: %q", out)
	}
}
