// Package model holds the GraphQL types: those gqlgen generates from the
// schema (models_gen.go) and the custom scalars below.
package model

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/99designs/gqlgen/graphql"

	"cqrsgate/domain"
	"cqrsgate/internal/jsonvalue"
)

// Position is the Position scalar: a global log position.
type Position int64

// MarshalGQL writes the position as a JSON number.
func (p Position) MarshalGQL(w io.Writer) {
	_, _ = io.WriteString(w, strconv.FormatInt(int64(p), 10))
}

// UnmarshalGQL accepts a non-negative integer given as a number or as a
// decimal string; anything else is an error naming what was given.
func (p *Position) UnmarshalGQL(v any) error {
	n, err := parseInt64("position", v)
	if err != nil {
		return err
	}
	if n < 0 {
		return invalidScalar("position must not be negative, got %d", n)
	}
	*p = Position(n)
	return nil
}

// parseInt64 reads a 64-bit integer given as a number or a decimal string;
// anything else is an error saying what is wrong with it (NotAnInteger).
func parseInt64(what string, v any) (int64, error) {
	switch x := v.(type) {
	case int:
		return int64(x), nil
	case int32:
		return int64(x), nil
	case int64:
		return x, nil
	case float64:
		if why := NotAnInteger(x); why != "" {
			return 0, invalidScalar("%s", why)
		}
		return int64(x), nil
	case json.Number:
		return parseDecimalInt64(string(x), v)
	case string:
		return parseDecimalInt64(x, v)
	}
	return 0, invalidScalar("%s must be an integer or a decimal string, not %s", what, describeJSON(v))
}

// parseDecimalInt64 reads s, the text of v, a json.Number or a decimal
// string.
func parseDecimalInt64(s string, v any) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, invalidScalar("%s", NotAnInteger(v))
	}
	return n, nil
}

// MarshalTime writes the Time scalar as gqlgen does: an RFC 3339 string
// with the fraction of a second it has, null for the zero time.
func MarshalTime(t time.Time) graphql.Marshaler { return graphql.MarshalTime(t) }

// UnmarshalTime reads the Time scalar: an RFC 3339 string
// ("2026-11-27T12:00:00Z", with a fraction of a second or another offset
// if need be) or, as gqlgen's own Time reads it, "2026-11-27 12:00:00" in
// UTC. Anything else is a VALIDATION error naming what came (gqlgen's own
// returned an error without a code, which the gateway answered INTERNAL).
func UnmarshalTime(v any) (time.Time, error) {
	if v == nil {
		return time.Time{}, nil
	}
	s, ok := v.(string)
	if !ok {
		return time.Time{}, invalidScalar("a time is an RFC 3339 string such as \"2026-11-27T12:00:00Z\", not %s", describeJSON(v))
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateTime, s); err == nil {
		return t, nil
	}
	return time.Time{}, invalidScalar("a time is an RFC 3339 string such as \"2026-11-27T12:00:00Z\", not %q", CutText(s, 64))
}

// describeJSON names the kind of a decoded JSON value, for errors: "an
// object", not Go's map[string]interface {}.
func describeJSON(v any) string {
	switch v.(type) {
	case map[string]any:
		return "an object"
	case []any:
		return "a list"
	case bool:
		return "a boolean"
	case string:
		return "a string"
	case json.Number, int, int32, int64, float64:
		return "a number"
	}
	return "a value of another kind"
}

// JSON is the JSON scalar: any JSON value, kept as its encoding.
type JSON json.RawMessage

// MarshalGQL writes the JSON as it is (null when empty).
func (j JSON) MarshalGQL(w io.Writer) {
	if len(j) == 0 {
		_, _ = io.WriteString(w, "null")
		return
	}
	_, _ = w.Write(j)
}

// UnmarshalGQL encodes the value the client sent (an object, list, string,
// number, boolean or null) as JSON.
func (j *JSON) UnmarshalGQL(v any) error {
	b, err := jsonvalue.Marshal(v)
	if err != nil {
		return invalidScalar("not a JSON value: %v", err)
	}
	*j = JSON(b)
	return nil
}

// invalidScalar reports a value the client sent that a scalar cannot take,
// as a VALIDATION error.
func invalidScalar(format string, args ...any) error {
	return &domain.Error{Code: domain.Invalid, Message: fmt.Sprintf(format, args...)}
}

// Long is the Long scalar: a signed 64-bit integer, such as an amount of
// money in minor units.
type Long int64

// MarshalGQL writes the value as a JSON number.
func (l Long) MarshalGQL(w io.Writer) {
	_, _ = io.WriteString(w, strconv.FormatInt(int64(l), 10))
}

// UnmarshalGQL accepts an integer given as a number or as a decimal string.
func (l *Long) UnmarshalGQL(v any) error {
	n, err := parseInt64("value", v)
	if err != nil {
		return err
	}
	*l = Long(n)
	return nil
}
