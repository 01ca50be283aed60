package graph

import (
	"context"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// fakeExec yields one payload ("old") at once, then ends when end is closed.
type fakeExec struct{ end chan struct{} }

func (fakeExec) CreateOperationContext(context.Context, *graphql.RawParams) (*graphql.OperationContext, gqlerror.List) {
	return nil, nil
}
func (f fakeExec) DispatchOperation(ctx context.Context, _ *graphql.OperationContext) (graphql.ResponseHandler, context.Context) {
	n := 0
	return func(ctx context.Context) *graphql.Response {
		n++
		if n == 1 {
			return &graphql.Response{Data: json.RawMessage(`{"v":"old"}`)}
		}
		<-f.end
		return nil
	}, ctx
}
func (fakeExec) DispatchError(context.Context, gqlerror.List) *graphql.Response { return nil }

// TestAJoinerGetsNoPayloadFromBeforeItJoined: a subscriber that joins a
// shared subscription (not replayLatest) after its last payload is not sent
// that payload, older than the join, when the execution ends.
func TestAJoinerGetsNoPayloadFromBeforeItJoined(t *testing.T) {
	ws := &Websocket{}
	ws.init()
	f := fakeExec{end: make(chan struct{})}
	c := &wsConn{t: ws, exec: f, finished: true, done: make(chan struct{})} // no writer: frames stay in pending
	rc := &graphql.OperationContext{Operation: &ast.OperationDefinition{Operation: ast.Subscription}, RawQuery: "subscription{x}"}
	co := coalescing{coalesced: true, shared: true}
	newSub := func(id string) (*wsSub, context.Context) {
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		return &wsSub{id: id, c: c, cancel: cancel}, ctx
	}
	pending := func(id string) string {
		c.qmu.Lock()
		defer c.qmu.Unlock()
		return string(c.pending[id])
	}
	a, actx := newSub("a")
	doneA := make(chan struct{})
	go func() { defer close(doneA); ws.runShared(actx, a, rc, co) }()
	for deadline := time.Now().Add(2 * time.Second); pending("a") == ""; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("a got no payload")
		}
	}
	b, bctx := newSub("b") // joins after "old" was produced
	doneB := make(chan struct{})
	go func() { defer close(doneB); ws.runShared(bctx, b, rc, co) }()
	time.Sleep(100 * time.Millisecond)
	close(f.end) // the execution ends normally, nothing new
	<-doneA
	<-doneB
	if p := pending("b"); strings.Contains(p, "old") {
		t.Fatalf("b, which joined after it, was sent the earlier payload at the end: %s", p)
	}
}

// Parts of a share key that cannot be encoded give a key no other
// subscription has: the error was ignored, and every such subscription,
// whatever its caller's scope, had the key "" and shared one execution.
func TestShareKeysThatCannotBeEncodedShareNothing(t *testing.T) {
	ws := &Websocket{}
	bad := []any{"acme|reader", "", "subscription { x }", map[string]any{"n": math.Inf(1)}}
	if a, b := ws.keyOf(bad), ws.keyOf(bad); a == b || a == "" || b == "" {
		t.Fatalf("two keys of parts that cannot be encoded: %q and %q, want two keys of their own", a, b)
	}
	good := []any{"acme|reader", "", "subscription { x }", map[string]any{"n": 1}}
	if a, b := ws.keyOf(good), ws.keyOf(good); a != b {
		t.Fatalf("alike parts: keys %q and %q", a, b)
	}
}
