package graph

import (
	"context"
	"net/http"

	"github.com/vektah/gqlparser/v2/gqlerror"

	"cqrsgate/domain"
)

type ctxKey int

// requestInfoKey holds a request's *requestInfo.
const requestInfoKey ctxKey = iota

// requestInfo is what the gateway knows of a request before GraphQL runs:
// one context value (and one allocation) for all of it.
type requestInfo struct {
	requestID, correlationID string
	// remoteAddr is where the request came from, for the rate limits' client
	// key (see clientKey).
	remoteAddr string
	// refused holds the errors the request's operation was refused with
	// before it ran (a limit, a role, the mutation rate; see observedExec),
	// for httpSpec's status.
	refused gqlerror.List
}

func infoOf(ctx context.Context) *requestInfo {
	i, _ := ctx.Value(requestInfoKey).(*requestInfo)
	return i
}

// Headers the gateway reads and echoes.
const (
	HeaderRequestID     = "X-Request-ID"
	HeaderCorrelationID = "X-Correlation-ID"
)

// The headers' keys as net/http keeps them, to index header maps directly.
var (
	requestIDHeader     = http.CanonicalHeaderKey(HeaderRequestID)
	correlationIDHeader = http.CanonicalHeaderKey(HeaderCorrelationID)
)

// RequestID returns the id of the request ctx belongs to ("" outside one).
func RequestID(ctx context.Context) string {
	if i := infoOf(ctx); i != nil {
		return i.requestID
	}
	return ""
}

// CorrelationID returns the correlation id of the request ctx belongs to:
// the client's X-Correlation-ID or, without one, the request id (the
// request starts the flow its events belong to).
func CorrelationID(ctx context.Context) string {
	if i := infoOf(ctx); i != nil {
		return i.correlationID
	}
	return ""
}

// withRequestIDs gives every request a request id (the client's
// X-Request-ID when it is sensible, otherwise a new one) and a correlation
// id (a sensible X-Correlation-ID, or the request id), puts both in the
// context and echoes them in the response headers.
func withRequestIDs(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := &requestInfo{requestID: headerID(r, requestIDHeader), remoteAddr: r.RemoteAddr}
		i.correlationID = i.requestID
		if v, ok := sensibleID(r, correlationIDHeader); ok {
			i.correlationID = v
		}
		h := w.Header()
		h[requestIDHeader] = []string{i.requestID}
		h[correlationIDHeader] = []string{i.correlationID}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestInfoKey, i)))
	})
}

// withOperationIDs gives an operation on a websocket the ids an HTTP
// request has: a request id of its own and, as its correlation id, the
// X-Correlation-ID of the upgrade request when it had a sensible one (a
// client that names its flow so names it for every operation of the
// connection), otherwise that request id. Operations on one connection
// shared the upgrade request's ids: every mutation's events, unrelated,
// carried one correlation id, and every log line and internal error one
// request id. The client's address is the connection's.
func withOperationIDs(ctx context.Context, headers http.Header) context.Context {
	i := &requestInfo{requestID: domain.NewID()}
	if up := infoOf(ctx); up != nil {
		i.remoteAddr = up.remoteAddr
	}
	i.correlationID = i.requestID
	if v, ok := sensibleID(&http.Request{Header: headers}, correlationIDHeader); ok {
		i.correlationID = v
	}
	return context.WithValue(ctx, requestInfoKey, i)
}

// headerID returns the header's value (key in canonical form) when it is
// sensible, otherwise a new id.
func headerID(r *http.Request, key string) string {
	if v, ok := sensibleID(r, key); ok {
		return v
	}
	return domain.NewID()
}

// sensibleID returns the header's value (key in canonical form) and true
// when it is 1 to 128 printable ASCII characters.
func sensibleID(r *http.Request, key string) (string, bool) {
	vs := r.Header[key]
	if len(vs) == 0 || vs[0] == "" || len(vs[0]) > 128 {
		return "", false
	}
	v := vs[0]
	for i := 0; i < len(v); i++ {
		if v[i] < 0x21 || v[i] > 0x7e {
			return "", false
		}
	}
	return v, true
}
