package web_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// initRecorder records the authorization of every connection_init the
// dashboard sends to g ("" for none), accepting them all.
type initRecorder struct {
	mu    sync.Mutex
	inits []string
}

func recordInits(g *fakeGateway) *initRecorder {
	rec := &initRecorder{}
	g.refuse = func(n int, payload map[string]any) string {
		auth, _ := payload["authorization"].(string)
		rec.mu.Lock()
		rec.inits = append(rec.inits, auth)
		rec.mu.Unlock()
		return ""
	}
	return rec
}

func (rec *initRecorder) all() []string {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]string(nil), rec.inits...)
}

// waitInit waits until the dashboard has sent more than n connection_inits
// and returns the last one.
func (rec *initRecorder) waitInit(t *testing.T, n int) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if got := rec.all(); len(got) > n {
			return got[len(got)-1]
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no connection_init after the %d seen in 10s", n)
	return ""
}

// pageState is what the token tests look at: the address, the kept token,
// the notes, the connection state and any policy violation.
type pageState struct {
	Href       string   `json:"href"`
	Kept       *string  `json:"kept"`
	Conn       string   `json:"conn"`
	Asking     bool     `json:"asking"`
	Forget     bool     `json:"forget"`
	Note       string   `json:"note"`
	Violations []string `json:"violations"`
}

func readPage(t *testing.T, ctx context.Context) pageState {
	t.Helper()
	s := evalPage[pageState](t, ctx, `({
		href: location.href,
		kept: localStorage.getItem("cqrsgate:token"),
		conn: document.body.dataset.conn,
		asking: !!document.getElementById("token-change") && !document.getElementById("token-change").hidden,
		forget: !!document.getElementById("forget-token") && !document.getElementById("forget-token").hidden && document.getElementById("forget-token").offsetParent !== null,
		note: !document.getElementById("token-note") || document.getElementById("token-note").hidden ? "" : document.getElementById("token-note").textContent,
		violations: window.__violations || [],
	})`)
	return s
}

// waitVisible waits up to 10 s for sel to show, what being what it shows.
func waitVisible(t *testing.T, ctx context.Context, sel, what string) {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := chromedp.Do(wctx, chromedp.WaitVisible(chromedp.CSS(sel))); err != nil {
		s := readPage(t, ctx)
		t.Fatalf("%s (%s) did not show in 10 s: %v; page %+v, kept %q", what, sel, err, s, kept(s))
	}
}

func kept(s pageState) string {
	if s.Kept == nil {
		return "<none>"
	}
	return *s.Kept
}

// keepToken stores v as the dashboard's kept token in the browser, from a
// page of the gateway's origin that is not the dashboard.
func keepToken(t *testing.T, ctx context.Context, url, v string) {
	t.Helper()
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := chromedp.Do(rctx, chromedp.Navigate(url+"/favicon.svg")); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(rctx, chromedp.Evaluate[any](`localStorage.setItem("cqrsgate:token", `+jsString(v)+`)`)); err != nil {
		t.Fatal(err)
	}
}

func jsString(v string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(v) + `"`
}

// TestDashboardTakesTheTokenFromTheFragment: a link's #token= (which no
// server or proxy log sees, unlike ?token=) authenticates the dashboard,
// is kept, and leaves the address, the rest of the address unchanged (it
// was ignored: the page connected without a token).
func TestDashboardTakesTheTokenFromTheFragment(t *testing.T) {
	g := &fakeGateway{}
	rec := recordInits(g)
	ctx, url, stop := startBrowser(t, g)
	defer stop()
	rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(rctx, watchViolations, chromedp.Navigate(url+"/dashboard?x=1#token=frag%2Btoken-0123&view=tail"),
		chromedp.WaitVisible(chromedp.CSS(`body[data-conn="live"]`))); err != nil {
		t.Fatal(err)
	}
	s := readPage(t, ctx)
	if got := rec.all(); len(got) != 1 || got[0] != "Bearer frag+token-0123" {
		t.Errorf("connection_inits %q, want one with the fragment's token", got)
	}
	if s.Href != url+"/dashboard?x=1#view=tail" || kept(s) != "frag+token-0123" || !s.Forget || s.Asking || len(s.Violations) > 0 {
		t.Errorf("after #token=: %+v (kept %q), want the token out of the address, kept, and a way to forget it", s, kept(s))
	}
	// The history holds no address with the token: it was replaced.
	hist, err := chromedp.Run(rctx, chromedp.NavigationEntries())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range hist.Entries {
		if strings.Contains(e.URL, "token") {
			t.Errorf("the history holds %s", e.URL)
		}
	}
}

