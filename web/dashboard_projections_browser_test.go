package web_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/gorilla/websocket"
)

// projectionRows is what the projections tests read of the table: per
// row, its projection, kind (serving, rebuild, ...), text, buttons and
// progress bar.
type projectionRow struct {
	Name     string   `json:"name"`
	Kind     string   `json:"kind"`
	Text     string   `json:"text"`
	Buttons  []string `json:"buttons"`
	Progress *float64 `json:"progress"`
}

type projectionsView struct {
	Rows       []projectionRow `json:"rows"`
	Message    string          `json:"message"`
	MsgClass   string          `json:"msgClass"`
	Dialog     bool            `json:"dialog"`
	ActionsCol bool            `json:"actionsCol"`
	Violations []string        `json:"violations"`
}

func readProjections(t *testing.T, ctx context.Context) projectionsView {
	t.Helper()
	v := evalPage[projectionsView](t, ctx, `({
		rows: [...document.querySelectorAll('#projections tr')].map(tr => ({
			name: tr.dataset.name, kind: tr.dataset.kind, text: tr.innerText,
			buttons: [...tr.querySelectorAll('button')].filter(b => b.offsetParent !== null).map(b => b.textContent + (b.disabled ? ' (disabled)' : '')),
			progress: tr.querySelector('progress') ? tr.querySelector('progress').value : null,
		})),
		message: document.getElementById('proj-msg').hidden ? '' : document.getElementById('proj-msg').textContent,
		msgClass: document.getElementById('proj-msg').className,
		dialog: document.getElementById('confirm-dialog').open,
		actionsCol: document.querySelector('#projections-table th.actions').offsetParent !== null,
		violations: window.__violations || [],
	})`)
	return v
}

