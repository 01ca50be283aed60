// Package bench holds end-to-end benchmarks that run the gateway as its own
// process, the way it runs in production.
package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5/pgxpool"

	"cqrsgate/domain"
	"cqrsgate/eventstore"
	"cqrsgate/internal/pgtest"
)

func TestMain(m *testing.M) {
	pgtest.Main(m, pgtest.Options{})
}

// BenchmarkWebsocketFanout runs the gateway binary against a fresh database
// and connects 1,000 and 10,000 websocket subscribers to
// `events(streamPrefix, after)`. It prints, for each count:
//
//   - idle memory: the gateway's resident memory per subscribed, idle
//     connection;
//   - steady: commit-to-client latency p50/p99/max at a steady write rate
//     (from the writer's acknowledged append to a client's read of the
//     message) and messages delivered per second;
//   - burst: messages delivered per second when events are written as
//     fast as one writer can (batches of 100).
//
// Run it with
//
//	go test -run '^$' -bench WebsocketFanout -benchtime 1x -timeout 30m ./bench
//
// BENCH_WS_SUBSCRIBERS (e.g. "1000,10000"), BENCH_WS_RATE (events/s,
// default 20) and BENCH_WS_SECONDS (default 10) change the workload. The
// client side runs in the benchmark process, on the same machine: its CPU
// use is part of what is measured.
func BenchmarkWebsocketFanout(b *testing.B) {
	counts := []int{1000, 10000}
	if v := os.Getenv("BENCH_WS_SUBSCRIBERS"); v != "" {
		counts = counts[:0]
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n <= 0 {
				b.Fatalf("BENCH_WS_SUBSCRIBERS: %q is not a positive count", f)
			}
			counts = append(counts, n)
		}
	}
	rate := envInt(b, "BENCH_WS_RATE", 20)
	seconds := envInt(b, "BENCH_WS_SECONDS", 10)
	bin := buildGateway(b)
	for _, n := range counts {
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				fanout(b, bin, n, rate, time.Duration(seconds)*time.Second)
			}
		})
	}
}

func envInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("%s: %q is not a positive number", name, v)
	}
	return n
}

func buildGateway(b *testing.B) string {
	bin := filepath.Join(b.TempDir(), "cqrsgate")
	cmd := exec.Command("go", "build", "-o", bin, "..")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		b.Fatalf("building the gateway: %v", err)
	}
	return bin
}

// gateway is the gateway process under test.
type gateway struct {
	cmd  *exec.Cmd
	addr string
}

func startGateway(b *testing.B, bin, dbURL string) *gateway {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "ADDR="+addr, "DATABASE_URL="+dbURL, "LOG_LEVEL=warn", "DB_MAX_CONNS=16")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	g := &gateway{cmd: cmd, addr: addr}
	b.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return g
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("the gateway did not become ready: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// rss is the gateway's resident memory in bytes.
func (g *gateway) rss(b *testing.B) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", g.cmd.Process.Pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	b.Fatal("no VmRSS in /proc/pid/status")
	return 0
}

// subscriber is one websocket client; it records when each position arrived.
type subscriber struct {
	conn *websocket.Conn
	mu   sync.Mutex
	got  []arrival
}

type arrival struct {
	position int64
	at       time.Time
}

var positionKey = []byte(`"position":`)

func (s *subscriber) read(errs chan<- error) {
	for {
		_, data, err := s.conn.ReadMessage()
		if err != nil {
			if !websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway) && !strings.Contains(err.Error(), "use of closed") {
				errs <- err
			}
			return
		}
		at := time.Now()
		i := bytes.Index(data, positionKey)
		if i < 0 {
			if bytes.Contains(data, []byte(`"type":"next"`)) || bytes.Contains(data, []byte(`"type":"error"`)) {
				errs <- fmt.Errorf("unexpected message %s", data)
			}
			continue
		}
		rest := data[i+len(positionKey):]
		end := bytes.IndexAny(rest, ",}")
		p, err := strconv.ParseInt(string(rest[:end]), 10, 64)
		if err != nil {
			errs <- fmt.Errorf("bad position in %s", data)
			return
		}
		s.mu.Lock()
		s.got = append(s.got, arrival{p, at})
		s.mu.Unlock()
	}
}

func (s *subscriber) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.got)
}

