package graph_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"cqrsgate/domain"
	"cqrsgate/eventstore"
	"cqrsgate/graph"
)

// gqlError is one error of a GraphQL response.
type gqlError struct {
	Message    string         `json:"message"`
	Path       []any          `json:"path"`
	Extensions map[string]any `json:"extensions"`
}

// gqlResponse is a GraphQL response body.
type gqlResponse struct {
	Data   map[string]json.RawMessage `json:"data"`
	Errors []gqlError                 `json:"errors"`
}

type client struct {
	t   *testing.T
	url string
}

func newServer(t *testing.T, store eventstore.Store, log *slog.Logger) *client {
	t.Helper()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return newServerWith(t, store, domain.NewService(store, log, time.Now, domain.ServiceOptions{}), log)
}

func newServerWith(t *testing.T, store eventstore.Store, commands *domain.Service, log *slog.Logger) *client {
	t.Helper()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	srv := httptest.NewServer(graph.NewHandler(graph.Config{Store: store, Commands: commands, Log: log}))
	t.Cleanup(srv.Close)
	return &client{t: t, url: srv.URL}
}

func (c *client) post(query string, vars map[string]any, headers ...string) (gqlResponse, *http.Response) {
	c.t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, c.url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return c.do(req)
}

// postBody posts a request body of any shape.
func (c *client) postBody(body map[string]any) (gqlResponse, *http.Response) {
	c.t.Helper()
	raw, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, c.url, bytes.NewReader(raw))
	req.Header.Set("Content-Type", "application/json")
	return c.do(req)
}

func (c *client) do(req *http.Request) (gqlResponse, *http.Response) {
	c.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out gqlResponse
	if err := json.Unmarshal(raw, &out); err != nil {
		c.t.Fatalf("response %d is not JSON: %s", resp.StatusCode, raw)
	}
	return out, resp
}

func (c *client) mustPost(query string, vars map[string]any, into any, headers ...string) {
	c.t.Helper()
	out, _ := c.post(query, vars, headers...)
	if len(out.Errors) > 0 {
		c.t.Fatalf("errors: %+v", out.Errors)
	}
	raw, _ := json.Marshal(out.Data)
	if err := json.Unmarshal(raw, into); err != nil {
		c.t.Fatal(err)
	}
}

func memStore() *eventstore.Memory { return eventstore.NewMemory(eventstore.Limits{}, time.Now) }

func TestTypenameOverPostAndGet(t *testing.T) {
	c := newServer(t, memStore(), nil)
	out, resp := c.post(`{ __typename }`, nil)
	if resp.StatusCode != 200 || string(out.Data["__typename"]) != `"Query"` {
		t.Fatalf("POST: %d %+v", resp.StatusCode, out)
	}
	req, _ := http.NewRequest(http.MethodGet, c.url+"?query="+url.QueryEscape(`{ __typename }`), nil)
	out, resp = c.do(req)
	if resp.StatusCode != 200 || string(out.Data["__typename"]) != `"Query"` {
		t.Fatalf("GET: %d %+v", resp.StatusCode, out)
	}
	if resp.Header.Get("X-Request-ID") == "" || resp.Header.Get("X-Correlation-ID") == "" {
		t.Fatalf("missing request and correlation id headers: %v", resp.Header)
	}
	// A GET answer is the caller's own (its credential may be a header a
	// shared cache does not key on): no cache keeps it.
	if got := resp.Header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("GET answered with Cache-Control %q, want no-store", got)
	}
	req, _ = http.NewRequest(http.MethodGet, c.url+"?query="+url.QueryEscape(`mutation { appendEvents(stream: "s", events: [{type: "A", data: {}}]) { position } }`), nil)
	out, _ = c.do(req)
	if len(out.Errors) == 0 {
		t.Fatal("a mutation over GET was accepted")
	}
}

