package graph_test

import (
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"cqrsgate/graph"
)

// TestTracingFromRequestToProjection: a mutation sent with a traceparent
// makes one trace of the HTTP request, the GraphQL operation, the command
// and the append, and the projection batch that applies its events links
// to it.
func TestTracingFromRequestToProjection(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })
	g := newFullGatewayWith(t, fullOptions{readTimeout: 5 * time.Second, tracer: tp})

	const traceID, parentID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	res := g.mustMutate("openAccount", map[string]any{"accountId": "traced-1", "owner": "Ann", "currency": "EUR"},
		"traceparent", "00-"+traceID+"-"+parentID+"-01")
	if !strings.Contains(string(res.Events[0].Metadata), traceID) {
		t.Errorf("the event's metadata has no traceparent of the trace: %s", res.Events[0].Metadata)
	}

	byName := map[string]sdktrace.ReadOnlySpan{}
	var projection sdktrace.ReadOnlySpan
	waitFor(t, "the projection to apply the event", func() bool {
		for _, s := range rec.Ended() {
			if s.SpanContext().TraceID().String() == traceID {
				byName[s.Name()] = s
			}
			if strings.HasPrefix(s.Name(), "projection.apply accounts") {
				for _, l := range s.Links() {
					if l.SpanContext.TraceID().String() == traceID {
						projection = s
					}
				}
			}
		}
		return projection != nil
	})
	chain := []string{"POST /", "graphql.mutation", "command OpenAccount", "eventstore.append"}
	for i, name := range chain {
		s, ok := byName[name]
		if !ok {
			t.Fatalf("no span %q in the trace; have %v", name, keys(byName))
		}
		parent := parentID
		if i > 0 {
			parent = byName[chain[i-1]].SpanContext().SpanID().String()
		}
		if got := s.Parent().SpanID().String(); got != parent {
			t.Errorf("%q has parent %s, want %s (%s)", name, got, parent, chain[max(i-1, 0)])
		}
	}
	if projection.SpanContext().TraceID().String() == traceID {
		t.Error("the projection batch runs in the request's trace; it should link to it")
	}
}

func keys(m map[string]sdktrace.ReadOnlySpan) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// A subscription's span ends when the client completes it, or goes away:
// the transport then asks the operation for no more responses, so the span
// cannot wait for the end of its stream.
func TestSubscriptionSpansEndWithTheSubscription(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })
	g := newFullGatewayWith(t, fullOptions{readTimeout: 5 * time.Second, tracer: tp})
	g.mustMutate("openAccount", map[string]any{"accountId": "span-1", "owner": "ada", "currency": "EUR"})
	c := (&wsServer{url: "ws" + strings.TrimPrefix(g.url, "http")}).dial(t, graph.ProtocolTransportWS)
	c.init()
	c.send(subscribeMsg("e", `subscription Completed { events(after: 0) { position } }`, nil))
	c.expect("next")
	c.send(subscribeMsg("p", `subscription Dropped { projectionStatus(intervalMs: 250) { name } }`, nil))
	for m := c.read(); m.ID != "p"; m = c.read() {
	}
	c.send(map[string]any{"id": "e", "type": "complete"})
	ended := func(name string) bool {
		for _, s := range rec.Ended() {
			if s.Name() != "graphql.subscription" {
				continue
			}
			for _, a := range s.Attributes() {
				if a.Key == "graphql.operation.name" && a.Value.AsString() == name {
					return true
				}
			}
		}
		return false
	}
	waitFor(t, "the completed subscription's span to end", func() bool { return ended("Completed") })
	if ended("Dropped") {
		t.Fatal("the span of a subscription still running has ended")
	}
	c.conn.Close()
	waitFor(t, "the span of the subscription whose client went away to end", func() bool { return ended("Dropped") })
}
