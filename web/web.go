// Package web serves cqrsgate's browser pages from files embedded in the
// binary with go:embed: the GraphQL playground (GraphiQL) at / and the live
// dashboard at /dashboard. Their libraries come from npm packages pinned by
// web/assets/package-lock.json and copied into static/vendor by
// web/assets/refresh.sh, so nothing is loaded from elsewhere and go build
// needs no Node.
package web

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

//go:embed static
var static embed.FS

// Handler serves the embedded pages with a Content-Security-Policy that
// allows only the gateway's own origin (and its websocket, and data: URLs
// for the playground's embedded fonts and icons). It lists no directory.
func Handler() http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded directory is fixed at build time
	}
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", CSP(r.Host))
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
		files.ServeHTTP(w, r)
	})
}

// CSP returns the Content-Security-Policy of the pages served for host.
func CSP(host string) string {
	return "default-src 'self'; connect-src 'self' ws://" + host + " wss://" + host +
		"; img-src 'self' data:; font-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
}
