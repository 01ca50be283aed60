package graph

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
)

// coalescing is how a subscription's payloads are delivered, read from the
// @coalesced directive on its root field.
type coalescing struct {
	coalesced    bool // latest-wins delivery; never disconnected for slowness
	replayLatest bool // a joining subscriber receives the latest payload at once
	shared       bool // coalesced and started "from now": run once for all alike
}

// coalescedOf reads the operation's root field: a subscription field marked
// @coalesced is delivered latest-wins, and, when it is not given `after`
// (it starts from now), is shared by every subscriber with the same query,
// variables and scope.
func coalescedOf(rc *graphql.OperationContext) coalescing {
	op := rc.Operation
	if op == nil || op.Operation != ast.Subscription || len(op.SelectionSet) != 1 {
		return coalescing{}
	}
	f, ok := op.SelectionSet[0].(*ast.Field)
	if !ok || f.Definition == nil {
		return coalescing{}
	}
	d := f.Definition.Directives.ForName("coalesced")
	if d == nil {
		return coalescing{}
	}
	co := coalescing{coalesced: true}
	if v, ok := d.ArgumentMap(nil)["replayLatest"].(bool); ok {
		co.replayLatest = v
	}
	co.shared = f.ArgumentMap(rc.Variables)["after"] == nil
	return co
}

// shareGroup is one execution of a shared subscription and the
// subscribers it feeds.
type shareGroup struct {
	key    string
	cancel context.CancelFunc
	done   chan struct{} // closed when the execution has ended

	mu      sync.Mutex
	members map[*wsSub]struct{}
	latest  []byte // the latest payload, for replayLatest
}

// shareKey identifies subscriptions that produce the same payloads: the
// same document, operation, variables and caller scope.
func (t *Websocket) shareKey(ctx context.Context, rc *graphql.OperationContext) string {
	scope := ""
	if t.ShareScope != nil {
		scope = t.ShareScope(ctx)
	}
	return t.keyOf([]any{scope, rc.OperationName, rc.RawQuery, rc.Variables}) // map keys sorted: canonical
}

// keyOf encodes the parts of a share key. Parts that cannot be encoded
// (no variables coerced by gqlgen are such today) get a key no other
// subscription has, so that it shares nothing: were the error ignored,
// every such subscription, whatever its caller's scope, would have the key
// "" and share one execution.
func (t *Websocket) keyOf(parts []any) string {
	k, err := json.Marshal(parts)
	if err != nil {
		return "\x00unshared " + strconv.FormatInt(t.unshared.Add(1), 10)
	}
	return string(k)
}

// runShared joins sub to the running execution of its subscription, or
// starts one, and returns when sub ends (completed by the client, its
// connection closed) or the execution does.
func (t *Websocket) runShared(ctx context.Context, sub *wsSub, rc *graphql.OperationContext, co coalescing) {
	key := t.shareKey(ctx, rc)
	t.gmu.Lock()
	g := t.groups[key]
	if g == nil {
		// The execution outlives the subscriber that started it: it runs
		// with its values (operation, caller, headers) but its own lifetime.
		gctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		g = &shareGroup{key: key, cancel: cancel, done: make(chan struct{}), members: map[*wsSub]struct{}{}}
		t.groups[key] = g
		// A member before the execution starts: its first payload (an
		// error at once, for an id no row can have) must reach sub, which
		// otherwise got a bare complete.
		g.members[sub] = struct{}{}
		t.groupsWG.Add(1)
		go t.execShared(gctx, g, sub.c.exec, rc)
	}
	g.mu.Lock()
	g.members[sub] = struct{}{}
	latest := g.latest
	g.mu.Unlock()
	t.gmu.Unlock()
	if co.replayLatest && latest != nil {
		sub.deliverLatest(latest)
	}

	select {
	case <-ctx.Done():
	case <-g.done:
	}

	t.gmu.Lock()
	g.mu.Lock()
	delete(g.members, sub)
	empty := len(g.members) == 0
	g.mu.Unlock()
	if empty && t.groups[key] == g {
		delete(t.groups, key) // the next subscriber starts afresh
		g.cancel()
	}
	t.gmu.Unlock()
}

// execShared runs a shared subscription: each payload is encoded once and
// handed to every member (latest-wins, so a slow member holds up nobody).
func (t *Websocket) execShared(ctx context.Context, g *shareGroup, exec graphql.GraphExecutor, rc *graphql.OperationContext) {
	defer t.groupsWG.Done()
	defer close(g.done)
	defer func() {
		t.gmu.Lock()
		if t.groups[g.key] == g {
			delete(t.groups, g.key)
		}
		t.gmu.Unlock()
		g.cancel()
	}()
	responses, ctx := exec.DispatchOperation(ctx, rc)
	var members []*wsSub
	for {
		resp := responses(ctx)
		if resp == nil || ctx.Err() != nil {
			return
		}
		payload, err := encodeResponse(resp)
		if err != nil {
			t.Log.ErrorContext(ctx, "graphql ws: encode response", "err", err)
			continue
		}
		if len(resp.Errors) > 0 {
			// An error may end the execution (one at once, for an id no
			// row can have, does): nobody joins it from now on, to miss
			// the error and get a bare complete; a new subscriber starts
			// an execution of its own.
			t.gmu.Lock()
			if t.groups[g.key] == g {
				delete(t.groups, g.key)
			}
			t.gmu.Unlock()
		}
		g.mu.Lock()
		g.latest = payload
		members = members[:0]
		for m := range g.members {
			members = append(members, m)
		}
		g.mu.Unlock()
		for _, m := range members {
			m.deliverLatest(payload)
		}
	}
}

// SharedSubscriptions returns how many shared subscription executions are
// running (each feeds every subscriber with the same selection).
func (t *Websocket) SharedSubscriptions() int {
	t.init()
	t.gmu.Lock()
	defer t.gmu.Unlock()
	return len(t.groups)
}
