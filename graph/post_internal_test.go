package graph

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"sync"
	"sync/atomic"
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

// Stress: holders acquire, put and release concurrently; when all are gone
// the transport holds no bytes and no cache.
func TestPayloadCacheAccountingReturnsToZero(t *testing.T) {
	ws := &Websocket{}
	ws.init()
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 3000; i++ {
				key := fmt.Sprint(rand.IntN(3))
				c := ws.acquireCache(key)
				for j := 0; j < rand.IntN(5); j++ {
					c.put(int64(rand.IntN(2000)), make([]byte, 1+rand.IntN(64<<10)))
					c.get(int64(rand.IntN(2000)))
				}
				ws.releaseCache(c)
			}
		}()
	}
	wg.Wait()
	if got := ws.CachedPayloadBytes(); got != 0 {
		t.Fatalf("all subscriptions gone, %d bytes still counted", got)
	}
	if len(ws.caches) != 0 {
		t.Fatalf("%d caches left", len(ws.caches))
	}
}

// The transport's budget (64 MiB in all) under concurrent puts to
// different caches.
func TestPayloadCachesBudgetHoldsUnderConcurrency(t *testing.T) {
	ws := &Websocket{}
	ws.init()
	const caches = 40
	var cs []*payloadCache
	for i := 0; i < caches; i++ {
		k := fmt.Sprint(i)
		cs = append(cs, ws.acquireCache(k), ws.acquireCache(k)) // two holders: shared
	}
	var peak int64
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < caches; i++ {
		c := cs[2*i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for p := int64(1); p <= 40; p++ {
				c.put(p, make([]byte, 2<<20))
				if n := ws.CachedPayloadBytes(); n > 0 {
					mu.Lock()
					peak = max(peak, n)
					mu.Unlock()
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	if peak > payloadCachesBytes {
		t.Errorf("the caches held %d MiB at once; the budget is %d MiB", peak>>20, payloadCachesBytes>>20)
	}
	if n := ws.CachedPayloadBytes(); n > payloadCachesBytes {
		t.Errorf("once the puts are over, the caches hold %d MiB; the budget is %d MiB", n>>20, payloadCachesBytes>>20)
	}
}

// When sharing ends (refs 2 -> 1) the cache is cleared; a put that passed
// its refs check just before lands after the clear, and the subscriber
// left alone keeps that payload for as long as it lives.
func TestAPutRacingTheLastSharersReleaseKeepsNothing(t *testing.T) {
	ws := &Websocket{}
	ws.init()
	payload := make([]byte, 1<<20)
	for i := 0; i < 50000; i++ {
		a := ws.acquireCache("k")
		b := ws.acquireCache("k")
		var wg sync.WaitGroup
		var ready atomic.Int32
		wg.Add(2)
		go func() {
			defer wg.Done()
			ready.Add(1)
			for ready.Load() < 2 {
			}
			b.put(int64(i+1), payload)
		}()
		go func() {
			defer wg.Done()
			ready.Add(1)
			for ready.Load() < 2 {
			}
			ws.releaseCache(a)
		}()
		wg.Wait()
		if n := ws.CachedPayloadBytes(); n != 0 {
			t.Fatalf("iteration %d: one subscription holds the cache (refs %d), yet %d bytes are cached", i, b.refs.Load(), n)
		}
		ws.releaseCache(b)
	}
}
