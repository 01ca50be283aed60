package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.opentelemetry.io/otel/trace/noop"

	"cqrsgate/internal/logbuf"
)

// gateway is the cqrsgate binary running as a child process.
type gateway struct {
	t    *testing.T
	cmd  *exec.Cmd
	addr string
	logs *bytes.Buffer
	done chan error
}

func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "cqrsgate")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startGateway starts the binary with no DATABASE_URL (so it launches its
// embedded PostgreSQL in dataDir) and waits until it is listening.
func startGateway(t *testing.T, bin, dataDir string) *gateway {
	t.Helper()
	return startGatewayOn(t, bin, dataDir, "127.0.0.1:0")
}

// startGatewayOn is startGateway listening on addr, with extra flags.
func startGatewayOn(t *testing.T, bin, dataDir, addr string, flags ...string) *gateway {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"-addr", addr, "-data-dir", dataDir, "-log-format", "json", "-shutdown-delay", "0"}, flags...)...)
	env := []string{}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DATABASE_URL=") && !strings.HasPrefix(kv, "ADDR=") && !strings.HasPrefix(kv, "DATA_DIR=") {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	g := &gateway{t: t, cmd: cmd, logs: &bytes.Buffer{}, done: make(chan error, 1)}
	addrCh := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			g.logs.WriteString(line + "\n")
			var rec map[string]any
			if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == "cqrsgate listening" {
				addrCh <- rec["addr"].(string)
			}
		}
		g.done <- cmd.Wait()
	}()
	select {
	case g.addr = <-addrCh:
	case err := <-g.done:
		t.Fatalf("gateway exited before listening: %v\n%s", err, g.logs)
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("gateway did not start listening\n%s", g.logs)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-g.done:
			case <-time.After(30 * time.Second):
				_ = cmd.Process.Kill()
			}
		}
	})
	return g
}

func (g *gateway) stop() {
	g.t.Helper()
	if err := g.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		g.t.Fatal(err)
	}
	select {
	case err := <-g.done:
		if err != nil {
			g.t.Fatalf("gateway exited with %v\n%s", err, g.logs)
		}
	case <-time.After(30 * time.Second):
		_ = g.cmd.Process.Kill()
		g.t.Fatalf("gateway did not stop on SIGTERM\n%s", g.logs)
	}
}

func (g *gateway) graphql(query string) map[string]any {
	g.t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query})
	resp, err := http.Post("http://"+g.addr+"/graphql", "application/json", bytes.NewReader(body))
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil || out["errors"] != nil {
		g.t.Fatalf("%s -> %d %s", query, resp.StatusCode, raw)
	}
	return out["data"].(map[string]any)
}