// TestDashboardAsksBeforeReplacingAKeptToken: a token from the address
// that differs from the kept one (a link can carry someone else's token)
// no longer replaces it silently: the page asks, connects with neither
// until answered, and says what it did; the same for ?token=, and for a
// #token= typed into the open page's address.
func TestDashboardAsksBeforeReplacingAKeptToken(t *testing.T) {
	g := &fakeGateway{}
	rec := recordInits(g)
	ctx, url, stop := startBrowser(t, g)
	defer stop()
	rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	keepToken(t, ctx, url, "old-token")

	// ?token= (an older link) with another token: asked, and no
	// connection with either until answered; on "keep", the kept one is
	// used and the address's discarded (it replaced the kept one unasked).
	if err := chromedp.Do(rctx, watchViolations, chromedp.Navigate(url+"/dashboard?token=other-token")); err != nil {
		t.Fatal(err)
	}
	waitVisible(t, ctx, "#token-change", "the question about the address's token")
	time.Sleep(time.Second) // a connection would have come by now
	s := readPage(t, ctx)
	if n := len(rec.all()); n != 0 || kept(s) != "old-token" || s.Href != url+"/dashboard" || s.Conn != "waiting" {
		t.Fatalf("while asking: %d connection_inits, kept %q, page %+v; want none, the old token kept, the address without the token", n, kept(s), s)
	}
	if err := chromedp.Do(rctx, chromedp.Click(chromedp.ID("token-keep")), chromedp.WaitVisible(chromedp.CSS(`body[data-conn="live"]`))); err != nil {
		t.Fatal(err)
	}
	s = readPage(t, ctx)
	if got := rec.all(); len(got) != 1 || got[0] != "Bearer old-token" || kept(s) != "old-token" || s.Asking || !strings.Contains(s.Note, "discarded") {
		t.Fatalf("after keeping the kept token: connection_inits %q, kept %q, page %+v", got, kept(s), s)
	}

	// #token= with another token: asked; on "use", replaced and said so.
	before := len(rec.all())
	if err := chromedp.Do(rctx, chromedp.Navigate(url+"/dashboard?y=1#token=new-token")); err != nil {
		t.Fatal(err)
	}
	waitVisible(t, ctx, "#token-change", "the question about the address's token")
	if s := readPage(t, ctx); s.Href != url+"/dashboard?y=1" || kept(s) != "old-token" || len(rec.all()) != before {
		t.Fatalf("#token= while asking: %+v, kept %q, connection_inits %q", s, kept(s), rec.all())
	}
	if err := chromedp.Do(rctx, chromedp.Click(chromedp.ID("token-use")), chromedp.WaitVisible(chromedp.CSS(`body[data-conn="live"]`))); err != nil {
		t.Fatal(err)
	}
	s = readPage(t, ctx)
	if got := rec.all(); got[len(got)-1] != "Bearer new-token" || kept(s) != "new-token" || s.Asking || !strings.Contains(s.Note, "replaced") {
		t.Fatalf("after using the address's token: connection_inits %q, kept %q, page %+v", got, kept(s), s)
	}

	// The same token again: nothing to ask.
	before = len(rec.all())
	if err := chromedp.Do(rctx, chromedp.Navigate(url+"/dashboard?y=2#token=new-token"), chromedp.WaitVisible(chromedp.CSS(`body[data-conn="live"]`))); err != nil {
		t.Fatal(err)
	}
	if s := readPage(t, ctx); s.Asking || s.Href != url+"/dashboard?y=2" || rec.waitInit(t, before) != "Bearer new-token" {
		t.Fatalf("the kept token from the address again: %+v", s)
	}

	// A #token= typed into the open page's address (no new load): asked.
	if _, err := chromedp.Run(rctx, chromedp.Evaluate[any](`location.hash = "token=typed-token"`)); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(rctx, chromedp.WaitVisible(chromedp.ID("token-change")), chromedp.Click(chromedp.ID("token-use")),
		chromedp.WaitNotVisible(chromedp.ID("token-change")), chromedp.WaitVisible(chromedp.CSS(`body[data-conn="live"]`))); err != nil {
		t.Fatal(err)
	}
	s = readPage(t, ctx)
	if got := rec.all(); got[len(got)-1] != "Bearer typed-token" || kept(s) != "typed-token" || strings.Contains(s.Href, "token") {
		t.Fatalf("after a typed #token=: connection_inits %q, kept %q, page %+v", got, kept(s), s)
	}
	if len(s.Violations) > 0 {
		t.Fatalf("policy violations: %v", s.Violations)
	}
}

// TestDashboardForgetsTheKeptToken: a button on the page forgets the kept
// token, in the browser's storage and in the page, and the dashboard
// connects again without one (there was no way but the browser's tools).
func TestDashboardForgetsTheKeptToken(t *testing.T) {
	g := &fakeGateway{}
	rec := recordInits(g)
	ctx, url, stop := startBrowser(t, g)
	defer stop()
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(rctx, watchViolations, chromedp.Navigate(url+"/dashboard#token=forget-me"),
		chromedp.WaitVisible(chromedp.CSS(`body[data-conn="live"]`))); err != nil {
		t.Fatal(err)
	}
	waitVisible(t, ctx, "#forget-token", "the button that forgets the token")
	n := len(rec.all())
	if err := chromedp.Do(rctx, chromedp.Click(chromedp.ID("forget-token"))); err != nil {
		t.Fatal(err)
	}
	if auth := rec.waitInit(t, n); auth != "" {
		t.Fatalf("after forgetting, the dashboard connected with %q", auth)
	}
	if err := chromedp.Do(rctx, chromedp.WaitVisible(chromedp.CSS(`body[data-conn="live"]`))); err != nil {
		t.Fatal(err)
	}
	s := readPage(t, ctx)
	if s.Kept != nil || s.Forget || !strings.Contains(s.Note, "forgotten") || len(s.Violations) > 0 {
		t.Fatalf("after forgetting: kept %q, page %+v", kept(s), s)
	}
	// A new visit has no token either.
	n = len(rec.all())
	if err := chromedp.Do(rctx, chromedp.Navigate(url+"/dashboard"), chromedp.WaitVisible(chromedp.CSS(`body[data-conn="live"]`))); err != nil {
		t.Fatal(err)
	}
	if auth := rec.waitInit(t, n); auth != "" {
		t.Fatalf("the next visit connected with %q", auth)
	}
}
