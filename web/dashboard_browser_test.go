package web_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/gorilla/websocket"

	"cqrsgate/web"
)

// fakeGateway serves web.Handler() and a scripted graphql-transport-ws
// /graphql, recording what the dashboard sends.
type fakeGateway struct {
	mu        sync.Mutex
	conns     int
	subs      []map[string]int // per connection: subscribe count by id
	onSub     func(conn int, c *websocket.Conn, id string)
	onAck     func(conn int, c *websocket.Conn)
	headGate  func(n int) // called for the n-th head query before answering
	headCalls int
	silent    bool // stop sending stats (a half-open connection)
	// refuse, when it returns a reason, closes the connection with 4403
	// and that reason instead of acknowledging its connection_init.
	refuse func(n int, payload map[string]any) string
	// bankTotals, when set, is the read-model tiles' bankTotals (JSON).
	bankTotals string
	// products, when set, is the low-stock tile's products.edges (JSON).
	products string
	// sends: per connection, a send safe beside the fake's own writes.
	sends []func(any)
	// tilesDelay delays the answer to each read-model tiles query (a slow read side).
	tilesDelay time.Duration
	// head, when set, is the head the HTTP head query answers (else 100).
	head int64
	// onSubscribe, when set, sees each subscribe's payload.
	onSubscribe func(conn int, id string, payload map[string]any)
	// answer, when set, answers the HTTP queries it returns a body for
	// (JSON); the others are answered as before.
	answer func(query string, variables map[string]any) string
	// viewer, when set, answers the viewer query (the JSON of its Viewer)
	// for the request's Authorization header ("" for none); nil answers
	// as a gateway older than the query: GRAPHQL_VALIDATION_FAILED.
	viewer func(authorization string) string
	// skew puts the fake's clock (gatewayStats' at, the Date header of
	// its HTTP answers) that far from the machine's.
	skew time.Duration
	// expires, when set, gives the instant (on the fake's clock) at which
	// a connection acknowledged for that connection_init payload is
	// closed with 4403 "Forbidden: credential expired", as the gateway
	// closes one whose credential expires; zero for never.
	expires func(payload map[string]any) time.Time
	// closed counts the websocket connections that have ended.
	closed int
}

// now is the fake's clock.
func (g *fakeGateway) now() time.Time { return time.Now().Add(g.skew) }

