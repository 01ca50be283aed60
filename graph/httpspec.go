package graph

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/gorilla/websocket"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"cqrsgate/domain"
)

// Content types of the GraphQL-over-HTTP specification.
const (
	contentTypeJSON            = "application/json"
	contentTypeGraphQLResponse = "application/graphql-response+json"
)

// httpSpec makes gqlgen's HTTP answers to request errors follow the
// GraphQL-over-HTTP specification: a document that does not parse or
// validate, or variables that do not coerce, get 200 under
// application/json (the legacy media type) and 400 under
// application/graphql-response+json, whose body then has no data entry;
// other request errors (no query, say) get 400. An operation refused
// before it ran (a limit, a role, the mutation rate) is a request error
// too: 200 under application/json, and under
// application/graphql-response+json 429 for RATE_LIMITED (with
// Retry-After), 401 for UNAUTHORIZED, 403 for FORBIDDEN, 400 otherwise,
// without data.
func httpSpec(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if websocket.IsWebSocketUpgrade(r) {
			next.ServeHTTP(w, r)
			return
		}
		switch r.Method {
		case http.MethodGet, http.MethodPost, http.MethodOptions:
		default:
			// gqlgen answered PUT or DELETE 400 "transport not supported",
			// JSON labelled text/plain, and HEAD 405 without Allow.
			w.Header().Set("Allow", "GET, POST, OPTIONS")
			writeRequestError(w, r, http.StatusMethodNotAllowed, "method "+r.Method+" is not served: send GraphQL with POST, or queries with GET", "METHOD_NOT_ALLOWED")
			return
		}
		if r.Method == http.MethodGet {
			// An answer is the caller's own, and its credential may be in
			// a header (X-API-Key) that a shared cache does not key on.
			w.Header().Set("Cache-Control", "no-store")
		}
		sw := &specWriter{ResponseWriter: w, info: infoOf(r.Context())}
		next.ServeHTTP(sw, r)
		sw.finish()
	})
}

// specWriter holds back a 4xx response of gqlgen's to rewrite it.
type specWriter struct {
	http.ResponseWriter
	info   *requestInfo // the request's, with its refusal (nil outside withRequestIDs)
	held   int          // the status held back, 0 when passing through
	body   bytes.Buffer
	passed bool
}

func (s *specWriter) WriteHeader(code int) {
	if code == http.StatusUnprocessableEntity || code == http.StatusBadRequest {
		s.held = code
		return
	}
	if code == http.StatusOK && s.info != nil && s.info.refused != nil &&
		strings.HasPrefix(s.Header().Get("Content-Type"), contentTypeGraphQLResponse) {
		s.held = refusedStatus(s.info.refused, s.Header())
		return
	}
	s.passed = true
	s.ResponseWriter.WriteHeader(code)
}

func (s *specWriter) Write(b []byte) (int, error) {
	if s.held != 0 {
		return s.body.Write(b)
	}
	s.passed = true
	return s.ResponseWriter.Write(b)
}

// Flush flushes a response that is not held back.
func (s *specWriter) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok && s.held == 0 {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *specWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *specWriter) finish() {
	if s.held == 0 {
		return
	}
	var resp map[string]json.RawMessage
	if err := json.Unmarshal(s.body.Bytes(), &resp); err != nil {
		s.ResponseWriter.WriteHeader(s.held)
		_, _ = s.ResponseWriter.Write(s.body.Bytes())
		return
	}
	var errs []struct {
		Message    string `json:"message"`
		Extensions struct {
			Code string `json:"code"`
		} `json:"extensions"`
	}
	_ = json.Unmarshal(resp["errors"], &errs)
	documentError := len(errs) > 0
	for _, e := range errs {
		switch {
		case e.Message == "no operation provided": // a request without a query: bad parameters
			documentError = false
		case e.Extensions.Code == "GRAPHQL_PARSE_FAILED", e.Extensions.Code == "GRAPHQL_VALIDATION_FAILED",
			e.Extensions.Code == "PERSISTED_QUERY_NOT_FOUND", e.Extensions.Code == "PERSISTED_QUERY_NOT_SUPPORTED":
		default:
			documentError = false
		}
	}
	status := http.StatusBadRequest
	if s.held != http.StatusUnprocessableEntity {
		status = s.held // 400, or refusedStatus's
	}
	body := s.body.Bytes()
	if strings.HasPrefix(s.Header().Get("Content-Type"), contentTypeGraphQLResponse) {
		// A request error: the response has no data entry at all.
		if _, ok := resp["data"]; ok {
			delete(resp, "data")
			if b, err := json.Marshal(resp); err == nil {
				body = b
			}
		}
	} else if documentError {
		status = http.StatusOK
	}
	s.Header().Set("Content-Length", strconv.Itoa(len(body)))
	s.ResponseWriter.WriteHeader(status)
	_, _ = s.ResponseWriter.Write(body)
}

