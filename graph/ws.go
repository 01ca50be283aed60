package graph

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/gorilla/websocket"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"cqrsgate/domain"
	"cqrsgate/graph/model"
	"cqrsgate/internal/auth"
	"cqrsgate/internal/jsonvalue"
)

// The websocket subprotocols cqrsgate speaks.
const (
	// ProtocolTransportWS is graphql-transport-ws, the protocol of the
	// graphql-ws library.
	ProtocolTransportWS = "graphql-transport-ws"
	// ProtocolLegacyWS is graphql-ws, the protocol of the older
	// subscriptions-transport-ws library.
	ProtocolLegacyWS = "graphql-ws"
)

// Close codes of graphql-transport-ws, and cqrsgate's own.
const (
	CloseInvalidMessage      = 4400
	CloseUnauthorized        = 4401 // subscribe before connection_ack
	CloseForbidden           = 4403
	CloseSubprotocol         = 4406 // no subprotocol cqrsgate speaks
	CloseInitTimeout         = 4408
	CloseSubscriberExists    = 4409
	CloseTooManyInitRequests = 4429
	// CloseTooSlow: the client did not read its messages fast enough and its
	// send queue overflowed (1013, "try again later").
	CloseTooSlow = 1013
)

// InitFunc checks a connection_init payload (and the upgrade request's
// headers, through ctx: see UpgradeHeaders) and returns the context the
// connection's operations run in. An error closes the socket with 4403,
// its message in the close frame's reason ("Forbidden: " and the message):
// the client sees it, so it must say nothing the client may not know.
// When that context carries an auth.Principal with an expiry, the socket
// is closed with 4403 when the credential expires. The payload is decoded
// as operations' are: numbers as json.Number, as written.
type InitFunc func(ctx context.Context, payload map[string]any) (context.Context, error)

// Websocket is cqrsgate's websocket transport for gqlgen, built on
// gorilla/websocket. It speaks graphql-transport-ws to the letter (close
// codes included) and the legacy graphql-ws, chosen by the client's
// Sec-WebSocket-Protocol. Each connection has one writer with a bounded
// queue: a client that cannot keep up is disconnected with CloseTooSlow
// and never slows anyone else down.
//
// Subscription fields marked @coalesced in the schema stream states, not a
// log: their payloads are delivered latest-wins (a slow client gets the
// newest and is not disconnected), and subscribers started "from now" with
// the same query, variables and ShareScope share one execution whose
// payload is encoded once for all of them. Subscribers of the log
// (`events`) with the same selection and ShareScope share each event's
// encoded payload, wherever in the log they started (see wsstream.go).
//
// An idle connection holds one goroutine, its reader: its writer, and the
// operations of log subscriptions, run only while they have something to
// deliver.
type Websocket struct {
	// AllowedOrigins lists the Origin values accepted (scheme://host[:port])
	// besides the gateway's own host, which is always accepted, as are
	// requests without Origin (not from a browser); "*" accepts any.
	AllowedOrigins []string
	// InitTimeout is how long a client has to send connection_init (default 3s).
	InitTimeout time.Duration
	// KeepAlive is the interval of pings (and, on graphql-ws, "ka"
	// messages); a peer that answers nothing for two intervals is dropped
	// (default 15s).
	KeepAlive time.Duration
	// MaxMessageBytes caps one incoming message (default 64 KiB; larger
	// closes the socket with 1009).
	MaxMessageBytes int64
	// MaxSubscriptions caps the operations running on one connection (default 100).
	MaxSubscriptions int
	// SendQueue is how many outgoing messages may wait for a slow client (default 256).
	SendQueue int
	// WriteTimeout bounds one write to the socket; a peer that accepts
	// nothing for that long is disconnected (default 10s).
	WriteTimeout time.Duration
	// Init checks connection_init; nil accepts every connection.
	Init InitFunc
	// refused is told of operations refused before they run, and schema
	// is the executor's (see observe; both set by NewHandler).
	refused refusalHook
	schema  *ast.Schema
	// ShareScope names what, besides the query and variables, a
	// subscription's payloads depend on in its context (the caller's tenant
	// and roles); subscriptions are shared only within one scope.
	ShareScope func(ctx context.Context) string
	Log        *slog.Logger

	mu       sync.Mutex
	conns    map[*wsConn]struct{}
	closing  bool
	connsWG  sync.WaitGroup
	upgrader websocket.Upgrader
	once     sync.Once

	gmu      sync.Mutex
	groups   map[string]*shareGroup // running shared subscriptions by key
	groupsWG sync.WaitGroup

	cmu    sync.Mutex
	caches map[string]*payloadCache // payloads of log subscriptions, by share key

	selections selectionTexts // the text of log subscriptions' selections (see logShareKey)

	dropped        atomic.Int64 // connections closed for being too slow
	unshared       atomic.Int64 // subscriptions given a key of their own (see keyOf)
	sharedPayloads atomic.Int64 // log payloads sent from a payloadCache
	cachedBytes    atomic.Int64 // the bytes the payload caches hold
}

var _ graphql.Transport = (*Websocket)(nil)

func (t *Websocket) init() {
	t.once.Do(func() {
		if t.InitTimeout <= 0 {
			t.InitTimeout = 3 * time.Second
		}
		if t.KeepAlive <= 0 {
			t.KeepAlive = 15 * time.Second
		}
		if t.MaxMessageBytes <= 0 {
			t.MaxMessageBytes = 64 << 10
		}
		if t.MaxSubscriptions <= 0 {
			t.MaxSubscriptions = 100
		}
		if t.SendQueue <= 0 {
			t.SendQueue = 256
		}
		if t.WriteTimeout <= 0 {
			t.WriteTimeout = 10 * time.Second
		}
		if t.Log == nil {
			t.Log = slog.New(slog.DiscardHandler)
		}
		t.conns = map[*wsConn]struct{}{}
		t.groups = map[string]*shareGroup{}
		t.caches = map[string]*payloadCache{}
		t.upgrader = websocket.Upgrader{
			Subprotocols: []string{ProtocolTransportWS, ProtocolLegacyWS},
			CheckOrigin:  t.checkOrigin,
			// The read buffer is the hijacker's (see batchHijacker); write
			// buffers are shared between connections while they are idle:
			// most of a subscriber's life.
			WriteBufferSize: 4096,
			WriteBufferPool: &sync.Pool{},
		}
	})
}

