package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"cqrsgate/internal/pgembed"
)

// gqlPost posts a query and returns the decoded response and how long it took.
func gqlPost(addr, query string) (map[string]any, time.Duration, error) {
	start := time.Now()
	body, _ := json.Marshal(map[string]any{"query": query})
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Post("http://"+addr+"/graphql", "application/json", bytes.NewReader(body))
	if err != nil {
		return nil, time.Since(start), err
	}
	defer resp.Body.Close()
	var out map[string]any
	err = json.NewDecoder(resp.Body).Decode(&out)
	return out, time.Since(start), err
}

func errorCode(out map[string]any) string {
	errs, _ := out["errors"].([]any)
	if len(errs) == 0 {
		return ""
	}
	ext, _ := errs[0].(map[string]any)["extensions"].(map[string]any)
	code, _ := ext["code"].(string)
	return code
}

// TestDatabaseOutage kills PostgreSQL (SIGKILL) under a load of deposits:
// requests (mutations, reads of read models) fail fast with UNAVAILABLE, /readyz says the database is
// unreachable, and once PostgreSQL is back the gateway serves again by
// itself; every deposit it acknowledged is in the log, and a websocket
// subscriber that stayed connected through the outage receives every one
// of them, in order, once.
func TestDatabaseOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL and the gateway")
	}
	ctx := context.Background()
	base, err := os.MkdirTemp("", "cqrsgate-outage-")
	if err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(base, 0o755)
	t.Cleanup(func() { os.RemoveAll(base) })
	opts := pgembed.Options{DataDir: filepath.Join(base, "pg"), Database: "cqrsgate"}
	cluster, err := pgembed.Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cluster.Stop(context.Background()) })
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	g := startGatewayOn(t, buildBinary(t), filepath.Join(base, "unused"), addr, "-database-url", cluster.URL())
	if out, _, err := gqlPost(addr, `mutation { openAccount(input: {accountId: "outage-1", owner: "Ann", currency: "EUR"}) { version } }`); err != nil || errorCode(out) != "" {
		t.Fatalf("open: %v %v", err, out)
	}

	// A subscriber to the deposits, connected throughout.
	ws, _, err := (&websocket.Dialer{Subprotocols: []string{"graphql-transport-ws"}}).Dial("ws://"+addr+"/graphql", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	for _, m := range []string{`{"type":"connection_init"}`, `{"id":"1","type":"subscribe","payload":{"query":"subscription { events(types: [\"MoneyDeposited\"]) { position } }"}}`} {
		if err := ws.WriteMessage(websocket.TextMessage, []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	var subMu sync.Mutex
	subscribed := map[int64]bool{}
	var received []int64 // in the order they came
	subEnded := make(chan string, 1)
	go func() {
		for {
			var m struct {
				Type    string
				Payload struct {
					Data struct{ Events struct{ Position int64 } }
				}
			}
			if err := ws.ReadJSON(&m); err != nil {
				subEnded <- err.Error()
				return
			}
			switch m.Type {
			case "next":
				subMu.Lock()
				subscribed[m.Payload.Data.Events.Position] = true
				received = append(received, m.Payload.Data.Events.Position)
				subMu.Unlock()
			case "connection_ack", "ping", "pong":
			default:
				subEnded <- m.Type
				return
			}
		}
	}()

	// The load: 4 clients depositing 1 each, recording what was acknowledged.
	var mu sync.Mutex
	acked := map[int64]bool{}
	codes := map[string]int{}
	var slowest time.Duration
	down := make(chan struct{})
	var isDown bool
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				out, took, err := gqlPost(addr, `mutation { depositMoney(input: {accountId: "outage-1", amount: 1}) { position } }`)
				mu.Lock()
				switch {
				case err != nil:
					codes["transport: "+err.Error()]++
				case errorCode(out) == "":
					pos := out["data"].(map[string]any)["depositMoney"].(map[string]any)["position"].(float64)
					acked[int64(pos)] = true
				default:
					codes[errorCode(out)]++
					if isDown {
						slowest = max(slowest, took)
					}
				}
				mu.Unlock()
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	time.Sleep(time.Second)

	// Kill PostgreSQL.
	pidFile, _ := os.ReadFile(filepath.Join(opts.DataDir, "postmaster.pid"))
	pid, _ := strconv.Atoi(strings.SplitN(string(pidFile), "\n", 2)[0])
	if pid <= 0 {
		t.Fatalf("no postmaster pid in %q", pidFile)
	}
	mu.Lock()
	isDown = true
	mu.Unlock()
	close(down)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-cluster.Done()
	time.Sleep(2 * time.Second)
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	var ready struct {
		Status string
		Checks map[string]string
	}
	_ = json.NewDecoder(resp.Body).Decode(&ready)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || ready.Checks["database"] != "unreachable" {
		t.Errorf("/readyz while the database is down: %d %+v", resp.StatusCode, ready)
	}
	// Reads of read models too (they were INTERNAL).
	if out, _, err := gqlPost(addr, `{ account(id: "outage-1") { balance } }`); err != nil || errorCode(out) != "UNAVAILABLE" {
		t.Errorf("a read model while the database is down: %v %v, want UNAVAILABLE", out, err)
	}
	mu.Lock()
	unavailable, others := codes["UNAVAILABLE"], fmtCodes(codes)
	mu.Unlock()
	if unavailable == 0 {
		t.Errorf("no request failed with UNAVAILABLE while the database was down: %s", others)
	}

	// Bring it back: the gateway recovers by itself.
	cluster, err = pgembed.Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	isDown = false
	before := len(acked)
	mu.Unlock()
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n > before+10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the gateway did not serve again within 30s of the database's return: %s", fmtCodes(codes))
		}
		time.Sleep(50 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	resp, err = http.Get("http://" + addr + "/readyz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("/readyz after recovery: %v %v", resp.StatusCode, err)
	}
	resp.Body.Close()

	// Every acknowledged deposit is in the log.
	out, _, err := gqlPost(addr, `{ events(stream: "account-outage-1", types: ["MoneyDeposited"], first: 5000) { events { position } hasMore } }`)
	if err != nil || errorCode(out) != "" {
		t.Fatalf("reading the stream: %v %v", err, out)
	}
	stored := map[int64]bool{}
	page := out["data"].(map[string]any)["events"].(map[string]any)
	if page["hasMore"] == true {
		t.Fatal("more than 5000 deposits: read on")
	}
	for _, e := range page["events"].([]any) {
		stored[int64(e.(map[string]any)["position"].(float64))] = true
	}
	for p := range acked {
		if !stored[p] {
			t.Errorf("the deposit acknowledged at position %d is not in the log", p)
		}
	}

	// The subscriber receives every acknowledged deposit, those after the
	// outage too.
	deadline = time.Now().Add(15 * time.Second)
	for {
		subMu.Lock()
		var missing []int64
		for p := range acked {
			if !subscribed[p] {
				missing = append(missing, p)
			}
		}
		received := len(subscribed)
		subMu.Unlock()
		if len(missing) == 0 {
			break
		}
		select {
		case why := <-subEnded:
			t.Fatalf("the subscription ended (%s) with %d deposits received and %d acknowledged ones missing", why, received, len(missing))
		default:
		}
		if time.Now().After(deadline) {
			slices.Sort(missing)
			t.Fatalf("the subscriber received %d deposits; %d acknowledged ones never came, from position %d", received, len(missing), missing[0])
		}
		time.Sleep(50 * time.Millisecond)
	}
	subMu.Lock()
	for i := 1; i < len(received); i++ {
		if received[i] <= received[i-1] {
			t.Errorf("the subscriber received position %d after %d: out of order or twice", received[i], received[i-1])
			break
		}
	}
	subMu.Unlock()
	t.Logf("%d deposits acknowledged, all stored; refusals: %s; slowest refusal while down: %v", len(acked), fmtCodes(codes), slowest)
	if slowest > 5*time.Second {
		t.Errorf("a request took %v to fail while the database was down; want it to fail fast", slowest)
	}
	g.stop()
}

func fmtCodes(codes map[string]int) string {
	b, _ := json.Marshal(codes)
	return string(b)
}
