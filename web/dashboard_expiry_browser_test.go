package web_test

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// expiryView is what the token-expiry tests look at: the notice at the
// top, the connection state, the token box and the connection_inits the
// gateway has seen.
type expiryView struct {
	Notice     string   `json:"notice"` // the notice's text when it shows, else ""
	State      string   `json:"state"`  // its data-state: warn, expired or ""
	Title      string   `json:"title"`  // its tooltip
	Conn       string   `json:"conn"`
	Auth       bool     `json:"auth"` // the token box shows
	AuthMsg    string   `json:"authMsg"`
	Focused    string   `json:"focused"`
	Violations []string `json:"violations"`
	Inits      []string // the authorization of every connection_init so far
}

func readExpiry(t *testing.T, ctx context.Context, rec *initRecorder) expiryView {
	t.Helper()
	v := evalPage[expiryView](t, ctx, `(() => {
		const el = document.getElementById('expiry'), auth = document.getElementById('auth');
		const shows = e => !!e && !e.hidden && e.offsetParent !== null;
		return {
			notice: shows(el) ? el.textContent : '', state: el ? el.dataset.state || '' : '', title: el ? el.title : '',
			conn: document.body.dataset.conn, auth: shows(auth), authMsg: document.getElementById('auth-msg').textContent,
			focused: document.activeElement ? document.activeElement.id : '',
			violations: window.__violations || [],
		};
	})()`)
	v.Inits = rec.all()
	return v
}

func waitExpiry(t *testing.T, ctx context.Context, rec *initRecorder, what string, cond func(expiryView) bool) expiryView {
	t.Helper()
	return waitView(t, "the dashboard never "+what, func() expiryView { return readExpiry(t, ctx, rec) }, cond)
}

var secondsLeft = regexp.MustCompile(`^token expires in (\d+) s — paste a new one$`)

