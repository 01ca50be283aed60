package tracing

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math"
	"net/url"
	"os"
	"strconv"
	"strings"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// DefaultAttributeValueLength is the longest a span's attribute value may
// be (longer strings are truncated) unless OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT
// (or OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT) says otherwise: some attributes
// carry what clients send, which must not make spans of any size.
const DefaultAttributeValueLength = 1024

// tracesOn reports whether the OTEL_* variables turn tracing on, and
// checks every setting the exporter and the SDK would read: a value they
// would ignore, or read as something else than was meant, is an error that
// names the variable. (OpenTelemetry's own reading of them reports such
// values in a line of its own, outside the gateway's log, and carries on
// with a default: an endpoint without a scheme, say, sent every span to
// https://localhost:4318.)
func tracesOn(getenv func(string) string) (bool, error) {
	get := func(name string) string { return strings.TrimSpace(getenv(name)) }
	if v := get("OTEL_SDK_DISABLED"); v != "" {
		switch strings.ToLower(v) {
		case "true":
			return false, nil
		case "false":
		default:
			return false, fmt.Errorf("invalid setting OTEL_SDK_DISABLED: must be true or false, got %q", v)
		}
	}
	endpoint, tracesEndpoint := get("OTEL_EXPORTER_OTLP_ENDPOINT"), get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
	switch exporter := strings.ToLower(get("OTEL_TRACES_EXPORTER")); exporter {
	case "none":
		return false, nil
	case "":
		if endpoint == "" && tracesEndpoint == "" {
			return false, nil
		}
	case "otlp":
	default:
		return false, fmt.Errorf("invalid setting OTEL_TRACES_EXPORTER: %q: only otlp (or none) is supported", exporter)
	}
	// A TRACES_ setting wins over the general one, which the exporter then
	// does not read (a gRPC endpoint for other signals beside an HTTP one
	// for traces, say): only what it reads is checked.
	generalUnlessTraces := func(name string) string {
		if get("OTEL_EXPORTER_OTLP_TRACES_"+strings.TrimPrefix(name, "OTEL_EXPORTER_OTLP_")) != "" {
			return ""
		}
		return get(name)
	}
	for _, e := range []struct{ name, value string }{
		{"OTEL_EXPORTER_OTLP_ENDPOINT", generalUnlessTraces("OTEL_EXPORTER_OTLP_ENDPOINT")},
		{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", tracesEndpoint},
	} {
		if e.value != "" {
			if err := checkEndpoint(e.value); err != nil {
				return false, fmt.Errorf("invalid setting %s: %w", e.name, err)
			}
		}
	}
	if err := checkExporterSettings("OTEL_EXPORTER_OTLP_", generalUnlessTraces); err != nil {
		return false, err
	}
	if err := checkExporterSettings("OTEL_EXPORTER_OTLP_TRACES_", get); err != nil {
		return false, err
	}
	if err := checkSampler(get); err != nil {
		return false, err
	}
	if _, err := spanLimits(getenv); err != nil {
		return false, err
	}
	if err := checkSDKNumbers(getenv); err != nil {
		return false, err
	}
	return true, nil
}

// maxBatchSetting bounds the batch span processor's sizes (its queue is
// allocated whole at start) and, in milliseconds, its delays (an hour).
const maxBatchSetting = 1_000_000

// checkSDKNumbers checks the whole numbers the SDK reads itself (as they
// are: it does not trim them): it takes a value that is not one for its
// default without a word, and some that are would stop or stall the
// gateway. A negative queue or batch size panicked at start, a queue of
// a billion spans was allocated whole, and a schedule delay of 0 (or one
// whose milliseconds overflow a duration) had the processor spin a core.
func checkSDKNumbers(getenv func(string) string) error {
	for _, s := range []struct {
		name   string
		lo, hi int
		what   string
	}{
		{"OTEL_BSP_SCHEDULE_DELAY", 1, 3_600_000, "milliseconds"},
		{"OTEL_BSP_EXPORT_TIMEOUT", 1, 3_600_000, "milliseconds"},
		{"OTEL_BSP_MAX_QUEUE_SIZE", 1, maxBatchSetting, "spans"},
		{"OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 1, maxBatchSetting, "spans"},
		// Span limits: negative means no limit, as the SDK reads them.
		{"OTEL_ATTRIBUTE_COUNT_LIMIT", math.MinInt, math.MaxInt, "attributes"},
		{"OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", math.MinInt, math.MaxInt, "attributes"},
		{"OTEL_SPAN_EVENT_COUNT_LIMIT", math.MinInt, math.MaxInt, "events"},
		{"OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT", math.MinInt, math.MaxInt, "attributes"},
		{"OTEL_SPAN_LINK_COUNT_LIMIT", math.MinInt, math.MaxInt, "links"},
		{"OTEL_LINK_ATTRIBUTE_COUNT_LIMIT", math.MinInt, math.MaxInt, "attributes"},
	} {
		v := getenv(s.name)
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < s.lo || n > s.hi {
			if s.lo == math.MinInt {
				return fmt.Errorf("invalid setting %s: must be a whole number of %s (negative: no limit), got %q", s.name, s.what, v)
			}
			return fmt.Errorf("invalid setting %s: must be a whole number of %s from %d to %d, got %q", s.name, s.what, s.lo, s.hi, v)
		}
	}
	return nil
}

// checkEndpoint checks an OTLP/HTTP endpoint: an http or https URL with a
// host, and nothing the exporter would drop (credentials, a query).
func checkEndpoint(v string) error {
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Opaque != "" || u.Hostname() == "" {
		hint := ""
		if !strings.Contains(v, "://") && !strings.Contains(v, "@") {
			hint = fmt.Sprintf(" (no scheme: http://%s?)", v)
		}
		return fmt.Errorf("%s is not an http:// or https:// URL with a host, such as http://otel-collector:4318%s", shown(v), hint)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%s has no valid port: want a number from 1 to 65535", shown(v))
		}
	}
	if u.User != nil {
		return errors.New("credentials in the URL are not sent to the collector: give them as a header in OTEL_EXPORTER_OTLP_HEADERS (value not shown)")
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return fmt.Errorf("%s has a query or fragment, which is not sent to the collector", shown(v))
	}
	return nil
}

// shown is v quoted for an error message, unless it may hold a secret.
func shown(v string) string {
	if strings.Contains(v, "@") {
		return "the URL (not shown: it may hold credentials)"
	}
	return strconv.Quote(v)
}

// checkExporterSettings checks the exporter's settings of one prefix
// (OTEL_EXPORTER_OTLP_ or OTEL_EXPORTER_OTLP_TRACES_) but the endpoint.
func checkExporterSettings(prefix string, get func(string) string) error {
	if v := get(prefix + "PROTOCOL"); v != "" && v != "http/protobuf" && v != "http/json" {
		return fmt.Errorf("invalid setting %sPROTOCOL: %q: only http/protobuf and http/json are supported (OTLP over HTTP)", prefix, v)
	}
	if v := get(prefix + "TIMEOUT"); v != "" {
		if n, err := strconv.Atoi(v); err != nil || n <= 0 {
			return fmt.Errorf("invalid setting %sTIMEOUT: must be a whole number of milliseconds, more than 0, such as 10000, got %q", prefix, v)
		}
	}
	if v := get(prefix + "COMPRESSION"); v != "" && v != "gzip" && v != "none" {
		return fmt.Errorf("invalid setting %sCOMPRESSION: must be gzip or none, got %q", prefix, v)
	}
	if v := get(prefix + "HEADERS"); v != "" {
		if err := checkHeaders(v); err != nil {
			return fmt.Errorf("invalid setting %sHEADERS: %w", prefix, err)
		}
	}
	if v := get(prefix + "CERTIFICATE"); v != "" {
		pem, err := os.ReadFile(v)
		if err != nil {
			return fmt.Errorf("invalid setting %sCERTIFICATE: %w", prefix, err)
		}
		if !x509.NewCertPool().AppendCertsFromPEM(pem) {
			return fmt.Errorf("invalid setting %sCERTIFICATE: %s holds no PEM certificate", prefix, v)
		}
	}
	cert, key := get(prefix+"CLIENT_CERTIFICATE"), get(prefix+"CLIENT_KEY")
	if (cert == "") != (key == "") {
		return fmt.Errorf("invalid settings %sCLIENT_CERTIFICATE and %sCLIENT_KEY: give both or neither", prefix, prefix)
	}
	if cert != "" {
		certPEM, err := os.ReadFile(cert)
		if err != nil {
			return fmt.Errorf("invalid setting %sCLIENT_CERTIFICATE: %w", prefix, err)
		}
		keyPEM, err := os.ReadFile(key)
		if err != nil {
			return fmt.Errorf("invalid setting %sCLIENT_KEY: %w", prefix, err)
		}
		if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
			return fmt.Errorf("invalid settings %sCLIENT_CERTIFICATE and %sCLIENT_KEY: %w", prefix, prefix, err)
		}
	}
	return nil
}

