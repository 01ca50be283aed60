package domain

import (
	"embed"
	"io/fs"
)

//go:embed schemas/*.json
var schemaFiles embed.FS

// EventSchemas returns the JSON schemas of the domain's events, which the
// gateway registers at start-up: <Type>.v<N>.json is the schema of version
// N of Type, <Type>.v<N>.migration.json the declarative migration from
// version N-1 (see package schemaregistry). A released file never changes:
// a new payload shape is a new version with its migration.
func EventSchemas() fs.FS {
	sub, err := fs.Sub(schemaFiles, "schemas")
	if err != nil {
		panic(err) // the embedded directory is fixed at build time
	}
	return sub
}
