package graph_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/gorilla/websocket"

	"cqrsgate/graph"
)

// TestTransportWSOwnHostWithAllowedOrigins: listing other origins in
// AllowedOrigins does not shut out the gateway's own pages (the playground
// and the dashboard), whose Origin is the gateway's own host; a foreign
// origin is still refused.
func TestTransportWSOwnHostWithAllowedOrigins(t *testing.T) {
	s := newWSServer(t, &graph.Websocket{AllowedOrigins: []string{"https://app.example"}})
	own := "http://" + strings.TrimPrefix(s.url, "ws://")
	own = strings.TrimSuffix(own, "/")
	d := websocket.Dialer{Subprotocols: []string{graph.ProtocolTransportWS}}
	conn, resp, err := d.Dial(s.url, http.Header{"Origin": {own}})
	if err != nil {
		t.Fatalf("the gateway's own origin %s was refused: %v %v", own, err, resp)
	}
	conn.Close()
	if _, resp, err := d.Dial(s.url, http.Header{"Origin": {"http://evil.example"}}); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a foreign origin was accepted: %v %v", err, resp)
	}
}
