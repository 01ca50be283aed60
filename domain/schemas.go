package domain

import (
	"embed"
	"io/fs"
	"strings"
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

// ownedTypes are the event types of the shipped schemas.
var ownedTypes = func() map[string]bool {
	owned := map[string]bool{}
	entries, err := fs.ReadDir(EventSchemas(), ".")
	if err != nil {
		panic(err)
	}
	for _, e := range entries {
		if typ, _, ok := strings.Cut(e.Name(), ".v"); ok {
			owned[typ] = true
		}
	}
	return owned
}()

// OwnedEventType reports whether eventType is an event of the domain's
// aggregates and processes (it ships a schema in domain/schemas): only
// their commands write it, and only the code that ships with them gives it
// new versions. Read models and the saga take such events for what their
// types say, so one written by hand elsewhere would be folded as the
// aggregate's own.
func OwnedEventType(eventType string) bool { return ownedTypes[eventType] }