// TestDashboardWarnsBeforeTheTokenExpires: from five minutes before the
// viewer's expiresAt the top bar says when the token expires (in minutes,
// then in seconds), reckoned on the gateway's clock (an hour behind the
// page's here: on the page's clock every token had expired); once it has,
// the page says so and stops, whether the gateway closes the connection
// with 4403 or not (a connection that died silently), and connects no
// more with the expired token; a token the gateway refuses as expired
// at connection_init is said to be expired too. A new token clears it.
func TestDashboardWarnsBeforeTheTokenExpires(t *testing.T) {
	g := &fakeGateway{skew: -time.Hour}
	start := g.now()
	var mu sync.Mutex
	exp := map[string]time.Time{
		"stale-token": start.Add(-time.Minute),
		"mid-token":   start.Add(4*time.Minute + 30*time.Second),
	}
	// expiry is when a token expires on the fake's clock (zero for one that
	// does not, an API key); a short one expires 3 s after it is first
	// used.
	expiry := func(auth string) time.Time {
		tok := strings.TrimPrefix(auth, "Bearer ")
		mu.Lock()
		defer mu.Unlock()
		if at, ok := exp[tok]; ok {
			return at
		}
		if strings.HasPrefix(tok, "short-") {
			exp[tok] = g.now().Add(3 * time.Second)
			return exp[tok]
		}
		return time.Time{}
	}
	rec := recordInits(g)
	recordInit := g.refuse
	g.refuse = func(n int, payload map[string]any) string {
		recordInit(n, payload)
		auth, _ := payload["authorization"].(string)
		if at := expiry(auth); !at.IsZero() && !g.now().Before(at) {
			return "Forbidden: the token has expired"
		}
		return ""
	}
	// The gateway closes a connection when its token expires, but for
	// short-silent, whose connection the page has to give up by itself.
	g.expires = func(payload map[string]any) time.Time {
		if auth, _ := payload["authorization"].(string); auth != "Bearer short-silent" {
			return expiry(auth)
		}
		return time.Time{}
	}
	g.viewer = func(auth string) string {
		at := "null"
		if e := expiry(auth); !e.IsZero() {
			at = `"` + e.UTC().Format(time.RFC3339Nano) + `"`
		}
		return `{"developmentMode":false,"credential":"JWT","name":"ops","roles":["READER"],"tenant":null,"canAdministerGateway":false,"expiresAt":` + at + `}`
	}
	ctx, url, stop := startBrowser(t, g)
	defer stop()
	rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	keepToken(t, ctx, url, "stale-token")

	// A kept token the gateway refuses as expired: said so, no retry.
	if err := chromedp.Do(rctx, watchViolations, chromedp.Navigate(url+"/dashboard")); err != nil {
		t.Fatal(err)
	}
	v := waitExpiry(t, ctx, rec, "said the kept token had expired", func(v expiryView) bool { return v.Conn == "expired" })
	if v.Notice != "token expired — paste a new one" || v.State != "expired" || !v.Auth || !strings.Contains(v.AuthMsg, "the token has expired") || v.Focused != "auth-token" {
		t.Fatalf("a token refused as expired: %+v", v)
	}

	// A token with 4.5 minutes left (on the gateway's clock): in minutes.
	if err := chromedp.Do(rctx, chromedp.SendKeys(chromedp.ID("auth-token"), "mid-token"), chromedp.Click(chromedp.CSS("#auth-form button"))); err != nil {
		t.Fatal(err)
	}
	v = waitExpiry(t, ctx, rec, "warned of the token's expiry in minutes", func(v expiryView) bool { return v.Conn == "live" && v.Notice != "" })
	if v.Notice != "token expires in 5 min — paste a new one" || v.State != "warn" || v.Auth || !strings.Contains(v.Title, "the gateway's is 60 min behind") {
		t.Fatalf("4.5 minutes before expiry: %+v", v)
	}

	// "paste a new one" opens the token box; a short token (3 s) counts
	// down in seconds, then expires: the gateway closes with 4403.
	if err := chromedp.Do(rctx, chromedp.Click(chromedp.CSS("#expiry button"))); err != nil {
		t.Fatal(err)
	}
	if v := readExpiry(t, ctx, rec); !v.Auth || v.Focused != "auth-token" || v.Conn != "live" {
		t.Fatalf("after \"paste a new one\": %+v (want the token box, focused, the page still live)", v)
	}
	if err := chromedp.Do(rctx, chromedp.SendKeys(chromedp.ID("auth-token"), "short-closed"), chromedp.Click(chromedp.CSS("#auth-form button"))); err != nil {
		t.Fatal(err)
	}
	countdown := func(tok string) {
		t.Helper()
		v := waitExpiry(t, ctx, rec, "counted down "+tok+" in seconds", func(v expiryView) bool {
			return v.Conn == "live" && secondsLeft.MatchString(v.Notice) && v.Inits[len(v.Inits)-1] == "Bearer "+tok
		})
		first, _ := strconv.Atoi(secondsLeft.FindStringSubmatch(v.Notice)[1])
		// At most 3 s, and half a second more on the Date header's
		// clock (to the second) before the first gatewayStats.
		if first < 1 || first > 4 || v.State != "warn" || v.Auth {
			t.Fatalf("3 s before expiry: %+v", v)
		}
		waitExpiry(t, ctx, rec, "counted "+tok+" down second by second", func(v expiryView) bool {
			if m := secondsLeft.FindStringSubmatch(v.Notice); m != nil {
				n, _ := strconv.Atoi(m[1])
				return n < first
			}
			return v.Conn == "expired"
		})
		v = waitExpiry(t, ctx, rec, "said "+tok+" had expired", func(v expiryView) bool { return v.Conn == "expired" })
		if v.Notice != "token expired — paste a new one" || v.State != "expired" || !v.Auth || !strings.Contains(v.AuthMsg, "expired") {
			t.Fatalf("once %s expired: %+v", tok, v)
		}
		n := len(v.Inits)
		time.Sleep(time.Second) // a reconnection would have come by now (at most 625 ms)
		if v := readExpiry(t, ctx, rec); len(v.Inits) != n || v.Conn != "expired" {
			t.Fatalf("after %s expired, the page connected again: %+v", tok, v)
		}
	}
	countdown("short-closed")

	// The #token= flow, with a token whose connection the gateway does not
	// close: the page gives it up by itself.
	g.mu.Lock()
	closed := g.closed
	g.mu.Unlock()
	if err := chromedp.Do(rctx, chromedp.Evaluate[chromedp.Void](`location.hash = '#token=short-silent'`),
		chromedp.WaitVisible(`#token-use`), chromedp.Click(`#token-use`)); err != nil {
		t.Fatal(err)
	}
	countdown("short-silent")
	g.mu.Lock()
	closed = g.closed - closed
	g.mu.Unlock()
	if closed != 1 {
		t.Errorf("%d connections ended after short-silent expired, want its own", closed)
	}

	// A credential that does not expire (an API key): nothing to say.
	if err := chromedp.Do(rctx, chromedp.SendKeys(chromedp.ID("auth-token"), "api-key"), chromedp.Click(chromedp.CSS("#auth-form button"))); err != nil {
		t.Fatal(err)
	}
	waitViewer(t, ctx, "showed who it acts as with the API key", func(v viewerLine) bool { return v.Shown })
	if v := readExpiry(t, ctx, rec); v.Notice != "" || v.State != "" || v.Auth || v.Conn != "live" || len(v.Violations) > 0 {
		t.Fatalf("with a credential that does not expire: %+v", v)
	}
}
