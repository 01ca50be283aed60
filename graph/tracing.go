package graph

import (
	"context"
	"net/http"
	"sync"

	"github.com/99designs/gqlgen/graphql"
	"github.com/gorilla/websocket"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"cqrsgate/graph/model"
)

const tracerName = "cqrsgate"

// traceHTTP starts a server span for each request, continuing the trace of
// the client's traceparent header. Websocket upgrades are left alone.
func traceHTTP(tracer trace.Tracer, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if websocket.IsWebSocketUpgrade(r) {
			next.ServeHTTP(w, r) // a connection, not a request: its operations are spans
			return
		}
		ctx := propagation.TraceContext{}.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx, span := tracer.Start(ctx, r.Method+" "+r.URL.Path, trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.String("http.request.method", r.Method), attribute.String("url.path", r.URL.Path),
				attribute.String("cqrsgate.request_id", RequestID(r.Context()))))
		defer span.End()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// traceOperations makes each GraphQL operation a span.
func traceOperations(tracer trace.Tracer) graphql.OperationMiddleware {
	return func(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
		rc := graphql.GetOperationContext(ctx)
		kind, name := "operation", rc.OperationName
		if rc.Operation != nil {
			kind, name = string(rc.Operation.Operation), rc.Operation.Name
		}
		// The span's name is the operation's type (OpenTelemetry's GraphQL
		// convention): a client's operation name, of any length and
		// variety, would make every span name a new one.
		ctx, span := tracer.Start(ctx, "graphql."+kind, trace.WithAttributes(
			attribute.String("graphql.operation.type", kind), attribute.String("graphql.operation.name", model.CutText(name, maxLoggedName))))
		responses := next(ctx)
		var once sync.Once
		end := func(resp *graphql.Response) {
			once.Do(func() {
				if resp != nil && len(resp.Errors) > 0 {
					span.SetStatus(codes.Error, resp.Errors[0].Message)
				}
				span.End()
			})
		}
		if kind == "subscription" {
			// A subscription's span lasts until its stream ends, or until
			// it is cancelled (the client completed it or went away), after
			// which the transport asks for no more responses.
			context.AfterFunc(ctx, func() { end(nil) })
		}
		return func(ctx context.Context) *graphql.Response {
			resp := responses(ctx)
			if resp == nil || kind != "subscription" {
				end(resp)
			}
			return resp
		}
	}
}
