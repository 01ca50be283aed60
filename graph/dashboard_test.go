package graph_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"cqrsgate/graph"
)

func TestGatewayStatsSubscription(t *testing.T) {
	s := newWSServer(t, &graph.Websocket{})
	c := s.dial(t, graph.ProtocolTransportWS)
	c.init()
	c.send(subscribeMsg("bad", `subscription { gatewayStats(intervalMs: 10) { head } }`, nil))
	if m := c.expect("next"); !strings.Contains(string(m.Payload), "intervalMs must be 250 to 60000") || !strings.Contains(string(m.Payload), `"VALIDATION"`) {
		t.Fatalf("a bad interval: %s", m.Payload)
	}
	c.expect("complete")
	c.send(subscribeMsg("1", `subscription { gatewayStats(intervalMs: 250) { head eventsPerSecond websocketConnections liveSubscriptions at } }`, nil))
	type stats struct {
		Head                 int64
		EventsPerSecond      float64
		WebsocketConnections int
		LiveSubscriptions    int
		At                   time.Time
	}
	read := func() stats {
		var p struct{ Data struct{ GatewayStats stats } }
		if err := json.Unmarshal(c.expect("next").Payload, &p); err != nil {
			t.Fatal(err)
		}
		return p.Data.GatewayStats
	}
	first := read()
	if first.WebsocketConnections != 1 || first.At.IsZero() {
		t.Fatalf("first figures: %+v", first)
	}
	appendN(t, s.store, "stats-1", 20)
	deadline := time.Now().Add(5 * time.Second)
	for {
		st := read()
		if st.Head >= first.Head+20 && st.EventsPerSecond > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the figures did not follow 20 appends: %+v", st)
		}
	}
}
