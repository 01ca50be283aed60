package graph

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/gorilla/websocket"
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
// other request errors (no query, say) get 400.
func httpSpec(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if websocket.IsWebSocketUpgrade(r) {
			next.ServeHTTP(w, r)
			return
		}
		sw := &specWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		sw.finish()
	})
}

// specWriter holds back a 4xx response of gqlgen's to rewrite it.
type specWriter struct {
	http.ResponseWriter
	held   int // the status held back, 0 when passing through
	body   bytes.Buffer
	passed bool
}

func (s *specWriter) WriteHeader(code int) {
	if code == http.StatusUnprocessableEntity || code == http.StatusBadRequest {
		s.held = code
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

// readBody reads a POST body up front, at most limit bytes: a larger one is
// refused with 413 (REQUEST_TOO_LARGE), a batch of operations (a JSON
// array) with 400 (BAD_REQUEST), before GraphQL sees either.
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

// readAtMost reads r's body, up to limit+1 bytes: in one allocation of its
// size when the request gives its Content-Length (net/http then delivers no
// more than that), else growing as it goes.
func readAtMost(r *http.Request, limit int64) ([]byte, error) {
	if n := r.ContentLength; n >= 0 && n <= limit {
		body := make([]byte, n)
		_, err := io.ReadFull(r.Body, body)
		return body, err
	}
	var buf bytes.Buffer
	_, err := buf.ReadFrom(io.LimitReader(r.Body, limit+1))
	return buf.Bytes(), err
}

// readBodyBytes is a body readBody has read: postTransport takes its bytes
// as they are.
type readBodyBytes struct {
	*bytes.Reader
	bytes []byte
}

func (*readBodyBytes) Close() error { return nil }
