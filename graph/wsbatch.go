package graph

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// batchConn is a websocket connection's socket with write batching: while
// the connection's writer drains its queue, the frames gorilla/websocket
// writes are gathered and reach the socket in one write when the queue is
// empty (or the batch is large). Under load a subscriber's frames then cost
// one system call per batch instead of one each; an idle connection's
// single frame goes out at once, so batching adds no latency.
type batchConn struct {
	net.Conn
	// br is the websocket's buffered reader of Conn (see Hijack); nil when
	// the upgrader made its own.
	br *bufio.Reader

	mu       sync.Mutex
	batching bool
	timeout  time.Duration // while batching: each flush's write deadline is this from its start
	buf      *[]byte       // pending bytes while batching; from writeBuffers
	err      error         // the first failed flush: later writes fail with it

	// written counts the bytes the socket has taken: a close that waits
	// behind writes to a slow client watches it move (see closeWith).
	written atomic.Int64
}

// batchFlushAt is the batch size at which frames are written without
// waiting for the queue to empty.
const batchFlushAt = 32 << 10

// writeBuffers are a connection writer's byte buffers: the frames a batch
// gathers (batchConn), and a payload being framed into its message (see
// outgoing). Those longer than maxPooledWrite are not kept, so that a
// rare large batch or message does not pin its buffer.
var writeBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 8<<10); return &b }}

const maxPooledWrite = 64 << 10

// putWriteBuffer gives b back to writeBuffers, unless it is too long.
func putWriteBuffer(b *[]byte) {
	if cap(*b) <= maxPooledWrite {
		*b = (*b)[:0]
		writeBuffers.Put(b)
	}
}

// Write implements net.Conn: straight through, or into the batch.
func (b *batchConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return 0, b.err
	}
	if !b.batching {
		n, err := b.Conn.Write(p)
		b.written.Add(int64(n))
		return n, err
	}
	if b.buf == nil {
		b.buf = writeBuffers.Get().(*[]byte)
	}
	*b.buf = append(*b.buf, p...)
	if len(*b.buf) >= batchFlushAt {
		if err := b.flushLocked(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// SetWriteDeadline implements net.Conn. While batching it does nothing:
// gorilla/websocket sets the deadline before each frame it writes, and
// setting a socket's deadline (a runtime timer) for each of a fan-out's
// frames cost a sixth of the gateway's CPU, while a batch's frames reach
// the socket only when it is flushed, each flush within the batch's
// timeout from its start (see begin).
func (b *batchConn) SetWriteDeadline(t time.Time) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.batching {
		return nil
	}
	return b.Conn.SetWriteDeadline(t)
}

// begin starts gathering writes; each write to the socket that follows,
// until end, must be done within timeout from its start.
func (b *batchConn) begin(timeout time.Duration) {
	b.mu.Lock()
	b.batching, b.timeout = true, timeout
	b.mu.Unlock()
}

// end writes what was gathered (within begin's timeout) and stops
// gathering.
func (b *batchConn) end() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.batching = false
	return b.flushLocked()
}

// flushLocked writes the batch to the socket within the batch's timeout;
// b.mu is held.
func (b *batchConn) flushLocked() error {
	if b.buf == nil || b.err != nil {
		return b.err
	}
	_ = b.Conn.SetWriteDeadline(time.Now().Add(b.timeout))
	var err error
	for rest := *b.buf; len(rest) > 0 && err == nil; {
		// In pieces, so that written moves while a slow client takes in
		// a large batch.
		var n int
		n, err = b.Conn.Write(rest[:min(len(rest), 64<<10)])
		b.written.Add(int64(n))
		rest = rest[n:]
	}
	putWriteBuffer(b.buf)
	b.buf = nil
	if err != nil {
		b.err = err
	}
	return err
}

// timedOut reports whether a write to the socket failed for its deadline:
// the peer took in nothing for the batch's timeout.
func (b *batchConn) timedOut() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return errors.Is(b.err, os.ErrDeadlineExceeded)
}

// batchHijacker hands gorilla/websocket's upgrader a batchConn in place
// of the hijacked socket.
type batchHijacker struct {
	http.ResponseWriter
	conn *batchConn
}

// It also hands it the connection's reader, a small one (client messages
// are small; larger ones are read in pieces), so that waitReadable can see
// whether anything is buffered.
func (h *batchHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	h.conn = &batchConn{Conn: c}
	if rw.Reader.Buffered() > 0 {
		return h.conn, rw, nil // the client did not wait for the handshake: the upgrader refuses it
	}
	h.conn.br = bufio.NewReaderSize(h.conn, wsReadBufferSize)
	return h.conn, bufio.NewReadWriter(h.conn.br, rw.Writer), nil
}

// wsReadBufferSize is the size of a connection's read buffer; the upgrader
// uses the hijacker's reader only when it is larger than 256 bytes.
const wsReadBufferSize = 512

// waitReadable returns when the client has sent something to read, the
// connection has failed or its read deadline has passed (the read that
// follows reports which), without reading. An idle connection's reader
// waits here rather than deep in gorilla/websocket's frame reader, so that
// its goroutine needs the smallest stack the runtime gives.
func (b *batchConn) waitReadable() {
	if b.br == nil || b.br.Buffered() > 0 {
		return
	}
	sc, ok := b.Conn.(syscall.Conn)
	if !ok {
		return // not a socket (a TLS connection has buffers of its own): the read waits
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Read(socketReadable)
}
