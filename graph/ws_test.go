package graph_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/99designs/gqlgen/graphql"
	"github.com/gorilla/websocket"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"cqrsgate/domain"
	"cqrsgate/eventstore"
	"cqrsgate/graph"
)

// wsServer is the GraphQL handler with the websocket transport on a memory store.
type wsServer struct {
	url   string
	store *eventstore.Memory
	ws    *graph.Websocket
}

func newWSServer(t *testing.T, ws *graph.Websocket) *wsServer {
	t.Helper()
	store := memStore()
	log := slog.New(slog.DiscardHandler)
	hub := eventstore.NewHub(store, log)
	hubCtx, stopHub := context.WithCancel(context.Background())
	hubDone := make(chan struct{})
	go func() { defer close(hubDone); _ = hub.Run(hubCtx) }()
	srv := httptest.NewServer(graph.NewHandler(graph.Config{
		Store: store, Commands: domain.NewService(store, log, time.Now, domain.ServiceOptions{}), Log: log, Websocket: ws, Hub: hub,
	}))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = ws.Shutdown(ctx)
		srv.Close()
		stopHub()
		<-hubDone
	})
	return &wsServer{url: "ws" + strings.TrimPrefix(srv.URL, "http"), store: store, ws: ws}
}

type wsClient struct {
	t    *testing.T
	conn *websocket.Conn
}

func (s *wsServer) dial(t *testing.T, protocols ...string) *wsClient {
	t.Helper()
	d := websocket.Dialer{Subprotocols: protocols, HandshakeTimeout: 5 * time.Second}
	conn, resp, err := d.Dial(s.url, nil)
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, resp)
	}
	t.Cleanup(func() { conn.Close() })
	return &wsClient{t: t, conn: conn}
}

func (c *wsClient) send(v any) {
	c.t.Helper()
	var err error
	if s, ok := v.(string); ok {
		err = c.conn.WriteMessage(websocket.TextMessage, []byte(s))
	} else {
		err = c.conn.WriteJSON(v)
	}
	if err != nil {
		c.t.Fatal(err)
	}
}

type wsMsg struct {
	ID      string          `json:"id"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload"`
}

// read returns the next message, or fails the test with the close code.
func (c *wsClient) read() wsMsg {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	var m wsMsg
	if err := c.conn.ReadJSON(&m); err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return m
}

// readType reads messages until one of type typ (skipping "ka").
func (c *wsClient) expect(typ string) wsMsg {
	c.t.Helper()
	for {
		m := c.read()
		if m.Type == "ka" && typ != "ka" {
			continue
		}
		if m.Type != typ {
			c.t.Fatalf("got %s %s, want %s", m.Type, m.Payload, typ)
		}
		return m
	}
}

// closeCode reads until the server closes the socket and returns the code.
func (c *wsClient) closeCode() int {
	c.t.Helper()
	code, _ := c.closeFrame()
	return code
}

// closeFrame reads until the server's close frame and returns its code
// and reason.
func (c *wsClient) closeFrame() (int, string) {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, _, err := c.conn.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return ce.Code, ce.Text
		}
		c.t.Fatalf("connection ended without a close frame: %v", err)
	}
}

func (c *wsClient) init() {
	c.t.Helper()
	c.send(map[string]any{"type": "connection_init", "payload": map[string]any{}})
	c.expect("connection_ack")
}

func subscribeMsg(id, query string, vars map[string]any) map[string]any {
	return map[string]any{"id": id, "type": "subscribe", "payload": map[string]any{"query": query, "variables": vars}}
}

const eventsSubscription = `subscription($after: Position, $prefix: String) { events(after: $after, streamPrefix: $prefix) { id position streamId type } }`

func eventOf(t *testing.T, m wsMsg) (int64, string) {
	t.Helper()
	var p struct {
		Data struct {
			Events struct {
				Position int64  `json:"position"`
				StreamID string `json:"streamId"`
			} `json:"events"`
		} `json:"data"`
		Errors []any `json:"errors"`
	}
	if err := json.Unmarshal(m.Payload, &p); err != nil || len(p.Errors) > 0 {
		t.Fatalf("payload %s: %v", m.Payload, err)
	}
	return p.Data.Events.Position, p.Data.Events.StreamID
}

func appendN(t *testing.T, s eventstore.Store, stream string, n int) []int64 {
	t.Helper()
	var positions []int64
	for i := 0; i < n; i++ {
		res, err := s.Append(context.Background(), stream, domain.ExpectAny, domain.EventData{Type: "Tick", SchemaVersion: 1, Data: json.RawMessage(fmt.Sprintf(`{"i": %d}`, i))})
		if err != nil {
			t.Fatal(err)
		}
		positions = append(positions, res.LastPosition)
	}
	return positions
}

