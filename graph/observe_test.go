package graph_test

import (
	"bytes"
	"context"
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
)

// lockedBuf is a log destination written by the server's goroutines and
// read by the test.
type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuf) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// observedServer is a gateway over a memory store logging to a buffer, and
// recording the refusals told to RefusedOperations.
func observedServer(t *testing.T, cfg graph.Config) (*httptest.Server, *lockedBuf, func() []string) {
	t.Helper()
	logs := &lockedBuf{}
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
	srv := httptest.NewServer(graph.NewHandler(cfg))
	t.Cleanup(srv.Close)
	return srv, logs, func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), refused...) }
}

func postQuery(t *testing.T, url, query string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query})
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
