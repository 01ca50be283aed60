package schemaregistry

import (
	"errors"
	"fmt"
	"strings"
)

// Code classifies a registry error; the GraphQL edge turns it into
// extensions.code. The values are the gateway's error codes.
type Code string

// Error codes.
const (
	CodeInvalid      Code = "VALIDATION"     // bad input: a schema, a migration, an event
	CodeNotFound     Code = "NOT_FOUND"      // no such type or version
	CodeConflict     Code = "CONFLICT"       // a concurrent change won
	CodeIncompatible Code = "RULE_VIOLATION" // the change would break readers or stored events
	CodeInternal     Code = "INTERNAL"
)

// Error is a registry error with a client-safe message and details.
type Error struct {
	Code    Code
	Message string
	// Rule names the broken rule for CodeIncompatible (INCOMPATIBLE_SCHEMA,
	// STORED_EVENTS_FAIL, ...).
	Rule    string
	Details map[string]any
	Err     error // the cause, if any
}

func (e *Error) Error() string { return e.Message }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

func invalid(format string, args ...any) *Error {
	return &Error{Code: CodeInvalid, Message: fmt.Sprintf(format, args...)}
}

func notFound(format string, args ...any) *Error {
	return &Error{Code: CodeNotFound, Message: fmt.Sprintf(format, args...)}
}

// Errors callers branch on; errors.Is finds them inside the errors this
// package returns.
var (
	// ErrUnknownType: the event type has no schema (and is not permitted
	// without one).
	ErrUnknownType = errors.New("unknown event type")
	// ErrUnknownVersion: the type has no such schema version.
	ErrUnknownVersion = errors.New("unknown schema version")
	// ErrInvalidEvent: an event does not validate against its schema.
	ErrInvalidEvent = errors.New("invalid event")
	// ErrMigration: an event could not be migrated to the version asked for.
	ErrMigration = errors.New("event migration failed")
)

// Problem is one reason an event does not validate.
type Problem struct {
	// Path is a JSON Pointer into the event's data ("" for the whole object).
	Path string `json:"path"`
	// Message says what is wrong there.
	Message string `json:"message"`
}

// ValidationError reports an event that does not match its schema, or,
// with ReadAs set, one of an older version that matches it but would not
// read as the later version ReadAs (Latest, when set, being the latest):
// its migration to ReadAs fails, or the result does not match that
// version's schema (the problems say which). errors.Is(err,
// ErrInvalidEvent) is true for it.
type ValidationError struct {
	Type     string
	Version  int
	ReadAs   int
	Latest   int
	Problems []Problem
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	switch {
	case e.ReadAs > 0 && e.Latest > e.ReadAs:
		fmt.Fprintf(&b, "%s v%d matches its schema but would not read as v%d, a version before the latest, v%d (reads of it as v%d would fail): ",
			e.Type, e.Version, e.ReadAs, e.Latest, e.ReadAs)
	case e.ReadAs > 0:
		fmt.Fprintf(&b, "%s v%d matches its schema but would not read as the latest version, v%d (every read of it would fail): ", e.Type, e.Version, e.ReadAs)
	default:
		fmt.Fprintf(&b, "%s v%d does not match its schema: ", e.Type, e.Version)
	}
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteString("; ")
		}
		if p.Path == "" {
			b.WriteString(p.Message)
		} else {
			fmt.Fprintf(&b, "%s: %s", p.Path, p.Message)
		}
	}
	return b.String()
}

// Is makes errors.Is(err, ErrInvalidEvent) true.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalidEvent }
