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

// countingConn records each write that reaches the socket.
type countingConn struct {
	net.Conn
	writes [][]byte
	fail   error
}

func (c *countingConn) Write(p []byte) (int, error) {
	if c.fail != nil {
		return 0, c.fail
	}
	c.writes = append(c.writes, bytes.Clone(p))
	return len(p), nil
}

func (c *countingConn) SetWriteDeadline(time.Time) error { return nil }

func TestBatchConnGathersFramesIntoOneWrite(t *testing.T) {
	sock := &countingConn{}
	b := &batchConn{Conn: sock}

	// Outside a batch, writes go straight through.
	if _, err := b.Write([]byte("a")); err != nil || len(sock.writes) != 1 {
		t.Fatalf("unbatched write: %v, %d socket writes", err, len(sock.writes))
	}
	b.begin()
	for _, f := range []string{"b", "c", "d"} {
		if n, err := b.Write([]byte(f)); err != nil || n != 1 {
			t.Fatalf("batched write: %d, %v", n, err)
		}
	}
	if len(sock.writes) != 1 {
		t.Fatalf("%d socket writes before the batch ended, want 1", len(sock.writes))
	}
	if err := b.end(time.Second); err != nil {
		t.Fatal(err)
	}
	if len(sock.writes) != 2 || string(sock.writes[1]) != "bcd" {
		t.Fatalf("socket writes %q, want [a bcd]", sock.writes)
	}

	// A large batch goes out without waiting for its end.
	b.begin()
	big := strings.Repeat("x", batchFlushAt)
	if _, err := b.Write([]byte(big)); err != nil {
		t.Fatal(err)
	}
	if len(sock.writes) != 3 || len(sock.writes[2]) != batchFlushAt {
		t.Fatalf("%d socket writes after a %d-byte frame, want 3", len(sock.writes), batchFlushAt)
	}
	if err := b.end(time.Second); err != nil || len(sock.writes) != 3 {
		t.Fatalf("ending an empty batch: %v, %d socket writes", err, len(sock.writes))
	}

	// A failed flush fails the batch and every later write.
	sock.fail = errors.New("connection reset")
	b.begin()
	_, _ = b.Write([]byte("e"))
	if err := b.end(time.Second); err == nil {
		t.Fatal("a failed flush was not reported")
	}
	sock.fail = nil
	if _, err := b.Write([]byte("f")); err == nil {
		t.Fatal("a write after a failed flush succeeded")
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