const appendMutation = `mutation($stream: String!, $expected: Int, $events: [EventInput!]!) {
  appendEvents(stream: $stream, expectedVersion: $expected, events: $events) {
    streamId firstVersion version firstPosition position duplicate correlationId
    events { id type schemaVersion streamVersion position data metadata }
  }
}`

type appendOut struct {
	AppendEvents struct {
		StreamID      string `json:"streamId"`
		FirstVersion  int    `json:"firstVersion"`
		Version       int    `json:"version"`
		FirstPosition int64  `json:"firstPosition"`
		Position      int64  `json:"position"`
		Duplicate     bool   `json:"duplicate"`
		CorrelationID string `json:"correlationId"`
		Events        []struct {
			ID            string          `json:"id"`
			Type          string          `json:"type"`
			SchemaVersion int             `json:"schemaVersion"`
			StreamVersion int             `json:"streamVersion"`
			Position      int64           `json:"position"`
			Data          json.RawMessage `json:"data"`
			Metadata      json.RawMessage `json:"metadata"`
		} `json:"events"`
	} `json:"appendEvents"`
}

func TestAppendThenRead(t *testing.T) {
	store := memStore()
	c := newServer(t, store, nil)
	events := []map[string]any{
		{"type": "LedgerOpened", "data": map[string]any{"owner": "ada"}},
		{"type": "LedgerCredited", "version": 2, "data": map[string]any{"amount": 500}, "metadata": map[string]any{"actor": "teller"}},
	}
	out, resp := c.post(appendMutation, map[string]any{"stream": "ledger-1", "expected": 0, "events": events}, "X-Correlation-ID", "corr-42")
	if len(out.Errors) > 0 {
		t.Fatalf("append: %+v", out.Errors)
	}
	if resp.Header.Get("X-Correlation-ID") != "corr-42" {
		t.Errorf("correlation id not echoed: %q", resp.Header.Get("X-Correlation-ID"))
	}
	var res appendOut
	raw, _ := json.Marshal(out.Data)
	_ = json.Unmarshal(raw, &res)
	a := res.AppendEvents
	if a.StreamID != "ledger-1" || a.FirstVersion != 1 || a.Version != 2 || a.Position <= a.FirstPosition || a.Duplicate || a.CorrelationID != "corr-42" || len(a.Events) != 2 {
		t.Fatalf("append result = %+v", a)
	}
	var meta map[string]string
	_ = json.Unmarshal(a.Events[1].Metadata, &meta)
	if meta["correlationId"] != "corr-42" || meta["actor"] != "teller" || a.Events[1].SchemaVersion != 2 {
		t.Fatalf("second event = %+v", a.Events[1])
	}

	var page struct {
		Events struct {
			Events []struct {
				ID       string `json:"id"`
				Position int64  `json:"position"`
				Type     string `json:"type"`
			} `json:"events"`
			Next    int64 `json:"next"`
			Head    int64 `json:"head"`
			HasMore bool  `json:"hasMore"`
		} `json:"events"`
	}
	c.mustPost(`query($after: Position) { events(after: $after, first: 1) { events { id position type } next head hasMore } }`, map[string]any{"after": 0}, &page)
	if len(page.Events.Events) != 1 || page.Events.Events[0].ID != a.Events[0].ID || !page.Events.HasMore || page.Events.Head != a.Position {
		t.Fatalf("first page = %+v", page)
	}
	c.mustPost(`query($after: Position) { events(after: $after, types: ["LedgerCredited"]) { events { id position type } next head hasMore } }`, map[string]any{"after": fmt.Sprint(page.Events.Next)}, &page)
	if len(page.Events.Events) != 1 || page.Events.Events[0].Type != "LedgerCredited" || page.Events.HasMore {
		t.Fatalf("filtered page (position given as a string) = %+v", page)
	}
	c.mustPost(`{ events(stream: "ledger-1", types: ["LedgerOpened"]) { events { id position type } next head hasMore } }`, nil, &page)
	if len(page.Events.Events) != 1 || page.Events.Events[0].Type != "LedgerOpened" {
		t.Fatalf("one stream, one type = %+v", page)
	}
	c.mustPost(`{ events(correlationId: "corr-42") { events { id } } }`, nil, &page)
	if len(page.Events.Events) != 2 {
		t.Fatalf("by correlation id = %+v", page)
	}

	var stream struct {
		Stream struct {
			Version int `json:"version"`
			Events  []struct {
				StreamVersion int `json:"streamVersion"`
			} `json:"events"`
		} `json:"stream"`
	}
	c.mustPost(`{ stream(id: "ledger-1", backwards: true, first: 1) { version events { streamVersion } } }`, nil, &stream)
	if stream.Stream.Version != 2 || len(stream.Stream.Events) != 1 || stream.Stream.Events[0].StreamVersion != 2 {
		t.Fatalf("stream = %+v", stream)
	}

	// The same events again (same ids) are an idempotent retry.
	for i, e := range a.Events {
		events[i]["id"] = e.ID
	}
	c.mustPost(appendMutation, map[string]any{"stream": "ledger-1", "expected": 0, "events": events}, &res)
	if !res.AppendEvents.Duplicate || res.AppendEvents.Position != a.Position {
		t.Fatalf("retry = %+v, want duplicate at %d", res.AppendEvents, a.Position)
	}
}

