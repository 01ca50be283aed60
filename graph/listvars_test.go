package graph_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"cqrsgate/eventstore"
	"cqrsgate/graph"
)

// Long list variables (see listVariables) arrive whole, and a bad value in
// one is refused with gqlparser's own error, the same as in a short list:
// nothing of the append is stored.
func TestLongEventListsThroughVariables(t *testing.T) {
	store := memStore()
	c := newServer(t, store, nil)
	const q = `mutation($s: String!, $e: [EventInput!]!) { appendEvents(stream: $s, events: $e) { events { type data } } }`
	events := func(n int) []any {
		l := make([]any, n)
		for i := range l {
			l[i] = map[string]any{"type": "Tick", "data": map[string]any{"i": i, "big": json.Number("123456789012345678901234567890")}}
		}
		return l
	}
	for round := range 2 { // the second finds the operation in the query cache
		var out struct {
			AppendEvents struct {
				Events []struct {
					Type string
					Data json.RawMessage
				}
			}
		}
		c.mustPost(q, map[string]any{"s": fmt.Sprint("long-", round), "e": events(40)}, &out)
		if got := len(out.AppendEvents.Events); got != 40 {
			t.Fatalf("round %d: %d events appended, want 40", round, got)
		}
		if d := string(out.AppendEvents.Events[39].Data); d != `{"big":123456789012345678901234567890,"i":39}` {
			t.Fatalf("round %d: the last event's data is %s", round, d)
		}
	}
	for _, n := range []int{3, 40} {
		bad := events(n)
		bad[n-1].(map[string]any)["color"] = "red"
		bad[0].(map[string]any)["version"] = 1
		out, _ := c.post(q, map[string]any{"s": fmt.Sprint("bad-", n), "e": bad})
		if len(out.Errors) != 1 || out.Errors[0].Message != "unknown field" || fmt.Sprint(out.Errors[0].Path) != fmt.Sprintf("[variable e %d color]", n-1) ||
			out.Errors[0].Extensions["code"] != "GRAPHQL_VALIDATION_FAILED" {
			t.Fatalf("%d events, one with an unknown field: %+v", n, out.Errors)
		}
		if p, err := store.ReadAll(context.Background(), eventstore.AllQuery{}); err != nil || p.Head != 80 {
			t.Fatalf("after a refused append the log's head is %d (%v), want 80", p.Head, err)
		}
	}
}

// The same over a websocket: a long list arrives whole, a bad value in it
// is gqlparser's error.
func TestLongEventListsOverWebsockets(t *testing.T) {
	s := newWSServer(t, &graph.Websocket{})
	c := s.dial(t, "graphql-transport-ws")
	c.init()
	const q = `mutation($e: [EventInput!]!) { appendEvents(stream: "ws-long", events: $e) { events { data } } }`
	events := make([]any, 40)
	for i := range events {
		events[i] = map[string]any{"type": "Tick", "data": map[string]any{"i": i}}
	}
	for round := range 2 { // the second finds the operation in the query cache
		c.send(subscribeMsg(fmt.Sprint("ok-", round), q, map[string]any{"e": events}))
		var out struct {
			Data struct {
				AppendEvents struct {
					Events []struct{ Data json.RawMessage }
				}
			}
		}
		if err := json.Unmarshal(c.expect("next").Payload, &out); err != nil {
			t.Fatal(err)
		}
		if got := out.Data.AppendEvents.Events; len(got) != 40 || string(got[39].Data) != `{"i":39}` {
			t.Fatalf("round %d: %d events, the last %s", round, len(got), got[len(got)-1].Data)
		}
		c.expect("complete")
	}
	events[20].(map[string]any)["color"] = "red"
	c.send(subscribeMsg("bad", q, map[string]any{"e": events}))
	var errs []struct {
		Message string
		Path    []any
	}
	if err := json.Unmarshal(c.expect("error").Payload, &errs); err != nil {
		t.Fatal(err)
	}
	if len(errs) != 1 || errs[0].Message != "unknown field" || fmt.Sprint(errs[0].Path) != "[variable e 20 color]" {
		t.Fatalf("an unknown field: %+v", errs)
	}
}
