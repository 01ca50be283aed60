package model

import "time"

// Event is an event as stored. Its data and schemaVersion are resolved by
// the Event resolvers, which migrate StoredData to the version asked for.
type Event struct {
	ID                  string
	StreamID            string
	StreamVersion       int
	Position            Position
	Type                string
	StoredSchemaVersion int
	StoredData          JSON
	Metadata            JSON
	RecordedAt          time.Time
}
