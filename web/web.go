// Package web serves cqrsgate's browser pages from files embedded in the
// binary with go:embed: the GraphQL playground (GraphiQL) at / and the live
// dashboard at /dashboard. Their libraries come from npm packages pinned by
// web/assets/package-lock.json and copied into static/vendor by
// web/assets/refresh.sh, so nothing is loaded from elsewhere and go build
// needs no Node.
package web

import (
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"io/fs"
	"net/http"
	"net/netip"
	"path"
	"strings"
)

//go:embed static
var static embed.FS

// Handler serves the embedded pages with a Content-Security-Policy that
// allows only the gateway's own origin (and its websocket, and data: URLs
// for the playground's embedded fonts and icons; and, on the playground's
// page, inline styles: see PlaygroundCSP). It lists no directory.
//
// Every file carries an ETag, a hash of its content, and Cache-Control
// no-cache: a browser keeps what it loaded (GraphiQL's script alone is
// 1 MB) and asks again on each visit, and a file unchanged since is
// answered 304 Not Modified, without its body. The embedded files have no
// modification time, so without the ETag nothing was kept.
func Handler() http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded directory is fixed at build time
	}
	etags, err := contentTags(sub)
	if err != nil {
		panic(err)
	}
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/" || r.URL.Path == "/index.html" {
			w.Header().Set("Content-Security-Policy", PlaygroundCSP(r.Host))
		} else {
			w.Header().Set("Content-Security-Policy", CSP(r.Host))
		}
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "no-referrer")
		if strings.HasSuffix(r.URL.Path, "/") && r.URL.Path != "/" {
			http.NotFound(w, r) // no directory listings
			return
		}
		if r.URL.Path == "/dashboard" {
			r = r.Clone(r.Context())
			r.URL.Path = "/dashboard.html"
		}
		name := strings.TrimPrefix(path.Clean(r.URL.Path), "/")
		if name == "" {
			name = "index.html"
		}
		if tag, ok := etags[name]; ok {
			// http.FileServerFS answers If-None-Match (and If-Match, and
			// ranges) against the ETag set here.
			w.Header().Set("ETag", tag)
			w.Header().Set("Cache-Control", "no-cache")
		}
		files.ServeHTTP(w, r)
	})
}

// contentTags returns a strong ETag for each file of fsys, by its path: a
// hash of the file's bytes, computed once (the files are part of the
// binary).
func contentTags(fsys fs.FS) (map[string]string, error) {
	tags := map[string]string{}
	err := fs.WalkDir(fsys, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		tags[name] = `"` + base64.RawURLEncoding.EncodeToString(sum[:18]) + `"`
		return nil
	})
	return tags, err
}

// CSP returns the Content-Security-Policy of the pages served for host
// (the dashboard, and every file but the playground's page), host being
// the request's Host header.
//
// The policy names the gateway's own websocket, ws://host and wss://host,
// in connect-src: CSP Level 3 lets 'self' match the page's host over ws:
// and wss:, but browsers that predate it match 'self' against http: and
// https: only, and would refuse the playground's subscriptions and the
// dashboard's websocket. The Host header is the client's to write, so it
// is named only when validHost accepts it: anything else (a ';', a space,
// a quote, a ',' or a '*', which would add directives or policies or
// widen connect-src) gets the same policy with 'self' alone. A browser
// always sends the host[:port] it was asked to open, so its pages keep
// the named websocket.
func CSP(host string) string {
	connect := "connect-src 'self'"
	if validHost(host) {
		connect += " ws://" + host + " wss://" + host
	}
	return "default-src 'self'; " + connect +
		"; img-src 'self' data:; font-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
}

// validHost reports whether host is a host[:port] that can stand in a
// CSP source expression unchanged: a DNS name or IPv4 address (letters,
// digits, '.' and '-'; at most 253 bytes) or an IPv6 address in brackets
// (without a zone), then optionally ':' and a port of 1 to 5 digits.
func validHost(host string) bool {
	name, port := host, ""
	if strings.HasPrefix(host, "[") {
		end := strings.IndexByte(host, ']')
		if end < 0 {
			return false
		}
		ip, err := netip.ParseAddr(host[1:end])
		if err != nil || !ip.Is6() || ip.Zone() != "" {
			return false
		}
		name, port = "", host[end+1:]
	} else if i := strings.IndexByte(host, ':'); i >= 0 {
		name, port = host[:i], host[i:]
	}
	if port != "" {
		digits := strings.TrimPrefix(port, ":")
		if digits == port || len(digits) < 1 || len(digits) > 5 || strings.Trim(digits, "0123456789") != "" {
			return false
		}
	}
	if name == "" {
		return strings.HasPrefix(host, "[") // the address was checked above
	}
	if len(name) > 253 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// PlaygroundCSP is the playground page's policy: CSP with inline styles
// allowed ('unsafe-inline' in style-src only; scripts stay the gateway's
// own files). GraphiQL's dialogs inject <style> elements whose text
// varies (react-remove-scroll's, sized to the scroll bar), so neither a
// hash nor, without an inline script to hand it over, a nonce admits them.
func PlaygroundCSP(host string) string {
	return CSP(host) + "; style-src 'self' 'unsafe-inline'"
}
