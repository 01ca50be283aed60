// Package schemaregistry is the JSON-schema registry of event types: every
// event is validated against its type's schema when it is appended, and
// events stored with an older schema version are migrated (upcast) to the
// version a reader asks for when they are read. Stored events never change.
//
// For each event type the registry keeps an ordered list of schema
// versions (JSON Schema draft-07, compiled once and cached), a
// compatibility mode, and migrations between consecutive versions. It is
// persisted in PostgreSQL; every process keeps a compiled copy and reloads
// it when any process changes the registry (Run listens for changes; a
// lookup that misses reloads at once).
//
// Schemas refer only to themselves: a $ref is a JSON Pointer into the
// schema, $id is refused, and gojsonschema is given a loader that refuses
// every other document, so compiling never does I/O; a $ref loop that
// consumes no data (which would recurse until the process crashes) is
// refused as well (see checkRefCycles).
//
// Validation is gojsonschema's. A schema written only with the keywords
// event schemas mostly use (type, properties, required,
// additionalProperties, items, string enums, numeric bounds, lengths and
// counts, pattern, format) also gets a fast path that accepts valid data
// without it, with the same verdicts (numbers compared exactly, lengths in
// runes, gojsonschema's format checkers); data it does not accept, and
// every schema with another keyword, go to gojsonschema, which gives the
// verdict and the problems. Every schema the domain ships has the fast
// path.
//
// # Migrations
//
// A migration turns data of version N into version N+1. It is declarative
// (a list of Op: rename/move, copy, remove, default, set, mapValues,
// compute with an expression; see Op and CompileExpr) and stored in the
// registry, or written in Go (Options.Upcasters). Reading an event at an
// older version runs the chain up to the version asked for, and the result
// is validated against that version's schema. What a migration makes of an
// event is capped (Options.MaxEventBytes). An event appended at an older
// version must read as every later one, its numbers spelled as PostgreSQL
// stores them (see Registry.Validate).
//
// # Changes are checked twice
//
// A new schema version must be structurally compatible with earlier ones
// under the type's Mode (see CheckCompatibility for the rules; a step that
// has a migration is exempt from the structural BACKWARD check, because
// its data is transformed), and the stored events of the type (all, or
// Options.ReplaySample per version) must read as the new version through
// the migrations. Either failure refuses the change and names the reasons
// or the failing events; Check does the same without writing anything.
package schemaregistry
