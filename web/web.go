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
// (the dashboard, and every file but the playground's page).
func CSP(host string) string {
	return "default-src 'self'; connect-src 'self' ws://" + host + " wss://" + host +
		"; img-src 'self' data:; font-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
}

// PlaygroundCSP is the playground page's policy: CSP with inline styles
// allowed ('unsafe-inline' in style-src only; scripts stay the gateway's
// own files). GraphiQL's dialogs inject <style> elements whose text
// varies (react-remove-scroll's, sized to the scroll bar), so neither a
// hash nor, without an inline script to hand it over, a nonce admits them.
func PlaygroundCSP(host string) string {
	return CSP(host) + "; style-src 'self' 'unsafe-inline'"
}