func (g *fakeGateway) handler() http.Handler {
	up := websocket.Upgrader{Subprotocols: []string{"graphql-transport-ws"}}
	mux := http.NewServeMux()
	mux.HandleFunc("/graphql", func(w http.ResponseWriter, r *http.Request) {
		if websocket.IsWebSocketUpgrade(r) {
			c, err := up.Upgrade(w, r, nil)
			if err != nil {
				return
			}
			// Closed when it ends, as the gateway does (a browser waits
			// 2 s for the server to close before it reports a close).
			defer func() {
				_ = c.Close()
				g.mu.Lock()
				g.closed++
				g.mu.Unlock()
			}()
			g.mu.Lock()
			n := g.conns
			g.conns++
			g.subs = append(g.subs, map[string]int{})
			g.mu.Unlock()
			var wmu sync.Mutex
			send := func(v any) { wmu.Lock(); defer wmu.Unlock(); _ = c.WriteJSON(v) }
			g.mu.Lock()
			g.sends = append(g.sends, send)
			g.mu.Unlock()
			done := make(chan struct{})
			defer close(done)
			for {
				var m struct {
					ID, Type string
					Payload  map[string]any
				}
				if err := c.ReadJSON(&m); err != nil {
					return
				}
				switch m.Type {
				case "connection_init":
					if g.refuse != nil {
						if why := g.refuse(n, m.Payload); why != "" {
							wmu.Lock()
							_ = c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(4403, why))
							wmu.Unlock()
							// The client's close, for a clean close.
							_ = c.SetReadDeadline(time.Now().Add(time.Second))
							for {
								if _, _, err := c.ReadMessage(); err != nil {
									return
								}
							}
						}
					}
					send(map[string]any{"type": "connection_ack"})
					if g.expires != nil {
						if at := g.expires(m.Payload); !at.IsZero() {
							go func() {
								select {
								case <-done:
								case <-time.After(at.Sub(g.now())):
									wmu.Lock()
									_ = c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(4403, "Forbidden: credential expired"))
									wmu.Unlock()
								}
							}()
						}
					}
					if g.onAck != nil {
						g.onAck(n, c)
					}
				case "subscribe":
					if g.onSubscribe != nil {
						g.onSubscribe(n, m.ID, m.Payload)
					}
					g.mu.Lock()
					g.subs[n][m.ID]++
					g.mu.Unlock()
					if m.ID == "stats" {
						go func() {
							for {
								select {
								case <-done:
									return
								case <-time.After(500 * time.Millisecond):
								}
								g.mu.Lock()
								silent := g.silent
								g.mu.Unlock()
								if silent {
									continue
								}
								send(map[string]any{"id": "stats", "type": "next", "payload": map[string]any{"data": map[string]any{"gatewayStats": map[string]any{
									"head": 100, "eventsPerSecond": 0, "websocketConnections": 1, "liveSubscriptions": 1, "at": g.now().UTC().Format(time.RFC3339Nano)}}}})
							}
						}()
					}
					if g.onSub != nil {
						wmu.Lock()
						g.onSub(n, c, m.ID)
						wmu.Unlock()
					}
				}
			}
		}
		var req struct {
			Query     string
			Variables map[string]any
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Date", g.now().UTC().Format(http.TimeFormat))
		if g.answer != nil {
			if body := g.answer(req.Query, req.Variables); body != "" {
				_, _ = w.Write([]byte(body))
				return
			}
		}
		if strings.Contains(req.Query, "viewer") {
			if g.viewer == nil {
				w.WriteHeader(http.StatusUnprocessableEntity)
				_, _ = w.Write([]byte(`{"errors":[{"message":"Cannot query field \"viewer\" on type \"Query\".","extensions":{"code":"GRAPHQL_VALIDATION_FAILED"}}],"data":null}`))
				return
			}
			_, _ = w.Write([]byte(`{"data":{"viewer":` + g.viewer(r.Header.Get("Authorization")) + `}}`))
			return
		}
		if strings.Contains(req.Query, "head") {
			g.mu.Lock()
			g.headCalls++
			k := g.headCalls
			g.mu.Unlock()
			if g.headGate != nil {
				g.headGate(k)
			}
			g.mu.Lock()
			head := g.head
			g.mu.Unlock()
			if head == 0 {
				head = 100
			}
			_, _ = w.Write([]byte(`{"data":{"events":{"head":` + strconv.FormatInt(head, 10) + `}}}`))
			return
		}
		time.Sleep(g.tilesDelay)
		totals := g.bankTotals
		if totals == "" {
			totals = "[]"
		}
		products := g.products
		if products == "" {
			products = "[]"
		}
		_, _ = w.Write([]byte(`{"data":{"bankTotals":` + totals + `,"OPEN":{"totalCount":0},"SUBMITTED":{"totalCount":0},"CONFIRMED":{"totalCount":0},"SHIPPED":{"totalCount":0},"CANCELLED":{"totalCount":0},"products":{"edges":` + products + `}}}`))
	})
	mux.Handle("/", web.Handler())
	return mux
}

func (g *fakeGateway) count(conn int, id string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if conn >= len(g.subs) {
		return 0
	}
	return g.subs[conn][id]
}

func (g *fakeGateway) total(id string) (n int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, s := range g.subs {
		n += s[id]
	}
	return n
}

func openDashboard(t *testing.T, g *fakeGateway) (context.Context, func()) {
	return openDashboardAt(t, g, "/dashboard")
}

// openDashboardAt opens path (the dashboard, with a query string, say) and
// waits until it is live.
func openDashboardAt(t *testing.T, g *fakeGateway, path string) (context.Context, func()) {
	ctx, url, stop := startBrowser(t, g)
	rctx, rcancel := context.WithTimeout(ctx, 20*time.Second)
	defer rcancel()
	if err := chromedp.Do(rctx, chromedp.Navigate(url+path), chromedp.WaitVisible(chromedp.CSS(`body[data-conn="live"]`))); err != nil {
		t.Fatal(err)
	}
	return ctx, stop
}

