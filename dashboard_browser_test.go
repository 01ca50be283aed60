package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/jackc/pgx/v5/pgxpool"

	"cqrsgate/domain"
	"cqrsgate/eventstore"
)

const (
	dashboardAdminKey       = "ops-admin-key-0123456789abcdef"
	dashboardReaderKey      = "viewer-reader-key-0123456789ab"
	dashboardTenantAdminKey = "acme-admin-key-0123456789abcd"
)

// dashboardRow is a row of the dashboard's projections table.
type dashboardRow struct {
	Name       string   `json:"name"`
	Kind       string   `json:"kind"`
	Generation string   `json:"generation"`
	Status     string   `json:"status"`
	Text       string   `json:"text"`
	Buttons    []string `json:"buttons"`
}

type dashboardProjections struct {
	Rows    []dashboardRow `json:"rows"`
	Message string         `json:"message"`
	// Viewer is the top bar's line saying who the page acts as ("" when
	// hidden).
	Viewer string `json:"viewer"`
	// EverButtons is every button ever put in the table since the page
	// loaded (see recordButtons).
	EverButtons []string `json:"everButtons"`
	// Actions says whether the actions column shows.
	Actions bool `json:"actions"`
}

// recordButtons records in window.__buttons the label of every button ever
// put in the dashboard's projections table, on every document the page
// loads: one shown only for a moment is seen too.
func recordButtons(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
	_, err := cdp.Call(ctx, tg, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: `window.__buttons = [];
		new MutationObserver(records => records.forEach(r => r.addedNodes.forEach(n => {
			if (n.nodeType !== 1 || !n.closest('#projections')) return;
			(n.nodeName === 'BUTTON' ? [n] : [...n.querySelectorAll('button')]).forEach(b => window.__buttons.push(b.textContent));
		}))).observe(document, {childList: true, subtree: true});`})
	return chromedp.Void{}, err
}

func (v dashboardProjections) row(name, kind string) (dashboardRow, bool) {
	for _, r := range v.Rows {
		if r.Name == name && r.Kind == kind {
			return r, true
		}
	}
	return dashboardRow{}, false
}

func (r dashboardRow) has(button string) bool {
	for _, b := range r.Buttons {
		if b == button {
			return true
		}
	}
	return false
}

// projectionsTable reads the dashboard's projections table and message.
func (b *browser) projectionsTable(t *testing.T) dashboardProjections {
	t.Helper()
	var v dashboardProjections
	b.eval(t, `({
		rows: [...document.querySelectorAll('#projections tr')].map(tr => ({
			name: tr.dataset.name, kind: tr.dataset.kind, generation: tr.dataset.generation, status: tr.dataset.status, text: tr.innerText,
			buttons: [...tr.querySelectorAll('button')].filter(b => b.offsetParent !== null).map(b => b.textContent),
		})),
		message: document.getElementById('proj-msg').hidden ? '' : document.getElementById('proj-msg').textContent,
		viewer: document.getElementById('viewer').hidden ? '' : document.getElementById('viewer').textContent,
		everButtons: window.__buttons || [],
		actions: document.querySelector('#projections-table th.actions').offsetParent !== null,
	})`, &v)
	return v
}

// waitTable reads the projections table until cond holds.
func (b *browser) waitTable(t *testing.T, what string, within time.Duration, cond func(dashboardProjections) bool) dashboardProjections {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		v := b.projectionsTable(t)
		if cond(v) {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("the dashboard's projections never %s in %v: %+v", what, within, v)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// press clicks the button labelled label in the row of projection name and
// kind and, when confirm, answers its question yes.
func (b *browser) press(t *testing.T, name, kind, label string, confirm bool) {
	t.Helper()
	var ok bool
	b.eval(t, fmt.Sprintf(`(() => {
		const b = [...document.querySelectorAll('#projections tr[data-name=%q][data-kind=%q] button')].find(b => b.textContent === %q);
		if (!b) return false;
		b.click();
		return true;
	})()`, name, kind, label), &ok)
	if !ok {
		t.Fatalf("no %q button in the %s row of %s: %+v", label, kind, name, b.projectionsTable(t))
	}
	if confirm {
		b.do(t, "confirm "+label, chromedp.WaitVisible(`#confirm-dialog[open]`), chromedp.Click(`#confirm-yes`), chromedp.WaitNotPresent(`#confirm-dialog[open]`))
	}
}

// graphqlAs posts query to the gateway at addr with key and decodes its
// data into out (nil: ignored), failing on any error.
func graphqlAs(t *testing.T, addr, key, query string, out any) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query})
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var r struct {
		Data   json.RawMessage
		Errors []any
	}
	if err := json.Unmarshal(raw, &r); err != nil || len(r.Errors) > 0 {
		t.Fatalf("%s: %v %s", query, err, raw)
	}
	if out != nil {
		if err := json.Unmarshal(r.Data, out); err != nil {
			t.Fatal(err)
		}
	}
}

