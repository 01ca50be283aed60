//go:build linux && !race

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
// a stack sized to the average its collections scan, plus a guard (928
// bytes on linux/amd64), and an idle connection's reader, waiting for its
// socket or, after a keep-alive pong, in gorilla/websocket's frame reader,
// is most of a gateway's goroutines. Each must use no more than the
// smallest stack (2 KiB) less that guard, or new goroutines start at 4 KiB,
// every connection's reader among them. A frame of a few more bytes in the
// reader's path did that; the path before it was at the limit.
//
// Measured as the stack the collector scans with the readers, less what it
// scanned before them, per reader, so that the test binary's other
// goroutines do not blur it. Not under the race detector, whose
// instrumentation makes every frame larger; .ci/run runs it without.
func TestIdleReadersKeepTheSmallestStack(t *testing.T) {
	const guard = 928 // runtime's stackGuard on linux/amd64 and arm64
	s := newWSServer(t, &graph.Websocket{})
	scanned := func() uint64 {
		time.Sleep(300 * time.Millisecond) // the readers settle in their waits
		runtime.GC()
		m := []metrics.Sample{{Name: "/gc/scan/stack:bytes"}}
		metrics.Read(m)
		return m[0].Value.Uint64()
	}
	before := scanned()
	const n = 500
	var clients []*wsClient
	for range n {
		c := s.dial(t, graph.ProtocolTransportWS)
		c.init()
		clients = append(clients, c)
	}
	perReader := func(what string, now uint64) float64 {
		t.Helper()
		each := (float64(now) - float64(before)) / n
		t.Logf("%s: %.0f bytes of stack each", what, each)
		if each > 2048-guard {
			t.Errorf("%s, each reader uses %.0f bytes of stack, more than %d: goroutines would start with 4 KiB", what, each, 2048-guard)
		}
		return each
	}
	idle := perReader("waiting for their sockets", scanned())
	// A pong leaves each reader waiting in the frame reader.
	for _, c := range clients {
		if err := c.conn.WriteControl(websocket.PongMessage, nil, time.Now().Add(time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	if afterPong := perReader("waiting after a pong", scanned()); afterPong <= idle {
		t.Fatalf("after a pong the readers use %.0f bytes each, no more than before it (%.0f): the pongs were not read", afterPong, idle)
	}
	// A message, then a pong: the wait is on the goroutine that read the
	// message's successor.
	for _, c := range clients {
		c.send(map[string]any{"type": "ping"})
		c.expect("pong")
		if err := c.conn.WriteControl(websocket.PongMessage, nil, time.Now().Add(time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	perReader("waiting after a message and a pong", scanned())
}