// refusedStatus is the status of an operation refused before it ran,
// under application/graphql-response+json, by its first error's code: 429
// (and Retry-After, in whole seconds) when the mutation rate refused it
// for now, 401 (and WWW-Authenticate) when it needs a credential the
// request lacks, 403 when the caller's role refused it, 400 for the rest
// (limits of the document's size and shape, more mutations at once than
// the rate allows).
func refusedStatus(errs gqlerror.List, h http.Header) int {
	if len(errs) == 0 {
		return http.StatusBadRequest
	}
	code, _ := errs[0].Extensions["code"].(string)
	switch code {
	case "RATE_LIMITED":
		// An operation of more mutations than the burst never passes:
		// a client told to retry would loop. That one has no wait.
		if wait, ok := errs[0].Extensions["retryAfterSeconds"].(float64); ok {
			h.Set("Retry-After", strconv.Itoa(int(math.Ceil(wait))))
			return http.StatusTooManyRequests
		}
	case string(domain.Unauthorized):
		h.Set("WWW-Authenticate", `Bearer realm="cqrsgate"`)
		return http.StatusUnauthorized
	case string(domain.Forbidden):
		return http.StatusForbidden
	}
	return http.StatusBadRequest
}

// readBody reads a POST body up front, at most limit bytes: a larger one is
// refused with 413 (REQUEST_TOO_LARGE), a batch of operations (a JSON
// array) with 400 (BAD_REQUEST), before GraphQL sees either. A body that
// does not arrive before the connection's read deadline (which the server
// sets: see BODY_READ_TIMEOUT) gets 408 (REQUEST_TIMEOUT).
func readBody(limit int64, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || websocket.IsWebSocketUpgrade(r) {
			next.ServeHTTP(w, r)
			return
		}
		if r.ContentLength > limit {
			writeRequestError(w, r, http.StatusRequestEntityTooLarge, fmt.Sprintf("the request body is larger than %d bytes", limit), "REQUEST_TOO_LARGE")
			return
		}
		body, err := readAtMost(r, limit)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			writeRequestError(w, r, http.StatusRequestTimeout, "the request body did not arrive in time", "REQUEST_TIMEOUT")
			return
		}
		if err != nil {
			writeRequestError(w, r, http.StatusBadRequest, "the request body could not be read", "BAD_REQUEST")
			return
		}
		if int64(len(body)) > limit {
			writeRequestError(w, r, http.StatusRequestEntityTooLarge, fmt.Sprintf("the request body is larger than %d bytes", limit), "REQUEST_TOO_LARGE")
			return
		}
		if trimmed := bytes.TrimSpace(body); len(trimmed) > 0 && trimmed[0] == '[' {
			writeRequestError(w, r, http.StatusBadRequest, "batched operations (a JSON array) are not supported: send one operation per request", "BAD_REQUEST")
			return
		}
		r.Body = &readBodyBytes{Reader: bytes.NewReader(body), bytes: body}
		next.ServeHTTP(w, r)
	})
}

// firstBodyBuffer is the most readAtMost allocates before any of a body
// has arrived.
const firstBodyBuffer = 16 << 10

// readAtMost reads r's body, up to limit+1 bytes, into a buffer that grows
// (doubling) as the bytes arrive: a Content-Length only caps it (net/http
// then delivers no more than that), so a client that announces a large body
// and sends little of it costs little memory. It reads to the end of the
// body, so that the caller knows it was all read.
func readAtMost(r *http.Request, limit int64) ([]byte, error) {
	limit = min(limit, math.MaxInt64-1) // limit + 1 must not wrap
	want := limit + 1
	if n := r.ContentLength; n >= 0 && n <= limit {
		want = n
	}
	buf := make([]byte, 0, min(want, firstBodyBuffer))
	for {
		if int64(len(buf)) >= want {
			if want > limit {
				return buf, nil // over the limit: no need to read on
			}
			// All of the Content-Length is in: one more read sees the
			// body's end (net/http answers it without waiting).
			var probe [1]byte
			n, err := r.Body.Read(probe[:])
			if n > 0 {
				return buf, errors.New("the body is longer than its Content-Length")
			}
			if err == nil || errors.Is(err, io.EOF) {
				return buf, nil
			}
			return buf, err
		}
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, int(min(want, 2*int64(cap(buf)))-int64(len(buf))))
		}
		n, err := r.Body.Read(buf[len(buf):min(int64(cap(buf)), want)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			if r.ContentLength > int64(len(buf)) {
				return buf, io.ErrUnexpectedEOF
			}
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// readBodyBytes is a body readBody has read: postTransport takes its bytes
// as they are.
type readBodyBytes struct {
	*bytes.Reader
	bytes []byte
}

func (*readBodyBytes) Close() error { return nil }
