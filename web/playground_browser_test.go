package web_test

import (
	"context"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// TestPlaygroundDialogsBreakNoPolicy: GraphiQL's dialogs (settings, short
// keys) inject <style> elements (react-remove-scroll's), which a policy
// without inline styles blocked: the dialogs opened unstyled in part and
// the console filled with violations. The pages' scripts stay 'self' only.
func TestPlaygroundDialogsBreakNoPolicy(t *testing.T) {
	ctx, url, stop := startBrowser(t, &fakeGateway{})
	defer stop()
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err := chromedp.Do(rctx,
		func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
			_, err := cdp.Call(ctx, t, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: `window.__violations = [];
				document.addEventListener('securitypolicyviolation', e => window.__violations.push(e.violatedDirective + ' ' + e.blockedURI));`})
			return chromedp.Void{}, err
		},
		chromedp.Navigate(url+"/"),
		chromedp.WaitVisible(chromedp.CSS(`.graphiql-container`)),
		chromedp.Click(chromedp.CSS(`button[aria-label="Open settings dialog"]`)),
		chromedp.WaitVisible(chromedp.CSS(`.graphiql-dialog`)),
		chromedp.KeyEvent("\x1b"), // Escape closes it
		chromedp.WaitNotPresent(chromedp.CSS(`.graphiql-dialog`)),
		chromedp.Click(chromedp.CSS(`button[aria-label="Open short keys dialog"]`)),
		chromedp.WaitVisible(chromedp.CSS(`.graphiql-dialog`)),
		chromedp.Sleep(200*time.Millisecond), // a violation's event is dispatched after the fact
	)
	if err != nil {
		t.Fatal(err)
	}
	violations, err := chromedp.Run(rctx, chromedp.Evaluate[[]string](`window.__violations`))
	if err != nil {
		t.Fatal(err)
	}
	if len(violations) > 0 {
		t.Fatalf("the playground's dialogs broke its Content-Security-Policy: %v", violations)
	}
}
