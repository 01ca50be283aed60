package web_test

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/gorilla/websocket"
)

const xssProbe = `"><img src=x onerror="window.__xss='img'">'<svg onload="window.__xss='svg'"></svg><a href="javascript:window.__xss='a'">x</a>&amp;`

// watchViolations records CSP violations in window.__violations on every
// document the target loads.
func watchViolations(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
	_, err := cdp.Call(ctx, t, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: `window.__violations = [];
		document.addEventListener('securitypolicyviolation', e => window.__violations.push(e.violatedDirective + ' ' + e.blockedURI));`})
	return chromedp.Void{}, err
}

// TestDashboardEscapesClientText: every text a gateway client can
// write reaches the page as text, never as markup.
func TestDashboardEscapesClientText(t *testing.T) {
	probeJSON, _ := json.Marshal(xssProbe)
	p := string(probeJSON)
	g := &fakeGateway{
		bankTotals: `[{"currency":` + p + `,"accounts":1,"totalBalanceDecimal":"123","minorUnitDigits":2}]`,
		products:   `[{"node":{"sku":` + p + `,"name":` + p + `,"available":1}}]`,
		// A JWT's sub and tenant are the token issuer's to choose.
		viewer: func(string) string {
			return `{"developmentMode":false,"credential":"JWT","name":` + p + `,"roles":["READER","WRITER","ADMIN"],"tenant":` + p + `,"canAdministerGateway":true}`
		},
	}
	g.onSub = func(n int, c *websocket.Conn, id string) {
		switch id {
		case "projections":
			_ = c.WriteJSON(map[string]any{"id": id, "type": "next", "payload": map[string]any{"data": map[string]any{"projectionStatus": []any{
				map[string]any{"name": xssProbe, "version": 1, "status": xssProbe, "serving": true, "position": 1, "lag": 1, "lagSeconds": 9.0, "lastError": xssProbe},
				map[string]any{"name": xssProbe, "version": 1, "generation": 2, "status": "FAILED", "serving": false, "position": 1, "lag": 1, "lagSeconds": 9.0,
					"lastError": xssProbe, "failedPosition": 2, "failedEventId": xssProbe},
			}}}})
		case "tail":
			_ = c.WriteJSON(map[string]any{"id": id, "type": "next", "payload": map[string]any{"data": map[string]any{"events": map[string]any{
				"position": 101, "streamId": xssProbe, "streamVersion": 1, "type": xssProbe,
				"data": map[string]any{"x": xssProbe}, "metadata": map[string]any{"y": xssProbe}, "recordedAt": time.Now().UTC().Format(time.RFC3339Nano)}}}})
		}
	}
	ctx, url, stop := startBrowser(t, g)
	defer stop()
	rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(rctx, watchViolations, chromedp.Navigate(url+"/dashboard"),
		chromedp.WaitVisible(`#tail tr`), chromedp.WaitVisible(`#projections tr`), chromedp.WaitVisible(`#low-stock li span`), chromedp.WaitVisible(`#viewer`),
		chromedp.Click(`#tail tr`), chromedp.WaitVisible(`#event-dialog`), chromedp.Sleep(300*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	got, err := chromedp.Run(rctx, chromedp.Evaluate[map[string]any](`({
		xss: window.__xss || null,
		injected: document.querySelectorAll('main img, main svg, main a[href^="javascript"], [onerror], [onload]').length,
		cells: [...document.querySelectorAll('#tail td, #projections td, #low-stock span, #bank-totals span, #viewer')].map(e => e.textContent),
		dialog: document.getElementById('event-title').textContent + document.getElementById('event-data').textContent,
		violations: window.__violations,
	})`))
	if err != nil {
		t.Fatal(err)
	}
	if got["xss"] != nil || got["injected"].(float64) != 0 {
		t.Fatalf("markup injected: %v", got)
	}
	shown := 0
	for _, c := range got["cells"].([]any) {
		if strings.Contains(c.(string), xssProbe) {
			shown++
		}
	}
	if shown < 8 || !strings.Contains(got["dialog"].(string), xssProbe[:20]) {
		t.Fatalf("the probe is not shown as text everywhere (%d cells): %v", shown, got)
	}
	if v := got["violations"].([]any); len(v) > 0 {
		t.Fatalf("CSP violations on the dashboard: %v", v)
	}
}

// TestDashboardCurrencyDigits: balances are counts of each currency's
// minor unit, written with the digits the gateway gives (0 for JPY, 3 for
// KWD): the dashboard wrote every currency with two decimals.
func TestDashboardCurrencyDigits(t *testing.T) {
	g := &fakeGateway{bankTotals: `[{"currency":"JPY","accounts":1,"totalBalanceDecimal":"500","minorUnitDigits":0},{"currency":"KWD","accounts":1,"totalBalanceDecimal":"1500","minorUnitDigits":3}]`}
	ctx, stop := openDashboard(t, g)
	defer stop()
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := chromedp.Do(rctx, chromedp.WaitVisible(`#bank-totals li:nth-child(2)`)); err != nil {
		t.Fatal(err)
	}
	text, err := chromedp.Run(rctx, chromedp.Text(`#bank-totals`))
	if err != nil {
		t.Fatal(err)
	}
	// 500 yen is 500 (not 5.00); 1500 fils is 1.500 dinars (not 15.00).
	for _, want := range []string{"500", "1.500"} {
		if !strings.Contains(strings.ReplaceAll(text, "5.00", ""), want) {
			t.Errorf("bank totals %q: no %q", text, want)
		}
	}
}

// TestDashboardBoundedResume: after a long disconnect (a laptop's sleep)
// the dashboard starts the tail a little before the head, not after the
// last event it showed: that replayed the whole backlog (data and metadata
// of every event) into a 50-row table.
func TestDashboardBoundedResume(t *testing.T) {
	g := &fakeGateway{}
	var mu sync.Mutex
	afters := map[int]any{}
	g.onSubscribe = func(n int, id string, payload map[string]any) {
		if id == "tail" {
			vars, _ := payload["variables"].(map[string]any)
			mu.Lock()
			afters[n] = vars["after"]
			mu.Unlock()
		}
	}
	g.onAck = func(n int, c *websocket.Conn) {
		if n == 0 {
			go func() {
				time.Sleep(time.Second)
				g.mu.Lock()
				g.head = 50_000_000 // 14 hours at 1000 events/s
				g.mu.Unlock()
				_ = c.Close()
			}()
		}
	}
	_, stop := openDashboard(t, g)
	defer stop()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		a, ok := afters[1]
		mu.Unlock()
		if ok {
			if f, _ := a.(float64); f < 50_000_000-50 {
				t.Fatalf("resumed the tail after %v with the head at 50000000: %v events replayed for a 50-row table", a, 50_000_000-f)
			}
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("no second tail subscription")
}

// TestPlaygroundQueryParamIsText: ?query= is editor text, never markup.
func TestPlaygroundQueryParamIsText(t *testing.T) {
	ctx, url, stop := startBrowser(t, &fakeGateway{})
	defer stop()
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	q := strings.NewReplacer("\"", "%22", "<", "%3C", ">", "%3E", "'", "%27", " ", "%20", "&", "%26", "=", "%3D", "#", "%23").Replace(xssProbe)
	if err := chromedp.Do(rctx, watchViolations, chromedp.Navigate(url+"/?query="+q),
		chromedp.WaitVisible(`.graphiql-container`), chromedp.Click(`.graphiql-execute-button`), chromedp.Sleep(time.Second)); err != nil {
		t.Fatal(err)
	}
	got, err := chromedp.Run(rctx, chromedp.Evaluate[map[string]any](`({xss: window.__xss || null, injected: document.querySelectorAll('img[src=x], [onerror], a[href^="javascript"]').length, violations: window.__violations, editor: document.querySelector('.graphiql-query-editor').textContent.slice(0, 200)})`))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%v", got)
	if got["xss"] != nil || got["injected"].(float64) != 0 || len(got["violations"].([]any)) > 0 {
		t.Fatalf("%v", got)
	}
}

// TestDashboardTailStaysBounded: 20,000 events with 500 bytes of data
// each all pass through the tail, which keeps its last 50 rows.
func TestDashboardTailStaysBounded(t *testing.T) {
	const n = 20000
	g := &fakeGateway{}
	g.onSub = func(conn int, c *websocket.Conn, id string) {
		if id != "tail" || conn != 0 {
			return
		}
		data := map[string]any{"note": strings.Repeat("x", 500)}
		for i := 1; i <= n; i++ {
			_ = c.WriteJSON(map[string]any{"id": "tail", "type": "next", "payload": map[string]any{"data": map[string]any{"events": map[string]any{
				"position": 100 + i, "streamId": "acct-1", "streamVersion": i, "type": "MoneyDeposited",
				"data": data, "metadata": map[string]any{}, "recordedAt": time.Now().UTC().Format(time.RFC3339Nano)}}}})
		}
	}
	ctx, stop := openDashboard(t, g)
	defer stop()
	rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(rctx, chromedp.WaitVisible(`#tail tr[data-position="20100"]`)); err != nil {
		t.Fatal(err)
	}
	rows, err := chromedp.Run(rctx, chromedp.Evaluate[float64](`document.querySelectorAll('#tail tr').length`))
	if err != nil || rows < 1 || rows > 50 {
		t.Errorf("the tail holds %v rows (%v), want at most 50", rows, err)
	}
}

// TestDashboardLongText: a long unbroken product name stays in its tile.
func TestDashboardLongText(t *testing.T) {
	long := strings.Repeat("W", 200) // the most a product name may have (domain/product.go)
	g := &fakeGateway{products: `[{"node":{"sku":"SKU-1","name":"` + long + `","available":1}},{"node":{"sku":"SKU-2","name":"short","available":2}}]`}
	ctx, stop := openDashboard(t, g)
	defer stop()
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := chromedp.Do(rctx, chromedp.EmulateViewport(1280, 900), chromedp.WaitVisible(`#low-stock li span`), chromedp.Sleep(300*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	got, err := chromedp.Run(rctx, chromedp.Evaluate[map[string]any](`(() => {
		const tile = document.getElementById('low-stock').closest('.tile').getBoundingClientRect();
		const li = document.querySelector('#low-stock li').getBoundingClientRect();
		const qty = document.querySelector('#low-stock li span:last-child').getBoundingClientRect();
		return {tileRight: tile.right, liRight: li.right, qtyLeft: qty.left, docWidth: document.documentElement.scrollWidth, viewport: innerWidth};
	})()`))
	if err != nil {
		t.Fatal(err)
	}
	buf, _ := chromedp.Run(rctx, chromedp.FullScreenshot(80))
	_ = os.WriteFile("/tmp/webaudit-long.jpg", buf, 0o644)
	if got["qtyLeft"].(float64) > got["tileRight"].(float64) || got["docWidth"].(float64) > got["viewport"].(float64) {
		t.Fatalf("a long product name overflows its tile: %v", got)
	}
}

// TestDashboardTilesDoNotPileUp: while events arrive, the dashboard asks
// for the read-model tiles one query at a time: it asked every 300 ms
// whether or not the previous one had been answered, and with a slow read
// side the queries piled up without bound (in the browser's queue behind
// its 6 connections, and at the gateway).
func TestDashboardTilesDoNotPileUp(t *testing.T) {
	g := &fakeGateway{tilesDelay: 3 * time.Second}
	g.onSub = func(conn int, c *websocket.Conn, id string) {
		if id != "tail" || conn != 0 {
			return
		}
		g.mu.Lock()
		send := g.sends[conn]
		g.mu.Unlock()
		go func() {
			for i := 1; i <= 300; i++ { // 20 events a second for 15 s
				time.Sleep(50 * time.Millisecond)
				send(map[string]any{"id": "tail", "type": "next", "payload": map[string]any{"data": map[string]any{"events": map[string]any{
					"position": 100 + i, "streamId": "acct-1", "streamVersion": i, "type": "MoneyDeposited",
					"data": map[string]any{}, "metadata": map[string]any{}, "recordedAt": time.Now().UTC().Format(time.RFC3339Nano)}}}})
			}
		}()
	}
	ctx, url, stop := startBrowser(t, g)
	defer stop()
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	countFetches := func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		// Only the tiles queries are counted: the log's head and the
		// viewer are asked beside the first.
		_, err := cdp.Call(ctx, t, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: `window.__pending = 0; window.__maxPending = 0;
			const f = window.fetch; window.fetch = function (url, init) {
				if (!(init && String(init.body).includes('bankTotals'))) return f.apply(this, arguments);
				window.__pending++; window.__maxPending = Math.max(window.__maxPending, window.__pending);
				return f.apply(this, arguments).finally(() => window.__pending--); };`})
		return chromedp.Void{}, err
	}
	if err := chromedp.Do(rctx, countFetches, chromedp.Navigate(url+"/dashboard"), chromedp.WaitVisible(`body[data-conn="live"]`), chromedp.Sleep(12*time.Second)); err != nil {
		t.Fatal(err)
	}
	pending, err := chromedp.Run(rctx, chromedp.Evaluate[float64](`window.__maxPending`))
	if err != nil {
		t.Fatal(err)
	}
	if pending > 1 {
		t.Fatalf("%v tiles queries in flight at once (each takes 3 s; one at a time would do)", pending)
	}
}
