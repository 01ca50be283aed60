package graph

import (
	"bytes"
	"errors"
	"net"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

// countingConn records each write that reaches the socket, and each
// write deadline set on it; calls lists both in order ("write", "deadline").
type countingConn struct {
	net.Conn
	writes    [][]byte
	deadlines []time.Time
	calls     []string
	fail      error
}

func (c *countingConn) Write(p []byte) (int, error) {
	if c.fail != nil {
		return 0, c.fail
	}
	c.writes = append(c.writes, bytes.Clone(p))
	c.calls = append(c.calls, "write")
	return len(p), nil
}

func (c *countingConn) SetWriteDeadline(t time.Time) error {
	c.deadlines = append(c.deadlines, t)
	c.calls = append(c.calls, "deadline")
	return nil
}

func TestBatchConnGathersFramesIntoOneWrite(t *testing.T) {
	sock := &countingConn{}
	b := &batchConn{Conn: sock}

	// Outside a batch, writes go straight through.
	if _, err := b.Write([]byte("a")); err != nil || len(sock.writes) != 1 {
		t.Fatalf("unbatched write: %v, %d socket writes", err, len(sock.writes))
	}
	b.begin(time.Second)
	for _, f := range []string{"b", "c", "d"} {
		if n, err := b.Write([]byte(f)); err != nil || n != 1 {
			t.Fatalf("batched write: %d, %v", n, err)
		}
	}
	if len(sock.writes) != 1 {
		t.Fatalf("%d socket writes before the batch ended, want 1", len(sock.writes))
	}
	if err := b.end(); err != nil {
		t.Fatal(err)
	}
	if len(sock.writes) != 2 || string(sock.writes[1]) != "bcd" {
		t.Fatalf("socket writes %q, want [a bcd]", sock.writes)
	}

	// A large batch goes out without waiting for its end.
	b.begin(time.Second)
	big := strings.Repeat("x", batchFlushAt)
	if _, err := b.Write([]byte(big)); err != nil {
		t.Fatal(err)
	}
	if len(sock.writes) != 3 || len(sock.writes[2]) != batchFlushAt {
		t.Fatalf("%d socket writes after a %d-byte frame, want 3", len(sock.writes), batchFlushAt)
	}
	if err := b.end(); err != nil || len(sock.writes) != 3 {
		t.Fatalf("ending an empty batch: %v, %d socket writes", err, len(sock.writes))
	}

	// A failed flush fails the batch and every later write.
	sock.fail = errors.New("connection reset")
	b.begin(time.Second)
	_, _ = b.Write([]byte("e"))
	if err := b.end(); err == nil {
		t.Fatal("a failed flush was not reported")
	}
	sock.fail = nil
	if _, err := b.Write([]byte("f")); err == nil {
		t.Fatal("a write after a failed flush succeeded")
	}
}

// TestBatchConnSetsTheSocketsDeadlineOncePerFlush: while batching, the
// deadline gorilla/websocket sets before each frame is not set on the
// socket (a runtime timer each time); each flush to the socket, in the
// batch or at its end, is given the batch's timeout from its start.
// Outside a batch, deadlines go straight to the socket.
func TestBatchConnSetsTheSocketsDeadlineOncePerFlush(t *testing.T) {
	sock := &countingConn{}
	b := &batchConn{Conn: sock}
	far := time.Now().Add(time.Hour)
	_ = b.SetWriteDeadline(far)
	if len(sock.deadlines) != 1 || !sock.deadlines[0].Equal(far) {
		t.Fatalf("outside a batch the socket's deadlines are %v, want [%v]", sock.deadlines, far)
	}
	sock.deadlines = nil
	b.begin(5 * time.Second)
	for range 100 {
		_ = b.SetWriteDeadline(far)
		_, _ = b.Write([]byte("frame"))
	}
	if len(sock.deadlines) != 0 {
		t.Fatalf("100 frames in a batch set the socket's deadline %d times before any flush", len(sock.deadlines))
	}
	_ = b.SetWriteDeadline(far)
	start := time.Now()
	_, _ = b.Write([]byte(strings.Repeat("x", batchFlushAt))) // flushes within the batch
	if err := b.end(); err != nil {
		t.Fatal(err)
	}
	end := time.Now()
	if len(sock.deadlines) != 1 || len(sock.writes) != 1 {
		t.Fatalf("%d flushes set %d deadlines, want 1 and 1", len(sock.writes), len(sock.deadlines))
	}
	if d := sock.deadlines[0]; d.Before(start.Add(5*time.Second)) || d.After(end.Add(5*time.Second)) {
		t.Fatalf("a flush's deadline is %v after its start, want the batch's timeout, 5s", d.Sub(start))
	}
	b.begin(5 * time.Second)
	_, _ = b.Write([]byte("last"))
	if err := b.end(); err != nil || len(sock.deadlines) != 2 {
		t.Fatalf("ending a batch: %v, %d deadlines set in all, want 2", err, len(sock.deadlines))
	}
	if want := []string{"deadline", "write", "deadline", "write"}; !reflect.DeepEqual(sock.calls[1:], want) {
		t.Fatalf("the socket saw %v, want each flush's deadline set before its write: %v", sock.calls[1:], want)
	}
}

func TestConnHeadersKeepAllButTheHandshakes(t *testing.T) {
	h := http.Header{
		"Authorization": {"Bearer t"}, "Cookie": {"a=1"}, "X-Request-Id": {"r-1"},
		"Sec-Websocket-Protocol": {"graphql-transport-ws"},
		"Connection":             {"Upgrade"}, "Upgrade": {"websocket"}, "Sec-Websocket-Key": {"k"},
		"Sec-Websocket-Version": {"13"}, "Sec-Websocket-Extensions": {"permessage-deflate"},
	}
	got := connHeaders(h)
	want := http.Header{"Authorization": {"Bearer t"}, "Cookie": {"a=1"}, "X-Request-Id": {"r-1"}, "Sec-Websocket-Protocol": {"graphql-transport-ws"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("kept %v, want %v", got, want)
	}
	h["Authorization"][0] = "changed"
	if got.Get("Authorization") != "Bearer t" {
		t.Fatal("the kept headers share the request's values")
	}
}
