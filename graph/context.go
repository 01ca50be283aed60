package graph

import (
	"context"
	"net/http"

	"cqrsgate/domain"
)

type ctxKey int

const (
	requestIDKey ctxKey = iota
	correlationIDKey
)

// Headers the gateway reads and echoes.
const (
	HeaderRequestID     = "X-Request-ID"
	HeaderCorrelationID = "X-Correlation-ID"
)

// RequestID returns the id of the request ctx belongs to ("" outside one).
func RequestID(ctx context.Context) string {
	s, _ := ctx.Value(requestIDKey).(string)
	return s
}

// CorrelationID returns the correlation id of the request ctx belongs to:
// the client's X-Correlation-ID or, without one, a generated id.
func CorrelationID(ctx context.Context) string {
	s, _ := ctx.Value(correlationIDKey).(string)
	return s
}

// withRequestIDs gives every request a request id (the client's
// X-Request-ID when it is sensible, otherwise a new one) and a correlation
// id (X-Correlation-ID, or a new one), puts both in the context and echoes
// them in the response headers.
func withRequestIDs(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reqID := headerID(r, HeaderRequestID)
		corrID := headerID(r, HeaderCorrelationID)
		w.Header().Set(HeaderRequestID, reqID)
		w.Header().Set(HeaderCorrelationID, corrID)
		ctx := context.WithValue(r.Context(), requestIDKey, reqID)
		ctx = context.WithValue(ctx, correlationIDKey, corrID)
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// headerID returns the header's value when it is 1 to 128 printable ASCII
// characters, otherwise a new id.
func headerID(r *http.Request, name string) string {
	v := r.Header.Get(name)
	if v == "" || len(v) > 128 {
		return domain.NewID()
	}
	for i := 0; i < len(v); i++ {
		if v[i] < 0x21 || v[i] > 0x7e {
			return domain.NewID()
		}
	}
	return v
}
