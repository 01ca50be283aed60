package eventstore

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"cqrsgate/domain"
)

// Store is the event log. Every implementation must pass the conformance
// suite in package eventstoretest.
type Store interface {
	// Append writes events to the end of stream, atomically: all of them or
	// none. expected is checked against the stream's current version under
	// a lock, so of two concurrent appends at the same expected version
	// exactly one wins; the other gets ErrWrongExpectedVersion (as a
	// *WrongExpectedVersionError naming the stream, expected and actual
	// version, inside a domain.Error with code Conflict).
	//
	// Appends are idempotent by event id: when every event's id is already
	// stored in this stream with the same type, schema version and data, the
	// original result is returned with Duplicate set and nothing is written.
	// An id stored with other content, in another stream, or an append that
	// mixes stored and new ids, fails with ErrDuplicateEventID (Conflict).
	// Invalid input fails with ErrInvalidInput (code Invalid, naming the field).
	Append(ctx context.Context, stream string, expected domain.ExpectedVersion, events ...domain.EventData) (domain.AppendResult, error)

	// StreamVersion returns the stream's current (last) version, 0 when the
	// stream has no events.
	StreamVersion(ctx context.Context, stream string) (int64, error)

	// ReadStream reads one stream's events in version order (or in reverse
	// with q.Backward). A stream with no events reads as empty.
	ReadStream(ctx context.Context, stream string, q StreamQuery) ([]domain.RecordedEvent, error)

	// ReadAll reads the global log after q.After in position order, gap-safe:
	// it never returns an event while an event with a lower position may
	// still commit, so a reader that continues from Page.Next skips nothing.
	ReadAll(ctx context.Context, q AllQuery) (Page, error)

	// ReadEvent returns the event with the given id, or ErrEventNotFound.
	ReadEvent(ctx context.Context, eventID string) (domain.RecordedEvent, error)

	// ReadByCorrelation reads, in position order, the events whose metadata
	// carries correlationId, after position after.
	ReadByCorrelation(ctx context.Context, correlationID string, tenant *string, after int64, limit int) ([]domain.RecordedEvent, error)

	// SaveSnapshot stores s as the latest snapshot of its stream unless a
	// snapshot of a later version is already stored. The stream must have
	// an event at s.Version (ErrInvalidInput otherwise).
	SaveSnapshot(ctx context.Context, s domain.Snapshot) error

	// LoadSnapshot returns the stream's latest snapshot, or
	// ErrSnapshotNotFound.
	LoadSnapshot(ctx context.Context, stream string) (domain.Snapshot, error)

	// Changed returns a channel that is closed the next time events commit
	// (in this process or, for stores shared by several processes, in any of
	// them). Take the channel before reading, then wait on it when caught
	// up: no commit can slip between the two.
	Changed() <-chan struct{}
}

// StreamQuery selects events of one stream (defined in domain, where the
// command service's port uses it).
type StreamQuery = domain.StreamQuery

// AllQuery selects events of the global log.
type AllQuery struct {
	// After is the position to read after (0: from the start).
	After int64
	// Limit caps the number of events (0: DefaultLimit; at most MaxLimit).
	Limit int
	// Types keeps only events of these types (none: all types).
	Types []string
	// StreamPrefix keeps only events of streams whose id starts with it.
	StreamPrefix string
	// Stream keeps only the events of this one stream.
	Stream string
	// Tenant, when set, keeps only the events of that tenant's streams
	// (see domain.Qualify): for "" the default tenant's, whose stream ids
	// hold no domain.TenantSeparator. Nil reads every tenant's.
	Tenant *string
}

// filtered reports whether q has a filter, so that Matches can be false.
func (q AllQuery) filtered() bool {
	return len(q.Types) > 0 || q.Stream != "" || q.StreamPrefix != "" || q.Tenant != nil
}

// Matches reports whether e passes q's filters (not its position range).
func (q AllQuery) Matches(e domain.RecordedEvent) bool {
	switch {
	case len(q.Types) > 0 && !contains(q.Types, e.Type),
		q.Stream != "" && e.StreamID != q.Stream,
		!strings.HasPrefix(e.StreamID, q.StreamPrefix),
		q.Tenant != nil && domain.TenantOf(e.StreamID) != *q.Tenant:
		return false
	}
	return true
}

