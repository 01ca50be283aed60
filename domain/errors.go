package domain

import (
	"errors"
	"fmt"
	"time"
)

// Code classifies an error for callers and for the GraphQL edge, which
// publishes it as extensions.code. The string values are that wire form.
type Code string

// The error codes. Anything that is not a *Error is reported as Internal.
const (
	// Invalid: the request is malformed (a field is missing, too long, of the wrong shape).
	Invalid Code = "VALIDATION"
	// NotFound: the stream, aggregate or resource named does not exist.
	NotFound Code = "NOT_FOUND"
	// Conflict: optimistic concurrency failed or an id was reused with other content.
	Conflict Code = "CONFLICT"
	// RuleViolation: the request is well formed but a business rule refuses it.
	RuleViolation Code = "RULE_VIOLATION"
	// Unauthorized: the caller is not authenticated.
	Unauthorized Code = "UNAUTHORIZED"
	// Forbidden: the caller is authenticated but lacks the role.
	Forbidden Code = "FORBIDDEN"
	// Stale: a read model has not reached the position a query asked for in time.
	Stale Code = "STALE"
	// OutOfRange: a value is beyond what its field's type carries (a sum
	// beyond a Long); the error says where to read it whole.
	OutOfRange Code = "OUT_OF_RANGE"
	// Unavailable: a dependency (the database) cannot be reached right now; retry later.
	Unavailable Code = "UNAVAILABLE"
	// Internal: a bug or an unexpected failure; details are logged, never shown.
	Internal Code = "INTERNAL"
)

// Error is the one typed error of cqrsgate. Packages return it (usually
// wrapping a sentinel they own, so callers can still use errors.Is) and the
// GraphQL edge translates it once into a GraphQL error with extensions.
type Error struct {
	Code    Code
	Message string         // safe to show to clients
	Field   string         // for Invalid: the offending input field, dotted (e.g. "events.0.data")
	Rule    string         // for RuleViolation: the rule's stable name (e.g. "INSUFFICIENT_FUNDS")
	Details map[string]any // extra, client-safe facts (e.g. expected and actual versions)
	Err     error          // the wrapped cause, for errors.Is/As; never shown to clients
}

// Error returns the client-safe message, followed by the cause when there is one.
func (e *Error) Error() string {
	if e.Err != nil && e.Err.Error() != e.Message {
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

// Unwrap returns the wrapped cause.
func (e *Error) Unwrap() error { return e.Err }

// Errorf builds an *Error with the given code and a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// StaleError is the Stale error of a wait for position that reached only
// reached in timeout; what says what was waited for ("read models have
// reached", "the log is readable up to"). Its details are atLeast, reached
// and behind.
func StaleError(what string, reached, position int64, timeout time.Duration) *Error {
	return &Error{
		Code:    Stale,
		Message: fmt.Sprintf("%s position %d, not %d (%d behind) after %s; retry later", what, reached, position, position-reached, timeout),
		Details: map[string]any{"atLeast": position, "reached": reached, "behind": position - reached},
	}
}

// InvalidField builds an Invalid *Error naming the offending field.
func InvalidField(field, format string, args ...any) *Error {
	return &Error{Code: Invalid, Field: field, Message: fmt.Sprintf(format, args...)}
}

// CodeOf returns the Code of the first *Error in err's chain, or Internal
// when there is none. CodeOf(nil) is "".
func CodeOf(err error) Code {
	if err == nil {
		return ""
	}
	var de *Error
	if errors.As(err, &de) {
		return de.Code
	}
	return Internal
}