func TestTransportWSSubscriptionReplaysThenGoesLive(t *testing.T) {
	s := newWSServer(t, &graph.Websocket{})
	before := appendN(t, s.store, "ticks-1", 3)
	c := s.dial(t, graph.ProtocolTransportWS)
	if c.conn.Subprotocol() != graph.ProtocolTransportWS {
		t.Fatalf("subprotocol %q", c.conn.Subprotocol())
	}
	c.init()
	c.send(map[string]any{"type": "ping", "payload": map[string]any{"n": 1}})
	if m := c.expect("pong"); string(m.Payload) != `{"n":1}` {
		t.Fatalf("pong payload %s", m.Payload)
	}
	c.send(subscribeMsg("s1", eventsSubscription, map[string]any{"after": before[0]}))
	var got []int64
	for len(got) < 2 {
		p, _ := eventOf(t, c.expect("next"))
		got = append(got, p)
	}
	live := appendN(t, s.store, "ticks-1", 3)
	for len(got) < 5 {
		p, _ := eventOf(t, c.expect("next"))
		got = append(got, p)
	}
	want := append(before[1:], live...)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("positions %v, want %v (replay then live, no gap, no duplicate)", got, want)
	}
	// After the client completes, nothing more arrives for s1.
	c.send(map[string]any{"id": "s1", "type": "complete"})
	c.send(map[string]any{"id": "s1", "type": "complete"}) // for a finished id: ignored
	// Messages are handled in order: once the pong is back, so is the complete.
	c.send(map[string]any{"type": "ping"})
	for m := c.read(); m.Type != "pong"; m = c.read() {
		if m.ID != "s1" || m.Type != "next" {
			t.Fatalf("unexpected %s %s", m.Type, m.Payload)
		}
	}
	appendN(t, s.store, "ticks-1", 1)
	c.send(subscribeMsg("q1", `{ __typename }`, nil))
	for {
		m := c.read()
		if m.ID == "s1" {
			t.Fatalf("message for a completed subscription: %s %s", m.Type, m.Payload)
		}
		if m.ID == "q1" && m.Type == "next" {
			if string(m.Payload) != `{"data":{"__typename":"Query"}}` {
				t.Fatalf("query over ws: %s", m.Payload)
			}
			break
		}
	}
	if m := c.expect("complete"); m.ID != "q1" {
		t.Fatalf("complete for %q", m.ID)
	}
}

// An id is free again as soon as the client completes its operation: a
// subscribe with it right after starts a new operation (no 4409, which is
// for an operation still running), and a complete then ends the new one.
func TestTransportWSIdsAreFreeOnceCompleted(t *testing.T) {
	s := newWSServer(t, &graph.Websocket{})
	first := appendN(t, s.store, "reuse-1", 1)
	c := s.dial(t, graph.ProtocolTransportWS)
	c.init()
	for range 3 {
		c.send(subscribeMsg("1", eventsSubscription, map[string]any{"after": first[0] - 1}))
		// The first round reads the event; later rounds may first get
		// messages the previous round queued before its complete.
		for {
			m := c.expect("next")
			if p, _ := eventOf(t, m); p == first[0] && m.ID == "1" {
				break
			}
		}
		c.send(map[string]any{"id": "1", "type": "complete"})
	}
	// The last complete ended the last operation: once it is handled (the
	// pong comes back after it), a new event sends nothing for "1", and the
	// connection is still open.
	c.send(map[string]any{"type": "ping"})
	for m := c.read(); m.Type != "pong"; m = c.read() {
		if m.ID != "1" || m.Type != "next" {
			t.Fatalf("unexpected %s %s %s", m.ID, m.Type, m.Payload)
		}
	}
	appendN(t, s.store, "reuse-1", 1)
	c.send(subscribeMsg("q", `{ __typename }`, nil))
	for m := c.read(); m.ID != "q" || m.Type != "next"; m = c.read() {
		if m.ID == "1" && m.Type == "next" {
			if p, _ := eventOf(t, m); p != first[0] {
				t.Fatalf("an event after the last complete reached operation 1: %s", m.Payload)
			}
		}
	}
}

func TestTransportWSErrorsSendNoComplete(t *testing.T) {
	s := newWSServer(t, &graph.Websocket{})
	c := s.dial(t, graph.ProtocolTransportWS)
	c.init()
	c.send(subscribeMsg("bad", `subscription { events { nope } }`, nil))
	if m := c.expect("error"); m.ID != "bad" || !strings.Contains(string(m.Payload), "nope") {
		t.Fatalf("validation error = %s %s", m.ID, m.Payload)
	}
	c.send(subscribeMsg("q", `{ __typename }`, nil))
	if m := c.expect("next"); m.ID != "q" {
		t.Fatalf("after an error the next message was for %q, want q (no complete for bad)", m.ID)
	}
}

