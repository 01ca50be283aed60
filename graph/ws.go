package graph

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/gorilla/websocket"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"cqrsgate/internal/auth"
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
// connection's operations run in. An error closes the socket with 4403.
// When that context carries an auth.Principal with an expiry, the socket
// is closed with 4403 when the credential expires.
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
// payload is encoded once for all of them.
type Websocket struct {
	// AllowedOrigins lists the Origin values accepted (scheme://host[:port]);
	// "*" accepts any. Empty: only requests without Origin or from the
	// gateway's own host.
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

	dropped atomic.Int64 // connections closed for being too slow
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
		t.upgrader = websocket.Upgrader{
			Subprotocols: []string{ProtocolTransportWS, ProtocolLegacyWS},
			CheckOrigin:  t.checkOrigin,
			// Small read buffers (client messages are small; larger ones are
			// read in pieces) and write buffers shared between connections
			// while they are idle: most of a subscriber's life.
			ReadBufferSize:  1024,
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
	u, err := url.Parse(origin)
	return err == nil && len(t.AllowedOrigins) == 0 && strings.EqualFold(u.Host, r.Host)
}

// Do implements graphql.Transport: it upgrades the request and serves the
// connection until it closes.
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
	defer t.connsWG.Done()

	ws, err := t.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered the request
	}
	ctx, cancel := context.WithCancel(r.Context())
	c := &wsConn{
		t: t, ws: ws, exec: exec, ctx: ctx, cancel: cancel,
		send: make(chan *outgoing, t.SendQueue), subs: map[string]*wsSub{},
		pending: map[string][]byte{}, wake: make(chan struct{}, 1),
		done: make(chan struct{}), headers: r.Header,
	}
	t.mu.Lock()
	t.conns[c] = struct{}{}
	t.mu.Unlock()
	defer func() {
		t.mu.Lock()
		delete(t.conns, c)
		t.mu.Unlock()
	}()
	c.serve()
}

