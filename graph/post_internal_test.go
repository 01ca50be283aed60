package graph

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// writeResponse writes what json.Marshal would (HTML characters aside,
// which it leaves as they are), a response that never came as no data.
func TestWriteResponse(t *testing.T) {
	yes := true
	for _, tc := range []struct {
		name string
		resp *graphql.Response
		want string
	}{
		{"no response", nil, `{"data":null}`},
		{"data", &graphql.Response{Data: json.RawMessage(`{"a":"<b>"}`)}, `{"data":{"a":"<b>"}}`},
		{"errors and extensions", &graphql.Response{Errors: gqlerror.List{{Message: "m"}}, Extensions: map[string]any{"x": 1}},
			`{"errors":[{"message":"m"}],"data":null,"extensions":{"x":1}}`},
		{"incremental", &graphql.Response{Data: json.RawMessage(`{}`), HasNext: &yes}, `{"data":{},"hasNext":true}`},
	} {
		w := httptest.NewRecorder()
		writeResponse(w, tc.resp)
		if w.Body.String() != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, w.Body, tc.want)
		}
		if tc.resp == nil || tc.resp.HasNext == nil {
			var v any
			if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil || w.Header().Get("Content-Length") == "" {
				t.Errorf("%s: %v, headers %v", tc.name, err, w.Header())
			}
		}
	}
}

// A member given twice in different cases is refused, over HTTP and
// websockets alike: which one counted depended on map order.
func TestDecodePostRefusesAMemberGivenTwice(t *testing.T) {
	for _, body := range []string{
		`{"Query": "{ a }", "QUERY": "{ b }"}`,
		`{"query": "{ a }", "Query": "{ b }"}`,
		`{"query": "{ a }", "variables": {}, "Variables": {}}`,
	} {
		if p, err := decodePost([]byte(body)); err == nil {
			t.Errorf("%s: decoded as %+v", body, p)
		}
	}
	if p, err := decodePost([]byte(`{"Query": "{ a }", "OperationName": "A"}`)); err != nil || p.Query != "{ a }" || p.OperationName != "A" {
		t.Errorf("case-variant names given once: %+v, %v", p, err)
	}
}

// Many shared selections (aliased pairs of subscriptions on one
// connection pinned 1,024 payloads each) hold at most 8 MiB each and
// 64 MiB in all; a cache that loses its sharers is emptied.
func TestPayloadCachesShareOneBudget(t *testing.T) {
	ws := &Websocket{}
	ws.init()
	payload := make([]byte, 50_000)
	var caches []*payloadCache
	for k := 0; k < 12; k++ {
		key := fmt.Sprint("key-", k)
		c := ws.acquireCache(key)
		ws.acquireCache(key) // two share it
		caches = append(caches, c)
		for pos := int64(1); pos <= 200; pos++ { // 10 MB each
			c.put(pos, payload)
		}
		if c.bytes > payloadCacheBytes {
			t.Fatalf("cache %d holds %d bytes", k, c.bytes)
		}
	}
	if got := ws.CachedPayloadBytes(); got > payloadCachesBytes || got < payloadCachesBytes/2 {
		t.Fatalf("12 caches of 10 MB asked: %d bytes held, want at most %d (and most of it)", got, payloadCachesBytes)
	}
	for _, c := range caches {
		ws.releaseCache(c) // one left: nothing to share
	}
	if got := ws.CachedPayloadBytes(); got != 0 {
		t.Fatalf("caches with one holder keep %d bytes", got)
	}
	for _, c := range caches {
		ws.releaseCache(c)
	}
	if len(ws.caches) != 0 {
		t.Fatalf("%d caches left", len(ws.caches))
	}
}