// Supports implements graphql.Transport: websocket upgrade requests.
func (t *Websocket) Supports(r *http.Request) bool { return websocket.IsWebSocketUpgrade(r) }

func (t *Websocket) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true // not a browser
	}
	for _, allowed := range t.AllowedOrigins {
		if allowed == "*" || strings.EqualFold(allowed, origin) {
			return true
		}
	}
	// The gateway's own pages (playground, dashboard) are always allowed.
	u, err := url.Parse(origin)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host)
}

// Do implements graphql.Transport: it upgrades the request and serves the
// connection on goroutines of its own, returning at once, so that the HTTP
// server's per-request state (its buffers, its goroutine's stack) is freed
// for the connection's lifetime.
func (t *Websocket) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	t.init()
	t.mu.Lock()
	if t.closing {
		t.mu.Unlock()
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	t.connsWG.Add(1)
	t.mu.Unlock()

	hj := &batchHijacker{ResponseWriter: w}
	// The upgrader writes its answer itself, with only the headers it is
	// given: the request id (see withRequestIDs) and the client's
	// correlation id, which its operations take (without one, each takes
	// its own request id: the upgrade's names none of them).
	echo := http.Header{}
	if v := w.Header()[requestIDHeader]; len(v) > 0 {
		echo[requestIDHeader] = v
	}
	if v, ok := sensibleID(r, correlationIDHeader); ok {
		echo[correlationIDHeader] = []string{v}
	}
	ws, err := t.upgrader.Upgrade(hj, r, echo)
	if err != nil {
		t.connsWG.Done()
		return // the upgrader has answered the request
	}
	if hj.conn.br != nil {
		// The upgrader has read nothing from it yet. Reading the socket
		// itself, not through batchConn, keeps the reader's stack short.
		hj.conn.br.Reset(hj.conn.Conn)
	}
	// The request's context ends when Do returns; the connection's must not.
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	c := &wsConn{
		t: t, ws: ws, batch: hj.conn, exec: observe(exec, t.refused, t.schema), ctx: ctx, cancel: cancel,
		done: make(chan struct{}), headers: connHeaders(r.Header),
	}
	t.mu.Lock()
	t.conns[c] = struct{}{}
	if t.closing { // Shutdown began during the upgrade: it did not see c
		c.closeWith(websocket.CloseGoingAway, "server shutting down")
	}
	t.mu.Unlock()
	go c.serve()
}

// Shutdown closes every connection with 1001 (going away) and waits for
// them to end, or for ctx. New upgrades are refused from the start. A
// connection's subscriptions end at once (with no complete: a client
// subscribes again once it has reconnected) and a subscribe it sends
// meanwhile is not run, but a query or mutation it is running is let
// finish, its answer sent, before its connection closes: as an HTTP
// server's Shutdown lets a request in flight finish (a mutation cut off
// mid-append was of unknown outcome to its client). When ctx ends first,
// every connection is closed at once.
func (t *Websocket) Shutdown(ctx context.Context) error {
	t.init()
	t.mu.Lock()
	t.closing = true
	conns := make([]*wsConn, 0, len(t.conns))
	for c := range t.conns {
		conns = append(conns, c)
	}
	t.mu.Unlock()
	for _, c := range conns {
		c.drain()
	}
	done := make(chan struct{})
	go func() { t.connsWG.Wait(); t.groupsWG.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		for _, c := range conns {
			c.closeWith(websocket.CloseGoingAway, "server shutting down")
			_ = c.ws.Close() // the deadline is the deadline: a close frame still waiting goes unsent
		}
		return ctx.Err()
	}
}

// drain begins a connection's end (see Shutdown): its subscriptions end,
// and it closes once no query or mutation of it is running.
func (c *wsConn) drain() {
	c.mu.Lock()
	c.draining = true
	busy := c.busyLocked()
	var subs []*wsSub
	for _, s := range c.subs {
		if s.kind.Load() == kindSubscription {
			subs = append(subs, s)
		}
	}
	c.mu.Unlock()
	for _, s := range subs {
		s.cancel()
	}
	if !busy {
		c.closeWith(websocket.CloseGoingAway, "server shutting down")
	}
}

// busyLocked reports whether an operation that is not known to be a
// subscription runs on the connection; c.mu is held.
func (c *wsConn) busyLocked() bool {
	for _, s := range c.subs {
		if s.kind.Load() != kindSubscription && !s.ended.Load() {
			return true
		}
	}
	return false
}

// drainingNow reports whether Shutdown has begun the connection's end.
func (c *wsConn) drainingNow() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.draining
}

// Subscriptions returns the number of operations running on all connections.
func (t *Websocket) Subscriptions() int {
	t.init()
	t.mu.Lock()
	conns := make([]*wsConn, 0, len(t.conns))
	for c := range t.conns {
		conns = append(conns, c)
	}
	t.mu.Unlock()
	n := 0
	for _, c := range conns {
		c.mu.Lock()
		n += len(c.subs)
		c.mu.Unlock()
	}
	return n
}

// Dropped returns how many connections were closed for not reading their
// messages fast enough (CloseTooSlow).
func (t *Websocket) Dropped() int64 { return t.dropped.Load() }

// Connections returns the number of open websocket connections.
func (t *Websocket) Connections() int {
	t.init()
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.conns)
}

// outgoing is a message for the writer: data, or a close frame. When typ
// is set, data is only the payload of a message of that type for the
// operation id, and the writer frames it as it writes (see appendFrame):
// a payload shared by a thousand subscribers is not copied into a message
// for each.
type outgoing struct {
	id        string // the operation's id, if any
	typ       string
	data      []byte
	closeCode int
	reason    string
}

// sendQueues recycles the arrays of the connections' send queues: the
// writer takes a connection's whole queue at a time, and a queue grown
// anew after each cost a busy connection an allocation for every message
// or two. An idle connection holds none.
var sendQueues = sync.Pool{New: func() any { return new([]outgoing) }}

// maxPooledQueue is the longest queue array kept for reuse (a SendQueue
// set far above its default makes longer ones).
const maxPooledQueue = 1024