// accountsGenerations lists the accounts read model's generations as the
// gateway's projections query does.
func accountsGenerations(t *testing.T, addr string) []string {
	t.Helper()
	var out struct {
		Projections []struct {
			Name       string
			Generation int
			Status     string
			Serving    bool
		}
	}
	graphqlAs(t, addr, dashboardAdminKey, `{ projections { name generation status serving } }`, &out)
	var gens []string
	for _, p := range out.Projections {
		if p.Name == "accounts" {
			gens = append(gens, fmt.Sprintf("%d %s serving=%v", p.Generation, p.Status, p.Serving))
		}
	}
	return gens
}

// TestDashboardAdministersProjections runs the dashboard against the
// gateway (in this process, with its embedded PostgreSQL, authentication
// on) with an event the accounts read model cannot fold (a deposit to an
// account never opened, written straight to the store). As an
// administrator: the serving generation fails and is moved past the event
// from the dashboard; a rebuild started from the dashboard fails on the
// same event and is shown as a failed rebuild beside the serving
// generation; cancelled from the dashboard (after its question), its row
// goes and the serving one stays. The page says whom it acts as (from the
// gateway's viewer query); a reader, and a tenant's administrator (the
// projections serve every tenant), see no button at any time.
func TestDashboardAdministersProjections(t *testing.T) {
	chromium := chromiumPath(t)
	p := runInProcess(t, "-auth-api-keys", "ops:admin:"+dashboardAdminKey+",viewer:reader:"+dashboardReaderKey+",acme-ops@acme:admin:"+dashboardTenantAdminKey)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pool, err := pgxpool.New(ctx, p.logged("embedded PostgreSQL started", "url"))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	store := eventstore.NewPostgres(pool, slog.New(slog.DiscardHandler), eventstore.Limits{}, eventstore.NewBroadcaster())
	origin := "http://" + p.addr
	b := newBrowser(t, chromium)
	b.do(t, "record the table's buttons", recordButtons)

	t.Run("an administrator cancels a failed rebuild", func(t *testing.T) {
		graphqlAs(t, p.addr, dashboardAdminKey, `mutation { openAccount(input: {accountId: "a1", owner: "Ann", currency: "EUR", initialDeposit: 70}) { position } }`, nil)
		b.do(t, "open the dashboard", chromedp.Navigate(origin+"/dashboard#token="+dashboardAdminKey), chromedp.WaitVisible(`body[data-conn="live"]`))
		v := b.waitTable(t, "showed accounts serving", 10*time.Second, func(v dashboardProjections) bool {
			r, ok := v.row("accounts", "serving")
			return ok && r.has("Rebuild")
		})
		if v.Viewer != "as ops · admin" {
			t.Errorf("an administrator's dashboard says it acts %q", v.Viewer)
		}
		res, err := store.Append(ctx, "account-ghost-1", domain.ExpectAny,
			domain.EventData{Type: "MoneyDeposited", SchemaVersion: 1, Data: json.RawMessage(`{"amount": 1, "balanceAfter": 1}`)})
		if err != nil {
			t.Fatal(err)
		}
		skip := fmt.Sprintf("Skip event %d", res.LastPosition)

		// The serving generation fails on it: moved past it from the dashboard.
		b.waitTable(t, "showed the serving generation failed", 30*time.Second, func(v dashboardProjections) bool {
			r, ok := v.row("accounts", "serving")
			return ok && r.Status == "FAILED" && r.has(skip)
		})
		b.press(t, "accounts", "serving", skip, true)
		b.waitTable(t, "showed the serving generation running again", 10*time.Second, func(v dashboardProjections) bool {
			r, ok := v.row("accounts", "serving")
			return ok && r.Status == "RUNNING" && r.has("Rebuild")
		})

		// A rebuild from the dashboard reads the log from the start and
		// fails on the same event: shown as a failed rebuild, the serving
		// generation serving on.
		b.press(t, "accounts", "serving", "Rebuild", false)
		v = b.waitTable(t, "showed the rebuild failed", 30*time.Second, func(v dashboardProjections) bool {
			r, ok := v.row("accounts", "rebuild")
			return ok && r.Status == "FAILED"
		})
		rebuild, _ := v.row("accounts", "rebuild")
		serving, _ := v.row("accounts", "serving")
		if rebuild.Generation != "2" || !strings.Contains(rebuild.Text, "rebuild · generation 2") || !strings.Contains(rebuild.Text, "rebuild failed; generation 1 still serves") ||
			!strings.Contains(rebuild.Text, fmt.Sprintf("at position %d", res.LastPosition)) {
			t.Errorf("the failed rebuild: %+v", rebuild)
		}
		for _, want := range []string{"Retry", skip, "Rebuild again", "Cancel rebuild"} {
			if !rebuild.has(want) {
				t.Errorf("the failed rebuild has no %q: %v", want, rebuild.Buttons)
			}
		}
		if serving.Status != "RUNNING" || serving.Generation != "1" || !strings.Contains(serving.Text, "serving · generation 1") || len(serving.Buttons) != 0 {
			t.Errorf("the serving generation beside a failed rebuild: %+v (want RUNNING, no button: the rebuild's row has them)", serving)
		}

		// Cancelled: its row goes, the serving one stays.
		b.press(t, "accounts", "rebuild", "Cancel rebuild", true)
		v = b.waitTable(t, "dropped the rebuild", 10*time.Second, func(v dashboardProjections) bool {
			_, ok := v.row("accounts", "rebuild")
			return !ok
		})
		if r, ok := v.row("accounts", "serving"); !ok || r.Status != "RUNNING" || r.Generation != "1" || !r.has("Rebuild") {
			t.Errorf("after the cancel, the serving generation: %+v", v)
		}
		if !strings.Contains(v.Message, "Rebuild of accounts cancelled (generation 2 dropped): generation 1 goes on serving") {
			t.Errorf("after the cancel the dashboard says %q", v.Message)
		}
		if gens := accountsGenerations(t, p.addr); strings.Join(gens, ",") != "1 RUNNING serving=true" {
			t.Errorf("after the cancel the gateway lists accounts generations %v, want generation 1 alone", gens)
		}
	})

	for _, c := range []struct{ who, key, viewer string }{
		{"a reader", dashboardReaderKey, "as viewer · reader"},
		{"a tenant's administrator", dashboardTenantAdminKey, "as acme-ops · admin · tenant acme"},
	} {
		t.Run(c.who+" sees no buttons", func(t *testing.T) {
			var set bool
			b.eval(t, `(localStorage.setItem('cqrsgate:token', `+fmt.Sprintf("%q", c.key)+`), true)`, &set)
			b.do(t, "open the dashboard as "+c.who, chromedp.Navigate(origin+"/dashboard"), chromedp.WaitVisible(`body[data-conn="live"]`))
			b.waitTable(t, "showed accounts and who it acts as", 10*time.Second, func(v dashboardProjections) bool {
				_, ok := v.row("accounts", "serving")
				return ok && v.Viewer != ""
			})
			time.Sleep(1500 * time.Millisecond) // a status or two later
			v := b.projectionsTable(t)
			if v.Viewer != c.viewer {
				t.Errorf("the dashboard says it acts %q, want %q", v.Viewer, c.viewer)
			}
			if len(v.EverButtons) > 0 || v.Actions {
				t.Errorf("buttons shown since the page loaded: %v, actions column %v; want none", v.EverButtons, v.Actions)
			}
			if gens := accountsGenerations(t, p.addr); strings.Join(gens, ",") != "1 RUNNING serving=true" {
				t.Errorf("the gateway lists accounts generations %v", gens)
			}
		})
	}

	b.mu.Lock()
	defer b.mu.Unlock()
	for _, pr := range b.problems {
		t.Errorf("the page reported: %s", pr)
	}
}