// Shutdown closes every connection with 1001 (going away) and waits for
// them to end, or for ctx. New upgrades are refused from the start.
func (t *Websocket) Shutdown(ctx context.Context) error {
	t.init()
	t.mu.Lock()
	t.closing = true
	for c := range t.conns {
		c.closeWith(websocket.CloseGoingAway, "server shutting down")
	}
	t.mu.Unlock()
	done := make(chan struct{})
	go func() { t.connsWG.Wait(); t.groupsWG.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
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

// outgoing is a message for the writer: data, or a close frame.
type outgoing struct {
	id        string // the operation's id, if any
	data      []byte
	closeCode int
	reason    string
}

type wsConn struct {
	t       *Websocket
	ws      *websocket.Conn
	exec    graphql.GraphExecutor
	ctx     context.Context
	cancel  context.CancelFunc
	headers http.Header
	legacy  bool
	expiry  *time.Timer // closes the connection when its credential expires

	send      chan *outgoing
	closeOnce sync.Once
	// The latest undelivered payload of each coalesced subscription, by id;
	// wake tells the writer there is one.
	pmu     sync.Mutex
	pending map[string][]byte
	wake    chan struct{}
	done    chan struct{} // closed when the writer has finished

	mu     sync.Mutex
	inited bool
	acked  bool
	subs   map[string]*wsSub
	subsWG sync.WaitGroup
	opCtx  context.Context // the context operations run in, after Init
}

// wsSub is a running operation.
type wsSub struct {
	id     string
	c      *wsConn
	cancel context.CancelFunc
	// mu orders the client's complete against the operation's sends: once
	// byClient is set, nothing more is queued for this id.
	mu       sync.Mutex
	byClient bool // the client sent complete (or stop): send no complete back
}

type wsMessage struct {
	ID      string          `json:"id,omitempty"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

func (c *wsConn) serve() {
	c.legacy = c.ws.Subprotocol() == ProtocolLegacyWS
	go c.writer()
	defer func() {
		if c.expiry != nil {
			c.expiry.Stop()
		}
		c.cancel()
		c.subsWG.Wait()
		c.closeWith(websocket.CloseNormalClosure, "")
		<-c.done
		_ = c.ws.Close()
	}()
	if c.ws.Subprotocol() == "" {
		c.closeWith(CloseSubprotocol, "Subprotocol not acceptable")
		return
	}
	c.ws.SetReadLimit(c.t.MaxMessageBytes)
	_ = c.ws.SetReadDeadline(time.Now().Add(2 * c.t.KeepAlive))
	c.ws.SetPongHandler(func(string) error {
		return c.ws.SetReadDeadline(time.Now().Add(2 * c.t.KeepAlive))
	})
	initTimer := time.AfterFunc(c.t.InitTimeout, func() {
		c.mu.Lock()
		inited := c.inited
		c.mu.Unlock()
		if !inited {
			c.closeWith(CloseInitTimeout, "Connection initialisation timeout")
		}
	})
	defer initTimer.Stop()
	for {
		_, data, err := c.ws.ReadMessage()
		if err != nil {
			if errors.Is(err, websocket.ErrReadLimit) {
				c.closeWith(websocket.CloseMessageTooBig, "message too big")
			}
			return
		}
		_ = c.ws.SetReadDeadline(time.Now().Add(2 * c.t.KeepAlive))
		if !c.handle(data) {
			return
		}
	}
}

// handle processes one client message; false ends the connection.
func (c *wsConn) handle(data []byte) bool {
	var m wsMessage
	if err := json.Unmarshal(data, &m); err != nil || m.Type == "" {
		return c.invalid("Invalid message received")
	}
	switch m.Type {
	case "connection_init":
		return c.connectionInit(m)
	case "ping":
		if c.legacy {
			return c.invalid("Unknown message type ping")
		}
		c.enqueue(wsMessage{Type: "pong", Payload: m.Payload})
	case "pong":
		if c.legacy {
			return c.invalid("Unknown message type pong")
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
		c.mu.Lock()
		sub := c.subs[m.ID]
		c.mu.Unlock()
		if sub != nil { // messages for finished ids are ignored
			sub.mu.Lock()
			sub.byClient = true
			c.pmu.Lock()
			delete(c.pending, m.ID)
			c.pmu.Unlock()
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

// invalid reports a protocol violation: graphql-transport-ws closes with
// 4400; the legacy protocol answers with an error message and carries on.
func (c *wsConn) invalid(reason string) bool {
	if c.legacy {
		payload, _ := json.Marshal(map[string]string{"message": reason})
		c.enqueue(wsMessage{Type: "error", Payload: payload})
		return true
	}
	c.closeWith(CloseInvalidMessage, reason)
	return false
}

func (c *wsConn) connectionInit(m wsMessage) bool {
	c.mu.Lock()
	again := c.inited
	c.inited = true
	c.mu.Unlock()
	if again {
		c.closeWith(CloseTooManyInitRequests, "Too many initialisation requests")
		return false
	}
	payload := map[string]any{}
	if len(m.Payload) > 0 && string(m.Payload) != "null" {
		if err := json.Unmarshal(m.Payload, &payload); err != nil {
			return c.invalid("connection_init payload must be an object")
		}
	}
	ctx := withHeaders(c.ctx, c.headers)
	if c.t.Init != nil {
		var err error
		ctx, err = c.t.Init(ctx, payload)
		if err != nil {
			if c.legacy {
				p, _ := json.Marshal(map[string]string{"message": "Forbidden"})
				c.enqueue(wsMessage{Type: "connection_error", Payload: p})
			}
			c.closeWith(CloseForbidden, "Forbidden")
			return false
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

func (c *wsConn) subscribe(m wsMessage) bool {
	c.mu.Lock()
	acked, opCtx := c.acked, c.opCtx
	c.mu.Unlock()
	if !acked {
		if c.legacy {
			return c.invalid("subscribe before connection_ack")
		}
		c.closeWith(CloseUnauthorized, "Unauthorized")
		return false
	}
	var params graphql.RawParams
	if m.ID == "" || json.Unmarshal(m.Payload, &params) != nil || params.Query == "" {
		return c.invalid("Invalid message received: a subscribe message needs an id and a payload with a query")
	}
	c.mu.Lock()
	if _, exists := c.subs[m.ID]; exists {
		c.mu.Unlock()
		if c.legacy {
			return c.invalid("Subscriber for " + m.ID + " already exists")
		}
		c.closeWith(CloseSubscriberExists, "Subscriber for "+m.ID+" already exists")
		return false
	}
	if len(c.subs) >= c.t.MaxSubscriptions {
		c.mu.Unlock()
		c.sendErrors(m.ID, gqlerror.List{{Message: fmt.Sprintf("too many operations on this connection (at most %d)", c.t.MaxSubscriptions),
			Extensions: map[string]any{"code": "LIMIT_EXCEEDED"}}})
		return true
	}
	ctx, cancel := context.WithCancel(opCtx)
	sub := &wsSub{id: m.ID, c: c, cancel: cancel}
	c.subs[m.ID] = sub
	c.subsWG.Add(1)
	c.mu.Unlock()

	go c.run(ctx, sub, m.ID, &params)
	return true
}

// run executes one operation and streams its results.
func (c *wsConn) run(ctx context.Context, sub *wsSub, id string, params *graphql.RawParams) {
	defer c.subsWG.Done()
	defer func() {
		c.mu.Lock()
		delete(c.subs, id)
		c.mu.Unlock()
		sub.cancel()
	}()
	params.Headers = c.headers
	ctx = graphql.StartOperationTrace(ctx)
	rc, errs := c.exec.CreateOperationContext(ctx, params)
	if errs != nil {
		c.sendErrors(id, errs) // no complete after an error
		return
	}
	ctx = graphql.WithOperationContext(ctx, rc)
	co := coalescedOf(rc)
	if co.shared {
		c.t.runShared(ctx, sub, rc, co)
	} else {
		responses, ctx := c.exec.DispatchOperation(ctx, rc)
		for {
			resp := responses(ctx)
			if resp == nil || ctx.Err() != nil {
				break // finished, or completed by the client: send nothing more
			}
			payload, err := encodeResponse(resp)
			if err != nil {
				c.t.Log.ErrorContext(ctx, "graphql ws: encode response", "err", err)
				continue
			}
			if co.coalesced {
				sub.deliverLatest(payload)
				continue
			}
			// Under the lock that the client's complete takes: once the
			// reader has handled a complete, nothing more for this id is queued.
			sub.mu.Lock()
			if !sub.byClient {
				c.enqueueFrame(id, c.frame(id, c.nextType(), payload))
			}
			sub.mu.Unlock()
		}
	}
	sub.mu.Lock()
	if !sub.byClient && c.ctx.Err() == nil {
		c.enqueue(wsMessage{ID: id, Type: "complete"})
	}
	sub.mu.Unlock()
}

func (c *wsConn) nextType() string {
	if c.legacy {
		return "data"
	}
	return "next"
}

// frame encodes a message around an already encoded payload.
func (c *wsConn) frame(id, typ string, payload []byte) []byte {
	qid, _ := json.Marshal(id)
	b := make([]byte, 0, len(payload)+len(qid)+len(typ)+32)
	b = append(b, `{"id":`...)
	b = append(b, qid...)
	b = append(b, `,"type":"`...)
	b = append(b, typ...)
	b = append(b, `","payload":`...)
	b = append(b, payload...)
	return append(b, '}')
}

// deliverLatest hands a coalesced subscription's payload to the writer,
// replacing any of its payloads not yet written: it never waits and never
// overflows the queue.
func (s *wsSub) deliverLatest(payload []byte) {
	c := s.c
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byClient {
		return
	}
	f := c.frame(s.id, c.nextType(), payload)
	c.pmu.Lock()
	c.pending[s.id] = f
	c.pmu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default: // the writer has been woken already
	}
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

// enqueueFrame hands an encoded message to the writer. When the queue is
// full it waits for room at most WriteTimeout; a client that has not made
// room by then is too slow and is disconnected with CloseTooSlow. Only the
// operation (or reader) that sends waits: other connections and
// subscriptions never do.
func (c *wsConn) enqueueFrame(id string, data []byte) {
	out := &outgoing{id: id, data: data}
	select {
	case <-c.done:
		return
	case c.send <- out:
		return
	default:
	}
	t := time.NewTimer(c.t.WriteTimeout)
	defer t.Stop()
	select {
	case <-c.done:
	case c.send <- out:
	case <-t.C:
		c.t.dropped.Add(1)
		c.closeWith(CloseTooSlow, "client too slow: send queue full")
	}
}

// closeWith asks the writer to send a close frame and stop; the first call wins.
func (c *wsConn) closeWith(code int, reason string) {
	c.closeOnce.Do(func() {
		c.cancel()
		// The close frame must get through even when the queue is full.
		go func() {
			select {
			case c.send <- &outgoing{closeCode: code, reason: reason}:
			case <-c.done:
			case <-time.After(time.Second):
				_ = c.ws.Close()
			}
		}()
	})
}

// writer is the connection's only writer: messages, coalesced payloads,
// pings and the close frame.
func (c *wsConn) writer() {
	defer close(c.done)
	ping := time.NewTicker(c.t.KeepAlive)
	defer ping.Stop()
	write := func(data []byte) bool {
		_ = c.ws.SetWriteDeadline(time.Now().Add(c.t.WriteTimeout))
		if err := c.ws.WriteMessage(websocket.TextMessage, data); err != nil {
			_ = c.ws.Close()
			return false
		}
		return true
	}
	for {
		select {
		case m := <-c.send:
			if m.closeCode != 0 {
				_ = c.ws.SetWriteDeadline(time.Now().Add(c.t.WriteTimeout))
				_ = c.ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(m.closeCode, m.reason))
				// Let the peer answer the close, then end the read loop.
				_ = c.ws.SetReadDeadline(time.Now().Add(time.Second))
				return
			}
			if m.id != "" {
				// A coalesced payload of this operation goes before its complete.
				c.pmu.Lock()
				f, ok := c.pending[m.id]
				delete(c.pending, m.id)
				c.pmu.Unlock()
				if ok && !write(f) {
					return
				}
			}
			if !write(m.data) {
				return
			}
		case <-c.wake:
			c.pmu.Lock()
			frames := make([][]byte, 0, len(c.pending))
			for id, f := range c.pending {
				frames = append(frames, f)
				delete(c.pending, id)
			}
			c.pmu.Unlock()
			for _, f := range frames {
				if !write(f) {
					return
				}
			}
		case <-ping.C:
			_ = c.ws.SetWriteDeadline(time.Now().Add(c.t.WriteTimeout))
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(c.t.WriteTimeout)); err != nil {
				_ = c.ws.Close()
				return
			}
			if c.legacy && !write([]byte(`{"type":"ka"}`)) {
				return
			}
		}
	}
}

type headersKey struct{}

func withHeaders(ctx context.Context, h http.Header) context.Context {
	return context.WithValue(ctx, headersKey{}, h)
}

// UpgradeHeaders returns the headers of the websocket upgrade request an
// operation came in on (nil over HTTP).
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
