package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5/pgxpool"

	"cqrsgate/domain"
	"cqrsgate/eventstore"
)

// subscriber is one websocket client; it records when each position
// arrived, and, for messages that carry their send time ("t"), how long
// they took.
type subscriber struct {
	conn *websocket.Conn
	mu   sync.Mutex
	got  []arrival
}

type arrival struct {
	position int64
	at       time.Time
	sent     int64 // unix nanoseconds, when the message says (baseline)
}

var (
	positionKey = []byte(`"position":`)
	sentKey     = []byte(`"t":`)
)

func field(data, key []byte) (int64, bool) {
	i := bytes.Index(data, key)
	if i < 0 {
		return 0, false
	}
	rest := data[i+len(key):]
	end := bytes.IndexAny(rest, ",}")
	if end < 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(string(rest[:end]), 10, 64)
	return n, err == nil
}

func (s *subscriber) read(errs chan<- error) {
	for {
		_, data, err := s.conn.ReadMessage()
		if err != nil {
			if !websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway) && !strings.Contains(err.Error(), "use of closed") {
				select {
				case errs <- err:
				default:
				}
			}
			return
		}
		at := time.Now()
		p, ok := field(data, positionKey)
		if !ok {
			if bytes.Contains(data, []byte(`"type":"next"`)) || bytes.Contains(data, []byte(`"type":"error"`)) {
				select {
				case errs <- fmt.Errorf("unexpected message %s", data):
				default:
				}
			}
			continue
		}
		sent, _ := field(data, sentKey)
		s.mu.Lock()
		s.got = append(s.got, arrival{p, at, sent})
		s.mu.Unlock()
	}
}

func (s *subscriber) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.got)
}

// connect opens n websocket connections to url, 64 at a time; init, when
// set, runs on each (the graphql-transport-ws handshake and subscribe).
func connect(ctx context.Context, url string, n int, protocols []string, init func(*websocket.Conn) error) ([]*subscriber, chan error, error) {
	errs := make(chan error, 16)
	subs := make([]*subscriber, n)
	d := websocket.Dialer{Subprotocols: protocols, HandshakeTimeout: 30 * time.Second, ReadBufferSize: 1024, WriteBufferSize: 1024}
	sem := make(chan struct{}, 64)
	var failed atomic.Value
	var wg sync.WaitGroup
	for i := range subs {
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			conn, _, err := d.DialContext(ctx, url, nil)
			if err != nil {
				failed.Store(err)
				return
			}
			conn.SetPingHandler(pong(conn))
			if init != nil {
				if err := init(conn); err != nil {
					failed.Store(err)
					conn.Close()
					return
				}
			}
			subs[i] = &subscriber{conn: conn}
			go subs[i].read(errs)
		}()
	}
	wg.Wait()
	err, _ := failed.Load().(error)
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	if err != nil {
		closeAll(subs)
		return nil, nil, fmt.Errorf("connecting %d clients: %w", n, err)
	}
	return subs, errs, nil
}

// pong answers a ping as gorilla/websocket's default handler does, but
// within a minute rather than a second: a client of a fan-out that
// delivers a million messages a second shares two cores with it, and
// waited longer than a second to write a pong, which failed its reads
// ("write tcp ...: i/o timeout").
func pong(conn *websocket.Conn) func(string) error {
	return func(data string) error {
		err := conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Minute))
		if errors.Is(err, websocket.ErrCloseSent) {
			return nil
		}
		return err
	}
}

func closeAll(subs []*subscriber) {
	for _, s := range subs {
		if s != nil {
			s.conn.Close()
		}
	}
}

