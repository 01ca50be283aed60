package graph_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"cqrsgate/graph"
)

// TestLoopbackHostOnly: in development mode only requests addressed to a
// loopback name or address get through; a DNS-rebinding page's requests
// carry its own name in Host and are refused with 403 and a message that
// says why.
func TestLoopbackHostOnly(t *testing.T) {
	h := graph.LoopbackHostOnly(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	for _, host := range []string{"localhost", "localhost:8080", "LocalHost.:8080", "127.0.0.1:8080", "127.3.4.5", "[::1]:8080", "[::1]", "[::ffff:127.0.0.1]:80", "app.localhost:8080", ""} {
		r := httptest.NewRequest(http.MethodPost, "/graphql", nil)
		r.Host = host
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusOK {
			t.Errorf("Host %q: %d %s", host, w.Code, w.Body)
		}
	}
	for _, host := range []string{"rebind.example:8080", "rebind.example", "localhost.rebind.example", "10.0.0.1:8080", "[fe80::1]:8080", "0.0.0.0:8080", "127.0.0.1.nip.io"} {
		r := httptest.NewRequest(http.MethodGet, "/graphql", nil)
		r.Host = host
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "development mode") || !strings.Contains(w.Body.String(), "FORBIDDEN") {
			t.Errorf("Host %q: %d %s, want 403 explaining development mode", host, w.Code, w.Body)
		}
	}
}
