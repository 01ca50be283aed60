package graph_test

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"cqrsgate/graph"
)

// BenchmarkTypename measures the GraphQL handler's own cost for the
// smallest query, `{ __typename }`, without a network (the bench command
// measures it over HTTP against a plain handler):
//
//	go test -run '^$' -bench Typename -benchmem ./graph
func BenchmarkTypename(b *testing.B) {
	h := graph.NewHandler(graph.Config{Log: slog.New(slog.DiscardHandler), Websocket: &graph.Websocket{}})
	body := `{"query":"{ __typename }"}`
	b.ReportAllocs()
	for b.Loop() {
		r := httptest.NewRequest(http.MethodPost, "/graphql", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
}
