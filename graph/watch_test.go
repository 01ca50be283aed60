package graph_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"cqrsgate/graph"
)

// A change the read model applies later than the read timeout (its table
// locked for a moment, a rebuild, a slow batch) still reaches a row
// subscriber: the subscription waits and reads the row again, rather than
// skip the change, which is this account's last.
func TestRowSubscriptionsDeliverChangesTheReadModelIsLateFor(t *testing.T) {
	g := newFullGateway(t, 300*time.Millisecond)
	g.mustMutate("openAccount", map[string]any{"accountId": "late-1", "owner": "ada", "currency": "EUR", "initialDeposit": 100})
	c := (&wsServer{url: "ws" + strings.TrimPrefix(g.url, "http")}).dial(t, graph.ProtocolTransportWS)
	c.init()
	c.send(subscribeMsg("s", balanceSub, map[string]any{"id": "late-1", "after": 0}))
	if b := balanceOf(t, c.expect("next")); b != 100 {
		t.Fatalf("first balance %d, want 100", b)
	}
	ctx := context.Background()
	tx, err := g.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `LOCK TABLE readmodel.account_summary IN EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	g.mustMutate("depositMoney", map[string]any{"accountId": "late-1", "amount": 5})
	time.Sleep(900 * time.Millisecond) // three read timeouts
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if b := balanceOf(t, c.expect("next")); b != 105 {
		t.Fatalf("balance after the late deposit %d, want 105", b)
	}
}

// A poll subscription outlives a failed poll (the database unable to
// answer for a moment): it sends the next value once polls succeed again,
// rather than end with a bare "complete" that clients take for the end.
func TestPollSubscriptionsOutliveFailedPolls(t *testing.T) {
	g := newFullGateway(t, 5*time.Second)
	c := (&wsServer{url: "ws" + strings.TrimPrefix(g.url, "http")}).dial(t, graph.ProtocolTransportWS)
	c.init()
	c.send(subscribeMsg("s", `subscription { projectionStatus(intervalMs: 250) { name } }`, nil))
	c.expect("next")
	ctx := context.Background()
	if _, err := g.pool.Exec(ctx, `ALTER TABLE projections RENAME TO projections_away`); err != nil {
		t.Fatal(err)
	}
	time.Sleep(600 * time.Millisecond) // a few failed polls
	if _, err := g.pool.Exec(ctx, `ALTER TABLE projections_away RENAME TO projections`); err != nil {
		t.Fatal(err)
	}
	// Values sent before the failures may still be on their way; one comes
	// after them, and the subscription does not end.
	restored := time.Now()
	for {
		m := c.read()
		if m.Type != "next" {
			t.Fatalf("got %s %s, want the subscription to go on", m.Type, m.Payload)
		}
		if time.Since(restored) > 300*time.Millisecond {
			return
		}
	}
}

func balanceOf(t *testing.T, m wsMsg) int64 {
	t.Helper()
	var p struct {
		Data struct{ AccountChanged struct{ Balance int64 } }
	}
	if err := json.Unmarshal(m.Payload, &p); err != nil {
		t.Fatal(err)
	}
	return p.Data.AccountChanged.Balance
}