// startBrowser serves g and starts Chromium (the test is skipped without
// it); it returns the browser's context, g's URL and what stops both.
func startBrowser(t *testing.T, g *fakeGateway) (context.Context, string, func()) {
	t.Helper()
	chromium := "/usr/bin/chromium"
	if _, err := os.Stat(chromium); err != nil {
		t.Skip("no chromium")
	}
	srv := httptest.NewServer(g.handler())
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.DisableGPU)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	if err := chromedp.Do(ctx); err != nil { // start the browser on the long-lived context
		cancel()
		cancelAlloc()
		srv.Close()
		t.Fatal(err)
	}
	return ctx, srv.URL, func() { cancel(); cancelAlloc(); srv.Close() }
}

func conn(t *testing.T, ctx context.Context) string {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(rctx, chromedp.Evaluate[string](`document.body.dataset.conn`))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestDashboardResubscribesAfterSubscriptionError: a subscription the
// server ends with "error" (here the events tail: the store could not be
// read when it started) is made again (it was not: the tail stayed dead
// while the page said "live").
func TestDashboardResubscribesAfterSubscriptionError(t *testing.T) {
	g := &fakeGateway{}
	g.onSub = func(n int, c *websocket.Conn, id string) {
		if id == "tail" && n == 0 {
			_ = c.WriteJSON(map[string]any{"id": "tail", "type": "error", "payload": []any{map[string]any{"message": "store unavailable"}}})
		}
	}
	ctx, stop := openDashboard(t, g)
	defer stop()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if g.total("tail") >= 2 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("after the tail subscription failed, the dashboard never subscribed again in 10s (tail subscribes: %d, connections: %d, state %q)",
		g.total("tail"), g.conns, conn(t, ctx))
}

// TestDashboardNoticesSilentConnection: a connection that goes silent
// without closing (half-open after a network change or sleep) is given up
// and made again (the page stayed "live" on it for good).
func TestDashboardNoticesSilentConnection(t *testing.T) {
	g := &fakeGateway{}
	ctx, stop := openDashboard(t, g)
	defer stop()
	time.Sleep(time.Second)
	g.mu.Lock()
	g.silent = true
	g.mu.Unlock()
	time.Sleep(15 * time.Second)
	g.mu.Lock()
	conns := g.conns
	g.mu.Unlock()
	if s := conn(t, ctx); s == "live" && conns == 1 {
		t.Fatalf("no message for 15s (stats come every 0.5s), yet the page still says %q on its first connection", s)
	}
}

// TestDashboardOneTailPerConnection: when the first connection drops while
// the head query is in flight, that query's answer no longer subscribes
// "tail" on the new connection beside the new connection's own (two
// subscribes with one id, which graphql-transport-ws answers by closing
// with 4409).
func TestDashboardOneTailPerConnection(t *testing.T) {
	release := make(chan struct{})
	g := &fakeGateway{}
	g.headGate = func(k int) {
		if k == 1 {
			<-release
		}
	}
	g.onAck = func(n int, c *websocket.Conn) {
		if n == 0 {
			go func() { time.Sleep(300 * time.Millisecond); _ = c.Close() }()
		}
	}
	ctx, url, stop := startBrowser(t, g)
	defer stop()
	rctx, rcancel := context.WithTimeout(ctx, 20*time.Second)
	defer rcancel()
	if err := chromedp.Do(rctx, chromedp.Navigate(url+"/dashboard")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for g.count(1, "tail") < 1 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if g.count(1, "tail") < 1 {
		t.Fatalf("second connection never subscribed tail")
	}
	close(release) // the first connection's head query answers now
	time.Sleep(time.Second)
	if n := g.count(1, "tail"); n > 1 {
		t.Fatalf("the second connection got %d subscribes with id \"tail\" (a real gateway closes it with 4409)", n)
	}
}

// TestDashboardForgetsTheTokenInTheAddress: a token given as ?token= is
// kept for the next visits and taken out of the address bar (and so of the
// browser's history and of what a screen shows).
func TestDashboardForgetsTheTokenInTheAddress(t *testing.T) {
	ctx, stop := openDashboardAt(t, &fakeGateway{}, "/dashboard?token=secret-token-0123&x=1")
	defer stop()
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	got, err := chromedp.Run(rctx, chromedp.Evaluate[string](`location.search + " " + localStorage.getItem("cqrsgate:token")`))
	if err != nil {
		t.Fatal(err)
	}
	if got != "?x=1 secret-token-0123" {
		t.Errorf("address and kept token: %q, want the token out of the address and kept", got)
	}
}

// TestDashboardAsksForARefusedToken: a connection refused with 4403 (no
// credential, or an expired one) is not retried with the same credential
// forever, the page saying "reconnecting": the page shows the gateway's
// reason and a form, and connects with the token entered there.
func TestDashboardAsksForARefusedToken(t *testing.T) {
	g := &fakeGateway{}
	var mu sync.Mutex
	var inits []string
	g.refuse = func(n int, payload map[string]any) string {
		mu.Lock()
		defer mu.Unlock()
		auth, _ := payload["authorization"].(string)
		inits = append(inits, auth)
		if auth != "Bearer good-token" {
			return "Forbidden: no credential"
		}
		return ""
	}
	ctx, url, stop := startBrowser(t, g)
	defer stop()
	rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
	defer rcancel()
	if err := chromedp.Do(rctx, chromedp.Navigate(url+"/dashboard"), chromedp.WaitVisible(chromedp.ID("auth-token"))); err != nil {
		t.Fatal(err)
	}
	msg, err := chromedp.Run(rctx, chromedp.Text(chromedp.ID("auth-msg")))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(msg, "Forbidden: no credential") || conn(t, ctx) != "unauthorized" {
		t.Fatalf("refused page: state %q, message %q", conn(t, ctx), msg)
	}
	time.Sleep(3 * time.Second) // a retry with backoff would have come by now
	mu.Lock()
	tried := len(inits)
	mu.Unlock()
	if tried != 1 {
		t.Fatalf("the refused connection was tried %d times with the same credential", tried)
	}
	if err := chromedp.Do(rctx, chromedp.SendKeys(chromedp.ID("auth-token"), "good-token"),
		chromedp.Click(chromedp.CSS("#auth-form button")),
		chromedp.WaitVisible(chromedp.CSS(`body[data-conn="live"]`))); err != nil {
		t.Fatal(err)
	}
	hidden, err := chromedp.Run(rctx, chromedp.Evaluate[bool](`document.getElementById("auth").hidden`))
	if err != nil {
		t.Fatal(err)
	}
	kept, err := chromedp.Run(rctx, chromedp.Evaluate[string](`localStorage.getItem("cqrsgate:token")`))
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !hidden || kept != "good-token" || inits[len(inits)-1] != "Bearer good-token" {
		t.Fatalf("after entering a token: form hidden %v, kept %q, connection_inits %q", hidden, kept, inits)
	}
}

// TestDashboardShowsSumsExactly: a currency's total balance is shown from
// its exact decimal (totalBalanceDecimal), beyond what a Long or a float
// holds, and below a unit.
func TestDashboardShowsSumsExactly(t *testing.T) {
	g := &fakeGateway{bankTotals: `[{"currency":"EUR","accounts":2,"totalBalanceDecimal":"18446744073709551594","minorUnitDigits":2},{"currency":"USD","accounts":1,"totalBalanceDecimal":"-5","minorUnitDigits":2}]`}
	ctx, stop := openDashboard(t, g)
	defer stop()
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := chromedp.Do(rctx, chromedp.WaitVisible(chromedp.CSS(`#bank-totals li:nth-child(2)`))); err != nil {
		t.Fatal(err)
	}
	text, err := chromedp.Run(rctx, chromedp.Text(chromedp.ID("bank-totals")))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"EUR (2 accounts)", "184467440737095515.94", "USD (1 accounts)", "-0.05"} {
		if !strings.Contains(text, want) {
			t.Errorf("bank totals %q: no %q", text, want)
		}
	}
}