// subscribeEvents is the graphql-transport-ws handshake and an events
// subscription.
func subscribeEvents(conn *websocket.Conn) error {
	if err := conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"connection_init"}`)); err != nil {
		return err
	}
	var ack struct{ Type string }
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	if err := conn.ReadJSON(&ack); err != nil || ack.Type != "connection_ack" {
		return fmt.Errorf("connection_init: %v %q", err, ack.Type)
	}
	_ = conn.SetReadDeadline(time.Time{})
	return conn.WriteMessage(websocket.TextMessage, []byte(`{"id":"1","type":"subscribe","payload":{"query":"subscription { events(streamPrefix: \"bench-\", after: 0) { position } }"}}`))
}

// waitAll waits until every subscriber has received want messages.
func waitAll(ctx context.Context, subs []*subscriber, errs chan error, want int) error {
	deadline := time.Now().Add(3 * time.Minute)
	for _, s := range subs {
		for s.count() < want {
			select {
			case err := <-errs:
				return fmt.Errorf("a client: %w", err)
			case <-ctx.Done():
				return ctx.Err()
			default:
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("a client has %d of %d messages after 3 minutes", s.count(), want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return nil
}

// checkOrder verifies that every subscriber received exactly want messages
// in increasing position order, and returns the last arrival.
func checkOrder(subs []*subscriber, want int) (time.Time, error) {
	var last time.Time
	for i, s := range subs {
		s.mu.Lock()
		got := s.got
		s.mu.Unlock()
		if len(got) != want {
			return last, fmt.Errorf("client %d received %d messages, want %d", i, len(got), want)
		}
		for j := 1; j < len(got); j++ {
			if got[j].position <= got[j-1].position {
				return last, fmt.Errorf("client %d: position %d after %d", i, got[j].position, got[j-1].position)
			}
		}
		if len(got) > 0 && got[len(got)-1].at.After(last) {
			last = got[len(got)-1].at
		}
	}
	return last, nil
}

// fanoutSeconds is how long the writer writes at 1,000 events/s.
func (e *env) fanoutSeconds(clients int) time.Duration {
	switch {
	case e.quick:
		return time.Second
	case clients >= 10_000:
		return 2 * time.Second
	}
	return 5 * time.Second
}

const fanoutRate = 1000 // events per second

// fanout: n subscribers of the event stream while 1,000 events/s are
// committed, against a raw gorilla/websocket server broadcasting a
// pre-encoded message to as many clients at the same rate. Value and
// baseline are messages delivered per second (from the first send to the
// last arrival); Extra["p99ms"] is the gateway's commit-to-client p99.
func (e *env) fanout(ctx context.Context, n int) (measure, error) {
	events := int(e.fanoutSeconds(n).Seconds() * fanoutRate)
	g, dbURL, done, err := e.freshGateway(ctx, "fanout")
	if err != nil {
		return measure{}, err
	}
	defer done()
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return measure{}, err
	}
	defer pool.Close()
	store := eventstore.NewPostgres(pool, quiet, eventstore.Limits{}, eventstore.NewBroadcaster())
	if _, err := store.Append(ctx, "warmup", domain.ExpectAny, domain.EventData{Type: "Tick", SchemaVersion: 1, Data: json.RawMessage(`{}`)}); err != nil {
		return measure{}, err
	}
	subs, errs, err := connect(ctx, "ws://"+g.addr+"/graphql", n, []string{"graphql-transport-ws"}, subscribeEvents)
	if err != nil {
		return measure{}, err
	}
	defer closeAll(subs)
	time.Sleep(2 * time.Second) // every subscription reaches the live feed

	// The events are appended at fanoutRate by a few writers (one writer's
	// durable commits alone could not keep that pace), each to streams of
	// its own.
	var mu sync.Mutex
	committed := map[int64]time.Time{}
	const writers = 8
	due := make(chan int, fanoutRate)
	writeErr := make(chan error, writers)
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range due {
				// The commit happens between the append's start and its
				// return (which comes after the COMMIT and a NOTIFY):
				// latencies run from the start, which counts the commit's
				// own time against the gateway rather than a message that
				// arrived before the append returned as no time at all.
				sent := time.Now()
				res, err := store.Append(ctx, fmt.Sprintf("bench-fanout-%d", i%writers), domain.ExpectAny, domain.EventData{Type: "Tick", SchemaVersion: 1, Data: json.RawMessage(`{}`)})
				if err != nil {
					writeErr <- err
					return
				}
				mu.Lock()
				committed[res.LastPosition] = sent
				mu.Unlock()
			}
		}()
	}
	tick := time.NewTicker(time.Second / fanoutRate)
	start := time.Now()
	for i := 0; i < events; i++ {
		<-tick.C
		due <- i
	}
	tick.Stop()
	close(due)
	wg.Wait()
	select {
	case err := <-writeErr:
		return measure{}, err
	default:
	}
	if err := waitAll(ctx, subs, errs, events); err != nil {
		return measure{}, err
	}
	last, err := checkOrder(subs, events)
	if err != nil {
		return measure{}, err
	}
	rate := float64(n*events) / last.Sub(start).Seconds()
	var lat []time.Duration
	for _, s := range subs {
		for _, a := range s.got {
			lat = append(lat, max(a.at.Sub(committed[a.position]), 0))
		}
	}
	slices.Sort(lat)
	closeAll(subs)
	g.stop()

	base, baseLat, err := e.rawFanout(ctx, n, events)
	if err != nil {
		return measure{}, fmt.Errorf("baseline: %w", err)
	}
	p99 := quantile(lat, .99)
	return measure{Value: rate, Baseline: base, Extra: map[string]float64{"p99ms": float64(p99.Microseconds()) / 1000},
		Notes: fmt.Sprintf("%d clients, %d events at %d/s: commit-to-client p50 %s p99 %s (baseline send-to-client p99 %s)", n, events, fanoutRate,
			quantile(lat, .5).Round(10*time.Microsecond), p99.Round(10*time.Microsecond), baseLat.Round(10*time.Microsecond))}, nil
}

// rawFanout runs the baseline server and measures it like fanout.
func (e *env) rawFanout(ctx context.Context, n, events int) (float64, time.Duration, error) {
	b, err := e.startBaseline(ctx, "serve-ws")
	if err != nil {
		return 0, 0, err
	}
	defer b.stop()
	subs, errs, err := connect(ctx, "ws://"+b.addr+"/ws", n, nil, nil)
	if err != nil {
		return 0, 0, err
	}
	defer closeAll(subs)
	time.Sleep(time.Second)
	start := time.Now()
	resp, err := http.Post(fmt.Sprintf("http://%s/broadcast?events=%d&rate=%d", b.addr, events, fanoutRate), "text/plain", nil)
	if err != nil {
		return 0, 0, err
	}
	resp.Body.Close()
	if err := waitAll(ctx, subs, errs, events); err != nil {
		return 0, 0, err
	}
	last, err := checkOrder(subs, events)
	if err != nil {
		return 0, 0, err
	}
	var lat []time.Duration
	for _, s := range subs {
		for _, a := range s.got {
			lat = append(lat, max(a.at.Sub(time.Unix(0, a.sent)), 0))
		}
	}
	slices.Sort(lat)
	return float64(n*events) / last.Sub(start).Seconds(), quantile(lat, .99), nil
}

// idleMemory: the gateway's resident memory per idle, subscribed
// websocket connection.
func (e *env) idleMemory(ctx context.Context) (measure, error) {
	n := e.size.idleConnections
	g, _, done, err := e.freshGateway(ctx, "idle")
	if err != nil {
		return measure{}, err
	}
	defer done()
	// One subscriber first, so that what every connection shares is there.
	warm, _, err := connect(ctx, "ws://"+g.addr+"/graphql", 1, []string{"graphql-transport-ws"}, subscribeEvents)
	if err != nil {
		return measure{}, err
	}
	defer closeAll(warm)
	time.Sleep(time.Second)
	before, err := g.rss()
	if err != nil {
		return measure{}, err
	}
	runtimeSeries := []string{"go_memstats_heap_inuse_bytes", "go_memstats_stack_inuse_bytes"}
	goBefore, err := gatewayMetrics(ctx, g.addr, runtimeSeries...)
	if err != nil {
		return measure{}, err
	}
	subs, _, err := connect(ctx, "ws://"+g.addr+"/graphql", n, []string{"graphql-transport-ws"}, subscribeEvents)
	if err != nil {
		return measure{}, err
	}
	defer closeAll(subs)
	time.Sleep(3 * time.Second)
	after, err := g.rss()
	if err != nil {
		return measure{}, err
	}
	// Every connection holds a running subscription (one refused would
	// have been counted as an idle subscription that costs nothing).
	if live, err := liveSubscriptions(ctx, g.addr); err != nil {
		return measure{}, err
	} else if live < n+1 {
		return measure{}, fmt.Errorf("the gateway runs %d subscriptions, not the %d subscribed", live, n+1)
	}
	// Where it went, as the Go runtime counts it: the heap (live data and
	// the garbage of the burst not yet collected) and goroutine stacks.
	goAfter, err := gatewayMetrics(ctx, g.addr, runtimeSeries...)
	if err != nil {
		return measure{}, err
	}
	perConn := func(k string) float64 { return (goAfter[k] - goBefore[k]) / float64(n) / 1000 }
	return measure{Value: float64(after-before) / float64(n) / 1000,
		Notes: fmt.Sprintf("%d connections: RSS %.1f MB -> %.1f MB; per connection, heap in use %.1f KB (live and not yet collected), stacks %.1f KB",
			n, float64(before)/1e6, float64(after)/1e6, perConn(runtimeSeries[0]), perConn(runtimeSeries[1]))}, nil
}

// serveBaselineWS is the raw gorilla/websocket baseline: clients connect to
// /ws; POST /broadcast?events=N&rate=R sends N pre-encoded messages at R
// per second to every client (each client has its own writer goroutine and
// queue, as any real server needs).
func serveBaselineWS(addr string) error {
	var mu sync.Mutex
	clients := map[chan *websocket.PreparedMessage]bool{}
	up := websocket.Upgrader{ReadBufferSize: 1024, WriteBufferSize: 1024, WriteBufferPool: &sync.Pool{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("GET /ws", func(w http.ResponseWriter, r *http.Request) {
		conn, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		out := make(chan *websocket.PreparedMessage, 1024)
		mu.Lock()
		clients[out] = true
		mu.Unlock()
		go func() { // reads only to notice the close
			for {
				if _, _, err := conn.ReadMessage(); err != nil {
					mu.Lock()
					delete(clients, out)
					mu.Unlock()
					close(out)
					return
				}
			}
		}()
		go func() {
			defer conn.Close()
			for m := range out {
				if conn.WritePreparedMessage(m) != nil {
					return
				}
			}
		}()
	})
	mux.HandleFunc("POST /broadcast", func(w http.ResponseWriter, r *http.Request) {
		events, _ := strconv.Atoi(r.URL.Query().Get("events"))
		rate, _ := strconv.Atoi(r.URL.Query().Get("rate"))
		if events <= 0 || rate <= 0 {
			http.Error(w, "events and rate must be positive", http.StatusBadRequest)
			return
		}
		go func() {
			tick := time.NewTicker(time.Second / time.Duration(rate))
			defer tick.Stop()
			for i := 1; i <= events; i++ {
				<-tick.C
				msg := fmt.Sprintf(`{"id":"1","type":"next","payload":{"data":{"events":{"position":%d,"t":%d}}}}`, i, time.Now().UnixNano())
				pm, err := websocket.NewPreparedMessage(websocket.TextMessage, []byte(msg))
				if err != nil {
					return
				}
				mu.Lock()
				for c := range clients {
					c <- pm // a full queue holds everyone up: the simplest broadcast that loses nothing
				}
				mu.Unlock()
			}
		}()
	})
	fmt.Fprintf(os.Stderr, "baseline websocket server on %s (%d CPUs)\n", addr, runtime.NumCPU())
	return http.ListenAndServe(addr, mux)
}

// liveSubscriptions reads the gateway's cqrsgate_websocket_subscriptions
// from its /metrics.
func liveSubscriptions(ctx context.Context, addr string) (int, error) {
	m, err := gatewayMetrics(ctx, addr, "cqrsgate_websocket_subscriptions")
	return int(m["cqrsgate_websocket_subscriptions"]), err
}

// gatewayMetrics reads the named series (without labels) from the
// gateway's /metrics; a series it lacks is an error.
func gatewayMetrics(ctx context.Context, addr string, names ...string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		for _, name := range names {
			if v, ok := strings.CutPrefix(line, name+" "); ok {
				if out[name], err = strconv.ParseFloat(strings.TrimSpace(v), 64); err != nil {
					return nil, fmt.Errorf("%s in the gateway's /metrics: %w", name, err)
				}
			}
		}
	}
	for _, name := range names {
		if _, ok := out[name]; !ok {
			return nil, fmt.Errorf("no %s in the gateway's /metrics", name)
		}
	}
	return out, nil
}
