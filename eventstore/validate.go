package eventstore

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"cqrsgate/domain"
	"cqrsgate/internal/jsonvalue"
)

// Limits bound what one append may carry. The zero value of a field means
// its default.
type Limits struct {
	// MaxEventBytes caps one event's data plus metadata (default 1 MiB).
	MaxEventBytes int
	// MaxEventsPerAppend caps the events of one append (default 1,000).
	MaxEventsPerAppend int
}

// Default limits and fixed bounds on names.
const (
	DefaultMaxEventBytes      = 1 << 20
	DefaultMaxEventsPerAppend = 1000
	MaxStreamIDLength         = 200 // bytes
	MaxEventTypeLength        = 128 // bytes
)

func (l Limits) withDefaults() Limits {
	if l.MaxEventBytes <= 0 {
		l.MaxEventBytes = DefaultMaxEventBytes
	}
	if l.MaxEventsPerAppend <= 0 {
		l.MaxEventsPerAppend = DefaultMaxEventsPerAppend
	}
	return l
}

var emptyObject = json.RawMessage(`{}`)

// prepareAppend validates an append and returns the events to write, with
// generated ids where none was given and {} for absent metadata. The input
// slice is not modified. Errors are ErrInvalidInput naming the field. An
// append with ExpectAny may create its stream: the store refuses it with
// newStreamRefusal's error when the stream does not exist.
func prepareAppend(l Limits, stream string, expected domain.ExpectedVersion, events []domain.EventData, newID func() string) ([]domain.EventData, error) {
	check := validateNewStreamID
	if expected > 0 || expected == domain.ExpectStreamExists || expected == domain.ExpectAny {
		check = validateStreamID // the stream exists (or the append fails): it was fine when it was made
	}
	if err := check("stream", stream); err != nil {
		return nil, err
	}
	if !expected.Valid() {
		return nil, invalid("expectedVersion", "unknown expected version %d: use an exact version >= 1, 0 (no stream), -1 (any) or -2 (stream exists)", int64(expected))
	}
	if len(events) == 0 {
		return nil, invalid("events", "an append needs at least one event")
	}
	if len(events) > l.MaxEventsPerAppend {
		return nil, invalid("events", "%d events in one append; at most %d are allowed", len(events), l.MaxEventsPerAppend)
	}
	out := make([]domain.EventData, len(events))
	seen := make(map[string]int, len(events))
	var checkedMeta json.RawMessage // metadata found valid; events of an append often share theirs
	for i, e := range events {
		if e.ID == "" {
			e.ID = newID()
		} else if !domain.ValidID(e.ID) {
			return nil, invalid(eventField(i, "id"), "event id %q is not a UUID", domain.CutText(e.ID, 64))
		}
		e.ID = lowerASCII(e.ID)
		if j, dup := seen[e.ID]; dup {
			return nil, invalid(eventField(i, "id"), "event id %s is used twice in this append (events %d and %d)", e.ID, j, i)
		}
		seen[e.ID] = i
		if err := validateEventType(fieldPath{"events", i, "type"}, e.Type); err != nil {
			return nil, err
		}
		if e.SchemaVersion < 1 {
			return nil, invalid(eventField(i, "version"), "schema version %d is invalid: versions start at 1", e.SchemaVersion)
		}
		if e.SchemaVersion > math.MaxInt32 {
			return nil, invalid(eventField(i, "version"), "schema version %d is invalid: at most %d is allowed", e.SchemaVersion, math.MaxInt32)
		}
		if err := validateObject(fieldPath{"events", i, "data"}, e.Data); err != nil {
			return nil, err
		}
		switch {
		case len(e.Metadata) == 0:
			e.Metadata = emptyObject
		case sameBytes(e.Metadata, checkedMeta):
		default:
			if err := validateObject(fieldPath{"events", i, "metadata"}, e.Metadata); err != nil {
				return nil, err
			}
			checkedMeta = e.Metadata
		}
		if n := len(e.Data) + len(e.Metadata); n > l.MaxEventBytes {
			return nil, invalid(eventField(i, "data"), "event is %d bytes (data plus metadata); at most %d are allowed", n, l.MaxEventBytes)
		}
		out[i] = e
	}
	return out, nil
}

func validateStreamID(field, s string) error {
	switch {
	case s == "":
		return invalid(field, "stream id is empty")
	case len(s) > MaxStreamIDLength:
		return invalid(field, "stream id is %d bytes; at most %d are allowed", len(s), MaxStreamIDLength)
	case !utf8.ValidString(s):
		return invalid(field, "stream id is not valid UTF-8")
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return invalid(field, "stream id contains a control character")
		}
	}
	return nil
}

// validateNewStreamID checks the stream id of an append: what
// validateStreamID checks, and no character that would make two stream ids
// look alike (see domain.IDRune; spaces are allowed). Reads check only
// validateStreamID, so that streams appended to before this check stay
// readable.
func validateNewStreamID(field, s string) error {
	if err := validateStreamID(field, s); err != nil {
		return err
	}
	for _, r := range s {
		if r != ' ' && !domain.IDRune(r) {
			return invalid(field, "stream id contains a control or invisible character (%U)", r)
		}
	}
	return nil
}

