// Package web serves cqrsgate's browser pages from files embedded in the
// binary with go:embed, so nothing is loaded from elsewhere. Today that is
// the start page at /, which lists the endpoints; the GraphQL playground and
// the live dashboard come with later work.
package web

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var static embed.FS

// Handler serves the embedded pages with a Content-Security-Policy that
// allows only the gateway's own origin.
func Handler() http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded directory is fixed at build time
	}
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		files.ServeHTTP(w, r)
	})
}
