package eventstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"cqrsgate/domain"
	"cqrsgate/schemaregistry"
)

// SchemaRegistry is what the event store needs of the schema registry
// (*schemaregistry.Registry implements it).
type SchemaRegistry interface {
	// Validate checks an event about to be appended.
	Validate(ctx context.Context, eventType string, version int, data []byte) error
	// Upcast returns data as version target (0: the latest).
	Upcast(ctx context.Context, eventType string, version int, data json.RawMessage, target int) (json.RawMessage, int, error)
}

// Schematized is a Store whose appends are validated by a schema registry
// and whose reads return every event as its type's latest schema version
// (old versions are migrated on the fly; nothing stored changes).
type Schematized struct {
	Store
	reg SchemaRegistry
	// revisions and checked are reg and Store as appends checked against
	// the registry's revision need them; both nil when either cannot.
	revisions revisioned
	checked   checkedAppender
}

var _ Store = (*Schematized)(nil)

// WithSchemas wraps store: every event appended is validated by reg
// (nothing of an append is written when one event is refused), and every
// event read is upcast to the latest version of its type.
func WithSchemas(store Store, reg SchemaRegistry) *Schematized {
	s := &Schematized{Store: store, reg: reg}
	revisions, ok1 := reg.(revisioned)
	checked, ok2 := store.(checkedAppender)
	if ok1 && ok2 {
		s.revisions, s.checked = revisions, checked
	}
	return s
}

// Raw returns the wrapped store, whose reads return events as stored.
func (s *Schematized) Raw() Store { return s.Store }

// revisioned is a registry whose changes an append can be checked against
// (*schemaregistry.Registry; see its Revision).
type revisioned interface {
	Revision() int64
	Refresh(ctx context.Context) error
}

// checkedAppender is a store that can write an append only if the registry
// is still at the revision it was validated against (*Postgres).
type checkedAppender interface {
	appendChecked(ctx context.Context, stream string, expected domain.ExpectedVersion, schemaRev int64, events ...domain.EventData) (domain.AppendResult, error)
}

// maxSchemaRetries is how many times an append is validated again because
// the registry changed in between before it gives up; maxTypeLockWait is
// how long it waits for changes to its event types to be done (a change
// holds its type while it replays the stored events), in pauses growing
// from 10 ms to a second.
const (
	maxSchemaRetries = 5
	maxTypeLockWait  = 2 * time.Minute
)

// Append validates every event, then appends them. A refused event is an
// error with code Invalid naming the event (field events.<i>.data), its type
// and version and, for data that does not match the schema, each failing
// JSON path (details "problems").
//
// On PostgreSQL with the schema registry, an append is written only if the
// registry is still as it was validated against: one that a change to the
// registry (from any process) overtook is validated again against the
// changed registry, so that no event is stored that the change's own
// checks did not see and that would not read as its type's latest version.
// An append of a type being changed waits (at most maxTypeLockWait) until
// the change is done, then is validated against it; appends of other types
// do not wait.
func (s *Schematized) Append(ctx context.Context, stream string, expected domain.ExpectedVersion, events ...domain.EventData) (domain.AppendResult, error) {
	pause, waited := 10*time.Millisecond, time.Duration(0)
	for attempt := 1; ; attempt++ {
		rev := int64(noRevision)
		if s.checked != nil {
			rev = s.revisions.Revision() // before validating: what validation sees is as new or newer
		}
		for i, e := range events {
			version := e.SchemaVersion
			if version == 0 {
				version = 1
			}
			if err := s.reg.Validate(ctx, e.Type, version, e.Data); err != nil {
				return domain.AppendResult{}, refused(i, e.Type, version, err)
			}
		}
		if rev == noRevision {
			return s.Store.Append(ctx, stream, expected, events...)
		}
		res, err := s.checked.appendChecked(ctx, stream, expected, rev, events...)
		if errors.Is(err, errTypeLocked) {
			if waited >= maxTypeLockWait {
				return domain.AppendResult{}, &domain.Error{Code: domain.Unavailable, Err: err,
					Message: fmt.Sprintf("the append to %q waited %s for a change to the schema registry of its event types (a registration replaying the stored events) to be done; nothing was written: retry", stream, waited.Round(time.Second))}
			}
			select {
			case <-ctx.Done():
				return domain.AppendResult{}, ctx.Err()
			case <-time.After(pause):
			}
			// Tried again as it is: once the change is done, the append
			// finds the revision moved, and is validated against it.
			waited, pause = waited+pause, min(2*pause, time.Second)
			attempt-- // waiting is not a change overtaking it
			continue
		}
		if !errors.Is(err, errSchemasChanged) {
			return res, err
		}
		if attempt == maxSchemaRetries {
			return domain.AppendResult{}, &domain.Error{Code: domain.Unavailable, Err: err,
				Message: fmt.Sprintf("the schema registry changed %d times while the append to %q was being validated; nothing was written: retry", attempt, stream)}
		}
		if err := s.revisions.Refresh(ctx); err != nil {
			return domain.AppendResult{}, &domain.Error{Code: domain.Unavailable, Err: err,
				Message: fmt.Sprintf("the schema registry changed while the append to %q was being validated and could not be read again; nothing was written: retry", stream)}
		}
	}
}