func TestTransportWSCloseCodes(t *testing.T) {
	cases := []struct {
		name   string
		ws     *graph.Websocket
		protos []string
		frames []any
		code   int
		reason string // a part of the close frame's reason, when given
	}{
		{"invalid JSON", nil, nil, []any{"{nope"}, graph.CloseInvalidMessage, ""},
		{"unknown message type", nil, nil, []any{`{"type":"connection_init"}`, `{"type":"shout"}`}, graph.CloseInvalidMessage, ""},
		{"subscribe without id", nil, nil, []any{`{"type":"connection_init"}`, `{"type":"subscribe","payload":{"query":"{ __typename }"}}`}, graph.CloseInvalidMessage, ""},
		{"subscribe before ack", nil, nil, []any{subscribeMsg("1", `{ __typename }`, nil)}, graph.CloseUnauthorized, ""},
		{"init refused", &graph.Websocket{Init: func(ctx context.Context, p map[string]any) (context.Context, error) {
			return ctx, errors.New("bad token")
		}}, nil, []any{`{"type":"connection_init","payload":{"token":"x"}}`}, graph.CloseForbidden, "Forbidden: bad token"},
		// Reasons that quote what the client sent, of any length, are cut
		// to a close frame's 123 bytes (a longer one was not sent at all:
		// the connection ended with no close code).
		{"long unknown message type", nil, nil, []any{`{"type":"connection_init"}`, `{"type":"` + strings.Repeat("é", 200) + `"}`}, graph.CloseInvalidMessage, "Unknown message type éé"},
		{"long duplicate subscriber", nil, nil, []any{`{"type":"connection_init"}`,
			subscribeMsg(strings.Repeat("d", 300), eventsSubscription, nil), subscribeMsg(strings.Repeat("d", 300), eventsSubscription, nil)}, graph.CloseSubscriberExists, "Subscriber for ddd"},
		{"no subprotocol", nil, []string{}, nil, graph.CloseSubprotocol, ""},
		{"init timeout", &graph.Websocket{InitTimeout: 100 * time.Millisecond}, nil, nil, graph.CloseInitTimeout, ""},
		{"duplicate subscriber", nil, nil, []any{`{"type":"connection_init"}`,
			subscribeMsg("dup", eventsSubscription, nil), subscribeMsg("dup", eventsSubscription, nil)}, graph.CloseSubscriberExists, ""},
		// graphql-transport-ws: a complete needs an id, a ping's or pong's
		// payload is an object when there is one.
		{"complete without id", nil, nil, []any{`{"type":"connection_init"}`, `{"type":"complete"}`}, graph.CloseInvalidMessage, "complete message needs an id"},
		{"complete with an empty id", nil, nil, []any{`{"type":"connection_init"}`, `{"type":"complete","id":""}`}, graph.CloseInvalidMessage, ""},
		{"ping with a string payload", nil, nil, []any{`{"type":"connection_init"}`, `{"type":"ping","payload":"hello"}`}, graph.CloseInvalidMessage, "payload must be an object"},
		{"pong with an array payload", nil, nil, []any{`{"type":"connection_init"}`, `{"type":"pong","payload":[1]}`}, graph.CloseInvalidMessage, ""},
		{"too many init requests", nil, nil, []any{`{"type":"connection_init"}`, `{"type":"connection_init"}`}, graph.CloseTooManyInitRequests, ""},
		{"message too big", &graph.Websocket{MaxMessageBytes: 1024}, nil, []any{`{"type":"connection_init","payload":{"x":"` + strings.Repeat("x", 2000) + `"}}`}, websocket.CloseMessageTooBig, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ws := tc.ws
			if ws == nil {
				ws = &graph.Websocket{}
			}
			s := newWSServer(t, ws)
			protos := tc.protos
			if protos == nil {
				protos = []string{graph.ProtocolTransportWS}
			}
			c := s.dial(t, protos...)
			for _, f := range tc.frames {
				c.send(f)
			}
			code, reason := c.closeFrame()
			if code != tc.code || !strings.Contains(reason, tc.reason) || len(reason) > 123 || !utf8.ValidString(reason) {
				t.Fatalf("close %d %q, want %d with %q (at most 123 bytes of UTF-8)", code, reason, tc.code, tc.reason)
			}
		})
	}
}

// A client that ignores the server's close frame and sends on does not
// keep its connection, or the transport's Shutdown, waiting: after its
// close frame the server reads only the peer's close.
func TestShutdownIsNotHeldByAClientThatSendsOn(t *testing.T) {
	ws := &graph.Websocket{KeepAlive: 10 * time.Second}
	s := newWSServer(t, ws)
	c := s.dial(t, graph.ProtocolTransportWS)
	c.init()
	stop := make(chan struct{})
	defer close(stop)
	go func() { // never reads again, pings every 50 ms
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
				_ = c.conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping"}`))
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	if err := ws.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v after %v, with a client sending on", err, time.Since(start))
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Shutdown took %v with a client sending on", d)
	}
}