// Page is the result of ReadAll.
type Page struct {
	Events []domain.RecordedEvent
	// Next is the position to pass as After to continue: the last event's
	// position, or, when the page is not full, the highest position known to
	// be safely readable (so filtered readers need not rescan what they
	// already scanned). Next >= the query's After.
	Next int64
	// Head is the highest position that was safely readable at read time
	// (0 for an empty log); Head - Next is how far the reader is behind.
	Head int64
}

// Read limits.
const (
	DefaultLimit = 100
	MaxLimit     = 10_000
)

// Errors callers branch on. They are returned wrapped in a *domain.Error
// with the code given, and errors.Is finds them.
var (
	// ErrWrongExpectedVersion: the stream is not at the expected version
	// (Conflict). It is domain.ErrWrongExpectedVersion.
	ErrWrongExpectedVersion = domain.ErrWrongExpectedVersion
	// ErrDuplicateEventID: an event id is already stored with other content
	// or in another stream (Conflict). It is domain.ErrDuplicateEventID.
	ErrDuplicateEventID = domain.ErrDuplicateEventID
	// ErrInvalidInput: an argument is malformed (Invalid).
	ErrInvalidInput = errors.New("invalid input")
	// ErrSnapshotNotFound: the stream has no snapshot (NotFound).
	ErrSnapshotNotFound = errors.New("snapshot not found")
	// ErrEventNotFound: no event has the id (NotFound). It is domain.ErrEventNotFound.
	ErrEventNotFound = domain.ErrEventNotFound
)

// WrongExpectedVersionError details a failed optimistic concurrency check.
// errors.Is(err, ErrWrongExpectedVersion) is true for it.
type WrongExpectedVersionError struct {
	Stream   string
	Expected domain.ExpectedVersion
	Actual   int64 // the stream's current version; 0 when it has no events
}

// Error describes the conflict.
func (e *WrongExpectedVersionError) Error() string {
	return fmt.Sprintf("stream %q: expected version %s, actual version %d", e.Stream, e.Expected, e.Actual)
}

// Is makes errors.Is(err, ErrWrongExpectedVersion) true.
func (e *WrongExpectedVersionError) Is(target error) bool { return target == ErrWrongExpectedVersion }

func wrongVersion(stream string, expected domain.ExpectedVersion, actual int64) error {
	e := &WrongExpectedVersionError{Stream: stream, Expected: expected, Actual: actual}
	return &domain.Error{
		Code:    domain.Conflict,
		Message: e.Error(),
		Details: map[string]any{"stream": stream, "expectedVersion": expected.String(), "actualVersion": actual},
		Err:     e,
	}
}

func duplicateID(format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	return &domain.Error{Code: domain.Conflict, Message: msg, Err: ErrDuplicateEventID}
}

func invalid(field, format string, args ...any) error {
	return &domain.Error{Code: domain.Invalid, Field: field, Message: fmt.Sprintf(format, args...), Err: ErrInvalidInput}
}

func expectedMatches(expected domain.ExpectedVersion, actual int64) bool {
	switch expected {
	case domain.ExpectAny:
		return true
	case domain.ExpectStreamExists:
		return actual > 0
	default:
		return int64(expected) == actual
	}
}

// checkAllQuery checks q as every store's ReadAll does and returns its
// limit.
func checkAllQuery(q AllQuery) (int, error) {
	limit, err := resolveLimit("first", q.Limit)
	if err != nil {
		return 0, err
	}
	if q.After < 0 {
		return 0, invalid("after", "position %d is negative", q.After)
	}
	for i, t := range q.Types {
		if err := validateEventType(fieldPath{"types", i, ""}, t); err != nil {
			return 0, err
		}
	}
	return limit, nil
}

func resolveLimit(field string, limit int) (int, error) {
	switch {
	case limit == 0:
		return DefaultLimit, nil
	case limit < 0 || limit > MaxLimit:
		return 0, invalid(field, "%s %d is out of range (1 to %d)", field, limit, MaxLimit)
	}
	return limit, nil
}

func eventNotFound(id string) error {
	return &domain.Error{Code: domain.NotFound, Message: fmt.Sprintf("event %s not found", id), Err: ErrEventNotFound}
}