func refused(i int, eventType string, version int, err error) error {
	field := "events." + strconv.Itoa(i)
	details := map[string]any{"eventType": eventType, "schemaVersion": version}
	var ve *schemaregistry.ValidationError
	var re *schemaregistry.Error
	switch {
	case errors.As(err, &ve):
		details["problems"] = ve.Problems
		return &domain.Error{Code: domain.Invalid, Field: field + ".data", Rule: "SCHEMA_VALIDATION", Details: details, Err: err,
			Message: fmt.Sprintf("event %d: %s", i, ve.Error())}
	case errors.As(err, &re) && re.Code == schemaregistry.CodeInvalid:
		rule := "UNKNOWN_SCHEMA_VERSION"
		if errors.Is(err, schemaregistry.ErrUnknownType) {
			rule = "UNKNOWN_EVENT_TYPE"
		}
		return &domain.Error{Code: domain.Invalid, Field: field + ".type", Rule: rule, Details: details, Err: err,
			Message: fmt.Sprintf("event %d: %s", i, re.Message)}
	}
	return fmt.Errorf("validate event %d: %w", i, err)
}

// upcast returns e as the latest version of its type.
func (s *Schematized) upcast(ctx context.Context, e *domain.RecordedEvent) error {
	data, v, err := s.reg.Upcast(ctx, e.Type, e.SchemaVersion, e.Data, 0)
	if err != nil {
		return &domain.Error{Code: domain.Internal, Message: fmt.Sprintf("event %s (%s v%d) could not be read as its latest version", e.ID, e.Type, e.SchemaVersion),
			Err: fmt.Errorf("event %s at position %d: %w", e.ID, e.Position, err)}
	}
	e.Data, e.SchemaVersion = data, v
	return nil
}

func (s *Schematized) upcastAll(ctx context.Context, events []domain.RecordedEvent) error {
	for i := range events {
		if err := s.upcast(ctx, &events[i]); err != nil {
			return err
		}
	}
	return nil
}

// ReadStream implements Store, upcasting.
func (s *Schematized) ReadStream(ctx context.Context, stream string, q StreamQuery) ([]domain.RecordedEvent, error) {
	events, err := s.Store.ReadStream(ctx, stream, q)
	if err != nil {
		return nil, err
	}
	return events, s.upcastAll(ctx, events)
}

// ReadAll implements Store, upcasting.
func (s *Schematized) ReadAll(ctx context.Context, q AllQuery) (Page, error) {
	page, err := s.Store.ReadAll(ctx, q)
	if err != nil {
		return Page{}, err
	}
	return page, s.upcastAll(ctx, page.Events)
}

// ReadEvent implements Store, upcasting.
func (s *Schematized) ReadEvent(ctx context.Context, eventID string) (domain.RecordedEvent, error) {
	e, err := s.Store.ReadEvent(ctx, eventID)
	if err != nil {
		return e, err
	}
	return e, s.upcast(ctx, &e)
}

// ReadByCorrelation implements Store, upcasting.
func (s *Schematized) ReadByCorrelation(ctx context.Context, correlationID string, tenant *string, after int64, limit int) ([]domain.RecordedEvent, error) {
	events, err := s.Store.ReadByCorrelation(ctx, correlationID, tenant, after, limit)
	if err != nil {
		return nil, err
	}
	return events, s.upcastAll(ctx, events)
}

// VersionsInUse implements schemaregistry.StoredEvents.
func (s *Postgres) VersionsInUse(ctx context.Context, eventType string) (map[int]int64, error) {
	rows, err := s.pool.Query(ctx, `SELECT schema_version, count(*) FROM events WHERE event_type = $1 GROUP BY schema_version`, eventType)
	if err != nil {
		return nil, s.dbError("versions in use", err)
	}
	defer rows.Close()
	out := map[int]int64{}
	for rows.Next() {
		var v int
		var n int64
		if err := rows.Scan(&v, &n); err != nil {
			return nil, s.dbError("versions in use", err)
		}
		out[v] = n
	}
	if err := rows.Err(); err != nil {
		return nil, s.dbError("versions in use", err)
	}
	return out, nil
}

// EventsOfType implements schemaregistry.StoredEvents.
func (s *Postgres) EventsOfType(ctx context.Context, eventType string, version int, after int64, limit int) ([]schemaregistry.StoredEvent, error) {
	rows, err := s.pool.Query(ctx, `SELECT event_id::text, position, schema_version, data FROM events
		WHERE event_type = $1 AND schema_version = $2 AND position > $3 ORDER BY position LIMIT $4`, eventType, version, after, limit)
	if err != nil {
		return nil, s.dbError("events of type", err)
	}
	defer rows.Close()
	var out []schemaregistry.StoredEvent
	for rows.Next() {
		var e schemaregistry.StoredEvent
		if err := rows.Scan(&e.ID, &e.Position, &e.Version, &e.Data); err != nil {
			return nil, s.dbError("events of type", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, s.dbError("events of type", err)
	}
	return out, nil
}

var _ schemaregistry.StoredEvents = (*Postgres)(nil)
