package web_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/gorilla/websocket"
)

// Viewers the fake gateway answers with (the JSON of the viewer query).
const (
	readerViewer      = `{"developmentMode":false,"credential":"API_KEY","name":"dashboard","roles":["READER"],"tenant":null,"canAdministerGateway":false}`
	adminViewer       = `{"developmentMode":false,"credential":"API_KEY","name":"ops","roles":["READER","WRITER","ADMIN"],"tenant":null,"canAdministerGateway":true}`
	tenantAdminViewer = `{"developmentMode":false,"credential":"JWT","name":"gina","roles":["READER","WRITER","ADMIN"],"tenant":"acme","canAdministerGateway":false}`
	devViewer         = `{"developmentMode":true,"credential":null,"name":null,"roles":["READER","WRITER","ADMIN"],"tenant":null,"canAdministerGateway":true}`
)

// watchButtons records in window.__buttons the label of every button ever
// put in the projections table, on every document the target loads: a
// button shown for a moment (before the viewer query answers, say) is
// seen too, and one in a row added with it.
func watchButtons(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
	_, err := cdp.Call(ctx, t, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: `window.__buttons = [];
		new MutationObserver(records => records.forEach(r => r.addedNodes.forEach(n => {
			if (n.nodeType !== 1 || !n.closest('#projections')) return;
			(n.nodeName === 'BUTTON' ? [n] : [...n.querySelectorAll('button')]).forEach(b => window.__buttons.push(b.textContent));
		}))).observe(document, {childList: true, subtree: true});`})
	return chromedp.Void{}, err
}

// viewerLine is what the top bar says of who the page acts as.
type viewerLine struct {
	Shown   bool     `json:"shown"`
	Text    string   `json:"text"`
	Role    string   `json:"role"`
	Tenant  string   `json:"tenant"`
	Buttons []string `json:"buttons"` // every button ever in the table
	Rows    int      `json:"rows"`
	Actions bool     `json:"actions"` // the actions column shows
}

func readViewer(t *testing.T, ctx context.Context) viewerLine {
	t.Helper()
	v := evalPage[viewerLine](t, ctx, `(() => {
		const el = document.getElementById('viewer');
		return {
			shown: !el.hidden && el.offsetParent !== null, text: el.textContent, role: el.dataset.role || '', tenant: el.dataset.tenant || '',
			buttons: window.__buttons || [], rows: document.querySelectorAll('#projections tr').length,
			actions: document.querySelector('#projections-table th.actions').offsetParent !== null,
		};
	})()`)
	return v
}

func waitViewer(t *testing.T, ctx context.Context, what string, cond func(viewerLine) bool) viewerLine {
	t.Helper()
	return waitView(t, "the dashboard never "+what, func() viewerLine { return readViewer(t, ctx) }, cond)
}

// projectionsFeed makes g send a projections table (a serving generation
// and a failed one: buttons for an administrator on both) on each
// connection, every half second.
func projectionsFeed(g *fakeGateway, done <-chan struct{}) {
	g.onSub = func(n int, c *websocket.Conn, id string) {
		if id != "projections" {
			return
		}
		row := func(name, status string) map[string]any {
			return map[string]any{"name": name, "version": 1, "generation": 1, "status": status, "serving": true,
				"position": 100, "lag": 0, "lagSeconds": 0.0, "failures": 0, "lastError": nil, "failedPosition": nil, "failedEventId": nil}
		}
		failed := row("orders", "FAILED")
		failed["lastError"], failed["failedPosition"] = "cannot fold", 17
		msg := map[string]any{"id": id, "type": "next", "payload": map[string]any{"data": map[string]any{"projectionStatus": []any{row("accounts", "RUNNING"), failed}}}}
		_ = c.WriteJSON(msg)
		g.mu.Lock()
		send := g.sends[n]
		g.mu.Unlock()
		go func() {
			for {
				select {
				case <-done:
					return
				case <-time.After(500 * time.Millisecond):
					send(msg)
				}
			}
		}()
	}
}