func (g *gateway) status(path string) int {
	g.t.Helper()
	resp, err := http.Get("http://" + g.addr + path)
	if err != nil {
		g.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestGatewayRunsWithEmbeddedPostgresAndKeepsEvents is the README's "go run
// ." as a new user meets it: no configuration, GraphQL answers, events
// appended before a restart are there after it, and SIGTERM stops the
// gateway and its PostgreSQL cleanly.
func TestGatewayRunsWithEmbeddedPostgresAndKeepsEvents(t *testing.T) {
	bin := buildBinary(t)
	dataDir := pgDataDir(t)

	g := startGateway(t, bin, dataDir)
	if d := g.graphql(`{ __typename }`); d["__typename"] != "Query" {
		t.Fatalf("__typename = %v", d)
	}
	if s := g.status("/livez"); s != 200 {
		t.Fatalf("/livez = %d", s)
	}
	if s := g.status("/readyz"); s != 200 {
		t.Fatalf("/readyz = %d", s)
	}
	// With no authentication configured, /readyz says so.
	resp, err := http.Get("http://" + g.addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	var ready struct{ Authentication string }
	err = json.NewDecoder(resp.Body).Decode(&ready)
	resp.Body.Close()
	if err != nil || !strings.HasPrefix(ready.Authentication, "off: development mode") {
		t.Fatalf("/readyz authentication = %q (%v), want development mode", ready.Authentication, err)
	}
	d := g.graphql(`mutation { openAccount(input: {accountId: "acc-1", owner: "ada", currency: "EUR", initialDeposit: 100}) { version position } }`)
	appended := d["openAccount"].(map[string]any)
	if appended["version"] != float64(2) {
		t.Fatalf("append = %v", appended)
	}
	g.stop()
	if _, err := os.Stat(filepath.Join(dataDir, "postmaster.pid")); !os.IsNotExist(err) {
		t.Fatalf("PostgreSQL still running after the gateway stopped (postmaster.pid: %v)", err)
	}

	g = startGateway(t, bin, dataDir)
	d = g.graphql(`{ stream(id: "account-acc-1") { version events { type position } } events(first: 10) { events { type } head } }`)
	stream := d["stream"].(map[string]any)
	evs := stream["events"].([]any)
	if stream["version"] != float64(2) || len(evs) != 2 || evs[1].(map[string]any)["position"] != appended["position"] {
		t.Fatalf("after restart stream = %v, want the two events appended before", stream)
	}
	if all := d["events"].(map[string]any)["events"].([]any); len(all) != 2 {
		t.Fatalf("after restart the log has %d events, want 2", len(all))
	}
	// A websocket subscriber replays the log, then sees the next write live.
	ws, _, err := (&websocket.Dialer{Subprotocols: []string{"graphql-transport-ws"}}).Dial("ws://"+g.addr+"/graphql", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for _, m := range []string{`{"type":"connection_init"}`, `{"id":"1","type":"subscribe","payload":{"query":"subscription { events { type position } }"}}`} {
		if err := ws.WriteMessage(websocket.TextMessage, []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	readType := func() string {
		var m struct {
			Type    string          `json:"type"`
			Payload json.RawMessage `json:"payload"`
		}
		if err := ws.ReadJSON(&m); err != nil {
			t.Fatalf("websocket: %v", err)
		}
		if m.Type == "next" {
			var p struct {
				Data struct{ Events struct{ Type string } }
			}
			_ = json.Unmarshal(m.Payload, &p)
			return p.Data.Events.Type
		}
		return m.Type
	}
	if got := []string{readType(), readType(), readType()}; fmt.Sprint(got) != "[connection_ack AccountOpened MoneyDeposited]" {
		t.Fatalf("websocket replay = %v", got)
	}
	// The account's state is rebuilt from those events: withdrawing the
	// whole balance works, and is the third event.
	d = g.graphql(`mutation { withdrawMoney(input: {accountId: "acc-1", amount: 100}) { version position } }`)
	withdrawn := d["withdrawMoney"].(map[string]any)
	if v := withdrawn["version"]; v != float64(3) {
		t.Fatalf("withdraw after restart: version %v, want 3", v)
	}
	if got := readType(); got != "MoneyWithdrawn" {
		t.Fatalf("live event over the websocket = %s", got)
	}
	// The read model catches up with the withdrawal (a projection started
	// in the first run may still be setting up in this one, so the query
	// waits for it as a client would).
	d = g.graphql(fmt.Sprintf(`{ account(id: "acc-1", atLeast: %v) { balance } }`, withdrawn["position"]))
	if b := d["account"].(map[string]any)["balance"]; b != float64(0) {
		t.Fatalf("account after the withdrawal: balance %v, want 0", b)
	}
	checkMetrics(t, g)
	g.stop()
	var ce *websocket.CloseError
	if _, _, err := ws.ReadMessage(); !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway {
		t.Fatalf("on shutdown the websocket ended with %v, want close 1001", err)
	}
}

// checkMetrics refuses a withdrawal (a rule violation), then reads
// /metrics and checks the figures of this process's workload: one open
// websocket with one subscription, two queries, two withdrawals (one
// refused), one event appended, the accounts projection serving past the
// withdrawal.
func checkMetrics(t *testing.T, g *gateway) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": `mutation { withdrawMoney(input: {accountId: "acc-1", amount: 1000000}) { version } }`})
	resp, err := http.Post("http://"+g.addr+"/graphql", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	resp, err = http.Get("http://" + g.addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics is not the Prometheus text format: %v", err)
	}
	value := func(name string, labels map[string]string) float64 {
		t.Helper()
		f := families[name]
		if f == nil {
			t.Fatalf("/metrics has no %s", name)
		}
	metrics:
		for _, m := range f.GetMetric() {
			for k, v := range labels {
				found := false
				for _, l := range m.GetLabel() {
					if l.GetName() == k && l.GetValue() == v {
						found = true
					}
				}
				if !found {
					continue metrics
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
		t.Fatalf("/metrics has no %s%v", name, labels)
		return 0
	}
	checks := []struct {
		name   string
		labels map[string]string
		want   func(float64) bool
		what   string
	}{
		{"cqrsgate_graphql_operations_total", map[string]string{"operation": "query"}, func(v float64) bool { return v == 2 }, "2 queries"},
		{"cqrsgate_graphql_operations_total", map[string]string{"operation": "mutation"}, func(v float64) bool { return v == 2 }, "2 mutations"},
		{"cqrsgate_graphql_operations_total", map[string]string{"operation": "subscription"}, func(v float64) bool { return v == 1 }, "1 subscription"},
		{"cqrsgate_graphql_errors_total", map[string]string{"operation": "mutation", "code": "RULE_VIOLATION"}, func(v float64) bool { return v == 1 }, "1 refused mutation"},
		{"cqrsgate_graphql_operation_duration_seconds", map[string]string{"operation": "mutation"}, func(v float64) bool { return v == 2 }, "2 mutation durations"},
		{"cqrsgate_commands_total", map[string]string{"command": "WithdrawMoney", "outcome": "ok"}, func(v float64) bool { return v == 1 }, "1 withdrawal"},
		{"cqrsgate_commands_total", map[string]string{"command": "WithdrawMoney", "outcome": "rule_violation"}, func(v float64) bool { return v == 1 }, "1 refused withdrawal"},
		{"cqrsgate_command_duration_seconds", map[string]string{"command": "WithdrawMoney"}, func(v float64) bool { return v == 2 }, "2 command durations"},
		{"cqrsgate_events_appended_total", nil, func(v float64) bool { return v == 1 }, "1 event appended"},
		{"cqrsgate_appends_total", map[string]string{"outcome": "ok"}, func(v float64) bool { return v == 1 }, "1 append"},
		{"cqrsgate_command_concurrency_conflicts_total", nil, func(v float64) bool { return v == 0 }, "no conflict"},
		{"cqrsgate_websocket_connections", nil, func(v float64) bool { return v == 1 }, "1 websocket"},
		{"cqrsgate_websocket_subscriptions", nil, func(v float64) bool { return v == 1 }, "1 websocket subscription"},
		{"cqrsgate_websocket_dropped_clients_total", nil, func(v float64) bool { return v == 0 }, "no dropped client"},
		{"cqrsgate_websocket_shared_payloads_total", nil, func(v float64) bool { return v >= 0 }, "shared payloads counted"},
		{"cqrsgate_projection_state", map[string]string{"projection": "accounts", "state": "RUNNING"}, func(v float64) bool { return v == 1 }, "accounts running"},
		{"cqrsgate_projection_serving", map[string]string{"projection": "accounts"}, func(v float64) bool { return v == 1 }, "accounts serving"},
		{"cqrsgate_projection_position", map[string]string{"projection": "accounts"}, func(v float64) bool { return v >= 1 }, "accounts past position 1"},
		{"cqrsgate_projection_lag_seconds", map[string]string{"projection": "orders"}, func(v float64) bool { return v >= 0 && v < 60 }, "a sensible lag"},
		{"cqrsgate_db_pool_max_connections", nil, func(v float64) bool { return v == 20 }, "a pool of 20"},
		{"cqrsgate_db_pool_acquires_total", nil, func(v float64) bool { return v > 0 }, "pool acquires"},
		{"cqrsgate_log_held_back_seconds", nil, func(v float64) bool { return v >= 0 && v < 60 }, "readers not held back for long"},
	}
	for _, c := range checks {
		if v := value(c.name, c.labels); !c.want(v) {
			t.Errorf("%s%v = %v, want %s", c.name, c.labels, v, c.what)
		}
	}
}

// inProcess is run serving in this process, with its embedded PostgreSQL.
type inProcess struct {
	addr string
	logs *logbuf.Buffer
	stop context.CancelCauseFunc
	done chan struct{} // closed when run has returned err
	err  error
}

// runInProcess loads the configuration from args (and no environment),
// with an embedded PostgreSQL in a fresh data directory, and serves it
// with run until the test ends or stop is called.
func runInProcess(t *testing.T, args ...string) *inProcess {
	t.Helper()
	// As root, PostgreSQL runs as another user that must be able to enter
	// the directory.
	base, err := os.MkdirTemp("", "cqrsgate-run-test-")
	if err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(base, 0o755)
	t.Cleanup(func() { os.RemoveAll(base) })
	args = append([]string{"-addr", "127.0.0.1:0", "-data-dir", filepath.Join(base, "pgdata"), "-shutdown-delay", "0"}, args...)
	cfg, err := loadConfig(args, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	p := &inProcess{logs: &logbuf.Buffer{}, done: make(chan struct{})}
	log := slog.New(slog.NewJSONHandler(p.logs, nil))
	ctx, stop := context.WithCancelCause(context.Background())
	p.stop = stop
	go func() { p.err = run(ctx, cfg, log, noop.NewTracerProvider()); close(p.done) }()
	t.Cleanup(func() {
		stop(context.Canceled)
		select {
		case <-p.done:
		case <-time.After(60 * time.Second):
			t.Error("run did not return")
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for p.addr == "" {
		select {
		case <-p.done:
			t.Fatalf("run returned before listening: %v\n%s", p.err, p.logs)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("run did not start listening\n%s", p.logs)
		}
		p.addr = p.logged("cqrsgate listening", "addr")
	}
	return p
}

// logged returns attribute key of the first log record with message msg.
func (p *inProcess) logged(msg, key string) string {
	for _, line := range strings.Split(p.logs.String(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == msg {
			s, _ := rec[key].(string)
			return s
		}
	}
	return ""
}

func (p *inProcess) post(t *testing.T, host, query string) (int, string) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query})
	req, err := http.NewRequest(http.MethodPost, "http://"+p.addr+"/graphql", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if host != "" {
		req.Host = host
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestDevelopmentModeServesOnlyLoopbackHosts: without authentication every
// caller is an administrator, so a page that reaches the gateway through
// DNS rebinding (its own name resolving to 127.0.0.1, in Host) is refused,
// over HTTP and websockets, while localhost and 127.0.0.1 are served.
func TestDevelopmentModeServesOnlyLoopbackHosts(t *testing.T) {
	p := runInProcess(t)
	_, port, _ := net.SplitHostPort(p.addr)
	for _, host := range []string{"", "localhost:" + port} {
		if status, body := p.post(t, host, `{ __typename }`); status != http.StatusOK {
			t.Errorf("Host %q: %d %s", host, status, body)
		}
	}
	status, body := p.post(t, "rebind.example:"+port, `mutation { openAccount(input: {accountId: "r-1", owner: "eve", currency: "EUR"}) { version } }`)
	if status != http.StatusForbidden || !strings.Contains(body, "development mode") {
		t.Errorf("a DNS-rebinding request: %d %s, want 403", status, body)
	}
	_, resp, err := websocket.DefaultDialer.Dial("ws://"+p.addr+"/graphql", http.Header{"Host": {"rebind.example:" + port}, "Origin": {"http://rebind.example:" + port}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("a DNS-rebinding websocket: %v %v, want 403", err, resp)
	}
}

// TestSlowRequestBodiesAreCutOff: a client that announces a large body and
// sends it slowly is cut off after BODY_READ_TIMEOUT (GraphQL answers 408),
// while a query that waits for atLeast longer than that, and an idle
// websocket, are not.
func TestSlowRequestBodiesAreCutOff(t *testing.T) {
	p := runInProcess(t, "-body-read-timeout", "300ms", "-read-timeout", "2s")
	conn, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(conn, "POST /graphql HTTP/1.1\r\nHost: "+p.addr+"\r\nContent-Type: application/json\r\nContent-Length: 16777216\r\n\r\n{"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to a stalled body: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Errorf("a stalled body: %d, want 408", resp.StatusCode)
	}

	// A stalled body on a path that reads none: the connection is closed.
	other, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	_ = other.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(other, "POST /livez HTTP/1.1\r\nHost: "+p.addr+"\r\nContent-Length: 100000\r\n\r\n{"); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(other); err != nil {
		t.Errorf("a stalled body on /livez: the connection was not closed: %v", err)
	}

	ws, _, err := (&websocket.Dialer{Subprotocols: []string{"graphql-transport-ws"}}).Dial("ws://"+p.addr+"/graphql", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	_ = ws.SetReadDeadline(time.Now().Add(20 * time.Second))
	if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"connection_init"}`)); err != nil {
		t.Fatal(err)
	}
	if _, m, err := ws.ReadMessage(); err != nil || !strings.Contains(string(m), "connection_ack") {
		t.Fatalf("websocket: %s %v", m, err)
	}

	// Waits READ_TIMEOUT (2s), well past the body's timeout, then STALE.
	status, body := p.post(t, "", `{ account(id: "nobody", atLeast: 1000000) { balance } }`)
	if status != http.StatusOK || !strings.Contains(body, `"STALE"`) {
		t.Errorf("a query waiting for atLeast: %d %s, want STALE after READ_TIMEOUT", status, body)
	}
	// The websocket, idle for longer than the body timeout, still answers.
	if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping"}`)); err != nil {
		t.Fatal(err)
	}
	if _, m, err := ws.ReadMessage(); err != nil || !strings.Contains(string(m), "pong") {
		t.Fatalf("websocket after the body timeout: %s %v", m, err)
	}
}

// TestReadyzFailsDuringTheShutdownDelay: once asked to stop (SIGTERM),
// the gateway answers /readyz with 503 and goes on serving requests for
// SHUTDOWN_DELAY before it stops accepting them; SIGINT skips the delay.
func TestReadyzFailsDuringTheShutdownDelay(t *testing.T) {
	p := runInProcess(t, "-shutdown-delay", "3s")
	get := func(path string) int {
		resp, err := http.Get("http://" + p.addr + path)
		if err != nil {
			t.Fatalf("GET %s during the shutdown delay: %v", path, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := get("/readyz"); s != http.StatusOK {
		t.Fatalf("/readyz = %d before shutdown", s)
	}
	p.stop(stopSignal{syscall.SIGTERM})
	deadline := time.Now().Add(10 * time.Second)
	for get("/readyz") != http.StatusServiceUnavailable {
		if time.Now().After(deadline) {
			t.Fatal("/readyz did not turn 503 after SIGTERM")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if status, body := p.post(t, "", `{ __typename }`); status != http.StatusOK {
		t.Errorf("a query during the shutdown delay: %d %s", status, body)
	}
	select {
	case <-p.done:
		if p.err != nil {
			t.Fatal(p.err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("run did not return after the delay")
	}

	q := runInProcess(t, "-shutdown-delay", "5m")
	q.stop(stopSignal{syscall.SIGINT})
	select {
	case <-q.done:
		if q.err != nil {
			t.Fatal(q.err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("SIGINT did not skip the shutdown delay")
	}
}

// TestEmbeddedPostgresHasRoomForThePool: the embedded PostgreSQL is
// started with max_connections above DB_MAX_CONNS and the connections the
// gateway holds outside its pool.
func TestEmbeddedPostgresHasRoomForThePool(t *testing.T) {
	p := runInProcess(t, "-db-max-conns", "150")
	url := p.logged("embedded PostgreSQL started", "url")
	if url == "" {
		t.Fatalf("no URL logged:\n%s", p.logs)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var max int
	if err := conn.QueryRow(ctx, "SELECT current_setting('max_connections')::int").Scan(&max); err != nil {
		t.Fatal(err)
	}
	if max < 150+len(readModels)+3 {
		t.Fatalf("max_connections = %d with DB_MAX_CONNS=150", max)
	}
}

// TestGatewayExitsWhenTheEmbeddedPostgresDies: nothing restarts an
// embedded PostgreSQL that died, so the gateway exits non-zero, for its
// supervisor to start it again (PostgreSQL then recovers from its WAL). It
// stayed up for good answering UNAVAILABLE, its /livez still 200.
func TestGatewayExitsWhenTheEmbeddedPostgresDies(t *testing.T) {
	bin := buildBinary(t)
	dataDir := pgDataDir(t)
	g := startGateway(t, bin, dataDir)
	pidFile, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(pidFile), "\n", 2)[0]))
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-g.done:
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() == 0 {
			t.Fatalf("the gateway exited with %v after its PostgreSQL died, want a non-zero status", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("the gateway still runs 20 s after its embedded PostgreSQL died\n%s", g.logs)
	}
}

// TestStartupWithASilentDatabaseFailsInBoundedTime: a DATABASE_URL whose
// host accepts the connection and never answers (a wrong port that lands
// on another service, a proxy with no backend) fails start-up within the
// connect timeout; it hung for ever (the pool's first connection had no
// deadline, pgx none unless the URL set connect_timeout).
func TestStartupWithASilentDatabaseFailsInBoundedTime(t *testing.T) {
	ln := silentListener(t)
	cfg, err := loadConfig(nil, func(k string) string {
		return map[string]string{"DATABASE_URL": "postgres://u:p@" + ln.Addr().String() + "/db", "ADDR": "127.0.0.1:0"}[k]
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg, slog.New(slog.DiscardHandler), noop.NewTracerProvider()) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "timeout") {
			t.Fatalf("run against a silent database: %v, want a timeout", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run still starting after 30 s against a database that never answers")
	}
}

// pgDataDir returns a data directory for an embedded PostgreSQL, removed
// after the test. Not under t.TempDir: as root, PostgreSQL runs as another
// user that must be able to enter the directory.
func pgDataDir(t *testing.T) string {
	t.Helper()
	base, err := os.MkdirTemp("", "cqrsgate-server-test-")
	if err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(base, 0o755)
	t.Cleanup(func() { os.RemoveAll(base) })
	return filepath.Join(base, "pgdata")
}

// TestAnAddressInUseFailsBeforePostgresStarts: the gateway binds its
// address first, so an address in use fails at once, before the embedded
// PostgreSQL is started (and a data directory made) for nothing.
func TestAnAddressInUseFailsBeforePostgresStarts(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dataDir := pgDataDir(t)
	cfg, err := loadConfig(nil, func(k string) string {
		return map[string]string{"ADDR": busy.Addr().String(), "DATA_DIR": dataDir}[k]
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = run(context.Background(), cfg, slog.New(slog.DiscardHandler), noop.NewTracerProvider())
	if err == nil || !strings.Contains(err.Error(), "-addr (ADDR)") {
		t.Fatalf("run on an address in use: %v, want an error naming -addr (ADDR)", err)
	}
	if _, serr := os.Stat(dataDir); !os.IsNotExist(serr) || time.Since(start) > 2*time.Second {
		t.Fatalf("run on an address in use took %v and left the data directory (%v): PostgreSQL was started first", time.Since(start), serr)
	}
}

// TestASignalDuringStartUpIsAStop: SIGTERM while the gateway starts
// (initdb, the migrations) stops it as asked: exit status 0, logged as a
// stop, not as a failure (it was "cqrsgate stopped" at ERROR, status 1),
// and no PostgreSQL is left running.
func TestASignalDuringStartUpIsAStop(t *testing.T) {
	bin := buildBinary(t)
	dataDir := pgDataDir(t)
	cmd := exec.Command(bin, "-addr", "127.0.0.1:0", "-data-dir", dataDir, "-log-format", "json")
	var logs bytes.Buffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // initdb takes seconds
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil || strings.Contains(logs.String(), `"level":"ERROR"`) {
			t.Fatalf("SIGTERM during start-up: exit %v\n%s", err, logs.String())
		}
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("still running 60 s after SIGTERM during start-up\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "cqrsgate listening") && !strings.Contains(logs.String(), "stopped during start-up") {
		t.Errorf("no stop logged:\n%s", logs.String())
	}
	if _, err := os.Stat(filepath.Join(dataDir, "postmaster.pid")); !os.IsNotExist(err) {
		t.Errorf("PostgreSQL left running after the stop (postmaster.pid: %v)", err)
	}
	// What the stop cut short (initdb, say) does not stand in the way of
	// the next start.
	g := startGateway(t, bin, dataDir)
	if d := g.graphql(`{ __typename }`); d["__typename"] != "Query" {
		t.Fatalf("after a stop during start-up, the next start answers %v", d)
	}
}

// silentListener listens on loopback, accepts every connection and answers
// none (a wrong port that lands on another service, a proxy with no
// backend), until the test ends.
func silentListener(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c) // accepted, never answered
		}
	}()
	return ln
}

// TestOperationalEndpointsRefuseOtherMethods: /livez, /readyz, /metrics
// and the web pages answer a method other than GET or HEAD with 405 and
// Allow (a POST to /readyz or /metrics was a 404 from the static files,
// as if they did not exist; one to / or /dashboard served the page).
func TestOperationalEndpointsRefuseOtherMethods(t *testing.T) {
	p := runInProcess(t)
	client := &http.Client{Timeout: 30 * time.Second}
	do := func(method, path string) *http.Response {
		t.Helper()
		req, err := http.NewRequest(method, "http://"+p.addr+path, strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	for _, path := range []string{"/livez", "/readyz", "/metrics", "/readyz?verbose=1", "/", "/dashboard"} {
		for _, method := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch, http.MethodOptions} {
			resp := do(method, path)
			if resp.StatusCode != http.StatusMethodNotAllowed || !strings.Contains(resp.Header.Get("Allow"), "GET") {
				t.Errorf("%s %s: %d (Allow %q), want 405 allowing GET", method, path, resp.StatusCode, resp.Header.Get("Allow"))
			}
		}
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			if resp := do(method, path); resp.StatusCode != http.StatusOK {
				t.Errorf("%s %s: %d, want 200", method, path, resp.StatusCode)
			}
		}
	}
	if resp := do(http.MethodGet, "/nothing-here"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /nothing-here: %d, want 404", resp.StatusCode)
	}
	if resp := do(http.MethodOptions, "/graphql"); resp.StatusCode == http.StatusMethodNotAllowed {
		t.Errorf("OPTIONS /graphql: %d: GraphQL's transports answer it", resp.StatusCode)
	}
}

// TestDatabaseURLFailuresNameTheSetting: a DATABASE_URL that cannot be
// used stops start-up with an error naming it (a server that refuses the
// connection was "database: failed to connect", naming nothing the operator
// set), and a pool_max_conns in it that DB_MAX_CONNS would override
// without a word is refused.
func TestDatabaseURLFailuresNameTheSetting(t *testing.T) {
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := closed.Addr().String()
	closed.Close()
	start := func(url string, extra ...string) error {
		t.Helper()
		env := map[string]string{"DATABASE_URL": url, "ADDR": "127.0.0.1:0"}
		for i := 0; i+1 < len(extra); i += 2 {
			env[extra[i]] = extra[i+1]
		}
		cfg, err := loadConfig(nil, func(k string) string { return env[k] }, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return run(ctx, cfg, slog.New(slog.DiscardHandler), noop.NewTracerProvider())
	}
	for _, tc := range []struct {
		url   string
		extra []string
		want  string
	}{
		{"postgres://u:s3cret@" + addr + "/db", nil, "database of -database-url (DATABASE_URL): failed to connect"},
		{"postgres://u:s3cret@" + addr + "/db?pool_max_conns=5", nil, "-database-url (DATABASE_URL): its pool_max_conns (5) is not -db-max-conns (DB_MAX_CONNS), 20"},
		{"host=127.0.0.1 port=1 user=u password=s3cret pool_max_conns=50", []string{"DB_MAX_CONNS", "40"}, "pool_max_conns (50) is not -db-max-conns (DB_MAX_CONNS), 40"},
		// The same as DB_MAX_CONNS: nothing is overridden.
		{"postgres://u:s3cret@" + addr + "/db?pool_max_conns=20", nil, "database of -database-url (DATABASE_URL): failed to connect"},
	} {
		err := start(tc.url, tc.extra...)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("DATABASE_URL %s: %v, want an error with %q (and no password)", tc.url, err, tc.want)
		}
	}
}
