package graph_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"cqrsgate/domain"
	"cqrsgate/eventstore"
	"cqrsgate/graph"
	"cqrsgate/internal/logbuf"
)

// observedServer is a gateway over a memory store logging to a buffer, and
// recording the refusals told to RefusedOperations.
func observedServer(t *testing.T, cfg graph.Config) (*httptest.Server, *logbuf.Buffer, func() []string) {
	t.Helper()
	logs := &logbuf.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	store := eventstore.NewMemory(eventstore.Limits{}, time.Now)
	var mu sync.Mutex
	var refused []string
	cfg.Store, cfg.Commands, cfg.Log = store, domain.NewService(store, log, time.Now, domain.ServiceOptions{}), log
	cfg.RefusedOperations = func(_ context.Context, kind string, codes []string) {
		mu.Lock()
		defer mu.Unlock()
		refused = append(refused, kind+" "+strings.Join(codes, ","))
	}
	if cfg.Websocket != nil {
		cfg.Hub = eventstore.NewHub(store, log)
		hubCtx, stopHub := context.WithCancel(context.Background())
		go func() { _ = cfg.Hub.Run(hubCtx) }()
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = cfg.Websocket.Shutdown(ctx)
			stopHub()
		})
	}
	srv := httptest.NewServer(graph.NewHandler(cfg))
	t.Cleanup(srv.Close)
	return srv, logs, func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), refused...) }
}

func postQuery(t *testing.T, url, query string) string {
	t.Helper()
	return postRequest(t, url, map[string]any{"query": query})
}