type wsConn struct {
	t         *Websocket
	ws        *websocket.Conn
	batch     *batchConn // ws's socket: the writer batches its frames
	exec      graphql.GraphExecutor
	ctx       context.Context
	cancel    context.CancelFunc
	headers   http.Header
	legacy    bool
	expiry    *time.Timer // closes the connection when its credential expires
	initTimer *time.Timer // closes the connection if connection_init does not come

	closeOnce sync.Once
	pinger    *time.Timer // keep-alive: asks the writer for a ping
	slow      atomic.Bool // counted in Websocket.dropped (see tooSlow)

	// What the writer is to write. The writer is a goroutine that runs
	// only while there is something to write: an idle connection has none.
	qmu      sync.Mutex
	queue    []outgoing        // messages in order, at most SendQueue of data
	qbox     *[]outgoing       // what returns queue's array to sendQueues; nil while queue is
	pending  map[string][]byte // the latest unwritten payload of each coalesced subscription, by id; nil when none
	pingDue  bool
	writing  bool          // the writer is running
	finished bool          // the writer has written the close frame, or failed: nothing more is written
	room     chan struct{} // closed when the writer empties a full queue; nil unless a sender waits
	done     chan struct{} // closed when finished is set

	mu       sync.Mutex
	inited   bool
	acked    bool
	draining bool     // Shutdown has begun its end (see drain)
	subs     []*wsSub // the running operations, in no order (a connection has few)
	subsWG   sync.WaitGroup
	opCtx    context.Context // the context operations run in, after Init
}

// wsSub is a running operation.
type wsSub struct {
	id     string
	c      *wsConn
	cancel context.CancelFunc
	// mu orders the client's complete against the operation's sends: once
	// byClient is set, nothing more is queued for this id. Both flags are
	// set under mu, and read without it where a snapshot will do (a sender
	// holds mu while it waits for room in a slow client's queue, and
	// nothing else may wait for that: the reader, Subscriptions).
	mu       sync.Mutex
	byClient atomic.Bool // the client sent complete (or stop): send no complete back
	ended    atomic.Bool // the operation's last message (complete or error) is queued: its id is free
	// kind is what the operation is, once run knows: a query or mutation
	// (oneShot), which a shutdown lets finish, or a subscription, which it
	// ends at once.
	kind atomic.Int32
}

// Operation kinds (wsSub.kind).
const (
	kindUnknown int32 = iota // not yet parsed
	kindOneShot
	kindSubscription
)

