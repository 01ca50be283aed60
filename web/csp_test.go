package web_test

import (
	"bufio"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"cqrsgate/web"
)

// directives splits a Content-Security-Policy into its directives, by
// name, the way a browser does (';' separates them; the name is the first
// word), and reports a ',' (which starts another policy).
func directives(t *testing.T, csp string) map[string]string {
	t.Helper()
	if strings.Contains(csp, ",") {
		t.Errorf("policy %q holds a ',': a second policy", csp)
	}
	out := map[string]string{}
	for _, d := range strings.Split(csp, ";") {
		name, value, _ := strings.Cut(strings.TrimSpace(d), " ")
		if _, dup := out[name]; dup {
			t.Errorf("policy %q names %s twice", csp, name)
		}
		out[name] = value
	}
	return out
}

var policyDirectives = []string{"default-src", "connect-src", "img-src", "font-src", "object-src", "base-uri", "frame-ancestors"}

// checkPolicy checks that csp has exactly the gateway's directives (and
// style-src on the playground), and that connect-src is want.
func checkPolicy(t *testing.T, host, csp string, playground bool, wantConnect string) {
	t.Helper()
	got := directives(t, csp)
	want := len(policyDirectives)
	if playground {
		want++
		if got["style-src"] != "'self' 'unsafe-inline'" {
			t.Errorf("Host %q: playground style-src %q", host, got["style-src"])
		}
	}
	for _, name := range policyDirectives {
		if _, ok := got[name]; !ok {
			t.Errorf("Host %q: policy %q has no %s", host, csp, name)
		}
	}
	if len(got) != want {
		t.Errorf("Host %q: policy %q has %d directives, want %d", host, csp, len(got), want)
	}
	if got["connect-src"] != wantConnect {
		t.Errorf("Host %q: connect-src %q, want %q", host, got["connect-src"], wantConnect)
	}
	if got["default-src"] != "'self'" {
		t.Errorf("Host %q: default-src %q", host, got["default-src"])
	}
}

// TestCSPTakesNothingFromABadHost: a Host header that is not a
// host[:port] (a ';', a space, a quote, a ',', a '*') no longer reaches
// the Content-Security-Policy, where it added directives (a Host of
// "x;sandbox" sandboxed the page; "*" let it open a websocket anywhere):
// such a request gets the policy with connect-src 'self' alone. A
// host[:port] is still named for the websocket.
func TestCSPTakesNothingFromABadHost(t *testing.T) {
	bad := []string{
		"evil.example;script-src 'unsafe-inline'",
		"x;sandbox",
		"x; report-uri /r",
		"a b",
		`a"b`,
		"a'b",
		"a,b",
		"*",
		"*.example",
		"*:8080",
		"localhost:*",
		"'unsafe-inline'",
		"",
		":8080",
		"localhost:",
		"localhost:8080:1",
		"localhost:123456",
		"localhost:80a",
		"a_b.example",
		"[::1",
		"[::1]x",
		"[::1]:",
		"[fe80::1%eth0]:80",
		"[1.2.3.4]",
		"[::1]:80;sandbox",
		"ws://x",
		"x/y",
		"x\tsandbox",
		strings.Repeat("a", 254),
	}
	handler := web.Handler()
	for _, host := range bad {
		checkPolicy(t, host, web.CSP(host), false, "'self'")
		checkPolicy(t, host, web.PlaygroundCSP(host), true, "'self'")
		for _, path := range []string{"/", "/dashboard", "/dashboard.js"} {
			r := httptest.NewRequest(http.MethodGet, path, nil)
			r.Host = host
			w := httptest.NewRecorder()
			handler.ServeHTTP(w, r)
			checkPolicy(t, host, w.Header().Get("Content-Security-Policy"), path == "/", "'self'")
		}
	}
	good := []string{"localhost:8080", "localhost", "127.0.0.1:8080", "[::1]:8080", "[::1]", "[2001:db8::1]:443", "gateway.example.com", "GW-1.Example.:8443"}
	for _, host := range good {
		want := "'self' ws://" + host + " wss://" + host
		checkPolicy(t, host, web.CSP(host), false, want)
		checkPolicy(t, host, web.PlaygroundCSP(host), true, want)
	}
}

// TestCSPFromARealServer: Go's HTTP server passes a Host with ';' and
// quotes to the handler (they are valid bytes of a Host); the policy it
// answers with names no directive from it.
func TestCSPFromARealServer(t *testing.T) {
	srv := httptest.NewServer(web.Handler())
	defer srv.Close()
	for _, host := range []string{"x;sandbox", "x;script-src'unsafe-inline'", "*"} {
		c, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write([]byte("GET /dashboard HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		c.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("Host %q: status %d (the server was to pass it to the handler)", host, resp.StatusCode)
		}
		checkPolicy(t, host, resp.Header.Get("Content-Security-Policy"), false, "'self'")
	}
}