func TestTransportWSOriginCheck(t *testing.T) {
	s := newWSServer(t, &graph.Websocket{AllowedOrigins: []string{"https://app.example"}})
	d := websocket.Dialer{Subprotocols: []string{graph.ProtocolTransportWS}}
	_, resp, err := d.Dial(s.url, http.Header{"Origin": {"https://evil.example"}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a foreign origin was accepted: %v %v", err, resp)
	}
	conn, _, err := d.Dial(s.url, http.Header{"Origin": {"https://app.example"}})
	if err != nil {
		t.Fatalf("an allowed origin was refused: %v", err)
	}
	conn.Close()
}

func TestLegacyGraphQLWSProtocol(t *testing.T) {
	s := newWSServer(t, &graph.Websocket{})
	c := s.dial(t, graph.ProtocolLegacyWS)
	if c.conn.Subprotocol() != graph.ProtocolLegacyWS {
		t.Fatalf("subprotocol %q", c.conn.Subprotocol())
	}
	c.send(map[string]any{"type": "connection_init", "payload": map[string]any{}})
	c.expect("connection_ack")
	c.send(map[string]any{"id": "1", "type": "start", "payload": map[string]any{"query": eventsSubscription}})
	positions := appendN(t, s.store, "legacy-1", 2)
	for _, want := range positions {
		m := c.expect("data")
		if p, _ := eventOf(t, m); p != want || m.ID != "1" {
			t.Fatalf("data %s, want position %d", m.Payload, want)
		}
	}
	c.send(map[string]any{"id": "1", "type": "stop"})
	c.send(map[string]any{"id": "2", "type": "start", "payload": map[string]any{"query": `{ __typename }`}})
	if m := c.expect("data"); m.ID != "2" {
		t.Fatalf("data for %q after stop", m.ID)
	}
	c.expect("complete")
	// Refused starts are answered with an error that names the operation.
	// A refused start is answered with an error that names the operation,
	// unless a running operation holds the id: the client would take the
	// error for that operation's end, which runs on (and sends on).
	quiet := `subscription { events(streamPrefix: "quiet-") { position } }`
	c.send(map[string]any{"id": "3", "type": "start", "payload": map[string]any{"query": quiet}})
	c.send(map[string]any{"id": "3", "type": "start", "payload": map[string]any{"query": quiet}})
	if m := c.expect("error"); m.ID != "" || !strings.Contains(string(m.Payload), "already exists") {
		t.Fatalf("a duplicate start: %+v, want an error without an id", m)
	}
	c.send(map[string]any{"id": "3", "type": "start", "payload": map[string]any{"variables": map[string]any{}}})
	if m := c.expect("error"); m.ID != "" {
		t.Fatalf("a start without a query under a running id: %+v, want an error without an id", m)
	}
	c.send(map[string]any{"id": "4", "type": "start", "payload": map[string]any{"variables": map[string]any{}}})
	if m := c.expect("error"); m.ID != "4" || !strings.Contains(string(m.Payload), "needs an id and a payload with a query") {
		t.Fatalf("a start without a query: %+v, want an error for id 4", m)
	}
	appendN(t, s.store, "quiet-1", 1)
	if m := c.expect("data"); m.ID != "3" {
		t.Fatalf("data %+v, want operation 3's, which runs on", m)
	}
	c.send(map[string]any{"id": "3", "type": "stop"})
	c.send(map[string]any{"type": "connection_terminate"})
	if code := c.closeCode(); code != websocket.CloseNormalClosure {
		t.Fatalf("terminate closed with %d", code)
	}
}

// TestResumeAfterKill: a client killed mid-stream resubscribes with the last
// position it saw and receives exactly the events it missed.
func TestResumeAfterKill(t *testing.T) {
	s := newWSServer(t, &graph.Websocket{})
	c := s.dial(t, graph.ProtocolTransportWS)
	c.init()
	c.send(subscribeMsg("s", eventsSubscription, map[string]any{"prefix": "resume-"}))
	first := appendN(t, s.store, "resume-1", 3)
	var last int64
	for range first {
		last, _ = eventOf(t, c.expect("next"))
	}
	c.conn.Close() // killed: no complete, no close frame
	missed := appendN(t, s.store, "resume-1", 4)
	appendN(t, s.store, "other-1", 2) // filtered out
	c2 := s.dial(t, graph.ProtocolTransportWS)
	c2.init()
	c2.send(subscribeMsg("s", eventsSubscription, map[string]any{"prefix": "resume-", "after": last}))
	var got []int64
	for range missed {
		p, _ := eventOf(t, c2.expect("next"))
		got = append(got, p)
	}
	if fmt.Sprint(got) != fmt.Sprint(missed) {
		t.Fatalf("resumed with %v, want exactly %v", got, missed)
	}
}

// TestShutdownClosesSocketsAndLeaksNoGoroutine: Shutdown closes every
// socket with 1001, and no goroutine of the transport survives.
func TestShutdownClosesSocketsAndLeaksNoGoroutine(t *testing.T) {
	baseline := runtime.NumGoroutine()
	ws := &graph.Websocket{}
	s := newWSServer(t, ws)
	var clients []*wsClient
	for i := 0; i < 5; i++ {
		c := s.dial(t, graph.ProtocolTransportWS)
		c.init()
		c.send(subscribeMsg("s", eventsSubscription, nil))
		clients = append(clients, c)
	}
	appendN(t, s.store, "x-1", 1)
	for _, c := range clients {
		c.expect("next")
	}
	if n := ws.Connections(); n != 5 {
		t.Fatalf("%d connections, want 5", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ws.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range clients {
		if code := c.closeCode(); code != websocket.CloseGoingAway {
			t.Fatalf("closed with %d, want 1001", code)
		}
		c.conn.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > baseline+2 { // the test server's own may linger briefly
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			n := runtime.Stack(buf, true)
			t.Fatalf("%d goroutines, baseline %d:\n%s", runtime.NumGoroutine(), baseline, buf[:n])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// withData subscribes to the log with the events' (large) data.
const withData = `subscription { events { position streamId data } }`

// TestSlowClientIsCutOffWithoutHurtingOthers: a subscriber that stops
// reading is disconnected, while another receives every event promptly.
func TestSlowClientIsCutOffWithoutHurtingOthers(t *testing.T) {
	ws := &graph.Websocket{SendQueue: 8, WriteTimeout: time.Second}
	s := newWSServer(t, ws)
	// The slow client's socket takes in little, so its backlog builds up at the server.
	tinyBufferSubscriber(t, s)
	fast := s.dial(t, graph.ProtocolTransportWS)
	fast.init()
	fast.send(subscribeMsg("s", withData, nil))
	time.Sleep(100 * time.Millisecond)

	// The fast client reads while the events are written, as a live client does.
	const n = 300
	got := make(chan []int64, 1)
	go func() {
		var ps []int64
		defer func() { got <- ps }()
		for len(ps) < n {
			_ = fast.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			var m wsMsg
			if err := fast.conn.ReadJSON(&m); err != nil {
				return
			}
			if m.Type != "next" {
				continue
			}
			var p struct {
				Data struct {
					Events struct{ Position int64 } `json:"events"`
				} `json:"data"`
			}
			if json.Unmarshal(m.Payload, &p) != nil {
				return
			}
			ps = append(ps, p.Data.Events.Position)
		}
	}()
	big := json.RawMessage(`{"blob": "` + strings.Repeat("x", 60_000) + `"}`)
	var want []int64
	for i := 0; i < n; i++ {
		res, err := s.store.Append(context.Background(), "big-1", domain.ExpectAny, domain.EventData{Type: "Big", SchemaVersion: 1, Data: big})
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, res.LastPosition)
	}
	if ps := <-got; !slices.Equal(ps, want) {
		t.Fatalf("fast client received %d events (%v...), want %d", len(ps), ps[:min(len(ps), 5)], n)
	}
	deadline := time.Now().Add(10 * time.Second)
	for ws.Connections() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections: the slow client was not cut off", ws.Connections())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestThousandWebsocketSubscribers: 1,000 subscribers on one process all
// receive every event of a write burst, in position order, none missing,
// none duplicated.
func TestThousandWebsocketSubscribers(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000 connections; skipped with -short")
	}
	s := newWSServer(t, &graph.Websocket{})
	const subscribers, events = 1000, 30
	clients := make([]*wsClient, subscribers)
	for i := range clients {
		clients[i] = s.dial(t, graph.ProtocolTransportWS)
		clients[i].send(map[string]any{"type": "connection_init"})
	}
	for _, c := range clients {
		c.expect("connection_ack")
		c.send(subscribeMsg("s", eventsSubscription, map[string]any{"prefix": "burst-"}))
	}
	time.Sleep(300 * time.Millisecond)
	want := appendN(t, s.store, "burst-1", events)
	errs := make(chan error, subscribers)
	for _, c := range clients {
		go func() {
			var got []int64
			_ = c.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
			for len(got) < events {
				var m wsMsg
				if err := c.conn.ReadJSON(&m); err != nil {
					errs <- fmt.Errorf("after %d events: %w", len(got), err)
					return
				}
				var p struct {
					Data struct{ Events struct{ Position int64 } }
				}
				_ = json.Unmarshal(m.Payload, &p)
				got = append(got, p.Data.Events.Position)
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				errs <- fmt.Errorf("got %v, want %v", got, want)
				return
			}
			errs <- nil
		}()
	}
	failed := 0
	for range clients {
		if err := <-errs; err != nil {
			if failed == 0 {
				t.Errorf("a subscriber: %v", err)
			}
			failed++
		}
	}
	if failed > 0 {
		t.Fatalf("%d of %d subscribers did not receive the burst exactly", failed, subscribers)
	}
}

// TestIdleSubscriptionCostsOneGoroutine: a connection with an idle events
// subscription keeps only its reader goroutine: its writer, its hub
// subscriber and its operation run only while there is something to
// deliver, and still deliver the next event at once.
func TestIdleSubscriptionCostsOneGoroutine(t *testing.T) {
	ws := &graph.Websocket{}
	s := newWSServer(t, ws)
	appendN(t, s.store, "idle-1", 3)
	time.Sleep(100 * time.Millisecond)
	baseline := runtime.NumGoroutine()
	const n = 50
	var clients []*wsClient
	for i := 0; i < n; i++ {
		c := s.dial(t, graph.ProtocolTransportWS)
		c.init()
		c.send(subscribeMsg("s", eventsSubscription, nil))
		clients = append(clients, c)
	}
	for _, c := range clients {
		for i := 0; i < 3; i++ {
			c.expect("next")
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		extra := runtime.NumGoroutine() - baseline
		if extra <= n+5 { // the test server's own may linger briefly
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines for %d idle subscribed connections, want at most 1 each", extra, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	pos := appendN(t, s.store, "idle-1", 1)
	for _, c := range clients {
		if p, _ := eventOf(t, c.expect("next")); p != pos[0] {
			t.Fatalf("got position %d, want %d", p, pos[0])
		}
	}

	// An idle subscription the client completes ends at once; the others
	// carry on.
	clients[0].send(map[string]any{"id": "s", "type": "complete"})
	deadline = time.Now().Add(5 * time.Second)
	for ws.Subscriptions() != n-1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d subscriptions after one was completed, want %d", ws.Subscriptions(), n-1)
		}
		time.Sleep(10 * time.Millisecond)
	}
	pos = appendN(t, s.store, "idle-1", 1)
	for _, c := range clients[1:] {
		if p, _ := eventOf(t, c.expect("next")); p != pos[0] {
			t.Fatalf("got position %d, want %d", p, pos[0])
		}
	}
}

// TestLogSubscribersShareEncodedPayloads: subscribers of the log with the
// same selection share each event's encoded payload, whatever position
// they started from; a different selection gets its own. Every client
// receives every event, in order, rendered for its own selection.
func TestLogSubscribersShareEncodedPayloads(t *testing.T) {
	ws := &graph.Websocket{}
	s := newWSServer(t, ws)
	before := appendN(t, s.store, "share-1", 5)
	const n = 12
	var clients []*wsClient
	for i := 0; i < n; i++ {
		c := s.dial(t, graph.ProtocolTransportWS)
		c.init()
		vars := map[string]any{"after": 0}
		if i%2 == 1 {
			vars["after"] = before[2] // resuming later: same selection, same payloads
		}
		c.send(subscribeMsg("s", eventsSubscription, vars))
		clients = append(clients, c)
	}
	other := s.dial(t, graph.ProtocolTransportWS)
	other.init()
	other.send(subscribeMsg("o", `subscription { renamed: events(after: 0) { position } }`, nil))

	after := appendN(t, s.store, "share-1", 40)
	all := append(append([]int64{}, before...), after...)
	for i, c := range clients {
		want := all
		if i%2 == 1 {
			want = all[3:]
		}
		for _, w := range want {
			m := c.expect("next")
			p, stream := eventOf(t, m)
			if p != w || stream != "share-1" {
				t.Fatalf("client %d: got position %d of %q, want %d of share-1", i, p, stream, w)
			}
		}
	}
	for _, w := range all {
		m := other.expect("next")
		var p struct {
			Data map[string]struct{ Position int64 } `json:"data"`
		}
		if err := json.Unmarshal(m.Payload, &p); err != nil || p.Data["renamed"].Position != w {
			t.Fatalf("the other selection got %s, want position %d under renamed", m.Payload, w)
		}
	}
	if shared := ws.SharedPayloads(); shared == 0 {
		t.Fatal("no payload was shared between subscribers with the same selection")
	}
}

// clientFrame is a masked (with a zero key) text frame, as a client sends it.
func clientFrame(payload string) []byte {
	b := []byte{0x81}
	switch n := len(payload); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	default:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	}
	b = append(b, 0, 0, 0, 0)
	return append(b, payload...)
}

// TestTransportWSHandlesMessagesSentTogether: messages that reach the
// server in one segment, some already buffered by the reader and some
// larger than its buffer, are each handled at once: the reader waits on
// the socket only when nothing is left to read.
func TestTransportWSHandlesMessagesSentTogether(t *testing.T) {
	s := newWSServer(t, &graph.Websocket{})
	pos := appendN(t, s.store, "together-1", 2)
	c := s.dial(t, graph.ProtocolTransportWS)
	long := `{"id":"a","type":"subscribe","payload":{"query":"subscription { events(streamPrefix: \"together-\") { id position streamId type } }` +
		strings.Repeat(" ", 700) + `"}}`
	var b []byte
	b = append(b, clientFrame(`{"type":"connection_init"}`)...)
	b = append(b, clientFrame(long)...)
	b = append(b, clientFrame(`{"type":"ping"}`)...)
	if _, err := c.conn.NetConn().Write(b); err != nil {
		t.Fatal(err)
	}
	c.expect("connection_ack")
	var got []int64
	pong := false
	for len(got) < 2 || !pong {
		m := c.read()
		switch m.Type {
		case "pong":
			pong = true
		case "next":
			p, _ := eventOf(t, m)
			got = append(got, p)
		default:
			t.Fatalf("got %s %s", m.Type, m.Payload)
		}
	}
	if !slices.Equal(got, pos) {
		t.Fatalf("positions %v, want %v", got, pos)
	}

	// The last of a batch exactly fills the reader's buffer, the next
	// is still on the socket.
	c2 := s.dial(t, graph.ProtocolTransportWS)
	first := clientFrame(`{"type":"connection_init"}`)
	pad := `{"type":"ping","payload":{"p":"` + strings.Repeat("x", 512-len(first)-8-len(`{"type":"ping","payload":{"p":""}}`)) + `"}}`
	b = append(append(first, clientFrame(pad)...), clientFrame(`{"type":"ping"}`)...)
	if len(first)+len(clientFrame(pad)) != 512 {
		t.Fatalf("the first two frames are %d bytes, want 512", len(first)+len(clientFrame(pad)))
	}
	if _, err := c2.conn.NetConn().Write(b); err != nil {
		t.Fatal(err)
	}
	c2.expect("connection_ack")
	c2.expect("pong")
	c2.expect("pong")
}

// TestTransportWSIdsAreFreeOnceTheServerEndsThem: after the server's error
// (or complete) for an id, a client may subscribe with it again at once;
// it was closed with 4409 now and then, the operation not yet gone from the
// connection's list.
func TestTransportWSIdsAreFreeOnceTheServerEndsThem(t *testing.T) {
	s := newWSServer(t, &graph.Websocket{})
	c := s.dial(t, graph.ProtocolTransportWS)
	c.init()
	for i := 0; i < 2000; i++ {
		c.send(subscribeMsg("1", `{ nope }`, nil))
		_ = c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		var m wsMsg
		if err := c.conn.ReadJSON(&m); err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				t.Fatalf("round %d: closed with %d %q after the server's error for the id", i, ce.Code, ce.Text)
			}
			t.Fatal(err)
		}
		if m.Type != "error" {
			t.Fatalf("got %s", m.Type)
		}
	}
}

// A client that has stopped reading does not hold the transport's
// Shutdown for the write timeout (10 s): the close frame waits behind a
// write to a full socket, and the socket is closed once it has taken in
// nothing for 3 s (before, only when the client's queue was full).
func TestShutdownIsNotHeldByAClientThatReadsNothing(t *testing.T) {
	ws := &graph.Websocket{}
	s := newWSServer(t, ws)
	stuckReader(t, s)
	time.Sleep(500 * time.Millisecond) // the writer is now blocked on the full socket
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	start := time.Now()
	if err := ws.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Shutdown took %v with one client that does not read (the close waits 3 s for a stalled client)", d.Round(time.Millisecond))
	}
}

// One client that stops reading (and then subscribes again) does not stall
// the transport's figures for every caller (/metrics calls Subscriptions):
// they waited for the operation's lock, which a sender holds while it
// waits for room in that client's queue.
func TestASlowClientDoesNotStallSubscriptions(t *testing.T) {
	ws := &graph.Websocket{SendQueue: 4}
	s := newWSServer(t, ws)
	slow := stuckReader(t, s)
	time.Sleep(500 * time.Millisecond)                  // the queue is full: the event's sender waits for room
	slow.send(subscribeMsg("t", `{ __typename }`, nil)) // the reader handles it
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	n := ws.Subscriptions()
	if d := time.Since(start); d > time.Second {
		t.Errorf("Subscriptions() took %v (=%d) because one client does not read", d.Round(time.Millisecond), n)
	}
}

// Each operation over a websocket is its own request: two unrelated
// mutations sent on one connection must not share a correlation id (over
// HTTP, two requests never do).
func TestWSOperationsHaveIDsOfTheirOwn(t *testing.T) {
	s := newWSServer(t, &graph.Websocket{})
	// correlations appends an event with each of two mutations on one
	// connection (dialled with header) and returns their correlation ids.
	correlations := func(header http.Header, prefix string) (string, string) {
		d := websocket.Dialer{Subprotocols: []string{graph.ProtocolTransportWS}, HandshakeTimeout: 5 * time.Second}
		conn, _, err := d.Dial(s.url, header)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		c := &wsClient{t: t, conn: conn}
		c.init()
		for _, stream := range []string{prefix + "-a", prefix + "-b"} {
			c.send(subscribeMsg(stream, `mutation($s: String!) { appendEvents(stream: $s, events: [{type: "T", data: {}}]) { position } }`, map[string]any{"s": stream}))
			c.expect("next")
			c.expect("complete")
		}
		c.send(subscribeMsg("q", `query($p: String!) { events(first: 10, streamPrefix: $p) { events { metadata } } }`, map[string]any{"p": prefix + "-"}))
		m := c.expect("next")
		var p struct {
			Data struct {
				Events struct {
					Events []struct {
						Metadata map[string]any `json:"metadata"`
					} `json:"events"`
				} `json:"events"`
			} `json:"data"`
		}
		if err := json.Unmarshal(m.Payload, &p); err != nil || len(p.Data.Events.Events) != 2 {
			t.Fatalf("%s: %v", m.Payload, err)
		}
		return fmt.Sprint(p.Data.Events.Events[0].Metadata["correlationId"]), fmt.Sprint(p.Data.Events.Events[1].Metadata["correlationId"])
	}
	if a, b := correlations(nil, "plain"); a == b || a == "" || b == "" {
		t.Errorf("two separate mutations on one websocket have correlation ids %q and %q, want two of their own", a, b)
	}
	// A correlation id the client names on the upgrade holds for each.
	if a, b := correlations(http.Header{"X-Correlation-Id": {"flow-7"}}, "named"); a != "flow-7" || b != "flow-7" {
		t.Errorf("mutations on a connection opened with X-Correlation-ID flow-7 have correlation ids %q and %q", a, b)
	}
}

// stuckReader connects a tinyBufferSubscriber that reads nothing, and
// appends 200 events of 60 KB (fewer than the 256 messages a connection's
// queue holds): the server's writer is soon blocked on the full socket.
func stuckReader(t *testing.T, s *wsServer) *wsClient {
	t.Helper()
	slow := tinyBufferSubscriber(t, s)
	time.Sleep(100 * time.Millisecond)
	big := json.RawMessage(`{"blob": "` + strings.Repeat("x", 60_000) + `"}`)
	for i := 0; i < 200; i++ {
		if _, err := s.store.Append(context.Background(), "big-1", domain.ExpectAny, domain.EventData{Type: "Big", SchemaVersion: 1, Data: big}); err != nil {
			t.Fatal(err)
		}
	}
	return slow
}

// tinyBufferSubscriber connects a tinyBufferClient and subscribes it (id
// "s") to the log with the events' data.
func tinyBufferSubscriber(t *testing.T, s *wsServer) *wsClient {
	t.Helper()
	c := tinyBufferClient(t, s)
	c.send(subscribeMsg("s", withData, nil))
	return c
}

// tinyBufferClient connects a client with a 4 KB receive buffer, past its
// connection_init.
func tinyBufferClient(t *testing.T, s *wsServer) *wsClient {
	t.Helper()
	tiny := &net.Dialer{Control: func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		if err != nil {
			return err
		}
		return serr
	}}
	d := websocket.Dialer{Subprotocols: []string{graph.ProtocolTransportWS}, NetDialContext: tiny.DialContext}
	conn, _, err := d.Dial(s.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &wsClient{t: t, conn: conn}
	c.init()
	return c
}

// panickingExec is a GraphExecutor whose operations panic outside any
// resolver (a bug in the transport's path, say).
type panickingExec struct{ graphql.GraphExecutor }

func (panickingExec) CreateOperationContext(context.Context, *graphql.RawParams) (*graphql.OperationContext, gqlerror.List) {
	panic("boom")
}

// TestAPanickingOperationEndsOnlyItself: an operation that panics outside
// a resolver ends with an INTERNAL error; the connection, and the process,
// go on (the panic ended the process).
func TestAPanickingOperationEndsOnlyItself(t *testing.T) {
	ws := &graph.Websocket{Log: slog.New(slog.DiscardHandler)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { ws.Do(w, r, panickingExec{}) }))
	defer srv.Close()
	c := (&wsServer{url: "ws" + strings.TrimPrefix(srv.URL, "http"), ws: ws}).dial(t, graph.ProtocolTransportWS)
	c.init()
	for _, id := range []string{"1", "2"} {
		c.send(subscribeMsg(id, `{ __typename }`, nil))
		if m := c.expect("error"); m.ID != id || !strings.Contains(string(m.Payload), "INTERNAL") {
			t.Fatalf("operation %s: %s %s, want its INTERNAL error", id, m.ID, m.Payload)
		}
	}
	c.send(map[string]any{"type": "ping"})
	c.expect("pong")
}

// TestTransportWSReadsMessagesOfAnySize: client messages are read into
// buffers the connections share in turn; messages of every size, one after
// another on one connection (smaller than a buffer, larger, and larger than
// the buffers kept for reuse), are each read whole and handled, none
// carrying a byte of the one before.
func TestTransportWSReadsMessagesOfAnySize(t *testing.T) {
	s := newWSServer(t, &graph.Websocket{})
	pos := appendN(t, s.store, "sizes-1", 2)
	c := s.dial(t, graph.ProtocolTransportWS)
	c.init()
	sizes := []int{0, 3 << 10, 20 << 10, 60 << 10, 100, 40 << 10, 10}
	for i, pad := range sizes {
		// A comment pads the document; the variables choose the stream.
		q := "# " + strings.Repeat("x", pad) + "\n" + eventsSubscription
		id := fmt.Sprintf("s%d", i)
		c.send(subscribeMsg(id, q, map[string]any{"after": 0, "prefix": "sizes-"}))
		for _, want := range pos {
			m := c.expect("next")
			if p, stream := eventOf(t, m); m.ID != id || p != want || stream != "sizes-1" {
				t.Fatalf("message of %d bytes: got %s position %d of %q, want %s position %d", pad, m.ID, p, stream, id, want)
			}
		}
		c.send(map[string]any{"id": id, "type": "complete"})
	}
	c.send(`{"type":"ping","payload":{"n":1}}`)
	if m := c.expect("pong"); string(m.Payload) != `{"n":1}` {
		t.Fatalf("pong payload %s, want the ping's", m.Payload)
	}
}

// TestLogSubscribersOfDifferentSelectionsShareNothing: subscriptions whose
// root field differs only in its selection (same alias, same arguments)
// each get their own rendering, whichever subscribed first and however
// often each query is sent.
func TestLogSubscribersOfDifferentSelectionsShareNothing(t *testing.T) {
	s := newWSServer(t, &graph.Websocket{})
	queries := []string{
		`subscription { events(after: 0, streamPrefix: "sel-") { position } }`,
		`subscription { events(after: 0, streamPrefix: "sel-") { position type } }`,
	}
	var clients []*wsClient
	for i := range 6 {
		c := s.dial(t, graph.ProtocolTransportWS)
		c.init()
		c.send(subscribeMsg("s", queries[i%2], nil))
		clients = append(clients, c)
	}
	appendN(t, s.store, "sel-1", 3)
	for i, c := range clients {
		for range 3 {
			m := c.expect("next")
			var p struct {
				Data struct {
					Events map[string]any `json:"events"`
				} `json:"data"`
			}
			if err := json.Unmarshal(m.Payload, &p); err != nil {
				t.Fatal(err)
			}
			_, hasType := p.Data.Events["type"]
			if hasType != (i%2 == 1) || len(p.Data.Events) != 1+i%2 {
				t.Fatalf("client %d (%s) got %s", i, queries[i%2], m.Payload)
			}
		}
	}
}

// The upgrade is a request like any other: its answer (101) carries the
// X-Request-ID and X-Correlation-ID every HTTP answer carries (the upgrader
// wrote its own headers and dropped them).
func TestWSUpgradeEchoesRequestIDs(t *testing.T) {
	s := newWSServer(t, &graph.Websocket{})
	d := websocket.Dialer{Subprotocols: []string{graph.ProtocolTransportWS}, HandshakeTimeout: 5 * time.Second}
	conn, resp, err := d.Dial(s.url, http.Header{"X-Request-Id": {"up-1"}, "X-Correlation-Id": {"flow-1"}})
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	if got, want := resp.Header.Get(graph.HeaderRequestID), "up-1"; got != want {
		t.Errorf("upgrade answered with X-Request-ID %q, want %q", got, want)
	}
	if got, want := resp.Header.Get(graph.HeaderCorrelationID), "flow-1"; got != want {
		t.Errorf("upgrade answered with X-Correlation-ID %q, want %q", got, want)
	}
}

// Without X-Correlation-ID the upgrade's answer names none: each
// operation on the connection takes its own.
func TestWSUpgradeNamesNoCorrelationOfItsOwn(t *testing.T) {
	s := newWSServer(t, &graph.Websocket{})
	d := websocket.Dialer{Subprotocols: []string{graph.ProtocolTransportWS}, HandshakeTimeout: 5 * time.Second}
	conn, resp, err := d.Dial(s.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	if resp.Header.Get(graph.HeaderRequestID) == "" {
		t.Error("upgrade answered without X-Request-ID")
	}
	if got := resp.Header.Get(graph.HeaderCorrelationID); got != "" {
		t.Errorf("upgrade answered with X-Correlation-ID %q, which none of its operations has", got)
	}
}
