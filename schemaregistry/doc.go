// Package schemaregistry will hold the JSON-schema registry of event types:
// validation on append, migrations (upcasting) on read and compatibility
// checks. It is empty today: see the README's roadmap; until it lands,
// appended events are checked only for shape (a JSON object of bounded size).
package schemaregistry