func TestErrorsCarryCodes(t *testing.T) {
	store := memStore()
	c := newServer(t, store, nil)
	ok := []map[string]any{{"type": "A", "data": map[string]any{}}}
	var res appendOut
	c.mustPost(appendMutation, map[string]any{"stream": "s", "events": ok}, &res)

	cases := []struct {
		name, query string
		vars        map[string]any
		code, field string
		ext         map[string]any
	}{
		{"wrong expected version", appendMutation, map[string]any{"stream": "s", "expected": 5, "events": ok}, "CONFLICT", "",
			map[string]any{"expectedVersion": "5", "actualVersion": float64(1)}},
		{"stream must not exist", appendMutation, map[string]any{"stream": "s", "expected": 0, "events": ok}, "CONFLICT", "", nil},
		{"empty stream id", appendMutation, map[string]any{"stream": "", "events": ok}, "VALIDATION", "stream", nil},
		{"unknown expected version", appendMutation, map[string]any{"stream": "s", "expected": -9, "events": ok}, "VALIDATION", "expectedVersion", nil},
		{"no events", appendMutation, map[string]any{"stream": "s", "events": []any{}}, "VALIDATION", "events", nil},
		{"data not an object", appendMutation, map[string]any{"stream": "s", "events": []map[string]any{{"type": "A", "data": []int{1}}}}, "VALIDATION", "events.0.data", nil},
		{"metadata not an object", appendMutation, map[string]any{"stream": "s", "events": []map[string]any{{"type": "A", "data": map[string]any{}, "metadata": "x"}}}, "VALIDATION", "events.0.metadata", nil},
		{"a correlationId that is not a string", appendMutation, map[string]any{"stream": "s", "events": []map[string]any{ok[0], {"type": "A", "data": map[string]any{}, "metadata": map[string]any{"correlationId": 5}}}}, "VALIDATION", "events.1.metadata.correlationId", nil},
		{"an empty correlationId", appendMutation, map[string]any{"stream": "s", "events": []map[string]any{{"type": "A", "data": map[string]any{}, "metadata": map[string]any{"correlationId": ""}}}}, "VALIDATION", "events.0.metadata.correlationId", nil},
		{"a correlationId with a newline", appendMutation, map[string]any{"stream": "s", "events": []map[string]any{{"type": "A", "data": map[string]any{}, "metadata": map[string]any{"correlationId": "a\nb"}}}}, "VALIDATION", "events.0.metadata.correlationId", nil},
		{"an oversized correlationId", appendMutation, map[string]any{"stream": "s", "events": []map[string]any{{"type": "A", "data": map[string]any{}, "metadata": map[string]any{"correlationId": strings.Repeat("c", 129)}}}}, "VALIDATION", "events.0.metadata.correlationId", nil},
		{"bad event type", appendMutation, map[string]any{"stream": "s", "events": []map[string]any{{"type": "no spaces", "data": map[string]any{}}}}, "VALIDATION", "events.0.type", nil},
		{"an aggregate's stream", appendMutation, map[string]any{"stream": "account-1", "events": ok}, "VALIDATION", "stream", nil},
		{"oversized stream id", appendMutation, map[string]any{"stream": strings.Repeat("x", 500), "events": ok}, "VALIDATION", "stream", nil},
		{"an event id of the gateway's own (UUID version 8)", appendMutation, map[string]any{"stream": "s", "events": []map[string]any{{"type": "A", "data": map[string]any{}}, {"id": "0f0e0d0c-0b0a-8900-8706-050403020100", "type": "A", "data": map[string]any{}}}}, "VALIDATION", "events.1.id", nil},
		{"negative position", `{ events(after: -1) { next } }`, nil, "VALIDATION", "", nil},
		{"position not a number", `query($a: Position) { events(after: $a) { next } }`, map[string]any{"a": "ten"}, "VALIDATION", "", nil},
		{"first too large", `{ events(first: 100000) { next } }`, nil, "VALIDATION", "first", nil},
		{"first zero", `{ events(first: 0) { next } }`, nil, "VALIDATION", "first", nil},
		{"correlation combined", `{ events(correlationId: "c", types: ["A"]) { next } }`, nil, "VALIDATION", "correlationId", nil},
		{"stream negative version", `{ stream(id: "s", fromVersion: -1) { version } }`, nil, "VALIDATION", "fromVersion", nil},
	}
	for _, tc := range cases {
		out, _ := c.post(tc.query, tc.vars)
		if len(out.Errors) != 1 {
			t.Errorf("%s: errors = %+v, want one", tc.name, out.Errors)
			continue
		}
		ext := out.Errors[0].Extensions
		if ext["code"] != tc.code {
			t.Errorf("%s: code = %v (%s), want %s", tc.name, ext["code"], out.Errors[0].Message, tc.code)
		}
		if tc.field != "" && ext["field"] != tc.field {
			t.Errorf("%s: field = %v, want %s", tc.name, ext["field"], tc.field)
		}
		for k, v := range tc.ext {
			if ext[k] != v {
				t.Errorf("%s: extensions[%s] = %v, want %v", tc.name, k, ext[k], v)
			}
		}
	}
	if v, _ := store.StreamVersion(context.Background(), "s"); v != 1 {
		t.Fatalf("refused mutations changed stream s to version %d", v)
	}
}

// failingStore fails reads with an error that must not reach clients.
type failingStore struct{ *eventstore.Memory }

func (failingStore) ReadAll(context.Context, eventstore.AllQuery) (eventstore.Page, error) {
	return eventstore.Page{}, errors.New(`pq: relation "secret_table" does not exist`)
}

func TestInternalErrorsDoNotLeak(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	c := newServer(t, failingStore{memStore()}, log)
	out, resp := c.post(`{ events { next } }`, nil)
	if len(out.Errors) != 1 {
		t.Fatalf("errors = %+v", out.Errors)
	}
	e := out.Errors[0]
	reqID := resp.Header.Get("X-Request-ID")
	if e.Message != "internal error" || e.Extensions["code"] != "INTERNAL" || e.Extensions["requestId"] != reqID || reqID == "" {
		t.Fatalf("error = %+v (request id %s)", e, reqID)
	}
	if strings.Contains(fmt.Sprint(out), "secret_table") {
		t.Fatal("the internal error leaked to the client")
	}
	if !strings.Contains(logs.String(), "secret_table") || !strings.Contains(logs.String(), reqID) {
		t.Fatalf("the internal error was not logged with its request id: %s", logs.String())
	}
}