func fanout(b *testing.B, bin string, n, rate int, steady time.Duration) {
	ctx := context.Background()
	dbURL := pgtest.NewDatabase(b)
	g := startGateway(b, bin, dbURL)
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	store := eventstore.NewPostgres(pool, slog.New(slog.DiscardHandler), eventstore.Limits{}, eventstore.NewBroadcaster())

	runtime.GC()
	before := g.rss(b)
	subs, errs := connect(b, g.addr, n)
	defer func() {
		for _, s := range subs {
			s.conn.Close()
		}
	}()
	time.Sleep(2 * time.Second) // let every subscription reach the live feed
	idle := g.rss(b)
	perConn := float64(idle-before) / float64(n)

	// Steady: rate events per second, one at a time.
	var mu sync.Mutex
	committed := map[int64]time.Time{}
	tick := time.NewTicker(time.Second / time.Duration(rate))
	start := time.Now()
	for time.Since(start) < steady {
		<-tick.C
		res, err := store.Append(ctx, "bench-steady", domain.ExpectAny, domain.EventData{Type: "Tick", SchemaVersion: 1, Data: json.RawMessage(`{}`)})
		if err != nil {
			b.Fatal(err)
		}
		mu.Lock()
		committed[res.LastPosition] = time.Now()
		mu.Unlock()
	}
	tick.Stop()
	waitAll(b, subs, errs, len(committed))
	elapsed := time.Since(start)
	var lat []time.Duration
	for _, s := range subs {
		s.mu.Lock()
		for _, a := range s.got {
			if at, ok := committed[a.position]; ok {
				lat = append(lat, max(a.at.Sub(at), 0))
			}
		}
		s.mu.Unlock()
	}
	checkOrder(b, subs, len(committed))
	slices.Sort(lat)
	q := func(f float64) time.Duration { return lat[min(len(lat)-1, int(f*float64(len(lat))))] }
	steadyRate := float64(len(lat)) / elapsed.Seconds()

	// Burst: batches of 100 as fast as one writer goes.
	for _, s := range subs {
		s.mu.Lock()
		s.got = s.got[:0]
		s.mu.Unlock()
	}
	const batches = 20
	batch := make([]domain.EventData, 100)
	for i := range batch {
		batch[i] = domain.EventData{Type: "Tick", SchemaVersion: 1, Data: json.RawMessage(`{}`)}
	}
	start = time.Now()
	for i := 0; i < batches; i++ {
		if _, err := store.Append(ctx, "bench-burst", domain.ExpectAny, batch...); err != nil {
			b.Fatal(err)
		}
	}
	waitAll(b, subs, errs, batches*len(batch))
	burst := time.Since(start)
	checkOrder(b, subs, batches*len(batch))

	fmt.Printf("websocket fan-out, %d subscribers (%d CPUs):\n", n, runtime.NumCPU())
	fmt.Printf("  idle: gateway RSS %.1f MiB -> %.1f MiB, %.1f KiB per subscribed connection\n",
		float64(before)/(1<<20), float64(idle)/(1<<20), perConn/1024)
	fmt.Printf("  steady %d events/s for %s: latency p50 %s, p99 %s, max %s; %.0f messages/s delivered\n",
		rate, steady, q(0.50).Round(10*time.Microsecond), q(0.99).Round(10*time.Microsecond), lat[len(lat)-1].Round(10*time.Microsecond), steadyRate)
	fmt.Printf("  burst %d events: all delivered to all in %s, %.0f messages/s\n",
		batches*len(batch), burst.Round(time.Millisecond), float64(n*batches*len(batch))/burst.Seconds())
	b.ReportMetric(perConn/1024, "KiB/conn")
	b.ReportMetric(float64(q(0.50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(q(0.99).Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(n*batches*len(batch))/burst.Seconds(), "burst-msgs/s")
}

// connect opens n subscribed connections, 64 at a time.
func connect(b *testing.B, addr string, n int) ([]*subscriber, chan error) {
	errs := make(chan error, n)
	subs := make([]*subscriber, n)
	d := websocket.Dialer{Subprotocols: []string{"graphql-transport-ws"}, HandshakeTimeout: 30 * time.Second, ReadBufferSize: 1024, WriteBufferSize: 1024}
	sub := `{"id":"1","type":"subscribe","payload":{"query":"subscription { events(streamPrefix: \"bench-\", after: 0) { position } }"}}`
	sem := make(chan struct{}, 64)
	var failed atomic.Value
	var wg sync.WaitGroup
	for i := range subs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			conn, _, err := d.Dial("ws://"+addr+"/graphql", nil)
			if err != nil {
				failed.Store(err)
				return
			}
			_ = conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"connection_init"}`))
			var ack struct{ Type string }
			_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
			if err := conn.ReadJSON(&ack); err != nil || ack.Type != "connection_ack" {
				failed.Store(fmt.Errorf("connection_init: %v %q", err, ack.Type))
				conn.Close()
				return
			}
			_ = conn.SetReadDeadline(time.Time{})
			_ = conn.WriteMessage(websocket.TextMessage, []byte(sub))
			subs[i] = &subscriber{conn: conn}
			go subs[i].read(errs)
		}()
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		for _, s := range subs {
			if s != nil {
				s.conn.Close()
			}
		}
		b.Fatalf("connecting %d subscribers: %v", n, err)
	}
	return subs, errs
}

// waitAll waits until every subscriber has received want messages.
func waitAll(b *testing.B, subs []*subscriber, errs chan error, want int) {
	deadline := time.Now().Add(5 * time.Minute)
	for _, s := range subs {
		for s.count() < want {
			select {
			case err := <-errs:
				b.Fatalf("subscriber: %v", err)
			default:
			}
			if time.Now().After(deadline) {
				b.Fatalf("a subscriber has %d of %d messages after 5 minutes", s.count(), want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// checkOrder fails unless every subscriber received exactly want
// messages in increasing position order.
func checkOrder(b *testing.B, subs []*subscriber, want int) {
	for i, s := range subs {
		s.mu.Lock()
		got := s.got
		s.mu.Unlock()
		if len(got) != want {
			b.Fatalf("subscriber %d received %d messages, want %d", i, len(got), want)
		}
		for j := 1; j < len(got); j++ {
			if got[j].position <= got[j-1].position {
				b.Fatalf("subscriber %d: position %d after %d", i, got[j].position, got[j-1].position)
			}
		}
	}
}