// postRequest posts a GraphQL request (query, extensions, ...) and returns
// the response's body.
func postRequest(t *testing.T, url string, req map[string]any) string {
	t.Helper()
	body, _ := json.Marshal(req)
	resp, err := http.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestRefusedOperationsAreLoggedAndCounted: an operation refused before it
// runs (a document that does not validate, a limit, a GET mutation) is
// logged and told to RefusedOperations with its codes, as one that runs
// is logged and counted; they were neither.
func TestRefusedOperationsAreLoggedAndCounted(t *testing.T) {
	srv, logs, refused := observedServer(t, graph.Config{Limits: graph.Limits{MaxDepth: 2}})
	if out := postQuery(t, srv.URL, `query Deep { events(first: 1) { events { id } } }`); !strings.Contains(out, "DEPTH_LIMIT_EXCEEDED") {
		t.Fatalf("want DEPTH_LIMIT_EXCEEDED, got %s", out)
	}
	if out := postQuery(t, srv.URL, `query Bad { noSuchField }`); !strings.Contains(out, "GRAPHQL_VALIDATION_FAILED") {
		t.Fatalf("want GRAPHQL_VALIDATION_FAILED, got %s", out)
	}
	resp, err := http.Get(srv.URL + "?query=" + url.QueryEscape(`mutation Get { appendEvents(stream: "s", events: []) { position } }`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	got := strings.Join(refused(), "; ")
	for _, want := range []string{"query DEPTH_LIMIT_EXCEEDED", "query GRAPHQL_VALIDATION_FAILED", "mutation METHOD_NOT_ALLOWED"} {
		if !strings.Contains(got, want) {
			t.Errorf("refusals told: %q, want %q among them", got, want)
		}
	}
	for _, name := range []string{"name=Deep", "name=Bad", "name=Get"} {
		if !strings.Contains(logs.String(), name) || !strings.Contains(logs.String(), "refused=") {
			t.Errorf("no log line of the refused operation %s:\n%s", name, logs.String())
		}
	}
}

// TestClientOperationNamesAreBounded: the operation name is the client's,
// of any length: log lines and spans carry at most 128 bytes of it (a 1 MiB
// name made a 1 MiB log line and a span named after it).
func TestClientOperationNamesAreBounded(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	srv, logs, _ := observedServer(t, graph.Config{Tracer: tp})
	name := strings.Repeat("A", 1<<20)
	postQuery(t, srv.URL, "query "+name+" { __typename }")
	postQuery(t, srv.URL, "query "+name+" { nope }") // refused
	for _, l := range strings.Split(logs.String(), "\n") {
		if len(l) > 4<<10 {
			t.Errorf("a log line of %d bytes (the client's 1 MiB operation name): %.200s...", len(l), l)
		}
	}
	spans := rec.Ended()
	if len(spans) == 0 {
		t.Fatal("no spans")
	}
	for _, s := range spans {
		size := len(s.Name())
		for _, a := range s.Attributes() {
			size += len(a.Value.Emit())
		}
		if size > 4<<10 || strings.Contains(s.Name(), "AAAA") {
			t.Errorf("span %.60q... carries %d bytes of the client's operation name", s.Name(), size)
		}
	}
}

// TestAPQHandshakeIsNotARefusal: an APQ client's first request (its hash
// alone) is the protocol's handshake, not a refused operation: one
// operation was counted and logged twice (refused, then run).
func TestAPQHandshakeIsNotARefusal(t *testing.T) {
	srv, logs, refused := observedServer(t, graph.Config{})
	c := &client{t: t, url: srv.URL}
	query := `query Q { __typename }`
	sum := sha256.Sum256([]byte(query))
	ext := map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": hex.EncodeToString(sum[:])}}
	out, _ := c.postBody(map[string]any{"extensions": ext})
	if len(out.Errors) == 0 || out.Errors[0].Message != "PersistedQueryNotFound" {
		t.Fatalf("want PersistedQueryNotFound, got %+v", out)
	}
	out, _ = c.postBody(map[string]any{"query": query, "extensions": ext})
	if len(out.Errors) != 0 {
		t.Fatalf("errors: %+v", out.Errors)
	}
	if r := refused(); len(r) != 0 {
		t.Errorf("one APQ operation counted as refused too: %q\n%s", r, logs.String())
	}
}

// TestWSSkippedSubscriptionIsCounted: a websocket subscription refused
// after its operation context is made (@skip leaving no root field) is
// told as refused; it was neither run nor counted.
func TestWSSkippedSubscriptionIsCounted(t *testing.T) {
	srv, _, refused := observedServer(t, graph.Config{Websocket: &graph.Websocket{}})
	c := (&wsServer{url: "ws" + strings.TrimPrefix(srv.URL, "http")}).dial(t, graph.ProtocolTransportWS)
	c.init()
	c.send(subscribeMsg("1", `subscription { events @skip(if: true) { id } }`, nil))
	m := c.expect("error")
	if r := refused(); len(r) != 1 {
		t.Errorf("subscription refused with %s; refusals told: %q, want one", m.Payload, r)
	}
}

// TestTenantConflictQuotedStream: a tenant's conflict quotes its stream
// with %q, which escapes a quote or backslash in it: the prefix was left in
// such a message.
func TestTenantConflictQuotedStream(t *testing.T) {
	g, as := newTenantGateway(t)
	for _, s := range []string{`n\"1`, `n\\1`} {
		out, _ := g.post(`mutation { appendEvents(stream: "`+s+`", expectedVersion: 5, events: [{type: "NoteTaken", data: {}}]) { position } }`, nil, as["acme"]...)
		if len(out.Errors) != 1 || strings.Contains(out.Errors[0].Message, "acme~") {
			t.Errorf("stream %s: acme's error speaks of its qualified stream: %+v", s, out.Errors)
		}
	}
}

// TestWSLimitRefusalIsCounted: an operation beyond the connection's
// MaxSubscriptions is refused (LIMIT_EXCEEDED) before it runs, and told as
// refused; it was neither logged nor counted.
func TestWSLimitRefusalIsCounted(t *testing.T) {
	srv, _, refused := observedServer(t, graph.Config{Websocket: &graph.Websocket{MaxSubscriptions: 1}})
	c := (&wsServer{url: "ws" + strings.TrimPrefix(srv.URL, "http")}).dial(t, graph.ProtocolTransportWS)
	c.init()
	c.send(subscribeMsg("1", eventsSubscription, nil))
	time.Sleep(200 * time.Millisecond)
	c.send(subscribeMsg("2", eventsSubscription, nil))
	m := c.expect("error")
	if r := refused(); len(r) != 1 {
		t.Errorf("refused with %s; refusals told: %q, want one", m.Payload, r)
	}
}