// checkHeaders checks a list of headers as the exporter reads it
// (key=value,key2=value2, values URL-encoded). Values are not shown: they
// are mostly credentials.
func checkHeaders(v string) error {
	for i, h := range strings.Split(v, ",") {
		k, val, ok := strings.Cut(h, "=")
		k = strings.TrimSpace(k)
		if !ok {
			return fmt.Errorf("entry %d is not key=value", i+1)
		}
		if k == "" || strings.IndexFunc(k, func(r rune) bool { return !isTokenChar(r) }) >= 0 {
			return fmt.Errorf("entry %d: %q is not a header name", i+1, k)
		}
		if _, err := url.PathUnescape(val); err != nil {
			return fmt.Errorf("entry %d (%s): the value is not URL-encoded (value not shown)", i+1, k)
		}
	}
	return nil
}

func isTokenChar(r rune) bool {
	return r < 0x80 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("!#$%&'*+-.^_`|~", r))
}

// checkSampler checks OTEL_TRACES_SAMPLER and its argument.
func checkSampler(get func(string) string) error {
	switch s := strings.ToLower(get("OTEL_TRACES_SAMPLER")); s {
	case "", "always_on", "always_off", "parentbased_always_on", "parentbased_always_off":
	case "traceidratio", "parentbased_traceidratio":
		if arg := get("OTEL_TRACES_SAMPLER_ARG"); arg != "" {
			if f, err := strconv.ParseFloat(arg, 64); err != nil || !(f >= 0 && f <= 1) {
				return fmt.Errorf("invalid setting OTEL_TRACES_SAMPLER_ARG: must be a ratio from 0 to 1, such as 0.25, got %q", arg)
			}
		}
	default:
		return fmt.Errorf("invalid setting OTEL_TRACES_SAMPLER: %q: want always_on, always_off, traceidratio, "+
			"parentbased_always_on, parentbased_always_off or parentbased_traceidratio", s)
	}
	return nil
}

// spanLimits are the SDK's limits (its defaults, or the OTEL_SPAN_*
// variables), with attribute values cut at DefaultAttributeValueLength
// unless a variable sets another length.
func spanLimits(getenv func(string) string) (sdktrace.SpanLimits, error) {
	limits := sdktrace.NewSpanLimits()
	limits.AttributeValueLengthLimit = DefaultAttributeValueLength
	// The SDK's order: the span's own setting wins over the general one.
	for _, name := range []string{"OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT"} {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n == 0 {
				return limits, fmt.Errorf("invalid setting %s: must be a whole number of characters, 1 or more (or negative: no limit), got %q", name, v)
			}
			limits.AttributeValueLengthLimit = n // negative: no limit, as the SDK reads it
		}
	}
	return limits, nil
}
