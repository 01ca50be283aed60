//go:build !race

package graph_test

import (
	"runtime"
	"runtime/metrics"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"cqrsgate/graph"
)

// TestIdleReadersKeepTheSmallestStack: the runtime starts goroutines with
// a stack sized to the average its collections scan, and an idle
// connection's reader, waiting for the socket or, after a keep-alive pong,
// in gorilla/websocket's frame reader, is most of a gateway's goroutines:
// it must stay small enough for new goroutines to start at the smallest
// stack (2 KiB), or every connection's reader takes 4. A frame of a few
// more bytes in the reader's path did that (the average was 5 bytes short
// of the limit).
//
// Not under the race detector, whose instrumentation makes every frame
// larger; .ci/run runs it without.
func TestIdleReadersKeepTheSmallestStack(t *testing.T) {
	s := newWSServer(t, &graph.Websocket{})
	const n = 1000
	var clients []*wsClient
	for range n {
		c := s.dial(t, graph.ProtocolTransportWS)
		c.init()
		clients = append(clients, c)
	}
	starting := func() uint64 {
		time.Sleep(300 * time.Millisecond) // the readers settle in their waits
		runtime.GC()
		runtime.GC()
		m := []metrics.Sample{{Name: "/gc/stack/starting-size:bytes"}, {Name: "/gc/scan/stack:bytes"}, {Name: "/sched/goroutines:goroutines"}}
		metrics.Read(m)
		t.Logf("%d bytes of stack scanned over %d goroutines", m[1].Value.Uint64(), m[2].Value.Uint64())
		return m[0].Value.Uint64()
	}
	if got := starting(); got > 2048 {
		t.Errorf("with %d idle readers waiting for their sockets, goroutines start with %d bytes of stack, want 2048", n, got)
	}
	// A pong leaves each reader waiting in the frame reader; a message
	// first, then a pong, leaves it there on the goroutine that handled
	// the message's successor.
	for _, c := range clients {
		if err := c.conn.WriteControl(websocket.PongMessage, nil, time.Now().Add(time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	if got := starting(); got > 2048 {
		t.Errorf("with %d idle readers waiting after a pong, goroutines start with %d bytes of stack, want 2048", n, got)
	}
	for _, c := range clients {
		c.send(map[string]any{"type": "ping"})
		c.expect("pong")
		if err := c.conn.WriteControl(websocket.PongMessage, nil, time.Now().Add(time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	if got := starting(); got > 2048 {
		t.Errorf("with %d idle readers waiting after a message and a pong, goroutines start with %d bytes of stack, want 2048", n, got)
	}
}