type wsMessage struct {
	ID      string          `json:"id,omitempty"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// serve starts reading the client's messages.
func (c *wsConn) serve() {
	if !c.start() {
		c.end()
		return
	}
	c.read()
}

// read handles the client's next message, then hands the reading over to
// a new goroutine, or ends the connection. Idle, a connection's only
// goroutine is its reader, waiting for the socket to become readable: one
// that has done nothing else, so that its stack is the smallest the
// runtime starts goroutines with (handling a message, decoding and
// subscribing, takes more, and the runtime does not give it back).
//
// Between messages the reader can also wait deep in gorilla/websocket's
// frame reader, having handled a control frame (the pong that answers a
// keep-alive ping): the path there is kept short enough (see read's own
// frame, and Do, which has the buffered reader read the socket directly)
// for that wait to fit in the smallest stack too.
func (c *wsConn) read() {
	c.batch.waitReadable()
	_, r, err := c.ws.NextReader() // waits here after a control frame
	if !c.readMessage(r, err) {
		c.end()
		return
	}
	go c.read()
}

// readMessage reads the rest of the message r gives (or takes the error
// NextReader returned) into a buffer of readBuffers and handles it; false
// ends the connection. It is a function of its own, not inlined, so that
// read's frame, under every idle reader's wait, stays small (see
// TestIdleReadersKeepTheSmallestStack).
//
//go:noinline
func (c *wsConn) readMessage(r io.Reader, err error) bool {
	var buf *bytes.Buffer
	var data []byte
	if err == nil {
		buf = readBuffers.Get().(*bytes.Buffer)
		buf.Reset()
		_, err = buf.ReadFrom(r)
		data = buf.Bytes()
	}
	ok := c.handleRead(data, err)
	if buf != nil && buf.Cap() <= maxPooledRead {
		readBuffers.Put(buf)
	}
	return ok
}

// readBuffers holds the buffers client messages are read into: a message
// is handled (decoded, its parts copied) before its buffer is put back, so
// that reading costs no allocation (gorilla/websocket's ReadMessage
// allocates a buffer of at least 512 bytes for each message).
var readBuffers = sync.Pool{New: func() any { return bytes.NewBuffer(make([]byte, 0, 1024)) }}

// maxPooledRead is the largest read buffer kept for reuse: a rare large
// message does not pin its buffer.
const maxPooledRead = 16 << 10

// start prepares the connection; false: it is refused.
func (c *wsConn) start() bool {
	c.legacy = c.ws.Subprotocol() == ProtocolLegacyWS
	c.qmu.Lock()
	c.pinger = time.AfterFunc(c.t.KeepAlive, c.ping)
	c.qmu.Unlock()
	if c.ws.Subprotocol() == "" {
		c.closeWith(CloseSubprotocol, "Subprotocol not acceptable")
		return false
	}
	c.ws.SetReadLimit(c.t.MaxMessageBytes)
	_ = c.ws.SetReadDeadline(time.Now().Add(2 * c.t.KeepAlive))
	c.ws.SetPongHandler(func(string) error {
		if c.closeWritten() {
			return nil // the peer has a second to answer the close, no more
		}
		return c.ws.SetReadDeadline(time.Now().Add(2 * c.t.KeepAlive))
	})
	c.initTimer = time.AfterFunc(c.t.InitTimeout, func() {
		c.mu.Lock()
		inited := c.inited
		c.mu.Unlock()
		if !inited {
			c.closeWith(CloseInitTimeout, "Connection initialisation timeout")
		}
	})
	// Only the reader goroutine sets and clears initTimer.
	return true
}

// handleRead handles what the reader read: a message, or the error that
// ends the connection (false).
func (c *wsConn) handleRead(data []byte, err error) bool {
	if err != nil {
		if errors.Is(err, websocket.ErrReadLimit) {
			c.closeWith(websocket.CloseMessageTooBig, "message too big")
		}
		return false
	}
	if c.closeWritten() {
		// After its close frame an endpoint reads only the peer's close
		// (RFC 6455, 5.5.1): a peer that sends on instead does not keep
		// the connection, or the transport's Shutdown, waiting.
		return false
	}
	_ = c.ws.SetReadDeadline(time.Now().Add(2 * c.t.KeepAlive))
	return c.handle(data)
}

// closeWritten reports whether the writer has finished: it wrote the close
// frame (or failed).
func (c *wsConn) closeWritten() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// end closes the connection once its reading has stopped: its operations
// end, the close frame is written, and the transport forgets it.
func (c *wsConn) end() {
	c.qmu.Lock()
	c.pinger.Stop()
	c.qmu.Unlock()
	if c.initTimer != nil {
		c.initTimer.Stop()
	}
	if c.expiry != nil {
		c.expiry.Stop()
	}
	c.cancel()
	c.subsWG.Wait()
	c.closeWith(websocket.CloseNormalClosure, "")
	<-c.done
	_ = c.ws.Close()
	c.t.mu.Lock()
	delete(c.t.conns, c)
	c.t.mu.Unlock()
	c.t.connsWG.Done()
}

// handle processes one client message; false ends the connection.
func (c *wsConn) handle(data []byte) bool {
	var m wsMessage
	if err := json.Unmarshal(data, &m); err != nil || m.Type == "" {
		return c.invalid("Invalid message received")
	}
	if k := inexactMember(data); k != "" {
		return c.invalid(fmt.Sprintf("Invalid message received: the member %q is not \"type\", \"id\" or \"payload\" (names are case-sensitive)", model.CutText(k, 64)))
	}
	if strings.ContainsRune(m.ID, utf8.RuneError) && jsonvalue.CheckText(data) != nil {
		// encoding/json reads invalid UTF-8 and lone surrogate escapes as
		// U+FFFD: different ids would be taken for one (a second
		// subscription closing the socket with 4409), and the id echoed
		// back would not be the client's.
		return c.invalid("Invalid message received: the id is not valid text (UTF-8, no lone surrogates)")
	}
	switch m.Type {
	case "connection_init":
		return c.connectionInit(m)
	case "ping":
		if c.legacy {
			return c.invalid("Unknown message type ping")
		}
		if !nullOrObject(m.Payload) {
			return c.invalid("Invalid message received: a ping's payload must be an object")
		}
		c.enqueue(wsMessage{Type: "pong", Payload: m.Payload})
	case "pong":
		if c.legacy {
			return c.invalid("Unknown message type pong")
		}
		if !nullOrObject(m.Payload) {
			return c.invalid("Invalid message received: a pong's payload must be an object")
		}
	case "subscribe", "start":
		if m.Type == "subscribe" && c.legacy || m.Type == "start" && !c.legacy {
			return c.invalid("Unknown message type " + m.Type)
		}
		return c.subscribe(m)
	case "complete", "stop":
		if m.Type == "complete" && c.legacy || m.Type == "stop" && !c.legacy {
			return c.invalid("Unknown message type " + m.Type)
		}
		if m.Type == "complete" && m.ID == "" {
			return c.invalid("Invalid message received: a complete message needs an id")
		}
		c.mu.Lock()
		sub := c.subLocked(m.ID)
		c.mu.Unlock()
		if sub != nil { // messages for finished ids are ignored
			sub.mu.Lock()
			sub.byClient.Store(true)
			c.qmu.Lock()
			delete(c.pending, m.ID)
			c.qmu.Unlock()
			sub.mu.Unlock()
			sub.cancel()
		}
	case "connection_terminate":
		if !c.legacy {
			return c.invalid("Unknown message type connection_terminate")
		}
		return false
	default:
		return c.invalid("Unknown message type " + m.Type)
	}
	return true
}

// nullOrObject reports whether a message's payload is absent, null or an
// object, as graphql-transport-ws has a ping's and a pong's.
func nullOrObject(payload json.RawMessage) bool {
	p := bytes.TrimLeft(payload, " \t\r\n")
	return len(p) == 0 || p[0] == '{' || bytes.Equal(p, []byte("null"))
}

// invalid reports a protocol violation: graphql-transport-ws closes with
// 4400; the legacy protocol answers with an error message and carries on.
func (c *wsConn) invalid(reason string) bool {
	return c.invalidOp("", reason)
}

// invalidOp is invalid for a message about operation id: the legacy
// protocol's error carries the id (when the message had one, and no
// running operation holds it: see freeID), so that a client can tell
// which of its operations was refused.
func (c *wsConn) invalidOp(id, reason string) bool {
	if c.legacy {
		payload, _ := json.Marshal(map[string]string{"message": reason})
		c.enqueue(wsMessage{ID: id, Type: "error", Payload: payload})
		return true
	}
	c.closeWith(CloseInvalidMessage, reason)
	return false
}

// freeID is id, or "" when an operation of the connection runs under it:
// a legacy client ends the operation an error names (the reference client
// forgets it), and one still running would go on sending to an id the
// client no longer knows, and never be stopped.
func (c *wsConn) freeID(id string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.subLocked(id) != nil {
		return ""
	}
	return id
}

func (c *wsConn) connectionInit(m wsMessage) bool {
	c.mu.Lock()
	again := c.inited
	c.inited = true
	c.mu.Unlock()
	if c.initTimer != nil { // connection_init came: the timer has nothing left to do
		c.initTimer.Stop()
		c.initTimer = nil
	}
	if again {
		c.closeWith(CloseTooManyInitRequests, "Too many initialisation requests")
		return false
	}
	payload := map[string]any{}
	if len(m.Payload) > 0 && string(m.Payload) != "null" {
		// Decoded as operations' payloads are (numbers as written: a
		// claim of 1e400 is no reason to refuse the connection).
		v, err := jsonvalue.DecodeAllText(m.Payload)
		obj, isObject := v.(map[string]any)
		if errors.Is(err, jsonvalue.ErrNotText) {
			return c.refuseInit(CloseInvalidMessage, "connection_init payload is not valid text (UTF-8, no lone surrogates)")
		}
		if err == nil && isObject {
			payload = obj
		} else {
			return c.refuseInit(CloseInvalidMessage, "connection_init payload must be an object")
		}
	}
	ctx := withHeaders(c.ctx, c.headers)
	if c.t.Init != nil {
		var err error
		ctx, err = c.t.Init(ctx, payload)
		if err != nil {
			return c.refuseInit(CloseForbidden, "Forbidden: "+err.Error())
		}
	}
	if p := auth.FromContext(ctx); p != nil && !p.ExpiresAt.IsZero() {
		// An expired credential ends the connection, as a refused one would.
		c.expiry = time.AfterFunc(time.Until(p.ExpiresAt), func() { c.closeWith(CloseForbidden, "Forbidden: credential expired") })
	}
	c.mu.Lock()
	c.acked, c.opCtx = true, ctx
	c.mu.Unlock()
	c.enqueue(wsMessage{Type: "connection_ack"})
	if c.legacy {
		c.enqueue(wsMessage{Type: "ka"})
	}
	return true
}

// refuseInit refuses a connection_init: the socket closes with code. A
// legacy client is first sent connection_error, which its reference
// client reports; an error message without an id it ignores, and the
// connection, initialised but never acknowledged, would stay open and
// serve nothing for ever.
func (c *wsConn) refuseInit(code int, why string) bool {
	if c.legacy {
		p, _ := json.Marshal(map[string]string{"message": why})
		c.enqueue(wsMessage{Type: "connection_error", Payload: p})
	}
	c.closeWith(code, why)
	return false
}

func (c *wsConn) subscribe(m wsMessage) bool {
	c.mu.Lock()
	acked, opCtx := c.acked, c.opCtx
	c.mu.Unlock()
	if !acked {
		if c.legacy {
			// With its id: the reference client ignores an error without
			// one, and the operation would wait for ever.
			return c.invalidOp(c.freeID(m.ID), "subscribe before connection_ack")
		}
		c.closeWith(CloseUnauthorized, "Unauthorized")
		return false
	}
	// Decoded as POST bodies are: numbers stay json.Number (as written), so
	// that Int variables are ints and a Long or JSON value beyond 2^53 is
	// not rounded through a float.
	params, err := decodePost(m.Payload)
	if errors.Is(err, jsonvalue.ErrNotText) {
		return c.invalidOp(c.freeID(m.ID), "Invalid message received: the payload is not valid text (UTF-8, no lone surrogates)")
	}
	if m.ID == "" || err != nil || params.Query == "" {
		return c.invalidOp(c.freeID(m.ID), "Invalid message received: a subscribe message needs an id and a payload with a query")
	}
	c.mu.Lock()
	if c.draining {
		// The server is going away: the client subscribes again once it
		// has reconnected (elsewhere).
		c.mu.Unlock()
		return true
	}
	if c.subLocked(m.ID) != nil {
		c.mu.Unlock()
		if c.legacy {
			// No id: the error would end, for the client, the operation
			// that holds it and runs on.
			return c.invalid("Subscriber for " + m.ID + " already exists")
		}
		c.closeWith(CloseSubscriberExists, "Subscriber for "+m.ID+" already exists")
		return false
	}
	// The limit is on operations the client has not completed; those it
	// completed still run until they notice (validating a large document
	// does not), so they may add as many again, no more.
	if c.activeLocked() >= c.t.MaxSubscriptions || len(c.subs) >= 2*c.t.MaxSubscriptions {
		c.mu.Unlock()
		errs := gqlerror.List{{Message: fmt.Sprintf("too many operations on this connection (at most %d)", c.t.MaxSubscriptions),
			Extensions: map[string]any{"code": "LIMIT_EXCEEDED"}}}
		if c.t.refused != nil {
			kind, name := operationOf(params.Query, params.OperationName)
			c.t.refused(opCtx, string(kind), name, errs)
		}
		c.sendErrors(m.ID, errs)
		return true
	}
	ctx, cancel := context.WithCancel(opCtx)
	sub := &wsSub{id: m.ID, c: c, cancel: cancel}
	c.subs = append(c.subs, sub)
	c.subsWG.Add(1)
	c.mu.Unlock()

	go c.run(ctx, sub, m.ID, params)
	return true
}

// run executes one operation and streams its results. A log subscription
// (its resolver attached to a logStream) is then served by a goroutine
// that runs only while events are queued; any other operation holds this
// goroutine, waiting on its results, until it ends.
func (c *wsConn) run(ctx context.Context, sub *wsSub, id string, params *graphql.RawParams) {
	params.Headers = c.headers
	ctx = withOperationIDs(ctx, c.headers)
	defer func() {
		// A panic outside a resolver (gqlgen recovers those) would end the
		// process, every client's connections with it: it ends this
		// operation with an internal error, logged with its request id.
		if p := recover(); p != nil {
			c.t.Log.ErrorContext(ctx, "graphql ws: operation panicked", "requestId", RequestID(ctx), "panic", p, "stack", string(debug.Stack()))
			if !sub.ended.Load() {
				c.fail(sub, gqlerror.List{{Message: "internal error", Extensions: map[string]any{"code": string(domain.Internal), "requestId": RequestID(ctx)}}})
			}
		}
	}()
	ctx = graphql.StartOperationTrace(ctx)
	rc, errs := c.exec.CreateOperationContext(holdLongLists(ctx, params.Variables), params)
	if errs != nil {
		c.fail(sub, errs)
		return
	}
	if rc.Operation.Operation == ast.Subscription {
		// @skip or @include can leave a subscription without its one root
		// field, which gqlgen's executor cannot run (it panics).
		if n := len(graphql.CollectFields(rc, rc.Operation.SelectionSet, []string{"Subscription"})); n != 1 {
			err := gqlerror.Errorf("a subscription must select exactly one root field once @skip and @include are applied; this one selects %d", n)
			errcode.Set(err, errcode.ValidationFailed)
			if c.t.refused != nil {
				c.t.refused(ctx, string(rc.Operation.Operation), rc.Operation.Name, gqlerror.List{err})
			}
			c.fail(sub, gqlerror.List{err})
			return
		}
	}
	if rc.Operation.Operation == ast.Subscription {
		sub.kind.Store(kindSubscription)
	} else {
		sub.kind.Store(kindOneShot)
	}
	if c.drainingNow() && rc.Operation.Operation == ast.Subscription {
		// Shutdown began while it was parsed: it ends as the others did.
		c.endSub(sub, false)
		return
	}
	ctx = graphql.WithOperationContext(ctx, rc)
	co := coalescedOf(rc)
	if co.shared {
		c.t.runShared(ctx, sub, rc, co)
		c.endSub(sub, true)
		return
	}
	stream := &logStream{}
	responses, ctx := c.exec.DispatchOperation(withLogStream(ctx, stream), rc)
	// send hands a payload to the writer.
	send := func(payload []byte) {
		if co.coalesced {
			sub.deliverLatest(payload)
			return
		}
		// Under the lock that the client's complete takes: once the
		// reader has handled a complete, nothing more for this id is queued.
		sub.mu.Lock()
		if !sub.byClient.Load() {
			c.enqueueOut(outgoing{id: id, typ: c.nextType(), data: payload})
		}
		sub.mu.Unlock()
	}
	// next handles one response; false: the operation has finished.
	next := func() ([]byte, bool) {
		resp := responses(ctx)
		if resp == nil || ctx.Err() != nil {
			return nil, false // finished, or completed by the client: send nothing more
		}
		payload, err := encodeResponse(resp)
		if err != nil {
			c.t.Log.ErrorContext(ctx, "graphql ws: encode response", "err", err)
			return nil, true
		}
		send(payload)
		if len(resp.Errors) > 0 {
			return nil, true // not shared: errors are counted and logged per operation
		}
		return payload, true
	}
	executed := false
	take := func(e domain.RecordedEvent) bool {
		if ctx.Err() != nil {
			return false
		}
		// The first event is always executed, so that each operation is
		// logged and measured as it starts.
		if payload, ok := stream.cache.get(e.Position); ok && executed {
			c.t.sharedPayloads.Add(1)
			send(payload)
			return true
		}
		executed = true
		stream.feed(e)
		payload, ok := next()
		if payload != nil {
			stream.cache.put(e.Position, payload)
		}
		return ok
	}
	if stream.isAttached() {
		// Only log subscriptions share payloads: only they need the key.
		stream.cache = c.t.acquireCache(c.t.logShareKey(ctx, rc))
		stream.start(take, func() { c.t.releaseCache(stream.cache); c.endSub(sub, true) })
		return
	}
	for {
		if _, ok := next(); !ok {
			break
		}
	}
	c.endSub(sub, true)
}

// activeLocked counts the operations neither the client nor the server
// has ended (one that ended may still be winding down, and counts no
// more); c.mu is held.
func (c *wsConn) activeLocked() int {
	n := 0
	for _, s := range c.subs {
		if !s.byClient.Load() && !s.ended.Load() {
			n++
		}
	}
	return n
}

// subLocked returns the running operation id; nil when there is none. An
// operation the client has completed, or whose complete or error the
// server has queued, is not running, even while it winds down: its id is
// free again at once, as the protocol has it (a client may subscribe anew
// with it as soon as it reads the server's complete or error). Called with
// mu held.
func (c *wsConn) subLocked(id string) *wsSub {
	for _, s := range c.subs {
		if s.id == id && !s.byClient.Load() && !s.ended.Load() {
			return s
		}
	}
	return nil
}

// endSub ends a finished operation: complete (unless the operation failed
// at the start, the client completed it or the connection is closing),
// and it leaves the connection.
func (c *wsConn) endSub(sub *wsSub, complete bool) {
	c.mu.Lock()
	draining := c.draining
	c.mu.Unlock()
	sub.mu.Lock()
	sub.ended.Store(true) // before the complete can reach the client, who may reuse the id at once
	// A subscription a shutdown ended gets no complete: a client takes
	// one for the subscription's normal end, and would not subscribe
	// again once reconnected.
	if complete && !sub.byClient.Load() && c.ctx.Err() == nil && !(draining && sub.kind.Load() == kindSubscription) {
		c.enqueue(wsMessage{ID: sub.id, Type: "complete"})
	}
	sub.mu.Unlock()
	c.mu.Lock()
	if i := slices.Index(c.subs, sub); i >= 0 {
		c.subs = slices.Delete(c.subs, i, i+1)
		if len(c.subs) == 0 {
			c.subs = nil // an idle connection holds no list
		}
	}
	drained := c.draining && !c.busyLocked()
	c.mu.Unlock()
	if drained {
		c.closeWith(websocket.CloseGoingAway, "server shutting down")
	}
	sub.cancel()
	c.subsWG.Done()
}

func (c *wsConn) nextType() string {
	if c.legacy {
		return "data"
	}
	return "next"
}

// frame encodes a message around an already encoded payload.
func (c *wsConn) frame(id, typ string, payload []byte) []byte {
	return appendFrame(make([]byte, 0, len(payload)+len(id)+len(typ)+34), id, typ, payload)
}

// appendFrame appends to b the message of type typ for the operation id
// around payload, as json.Marshal encodes the message.
func appendFrame(b []byte, id, typ string, payload []byte) []byte {
	b = append(b, `{"id":`...)
	b = appendJSONString(b, id)
	b = append(b, `,"type":"`...)
	b = append(b, typ...)
	b = append(b, `","payload":`...)
	b = append(b, payload...)
	return append(b, '}')
}

// appendJSONString appends s as json.Marshal encodes it, without
// allocating when s needs no escape (a client's operation ids: "1", a
// UUID).
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// deliverLatest hands a coalesced subscription's payload to the writer,
// replacing any of its payloads not yet written: it never waits and never
// overflows the queue.
func (s *wsSub) deliverLatest(payload []byte) {
	c := s.c
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byClient.Load() {
		return
	}
	f := c.frame(s.id, c.nextType(), payload)
	c.qmu.Lock()
	if c.pending == nil {
		c.pending = map[string][]byte{}
	}
	c.pending[s.id] = f
	c.kickLocked()
	c.qmu.Unlock()
}

// fail ends an operation that cannot run with an error message (no
// complete follows one), unless the client has completed it: then nothing
// more is sent for its id, which may be another operation's by now.
func (c *wsConn) fail(sub *wsSub, errs gqlerror.List) {
	sub.mu.Lock()
	sub.ended.Store(true) // before the error can reach the client, who may reuse the id at once
	if !sub.byClient.Load() {
		c.sendErrors(sub.id, errs)
	}
	sub.mu.Unlock()
	c.endSub(sub, false)
}

func (c *wsConn) sendErrors(id string, errs gqlerror.List) {
	payload, _ := json.Marshal(errs)
	c.enqueueFrame(id, c.frame(id, "error", payload))
}

// enqueue hands a message to the writer (see enqueueFrame).
func (c *wsConn) enqueue(m wsMessage) {
	data, err := json.Marshal(m)
	if err != nil {
		return
	}
	c.enqueueFrame(m.ID, data)
}

// enqueueFrame hands an encoded message to the writer (see enqueueOut).
func (c *wsConn) enqueueFrame(id string, data []byte) {
	c.enqueueOut(outgoing{id: id, data: data})
}

// enqueueOut hands a message to the writer. When the queue is full it
// waits for room at most WriteTimeout; a client that has not made room by
// then is too slow and is disconnected with CloseTooSlow. Only the
// operation (or reader) that sends waits: other connections and
// subscriptions never do.
func (c *wsConn) enqueueOut(out outgoing) {
	var timeout <-chan time.Time
	for {
		c.qmu.Lock()
		if c.finished {
			c.qmu.Unlock()
			return
		}
		if len(c.queue) < c.t.SendQueue {
			c.queueLocked(out)
			c.kickLocked()
			c.qmu.Unlock()
			return
		}
		if c.room == nil {
			c.room = make(chan struct{})
		}
		room := c.room
		c.qmu.Unlock()
		if timeout == nil {
			t := time.NewTimer(c.t.WriteTimeout)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-c.done:
			return
		case <-room:
		case <-timeout:
			c.tooSlow()
			c.closeWith(CloseTooSlow, "client too slow: send queue full")
			return
		}
	}
}

// tooSlow counts the connection as dropped for being too slow, once:
// its queue stayed full, or a write to its socket timed out, whichever
// came first.
func (c *wsConn) tooSlow() {
	if c.slow.CompareAndSwap(false, true) {
		c.t.dropped.Add(1)
	}
}

// queueLocked appends out to the queue, whose array comes from
// sendQueues when it has none; qmu is held.
func (c *wsConn) queueLocked(out outgoing) {
	if c.qbox == nil {
		c.qbox = sendQueues.Get().(*[]outgoing)
		c.queue = (*c.qbox)[:0]
	}
	c.queue = append(c.queue, out)
}

// recycleQueue gives back the array of a queue the writer has written.
func recycleQueue(box *[]outgoing, queue []outgoing) {
	if box == nil || cap(queue) > maxPooledQueue {
		return
	}
	clear(queue) // let the messages go
	*box = queue[:0]
	sendQueues.Put(box)
}

// kickLocked starts the writer unless it is running (or has finished).
// Called with qmu held.
func (c *wsConn) kickLocked() {
	if !c.writing && !c.finished {
		c.writing = true
		go c.writer()
	}
}

// ping runs every KeepAlive: the writer sends a ping.
func (c *wsConn) ping() {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	if c.finished {
		return
	}
	c.pingDue = true
	c.kickLocked()
	c.pinger.Reset(c.t.KeepAlive)
}

// closeWith asks the writer to send a close frame, after what is queued,
// and stop; the first call wins. The socket is closed if the close frame
// is not written soon (see closeWatch): it may wait behind a full queue, or
// behind a write to a client that reads nothing (which only the write
// timeout, 10 s by default and renewed by each write to the socket, would
// end), and a server's Shutdown waits for every connection.
//
// A close frame holds at most 123 bytes of reason: a longer one (it may
// quote a message type or an operation id the client sent, of any length)
// is cut there, at a character's boundary; gorilla/websocket refuses to
// send a longer one, and the connection would end with no close code.
func (c *wsConn) closeWith(code int, reason string) {
	reason = model.CutText(reason, maxCloseReason)
	c.closeOnce.Do(func() {
		c.cancel()
		c.qmu.Lock()
		full := len(c.queue) >= c.t.SendQueue
		c.queueLocked(outgoing{closeCode: code, reason: reason})
		c.kickLocked()
		c.qmu.Unlock()
		c.closeWatch(full, c.batch.written.Load())
	})
}

// closeStall is how long a close waits for a client that takes in
// nothing of what is queued before it (see closeWatch): long enough for a
// reader that pauses (a large answer, a busy client), short beside the
// write timeout that would end it otherwise.
const closeStall = 3 * time.Second

// closeWatch closes the socket unless the close frame is written soon: a
// second from now when the client's queue was full (it is being cut off
// for reading too slowly), otherwise once the socket has taken in nothing
// for closeStall (written did not move from last). A client that reads
// nothing holds the close for closeStall, one that takes in a large answer
// slowly for as long as it reads (Shutdown's deadline bounds that).
func (c *wsConn) closeWatch(full bool, last int64) {
	wait := closeStall
	if full {
		wait = time.Second
	}
	time.AfterFunc(wait, func() {
		select {
		case <-c.done:
			return
		default:
		}
		if now := c.batch.written.Load(); !full && now != last {
			c.closeWatch(false, now)
			return
		}
		_ = c.ws.Close()
	})
}

// maxCloseReason is the most bytes of reason a close frame holds (125 of
// payload, 2 of them the code).
const maxCloseReason = 123

// finish records that nothing more will be written.
func (c *wsConn) finish() {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	c.finished, c.writing = true, false
	close(c.done)
}

// writer is the connection's only writer: messages, coalesced payloads,
// pings and the close frame. It runs while there is something to write,
// and writes whatever is queued as one batch (see batchConn), so a
// subscriber that has fallen behind catches up with few system calls.
func (c *wsConn) writer() {
	// The socket's write deadline is the batch's (see batchConn): each of
	// its writes to the socket within WriteTimeout.
	write := func(data []byte) bool { return c.ws.WriteMessage(websocket.TextMessage, data) == nil }
	for {
		c.qmu.Lock()
		batch, box, ping := c.queue, c.qbox, c.pingDue
		c.queue, c.qbox, c.pingDue = nil, nil, false
		var latest map[string][]byte
		if len(c.pending) > 0 {
			latest, c.pending = c.pending, nil
		}
		if c.room != nil {
			close(c.room)
			c.room = nil
		}
		if len(batch) == 0 && latest == nil && !ping {
			c.writing = false
			c.qmu.Unlock()
			return
		}
		c.qmu.Unlock()

		c.batch.begin(c.t.WriteTimeout)
		ok, closing := c.writeBatch(batch, latest, write)
		recycleQueue(box, batch)
		if ok && ping {
			ok = c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(c.t.WriteTimeout)) == nil &&
				(!c.legacy || write([]byte(`{"type":"ka"}`)))
		}
		if err := c.batch.end(); err != nil {
			ok = false
		}
		if !ok || closing {
			if ok {
				// Let the peer answer the close, then end the read loop.
				_ = c.ws.SetReadDeadline(time.Now().Add(time.Second))
			} else {
				if c.batch.timedOut() {
					c.tooSlow() // the socket took nothing for WriteTimeout: no close frame can reach it
				}
				_ = c.ws.Close()
			}
			c.finish()
			return
		}
	}
}

