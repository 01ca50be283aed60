package graph_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"cqrsgate/domain"
	"cqrsgate/eventstore"
	"cqrsgate/graph"
)

// slowStore holds each append until released (or its ctx ends, as the
// PostgreSQL store's does: an append given up is then of unknown outcome).
type slowStore struct {
	*eventstore.Memory
	entered, release chan struct{}
}

func (s *slowStore) Append(ctx context.Context, stream string, expected domain.ExpectedVersion, events ...domain.EventData) (domain.AppendResult, error) {
	s.entered <- struct{}{}
	select {
	case <-s.release:
	case <-ctx.Done():
		return domain.AppendResult{}, ctx.Err()
	}
	return s.Memory.Append(ctx, stream, expected, events...)
}

// TestWebsocketShutdownLetsAMutationInFlightFinish: as an HTTP server's
// Shutdown lets a request in flight finish, Websocket.Shutdown lets a
// mutation a connection is running finish and sends its answer before the
// 1001; it cancelled every operation at once, and the mutation's client got
// no result (its append cut off, of unknown outcome). A subscription on the
// same connection ends at once, with no complete (the client subscribes
// again once reconnected).
func TestWebsocketShutdownLetsAMutationInFlightFinish(t *testing.T) {
	mem := memStore()
	store := &slowStore{Memory: mem, entered: make(chan struct{}, 1), release: make(chan struct{})}
	log := slog.New(slog.DiscardHandler)
	hub := eventstore.NewHub(mem, log)
	hubCtx, stopHub := context.WithCancel(context.Background())
	defer stopHub()
	go func() { _ = hub.Run(hubCtx) }()
	ws := &graph.Websocket{}
	srv := httptest.NewServer(graph.NewHandler(graph.Config{
		Store: store, Commands: domain.NewService(store, log, time.Now, domain.ServiceOptions{}), Log: log, Websocket: ws, Hub: hub,
	}))
	defer srv.Close()
	d := websocket.Dialer{Subprotocols: []string{graph.ProtocolTransportWS}}
	conn, _, err := d.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.WriteJSON(map[string]any{"type": "connection_init"})
	_ = conn.WriteJSON(map[string]any{"id": "s", "type": "subscribe", "payload": map[string]any{"query": `subscription { events { position } }`}})
	_ = conn.WriteJSON(map[string]any{"id": "m", "type": "subscribe", "payload": map[string]any{
		"query": `mutation { openAccount(input: {accountId: "acc-ws", owner: "ada", currency: "EUR", initialDeposit: 10}) { version } }`}})
	<-store.entered
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	shutdown := make(chan error, 1)
	go func() { shutdown <- ws.Shutdown(ctx) }()
	time.Sleep(100 * time.Millisecond)
	close(store.release) // the append would finish now
	var got []string
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, msg, err := conn.ReadMessage()
		if err != nil {
			got = append(got, err.Error())
			break
		}
		got = append(got, string(msg))
	}
	if err := <-shutdown; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	v, _ := mem.StreamVersion(context.Background(), "account-acc-ws")
	answered := false
	for _, m := range got {
		answered = answered || strings.Contains(m, `"id":"m"`) && strings.Contains(m, `"version"`)
		if strings.Contains(m, `"id":"s","type":"complete"`) {
			t.Errorf("the subscription got a complete at shutdown (a client takes it for its normal end)")
		}
	}
	if !answered || !strings.Contains(got[len(got)-1], "1001") {
		t.Fatalf("the mutation in flight was not answered before the close with 1001 (stream version now %d); the client read:\n%s", v, strings.Join(got, "\n"))
	}
}

// TestShutdownSendsALargeAnswerToASlowReader: a query answered before
// Shutdown has its answer (9 MB, to a client that reads slowly) sent in
// full before the 1001, as long as the client takes it in; the close,
// forced a second after it was asked for, cut it off.
func TestShutdownSendsALargeAnswerToASlowReader(t *testing.T) {
	ws := &graph.Websocket{}
	s := newWSServer(t, ws)
	big := json.RawMessage(`{"blob": "` + strings.Repeat("x", 60_000) + `"}`)
	for i := 0; i < 150; i++ {
		if _, err := s.store.Append(context.Background(), "big-1", domain.ExpectAny, domain.EventData{Type: "Big", SchemaVersion: 1, Data: big}); err != nil {
			t.Fatal(err)
		}
	}
	c := tinyBufferClient(t, s)
	conn := c.conn
	c.send(subscribeMsg("q", `{ events(first: 150) { events { data } } }`, nil))
	time.Sleep(500 * time.Millisecond) // answered: the writer is writing ~9 MB to a slow reader
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	go func() { _ = ws.Shutdown(ctx) }()
	time.Sleep(1500 * time.Millisecond) // the reader is slow for a moment
	var got []string
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, msg, err := conn.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				got = append(got, ce.Error())
			} else {
				got = append(got, "error: "+err.Error())
			}
			break
		}
		if len(msg) > 100 {
			msg = msg[:100]
		}
		got = append(got, string(msg))
	}
	if len(got) < 3 || !strings.Contains(got[len(got)-2], `"complete"`) || !strings.Contains(got[len(got)-1], "1001") {
		t.Fatalf("a finished query's answer was not sent before 1001 at Shutdown; the client read: %q", got)
	}
}

// A client that reads nothing fills its socket before its queue: the
// writer's write to it times out first, and the connection ends there. It
// is a client dropped for being too slow all the same, and
// cqrsgate_websocket_dropped_clients_total (Dropped) must say so: it
// stayed at 0 while such clients were disconnected.
func TestAClientThatReadsNothingCountsAsDropped(t *testing.T) {
	ws := &graph.Websocket{WriteTimeout: 300 * time.Millisecond}
	s := newWSServer(t, ws)
	stuckReader(t, s)
	deadline := time.Now().Add(10 * time.Second)
	for ws.Connections() > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := ws.Connections(); n != 0 {
		t.Fatalf("%d connections still open: the client that reads nothing was not disconnected", n)
	}
	if n := ws.Dropped(); n != 1 {
		t.Errorf("Dropped() = %d after a client that reads nothing was disconnected, want 1", n)
	}
}