// newStreamRefusal returns, for an append with ExpectAny to an id that new
// streams may not have (see validateNewStreamID), the error that refuses it
// if the stream does not exist: streams created before the rule stay
// writable. It returns nil for any other append.
func newStreamRefusal(stream string, expected domain.ExpectedVersion) error {
	if expected != domain.ExpectAny {
		return nil // prepareAppend checked the id, or the append needs the stream to exist
	}
	return validateNewStreamID("stream", stream)
}

// fieldPath names an element of an input list, or a field of one, in
// errors ("events.3.data", "types.1"). It is made into text only for an
// error: validation passes over every event of every append.
type fieldPath struct {
	list  string
	index int
	name  string // "": the element itself
}

func (f fieldPath) String() string {
	s := f.list + "." + strconv.Itoa(f.index)
	if f.name != "" {
		s += "." + f.name
	}
	return s
}

// eventField names field name of event i of an append.
func eventField(i int, name string) string { return fieldPath{"events", i, name}.String() }

func validateEventType(field fieldPath, t string) error {
	if t == "" {
		return invalid(field.String(), "event type is empty")
	}
	if len(t) > MaxEventTypeLength {
		return invalid(field.String(), "event type is %d bytes; at most %d are allowed", len(t), MaxEventTypeLength)
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if i == 0 && !letter || !(letter || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return invalid(field.String(), "event type %q is invalid: use a letter followed by letters, digits, '_', '.' or '-'", domain.CutText(t, 64))
		}
	}
	return nil
}

// sameBytes reports whether a and b are one slice of memory (so the same
// bytes), without comparing them.
func sameBytes(a, b json.RawMessage) bool {
	return len(a) == len(b) && len(b) > 0 && &a[0] == &b[0]
}

// validateObject checks that raw is a JSON object PostgreSQL's jsonb can
// store: well-formed, valid UTF-8, free of \u0000 and of unpaired UTF-16
// surrogate escapes, and without a number beyond PostgreSQL's numeric (nor
// numbers whose exponents stand for too many digits: see
// jsonvalue.RefusedNumber).
func validateObject(field fieldPath, raw json.RawMessage) error {
	trimmed := trimJSONSpace(raw)
	if len(trimmed) == 0 {
		return invalid(field.String(), "is missing: an event needs a JSON object")
	}
	if problem := unstorable(trimmed, true); problem != "" {
		return invalid(field.String(), "%s", problem)
	}
	return nil
}

// trimJSONSpace trims the whitespace JSON allows around a document (space,
// tab, CR, LF), and no other: a document that a form feed or a no-break
// space surrounds is not JSON, and PostgreSQL refuses it.
func trimJSONSpace(raw []byte) []byte { return bytes.Trim(raw, " \t\r\n") }

// unstorable says what makes trimmed, a JSON document without its
// surrounding space, one PostgreSQL's jsonb cannot store (see
// validateObject), or "" when nothing does. An event's must be an object,
// and its numbers with an exponent may stand for at most
// jsonvalue.MaxExpandedDigits digits in all (its schema's validation
// computes with them); a snapshot's state may be any JSON and any number
// jsonb holds. It returns the problem, not an error, so that a valid
// document costs no field name.
func unstorable(trimmed []byte, event bool) string {
	if !utf8.Valid(trimmed) {
		return "is not valid UTF-8"
	}
	if !json.Valid(trimmed) {
		return "is not valid JSON"
	}
	if event && trimmed[0] != '{' {
		return "must be a JSON object"
	}
	refused := jsonvalue.UnstorableNumber
	if event {
		refused = jsonvalue.RefusedNumber
	}
	if n, why, bad := refused(trimmed); bad {
		return fmt.Sprintf("holds the number %s, which %s", domain.CutText(n, 64), why)
	}
	if bytes.Contains(trimmed, []byte(`\u0000`)) && hasNUL(trimmed) {
		return `contains the character \u0000, which cannot be stored`
	}
	if esc, bad := jsonvalue.LoneSurrogate(trimmed); bad {
		return fmt.Sprintf(`contains the escape %s, half of a UTF-16 surrogate pair without its other half, which cannot be stored`, esc)
	}
	return ""
}

// hasNUL reports whether any string in the JSON document contains U+0000.
func hasNUL(raw []byte) bool {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return false
	}
	var walk func(any) bool
	walk = func(v any) bool {
		switch x := v.(type) {
		case string:
			return bytes.IndexByte([]byte(x), 0) >= 0
		case []any:
			for _, e := range x {
				if walk(e) {
					return true
				}
			}
		case map[string]any:
			for k, e := range x {
				if walk(k) || walk(e) {
					return true
				}
			}
		}
		return false
	}
	return walk(v)
}

// lowerASCII returns s with ASCII letters in lower case; s itself when it
// has none in upper case (as ids the store generates do).
func lowerASCII(s string) string {
	first := strings.IndexFunc(s, func(r rune) bool { return r >= 'A' && r <= 'Z' })
	if first < 0 {
		return s
	}
	b := []byte(s)
	for i := first; i < len(b); i++ {
		if c := b[i]; c >= 'A' && c <= 'Z' {
			b[i] = c + ('a' - 'A')
		}
	}
	return string(b)
}
