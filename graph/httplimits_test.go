package graph

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// trickle is a body that delivers its bytes, then fails with err (a
// client that stalls, then is cut off).
type trickle struct {
	data []byte
	err  error
}

func (b *trickle) Read(p []byte) (int, error) {
	if len(b.data) == 0 {
		return 0, b.err
	}
	n := copy(p, b.data)
	b.data = b.data[n:]
	return n, nil
}

func (b *trickle) Close() error { return nil }

// TestReadAtMostAllocatesAsTheBodyArrives: a request that announces a body
// of the largest size allowed and sends one byte of it costs no more than
// a small buffer, not its Content-Length.
func TestReadAtMostAllocatesAsTheBodyArrives(t *testing.T) {
	const limit = 16 << 20
	r := httptest.NewRequest(http.MethodPost, "/graphql", nil)
	r.Body, r.ContentLength = &trickle{data: []byte("{"), err: io.ErrUnexpectedEOF}, limit
	body, err := readAtMost(r, limit)
	if !errors.Is(err, io.ErrUnexpectedEOF) || len(body) == 0 || body[0] != '{' {
		t.Fatalf("readAtMost = %d bytes, %v", len(body), err)
	}
	if cap(body) > 64<<10 {
		t.Fatalf("one byte of an announced %d-byte body took a buffer of %d bytes", limit, cap(body))
	}
}

// TestReadAtMostReadsWholeBodies: bodies with and without Content-Length,
// within and beyond the limit.
func TestReadAtMostReadsWholeBodies(t *testing.T) {
	const limit = 100 << 10
	big := bytes.Repeat([]byte("x"), limit)
	for _, tc := range []struct {
		name    string
		body    []byte
		length  int64
		wantLen int
	}{
		{"empty", nil, 0, 0},
		{"small with length", []byte(`{"query":"{a}"}`), 15, 15},
		{"small chunked", []byte(`{"query":"{a}"}`), -1, 15},
		{"the limit with length", big, limit, limit},
		{"the limit chunked", big, -1, limit},
		{"beyond the limit chunked", append(big, "yz"...), -1, limit + 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/graphql", nil)
			r.Body, r.ContentLength = &trickle{data: tc.body, err: io.EOF}, tc.length
			got, err := readAtMost(r, limit)
			if err != nil || len(got) != tc.wantLen || !bytes.Equal(got, tc.body[:tc.wantLen]) {
				t.Fatalf("readAtMost = %d bytes, %v; want %d", len(got), err, tc.wantLen)
			}
		})
	}
}

// TestSlowBodyIsRefusedWith408: a body that has not arrived when the
// connection's read deadline (set by the server) passes is answered with
// 408 REQUEST_TIMEOUT, and GraphQL never runs.
func TestSlowBodyIsRefusedWith408(t *testing.T) {
	ran := false
	h := readBody(16<<20, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { ran = true }))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := http.NewResponseController(w).SetReadDeadline(time.Now().Add(200 * time.Millisecond)); err != nil {
			t.Error(err)
		}
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()
	conn, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, "POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 16777216\r\n\r\n{"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(b), "REQUEST_TIMEOUT") {
		t.Fatalf("a stalled body: %d %s", resp.StatusCode, b)
	}
	if ran {
		t.Fatal("the handler ran on a body that did not arrive")
	}
}

// TestReadAtMostTakesTheLargestLimit: a limit of the largest int64 reads a
// body without a Content-Length (its limit + 1 wrapped, and make panicked).
func TestReadAtMostTakesTheLargestLimit(t *testing.T) {
	r := httptest.NewRequest(http.MethodPost, "/graphql", nil)
	r.Body, r.ContentLength = &trickle{data: []byte(`{"query":"{a}"}`), err: io.EOF}, -1
	got, err := readAtMost(r, math.MaxInt64)
	if err != nil || string(got) != `{"query":"{a}"}` {
		t.Fatalf("readAtMost = %q, %v", got, err)
	}
}
