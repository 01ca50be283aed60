package eventstore

import (
	"encoding/json"
	"errors"
	"testing"

	"cqrsgate/domain"
	"cqrsgate/internal/allocs"
)

// A valid event's data and metadata cost its check no allocation: the
// field's name ("events.3.data") is built only for an error. Appends of
// 100 events check 200 documents.
func TestValidObjectsCostNoFieldName(t *testing.T) {
	data := json.RawMessage(` {"n": 12, "s": "caf\u00e9 \ud83d\ude00", "a": [1e3, true, null]} `)
	if err := validateObject(fieldPath{"events", 3, "data"}, data); err != nil {
		t.Fatalf("valid data refused: %v", err)
	}
	if n := allocs.Fewest(100, func() { _ = validateObject(fieldPath{"events", 3, "data"}, data) }); n != 0 {
		t.Fatalf("checking valid data allocates %v times, want 0", n)
	}
	// The name is still there when the check fails.
	err := validateObject(fieldPath{"events", 3, "data"}, json.RawMessage(`{"s": "\u0000"}`))
	var de *domain.Error
	if !errors.As(err, &de) || de.Field != "events.3.data" || de.Code != domain.Invalid {
		t.Fatalf("a NUL: got %#v, want VALIDATION on events.3.data", err)
	}
}
