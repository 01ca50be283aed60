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
		if !strings.HasPrefix(csp, "default-src 'self';") || !strings.Contains(csp, "connect-src 'self' ws://"+host) || strings.Contains(csp, "unsafe") {
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