// TestDashboardButtonsFollowTheViewer: the dashboard asks the gateway who
// it is (the viewer query) and shows the projections' buttons only to an
// administrator without a tenant, from the start: the table, which comes
// before the viewer's answer here, shows no button until that answer
// allows them (a reader saw every button until the gateway refused one).
// The top bar says who the page acts as: its role and tenant.
func TestDashboardButtonsFollowTheViewer(t *testing.T) {
	for _, tc := range []struct {
		name, viewer string
		buttons      bool
		text, role   string
		tenant       string
	}{
		{"reader", readerViewer, false, "as dashboard · reader", "reader", ""},
		{"tenant's administrator", tenantAdminViewer, false, "as gina · admin · tenant acme", "admin", "acme"},
		{"administrator", adminViewer, true, "as ops · admin", "admin", ""},
		{"development mode", devViewer, true, "as development mode · admin", "admin", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			done := make(chan struct{})
			defer close(done)
			g := &fakeGateway{}
			projectionsFeed(g, done)
			answered := make(chan struct{})
			var once sync.Once
			g.viewer = func(string) string {
				time.Sleep(time.Second) // the table is there first
				once.Do(func() { close(answered) })
				return tc.viewer
			}
			ctx, url, stop := startBrowser(t, g)
			defer stop()
			rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			if err := chromedp.Do(rctx, watchViolations, watchButtons, chromedp.Navigate(url+"/dashboard"), chromedp.WaitVisible(`#projections tr`)); err != nil {
				t.Fatal(err)
			}
			select {
			case <-answered:
				t.Fatal("the viewer query was answered before the table showed: the test shows nothing")
			default:
			}
			if v := readViewer(t, ctx); v.Shown || len(v.Buttons) > 0 || v.Actions {
				t.Fatalf("before the viewer query answered: %+v (want no button, no actions column, no viewer line)", v)
			}
			v := waitViewer(t, ctx, "showed who it acts as", func(v viewerLine) bool { return v.Shown })
			if v.Text != tc.text || v.Role != tc.role || v.Tenant != tc.tenant {
				t.Errorf("viewer line %q (role %q, tenant %q), want %q (role %q, tenant %q)", v.Text, v.Role, v.Tenant, tc.text, tc.role, tc.tenant)
			}
			if tc.buttons {
				v = waitViewer(t, ctx, "showed the buttons", func(v viewerLine) bool { return v.Actions && len(v.Buttons) >= 3 })
				p := readProjections(t, ctx)
				if r, _ := p.row("orders", "serving"); !hasButton(r, "Retry") || !hasButton(r, "Rebuild") {
					t.Errorf("an administrator's buttons: %+v", p.Rows)
				}
				return
			}
			time.Sleep(1500 * time.Millisecond) // three tables more
			if v := readViewer(t, ctx); len(v.Buttons) > 0 || v.Actions || v.Rows != 2 {
				t.Errorf("a caller who may not administer the gateway: %+v (want the rows, no button ever, no actions column)", v)
			}
			if p := readProjections(t, ctx); len(p.Violations) > 0 {
				t.Errorf("CSP violations: %v", p.Violations)
			}
		})
	}
}

// TestDashboardAsksTheViewerAgainWithANewToken: the viewer query is asked
// with each token the page takes (from the address, or none after Forget
// token), and the buttons follow; an answer for a token the page no
// longer uses (slow, arriving after the next one's) changes nothing.
func TestDashboardAsksTheViewerAgainWithANewToken(t *testing.T) {
	done := make(chan struct{})
	defer close(done)
	g := &fakeGateway{}
	projectionsFeed(g, done)
	var mu sync.Mutex
	var asked []string
	slowReader := true
	g.viewer = func(authorization string) string {
		mu.Lock()
		asked = append(asked, authorization)
		slow := slowReader && authorization == "Bearer reader-token"
		slowReader = false
		mu.Unlock()
		switch authorization {
		case "Bearer reader-token":
			if slow {
				time.Sleep(2 * time.Second) // answered after the admin's
			}
			return readerViewer
		case "Bearer admin-token":
			return adminViewer
		}
		return devViewer
	}
	ctx, url, stop := startBrowser(t, g)
	defer stop()
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(rctx, watchButtons, chromedp.Navigate(url+"/dashboard#token=reader-token"), chromedp.WaitVisible(`body[data-conn="live"]`)); err != nil {
		t.Fatal(err)
	}
	// While the reader's viewer query is slow, the page takes another token.
	if err := chromedp.Do(rctx, chromedp.Evaluate[chromedp.Void](`location.hash = '#token=admin-token'`),
		chromedp.WaitVisible(`#token-use`), chromedp.Click(`#token-use`)); err != nil {
		t.Fatal(err)
	}
	v := waitViewer(t, ctx, "showed the administrator", func(v viewerLine) bool { return v.Shown && v.Role == "admin" && len(v.Buttons) > 0 })
	if v.Text != "as ops · admin" {
		t.Errorf("viewer line %q", v.Text)
	}
	time.Sleep(2500 * time.Millisecond) // the reader's answer has come
	if v := readViewer(t, ctx); v.Text != "as ops · admin" || !v.Actions {
		t.Errorf("after the previous token's late answer: %+v (want the administrator's line and buttons)", v)
	}

	// Forget token: the page asks without one (this gateway answers as
	// one in development mode).
	if err := chromedp.Do(rctx, chromedp.Click(`#forget-token`)); err != nil {
		t.Fatal(err)
	}
	waitViewer(t, ctx, "showed development mode", func(v viewerLine) bool { return v.Text == "as development mode · admin" && v.Actions })
	mu.Lock()
	defer mu.Unlock()
	if got := strings.Join(asked, ","); got != "Bearer reader-token,Bearer admin-token," {
		t.Errorf("viewer asked with %q, want the reader's token, the administrator's, then none", got)
	}
}