// writeBatch writes queued messages, each coalesced subscription's latest
// payload before its complete and the rest after them; closing reports a
// close frame (the last thing written).
func (c *wsConn) writeBatch(batch []outgoing, latest map[string][]byte, write func([]byte) bool) (ok, closing bool) {
	var buf *[]byte // for framing payloads (see outgoing)
	defer func() {
		if buf != nil {
			putWriteBuffer(buf)
		}
	}()
	for i := range batch {
		m := &batch[i]
		if m.closeCode != 0 { // in the batch, written within its timeout
			return c.ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(m.closeCode, m.reason)) == nil, true
		}
		if f, pending := latest[m.id]; pending && m.id != "" {
			delete(latest, m.id)
			if !write(f) {
				return false, false
			}
		}
		data := m.data
		if m.typ != "" {
			if buf == nil {
				buf = writeBuffers.Get().(*[]byte)
			}
			*buf = appendFrame((*buf)[:0], m.id, m.typ, m.data)
			data = *buf
		}
		if !write(data) {
			return false, false
		}
	}
	for _, f := range latest {
		if !write(f) {
			return false, false
		}
	}
	return true, false
}

// connHeaders is what a connection keeps of its upgrade request's headers
// for its lifetime: a copy of all but the handshake's own, so that the
// request's are freed.
func connHeaders(h http.Header) http.Header {
	out := make(http.Header, len(h))
	for k, v := range h {
		switch k {
		case "Connection", "Upgrade", "Sec-Websocket-Key", "Sec-Websocket-Version", "Sec-Websocket-Extensions":
			continue
		}
		out[k] = slices.Clone(v)
	}
	return out
}