// evalPage evaluates js in the page (within 5 s) and returns its value
// as a T; it fails the test when it cannot.
func evalPage[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	v, err := chromedp.Run(rctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// waitProjections reads the table until cond holds (10s at most).
func waitProjections(t *testing.T, ctx context.Context, what string, cond func(projectionsView) bool) projectionsView {
	t.Helper()
	return waitView(t, "the projections table never "+what, func() projectionsView { return readProjections(t, ctx) }, cond)
}

// waitView reads the page with read until cond holds of what it read (10s
// at most), and returns that; it fails the test with never and the last
// reading when it does not.
func waitView[V any](t *testing.T, never string, read func() V, cond func(V) bool) V {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		v := read()
		if cond(v) {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %+v", never, v)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (v projectionsView) row(name, kind string) (projectionRow, bool) {
	for _, r := range v.Rows {
		if r.Name == name && r.Kind == kind {
			return r, true
		}
	}
	return projectionRow{}, false
}

func hasButton(r projectionRow, label string) bool {
	for _, b := range r.Buttons {
		if b == label {
			return true
		}
	}
	return false
}

// clickButton clicks the button labelled label in the row of projection
// name and kind.
func clickButton(t *testing.T, ctx context.Context, name, kind, label string) {
	t.Helper()
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	sel := `#projections tr[data-name="` + name + `"][data-kind="` + kind + `"] button[data-act]`
	if err := chromedp.Do(rctx, chromedp.WaitVisible(sel)); err != nil {
		t.Fatalf("no button in the %s row of %s: %v", kind, name, err)
	}
	ok, err := chromedp.Run(rctx, chromedp.Evaluate[bool](`(() => {
		const b = [...document.querySelectorAll('`+sel+`')].find(b => b.textContent === `+"`"+label+"`"+`);
		if (!b) return false;
		b.click();
		return true;
	})()`))
	if err != nil || !ok {
		t.Fatalf("no %q button in the %s row of %s (%v): %+v", label, kind, name, err, readProjections(t, ctx))
	}
}

// answerDialog waits for the confirmation dialog and presses yes or no.
func answerDialog(t *testing.T, ctx context.Context, yes bool) string {
	t.Helper()
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	button := "#confirm-no"
	if yes {
		button = "#confirm-yes"
	}
	if err := chromedp.Do(rctx, chromedp.WaitVisible(`#confirm-dialog[open]`)); err != nil {
		t.Fatal(err)
	}
	text, err := chromedp.Run(rctx, chromedp.Text(`#confirm-dialog`))
	if err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(rctx, chromedp.Click(button), chromedp.WaitNotPresent(`#confirm-dialog[open]`)); err != nil {
		t.Fatal(err)
	}
	return text
}

// TestDashboardProjectionAdministration: the projections table tells the
// serving generation from a rebuild beside it (with its progress), offers
// the administrator's mutations only where they apply (no Rebuild while a
// rebuild runs; Cancel rebuild on the rebuild; Retry and Skip on a failed
// generation), asks before cancelling, shows a refusal with its rule, and
// after a FORBIDDEN shows the gateway's reason and no button at all. The
// fake gateway has no viewer query (a gateway older than it): the buttons
// show until the gateway refuses one.
func TestDashboardProjectionAdministration(t *testing.T) {
	var mu sync.Mutex
	var mutations []string
	answers := map[string]string{
		"cancelProjectionRebuild": `{"errors":[{"message":"projection accounts is not being rebuilt","path":["cancelProjectionRebuild"],"extensions":{"code":"RULE_VIOLATION","rule":"NO_REBUILD_IN_PROGRESS"}}],"data":{"cancelProjectionRebuild":null}}`,
		"rebuildProjection":       `{"errors":[{"message":"rebuildProjection needs the admin role","path":["rebuildProjection"],"extensions":{"code":"FORBIDDEN","requiredRole":"ADMIN"}}]}`,
	}
	done := make(chan struct{})
	defer close(done)
	g := &fakeGateway{}
	g.answer = func(query string, vars map[string]any) string {
		if !strings.HasPrefix(query, "mutation") {
			return ""
		}
		for field, body := range answers {
			if strings.Contains(query, field+"(") {
				mu.Lock()
				mutations = append(mutations, field+" "+vars["name"].(string))
				mu.Unlock()
				return body
			}
		}
		t.Errorf("unexpected mutation %s", query)
		return `{"errors":[{"message":"unexpected"}]}`
	}
	g.onSub = func(n int, c *websocket.Conn, id string) {
		if id != "projections" {
			return
		}
		row := func(name string, gen int, status string, serving bool, pos, lag int) map[string]any {
			return map[string]any{"name": name, "version": 1, "generation": gen, "status": status, "serving": serving,
				"position": pos, "lag": lag, "lagSeconds": 0.0, "failures": 0, "lastError": nil, "failedPosition": nil, "failedEventId": nil}
		}
		failed := row("orders", 1, "FAILED", true, 16, 84)
		failed["failures"], failed["lastError"], failed["failedPosition"], failed["failedEventId"] = 5, "cannot fold", 17, "0190b9a2-0000-7000-8000-000000000017"
		msg := map[string]any{"id": id, "type": "next", "payload": map[string]any{"data": map[string]any{"projectionStatus": []any{
			row("accounts", 1, "RUNNING", true, 100, 0), row("accounts", 2, "RUNNING", false, 40, 60), failed,
		}}}}
		_ = c.WriteJSON(msg)
		g.mu.Lock()
		send := g.sends[n]
		g.mu.Unlock()
		go func() { // every half second, as the gateway's (every second)
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
	ctx, url, stop := startBrowser(t, g)
	defer stop()
	rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(rctx, watchViolations, chromedp.Navigate(url+"/dashboard"), chromedp.WaitVisible(`#projections tr[data-kind="rebuild"]`)); err != nil {
		t.Fatal(err)
	}
	v := readProjections(t, ctx)
	serving, ok1 := v.row("accounts", "serving")
	rebuild, ok2 := v.row("accounts", "rebuild")
	orders, ok3 := v.row("orders", "serving")
	if !ok1 || !ok2 || !ok3 || len(v.Rows) != 3 {
		t.Fatalf("rows: %+v", v.Rows)
	}
	if len(serving.Buttons) != 0 || !strings.Contains(serving.Text, "serving · generation 1") {
		t.Errorf("the serving generation of a projection being rebuilt: %+v (want it marked serving, and no Rebuild: one runs)", serving)
	}
	if !strings.Contains(rebuild.Text, "rebuild · generation 2") || rebuild.Progress == nil || *rebuild.Progress != 40 ||
		!strings.Contains(rebuild.Text, "40% built") || !strings.Contains(rebuild.Text, "40 of 100") ||
		len(rebuild.Buttons) != 1 || rebuild.Buttons[0] != "Cancel rebuild" {
		t.Errorf("the rebuild: %+v (want it marked rebuild, 40%% built, and Cancel rebuild only)", rebuild)
	}
	if !hasButton(orders, "Retry") || !hasButton(orders, "Skip event 17") || !hasButton(orders, "Rebuild") ||
		!strings.Contains(orders.Text, "at position 17 (event 0190b9a2-0000-7000-8000-000000000017): cannot fold") {
		t.Errorf("a failed serving generation: %+v (want Retry, Skip event 17, Rebuild and where it failed)", orders)
	}

	// Cancel asks first; "Keep it" sends nothing.
	clickButton(t, ctx, "accounts", "rebuild", "Cancel rebuild")
	if text := answerDialog(t, ctx, false); !strings.Contains(text, "tables are dropped") || !strings.Contains(text, "Generation 1 goes on serving") {
		t.Errorf("the cancel's question: %q", text)
	}
	time.Sleep(300 * time.Millisecond)
	mu.Lock()
	if len(mutations) != 0 {
		t.Fatalf("a cancel not confirmed sent %v", mutations)
	}
	mu.Unlock()
	// Confirmed, it is sent; the gateway's refusal shows with its rule.
	clickButton(t, ctx, "accounts", "rebuild", "Cancel rebuild")
	answerDialog(t, ctx, true)
	v = waitProjections(t, ctx, "showed the refusal", func(v projectionsView) bool { return strings.Contains(v.Message, "NO_REBUILD_IN_PROGRESS") })
	if !strings.Contains(v.Message, "RULE_VIOLATION") || !strings.Contains(v.Message, "projection accounts is not being rebuilt") || !strings.Contains(v.MsgClass, "error") {
		t.Errorf("refusal shown as %q (%s)", v.Message, v.MsgClass)
	}
	if r, _ := v.row("accounts", "rebuild"); !hasButton(r, "Cancel rebuild") {
		t.Errorf("after a rule violation the buttons stay: %+v", r)
	}

	// FORBIDDEN: the reason shows, and no button is left.
	clickButton(t, ctx, "orders", "serving", "Rebuild")
	v = waitProjections(t, ctx, "showed FORBIDDEN", func(v projectionsView) bool { return strings.Contains(v.Message, "FORBIDDEN") })
	if !strings.Contains(v.Message, "rebuildProjection needs the admin role") || !strings.Contains(v.Message, "actions are hidden") {
		t.Errorf("FORBIDDEN shown as %q", v.Message)
	}
	for _, r := range v.Rows {
		if len(r.Buttons) != 0 {
			t.Errorf("after FORBIDDEN, the %s row of %s still has %v", r.Kind, r.Name, r.Buttons)
		}
	}
	if v.ActionsCol {
		t.Error("after FORBIDDEN the actions column still shows")
	}
	time.Sleep(1500 * time.Millisecond) // three statuses more: the buttons stay away
	if v := readProjections(t, ctx); len(v.Rows[0].Buttons)+len(v.Rows[1].Buttons)+len(v.Rows[2].Buttons) != 0 || len(v.Violations) != 0 {
		t.Errorf("later: %+v", v)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := "cancelProjectionRebuild accounts,rebuildProjection orders"; strings.Join(mutations, ",") != want {
		t.Errorf("mutations sent: %v, want %s", mutations, want)
	}
}
