package domain

import (
	"encoding/json"
	"fmt"
	"time"
)

// Event is a domain event: a fact an aggregate recorded. Its JSON encoding
// is the stored payload; EventType is the stable type name it is stored
// under (e.g. "AccountOpened"). Payloads are at schema version 1 unless the
// event also implements Versioned.
type Event interface {
	EventType() string
}

// Versioned is implemented by events whose current payload schema version
// is above 1.
type Versioned interface {
	SchemaVersion() int
}

// Command is a request to one aggregate instance: a plain struct naming its
// target.
type Command interface {
	// AggregateID is the id of the aggregate instance the command targets.
	AggregateID() string
	// CommandName is a stable name for metadata and metrics, e.g. "DepositMoney".
	CommandName() string
}

// Aggregate is the state of one aggregate instance. State changes only in
// Apply, and is rebuilt only by replaying Apply over the instance's events.
type Aggregate interface {
	// Apply changes the state by one event of this aggregate; it never fails.
	Apply(Event)
}

// Kind describes one aggregate type to the command service. It is a plain
// value built by the aggregate's file (see Accounts, Orders, Products): no
// registration, no reflection.
type Kind[A Aggregate] struct {
	// Name is the stream category: an instance's stream is Name-<id>.
	Name string
	// IDField is what clients call an instance's id (the GraphQL input
	// field, "accountId"), named in the errors of a malformed id (default
	// "id").
	IDField string
	// New returns the empty state of instance id, before any event.
	New func(id string) A
	// Decide validates cmd against the current state and returns the events
	// that record its outcome (none for a no-op), or an *Error: Invalid for
	// malformed commands, NotFound for instances that do not exist,
	// RuleViolation for refused ones. It must not change a.
	Decide func(a A, cmd Command, now time.Time) ([]Event, error)
	// Decode turns a stored payload back into the event; unknown types are
	// an error.
	Decode func(eventType string, schemaVersion int, data json.RawMessage) (Event, error)
	// Snapshot support (optional: nil disables snapshots for the kind).
	// StateVersion is the version of the state's JSON shape: snapshots of
	// another version are ignored and the state is rebuilt from events.
	StateVersion int
	SaveState    func(a A) (json.RawMessage, error)
	LoadState    func(id string, state json.RawMessage) (A, error)
}

// StreamID returns the stream of instance id: Name-<id>, or, for an id
// qualified with a tenant ("<tenant>~<id>"), <tenant>~Name-<id>.
func (k *Kind[A]) StreamID(id string) string {
	tenant, plain := SplitTenant(id)
	return Qualify(tenant, k.Name+"-"+plain)
}

// EncodeEvent encodes a domain event as the event store takes it: its
// type, payload schema version and JSON payload (no id, no metadata).
func EncodeEvent(e Event) (EventData, error) {
	data, err := json.Marshal(e)
	if err != nil {
		return EventData{}, fmt.Errorf("encode %s: %w", e.EventType(), err)
	}
	return EventData{Type: e.EventType(), SchemaVersion: schemaVersionOf(e), Data: data}, nil
}

// schemaVersionOf returns the event's payload schema version.
func schemaVersionOf(e Event) int {
	if v, ok := e.(Versioned); ok {
		return v.SchemaVersion()
	}
	return 1
}

// DecodeAs decodes data as an event of type T, for Kind.Decode functions.
// Unknown fields are an error, so a payload of another shape is not silently
// half-read.
func DecodeAs[T Event](data json.RawMessage) (Event, error) {
	var e T
	if err := strictUnmarshal(data, &e); err != nil {
		return nil, fmt.Errorf("decode %s: %w", e.EventType(), err)
	}
	return e, nil
}

// UnknownEvent is the error for a Decode function's default case.
func UnknownEvent(kind, eventType string, schemaVersion int) error {
	return fmt.Errorf("%s: unknown event %s v%d", kind, eventType, schemaVersion)
}
