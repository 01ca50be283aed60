package graph_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"cqrsgate/graph"
)

// A request whose text would not read as sent (invalid UTF-8, half a
// surrogate pair) is refused: read as U+FFFD, two different idempotency
// keys or ids were one, and nothing said so. POST, GET and websockets.
func TestRequestsThatAreNotTextAreRefused(t *testing.T) {
	c := newServer(t, memStore(), nil)
	const q = `mutation($id: ID!, $k: String) { openAccount(input: {accountId: $id, owner: "o", currency: "EUR", idempotencyKey: $k}) { version } }`
	for name, body := range map[string]string{
		"a lone surrogate": `{"query": "` + strings.ReplaceAll(q, `"`, `\"`) + `", "variables": {"id": "acc-1", "k": "\ud800"}}`,
		"invalid UTF-8":    `{"query": "` + strings.ReplaceAll(q, `"`, `\"`) + "\", \"variables\": {\"id\": \"acc-\xff1\"}}",
	} {
		status, _, raw := c.rawPost(body)
		if status != http.StatusBadRequest || !strings.Contains(string(raw), `"the request body is not valid text: it `) || !strings.Contains(string(raw), `"BAD_REQUEST"`) {
			t.Errorf("%s: %d %s", name, status, raw)
		}
	}
	// Nothing was opened: the same account opens now.
	var out struct{ OpenAccount struct{ Version int } }
	c.mustPost(q, map[string]any{"id": "acc-1", "k": "k1"}, &out)
	if out.OpenAccount.Version != 1 {
		t.Fatalf("version %d", out.OpenAccount.Version)
	}

	req, _ := http.NewRequest(http.MethodGet, c.url+"?query="+url.QueryEscape(`query($id: ID!) { event(id: $id) { id } }`)+"&variables="+url.QueryEscape(`{"id": "\udfff"}`), nil)
	resp, gerr := c.do(req)
	if gerr.StatusCode != http.StatusBadRequest || len(resp.Errors) != 1 || !strings.HasPrefix(resp.Errors[0].Message, "the variables are not valid text") {
		t.Errorf("GET: %d %+v", gerr.StatusCode, resp.Errors)
	}

	s := newWSServer(t, &graph.Websocket{})
	ws := s.dial(t, "graphql-transport-ws")
	ws.init()
	ws.send(`{"id": "1", "type": "subscribe", "payload": {"query": "query($id: ID!) { event(id: $id) { id } }", "variables": {"id": "\ud800"}}}`)
	if code := ws.closeCode(); code != graph.CloseInvalidMessage {
		t.Errorf("websocket: closed with %d, want %d", code, graph.CloseInvalidMessage)
	}
}