type headersKey struct{}

func withHeaders(ctx context.Context, h http.Header) context.Context {
	return context.WithValue(ctx, headersKey{}, h)
}

// UpgradeHeaders returns the headers of the websocket upgrade request an
// operation came in on, but for the handshake's own (Connection, Upgrade,
// Sec-WebSocket-Key, -Version and -Extensions); nil over HTTP.
func UpgradeHeaders(ctx context.Context) http.Header {
	h, _ := ctx.Value(headersKey{}).(http.Header)
	return h
}

// encodeResponse encodes a GraphQL response as json.Marshal would, without
// re-scanning data, which gqlgen has just encoded itself.
func encodeResponse(resp *graphql.Response) ([]byte, error) {
	if len(resp.Data) == 0 || len(resp.Errors) > 0 || len(resp.Extensions) > 0 || resp.Label != "" || resp.Path != nil || resp.HasNext != nil {
		return json.Marshal(resp)
	}
	b := make([]byte, 0, len(resp.Data)+10)
	b = append(b, `{"data":`...)
	b = append(b, resp.Data...)
	return append(b, '}'), nil
}

// inexactMember returns the first member of the message object data whose
// name is "type", "id" or "payload" in other cases ("Type"), or "". The
// envelope is read by encoding/json, which matches names in any case, the
// last one winning: {"type":"subscribe","TYPE":"ping"} was a ping, where
// the protocol's reference clients and servers (JavaScript objects) tell
// the two apart. It is refused, as a POST body's member named in two
// cases is. data has been read by encoding/json already (it is valid
// JSON); the names are found without allocating (a connection's first
// messages come by the thousand in a burst of connections, and their
// garbage is resident memory), except for names holding an escape, which
// inexactMemberEscaped decodes.
func inexactMember(data []byte) string {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return ""
	}
	i++
	for {
		i = skipSpace(data, i)
		if i >= len(data) || data[i] != '"' {
			return "" // the object's end
		}
		end, escaped := stringEnd(data, i)
		if end < 0 {
			return ""
		}
		if escaped {
			return inexactMemberEscaped(data)
		}
		if k := data[i+1 : end-1]; envelopeNameInOtherCase(k) {
			return string(k)
		}
		i = skipSpace(data, end)
		if i >= len(data) || data[i] != ':' {
			return ""
		}
		if i = skipValue(data, i+1); i < 0 {
			return ""
		}
		if i = skipSpace(data, i); i >= len(data) || data[i] != ',' {
			return ""
		}
		i++
	}
}

