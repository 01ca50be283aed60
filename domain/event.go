package domain

import (
	"encoding/json"
	"errors"
	"strconv"
	"time"
)

// Errors of the event log that the command service branches on; the event
// store returns them wrapped in a *Error with code Conflict.
var (
	// ErrWrongExpectedVersion: the stream is not at the expected version.
	ErrWrongExpectedVersion = errors.New("wrong expected version")
	// ErrDuplicateEventID: an event id is already stored with other content
	// or in another stream.
	ErrDuplicateEventID = errors.New("duplicate event id")
	// ErrEventNotFound: no stored event has the id.
	ErrEventNotFound = errors.New("event not found")
)

// Metadata keys that cqrsgate itself writes and indexes. Metadata is a JSON
// object; any other keys are kept as they are.
const (
	MetaCorrelationID = "correlationId" // the request or process that caused the event
	MetaCausationID   = "causationId"   // the command or event that directly caused it
	MetaActor         = "actor"         // who asked for it
)

// EventData is an event about to be appended: what the caller supplies.
type EventData struct {
	// ID identifies the event (a UUID); empty means the store generates one.
	// Re-appending an id that is already stored is idempotent (see the
	// event store's Append).
	ID string
	// Type is the stable event type name, e.g. "AccountOpened".
	Type string
	// SchemaVersion is the version of Type's payload schema, starting at 1.
	SchemaVersion int
	// Data is the payload: a JSON object.
	Data json.RawMessage
	// Metadata is a JSON object (correlation id, causation id, actor, ...);
	// nil means {}.
	Metadata json.RawMessage
}

// RecordedEvent is an event as stored in the log.
type RecordedEvent struct {
	EventData
	// StreamID names the stream the event belongs to, e.g. "account-<uuid>".
	StreamID string
	// StreamVersion is the event's 1-based number within its stream.
	StreamVersion int64
	// Position is the event's place in the global log: strictly increasing
	// in commit order, with gaps where appends rolled back.
	Position int64
	// RecordedAt is the server time the event was stored.
	RecordedAt time.Time
}

// ExpectedVersion states what an append expects of its stream.
// A value >= 1 is an exact version (the stream's current last version);
// the named constants below cover the other cases.
type ExpectedVersion int64

const (
	// ExpectNoStream: the stream must not exist yet (it has no events).
	ExpectNoStream ExpectedVersion = 0
	// ExpectAny: append whatever the stream's state.
	ExpectAny ExpectedVersion = -1
	// ExpectStreamExists: the stream must have at least one event.
	ExpectStreamExists ExpectedVersion = -2
)

// Valid reports whether v is one of the constants or an exact version.
func (v ExpectedVersion) Valid() bool { return v >= ExpectStreamExists }

// String renders v for messages: "any", "no stream", "stream exists" or the number.
func (v ExpectedVersion) String() string {
	switch v {
	case ExpectNoStream:
		return "no stream"
	case ExpectAny:
		return "any"
	case ExpectStreamExists:
		return "stream exists"
	}
	return strconv.FormatInt(int64(v), 10)
}

// AppendResult reports where an append's events landed.
type AppendResult struct {
	StreamID string
	// FirstVersion and LastVersion are the stream versions of the first and
	// last event written; LastVersion is the next append's expected version.
	FirstVersion, LastVersion int64
	// FirstPosition and LastPosition are their global positions.
	// LastPosition is the consistency token for read-your-writes.
	FirstPosition, LastPosition int64
	// Events are the events as stored, in order.
	Events []RecordedEvent
	// Duplicate is true when every event was already stored (an idempotent
	// retry): nothing was written and the original positions are returned.
	Duplicate bool
}

// Snapshot is the saved state of a stream's aggregate as of a version, so
// that loading it replays only newer events.
type Snapshot struct {
	StreamID string
	// Version is the stream version the state includes.
	Version int64
	// SchemaVersion is the version of the state's JSON shape, so that a
	// snapshot written by older code can be recognised and ignored.
	SchemaVersion int
	// State is the aggregate state as JSON.
	State json.RawMessage
	// CreatedAt is when the snapshot was stored.
	CreatedAt time.Time
}

// StreamQuery selects events of one stream.
type StreamQuery struct {
	// From is the first version to read: forwards, 0 or 1 means the start;
	// backwards, 0 means the latest event.
	From int64
	// Limit caps the number of events (0: the store's default; stores
	// refuse more than their maximum, 10,000 for cqrsgate's stores).
	Limit int
	// Backward reads from From towards version 1.
	Backward bool
}
