package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
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
	cmd := exec.Command(bin, append([]string{"-addr", addr, "-data-dir", dataDir, "-log-format", "json"}, flags...)...)
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
	// Not t.TempDir: as root, PostgreSQL runs as another user that must be
	// able to enter the directory.
	base, err := os.MkdirTemp("", "cqrsgate-server-test-")
	if err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(base, 0o755)
	t.Cleanup(func() { os.RemoveAll(base) })
	dataDir := filepath.Join(base, "pgdata")

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
	}
	for _, c := range checks {
		if v := value(c.name, c.labels); !c.want(v) {
			t.Errorf("%s%v = %v, want %s", c.name, c.labels, v, c.what)
		}
	}
}
