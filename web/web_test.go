package web_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"cqrsgate/web"
)

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// TestPagesAreSelfContained: the playground and the dashboard, and every
// file they load, come from the gateway itself under a strict
// Content-Security-Policy.
func TestPagesAreSelfContained(t *testing.T) {
	srv := httptest.NewServer(web.Handler())
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	ref := regexp.MustCompile(`(?:src|href)="([^"]+)"`)
	for _, page := range []struct{ path, want string }{{"/", "graphiql.min.js"}, {"/dashboard", "dashboard.js"}} {
		resp, body := get(t, srv.URL+page.path)
		if resp.StatusCode != 200 || !strings.Contains(body, page.want) {
			t.Fatalf("GET %s = %d %.200s", page.path, resp.StatusCode, body)
		}
		csp := resp.Header.Get("Content-Security-Policy")
		// Scripts are the gateway's own everywhere; only the playground
		// (GraphiQL's dialogs) takes inline styles.
		unsafe := strings.ReplaceAll(csp, "; style-src 'self' 'unsafe-inline'", "")
		if page.path != "/" {
			unsafe = csp
		}
		if !strings.HasPrefix(csp, "default-src 'self';") || !strings.Contains(csp, "connect-src 'self' ws://"+host) || strings.Contains(unsafe, "unsafe") ||
			strings.Contains(csp, "script-src") {
			t.Fatalf("GET %s: CSP %q", page.path, csp)
		}
		for _, m := range ref.FindAllStringSubmatch(body, -1) {
			u := m[1]
			if !strings.HasPrefix(u, "/") || strings.HasPrefix(u, "//") {
				t.Errorf("%s refers to %s, which is not the gateway's own", page.path, u)
				continue
			}
			if r, _ := get(t, srv.URL+u); r.StatusCode != 200 {
				t.Errorf("%s loads %s: %d", page.path, u, r.StatusCode)
			}
		}
	}
	for _, own := range []string{"/playground.js", "/dashboard.js", "/playground.css", "/dashboard.css"} {
		_, body := get(t, srv.URL+own)
		if strings.Contains(body, "http://") || strings.Contains(body, "https://") {
			t.Errorf("%s refers to another origin", own)
		}
	}
}

// TestNoDirectoryListings: directories of the embedded files are not
// listed.
func TestNoDirectoryListings(t *testing.T) {
	srv := httptest.NewServer(web.Handler())
	defer srv.Close()
	for _, path := range []string{"/vendor/", "/vendor"} {
		resp, body := get(t, srv.URL+path)
		if resp.StatusCode != http.StatusNotFound || strings.Contains(body, "<a href") {
			t.Errorf("GET %s = %d %.200s, want 404", path, resp.StatusCode, body)
		}
	}
}

// TestFilesRevalidate: every page and file carries an ETag and
// Cache-Control no-cache, a request that names the ETag it holds is
// answered 304 without a body, and files that differ carry different tags.
func TestFilesRevalidate(t *testing.T) {
	srv := httptest.NewServer(web.Handler())
	defer srv.Close()
	seen := map[string]string{}
	for _, p := range []string{"/", "/dashboard", "/playground.js", "/dashboard.js", "/vendor/graphiql.min.js", "/favicon.svg"} {
		resp, body := get(t, srv.URL+p)
		tag := resp.Header.Get("ETag")
		if resp.StatusCode != 200 || body == "" || !strings.HasPrefix(tag, `"`) || resp.Header.Get("Cache-Control") != "no-cache" {
			t.Fatalf("GET %s = %d, ETag %q, Cache-Control %q", p, resp.StatusCode, tag, resp.Header.Get("Cache-Control"))
		}
		if other, dup := seen[tag]; dup {
			t.Errorf("%s and %s carry one ETag %s", other, p, tag)
		}
		seen[tag] = p
		req, _ := http.NewRequest(http.MethodGet, srv.URL+p, nil)
		req.Header.Set("If-None-Match", tag)
		again, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		rest, _ := io.ReadAll(again.Body)
		again.Body.Close()
		if again.StatusCode != http.StatusNotModified || len(rest) != 0 {
			t.Errorf("GET %s with If-None-Match %s = %d with %d bytes, want 304 and none", p, tag, again.StatusCode, len(rest))
		}
		if csp := again.Header.Get("Content-Security-Policy"); csp == "" {
			t.Errorf("the 304 for %s has no Content-Security-Policy", p)
		}
		req.Header.Set("If-None-Match", `"stale"`)
		if changed, err := http.DefaultClient.Do(req); err != nil || changed.StatusCode != 200 {
			t.Errorf("GET %s with a stale tag = %v %v, want 200", p, changed.StatusCode, err)
		} else {
			changed.Body.Close()
		}
	}
}