// envelopeNameInOtherCase reports whether k is "type", "id" or "payload"
// in other cases.
func envelopeNameInOtherCase(k []byte) bool {
	for _, name := range [...]string{"type", "id", "payload"} {
		if string(k) != name && bytes.EqualFold(k, []byte(name)) {
			return true
		}
	}
	return false
}

// inexactMemberEscaped is inexactMember for a message whose member names
// hold escapes ("\u0054ype"): it decodes them.
func inexactMemberEscaped(data []byte) string {
	dec := json.NewDecoder(bytes.NewReader(data))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return ""
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return ""
		}
		if k, _ := t.(string); envelopeNameInOtherCase([]byte(k)) {
			return k
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return ""
		}
	}
	return ""
}

func skipSpace(d []byte, i int) int {
	for i < len(d) && (d[i] == ' ' || d[i] == '\t' || d[i] == '\n' || d[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index after the JSON string starting at d[i] (a
// quote), and whether it holds an escape; -1 when it does not end.
func stringEnd(d []byte, i int) (int, bool) {
	escaped := false
	for j := i + 1; j < len(d); j++ {
		switch d[j] {
		case '\\':
			escaped = true
			j++
		case '"':
			return j + 1, escaped
		}
	}
	return -1, escaped
}

// skipValue returns the index after the JSON value starting at or after
// d[i] (white space first); -1 when it does not end.
func skipValue(d []byte, i int) int {
	depth := 0
	for i = skipSpace(d, i); i < len(d); i++ {
		switch d[i] {
		case '"':
			end, _ := stringEnd(d, i)
			if end < 0 {
				return -1
			}
			if depth == 0 {
				return end
			}
			i = end - 1
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return i // the enclosing object's end, after a number or literal
			}
			if depth--; depth == 0 {
				return i + 1
			}
		case ',', ' ', '\t', '\n', '\r':
			if depth == 0 {
				return i // after a number or literal
			}
		}
	}
	if depth == 0 {
		return i
	}
	return -1
}
