package eventstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"cqrsgate/domain"
	"cqrsgate/eventstore"
	"cqrsgate/eventstore/eventstoretest"
)

func TestMemoryConformance(t *testing.T) {
	eventstoretest.Run(t, func(t *testing.T) eventstore.Store {
		return eventstore.NewMemory(eventstore.Limits{}, time.Now)
	})
}

// TestEachDistinctMetadataIsChecked: events of an append may share their
// metadata (it is checked once), but metadata that only overlaps another
// event's, or equals it in another slice, is checked on its own.
func TestEachDistinctMetadataIsChecked(t *testing.T) {
	shared := json.RawMessage(`{"a": 1}`)
	for _, tc := range []struct {
		name  string
		metas []json.RawMessage
		field string // "" when the append succeeds
	}{
		{"shared", []json.RawMessage{shared, shared, shared}, ""},
		{"a prefix of the shared", []json.RawMessage{shared, shared[:4]}, "events.1.metadata"},
		{"equal text elsewhere", []json.RawMessage{shared, json.RawMessage(`{"a": 1}`), json.RawMessage(`{"a": 1`)}, "events.2.metadata"},
		{"bad, then shared", []json.RawMessage{shared[:5], shared[:5]}, "events.0.metadata"},
	} {
		events := make([]domain.EventData, len(tc.metas))
		for i, m := range tc.metas {
			events[i] = domain.EventData{Type: "Ticked", SchemaVersion: 1, Data: json.RawMessage(`{}`), Metadata: m}
		}
		m := eventstore.NewMemory(eventstore.Limits{}, time.Now)
		_, err := m.Append(context.Background(), "s-1", domain.ExpectAny, events...)
		var de *domain.Error
		switch {
		case tc.field == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.field != "" && (!errors.As(err, &de) || de.Field != tc.field):
			t.Errorf("%s: error %v, want one about %s", tc.name, err, tc.field)
		}
	}
}

// A client's text quoted in an error (an event id, an event type) is cut
// at the start of a character: cut after its 64th byte, it could end
// mid-character, and the message in escapes of bytes that are not UTF-8.
func TestErrorsQuoteWholeCharacters(t *testing.T) {
	m := eventstore.NewMemory(eventstore.Limits{}, time.Now)
	text := "a" + strings.Repeat("é", 50) // 101 bytes: the 65th is mid-é
	_, err1 := m.ReadEvent(context.Background(), text)
	_, err2 := m.Append(context.Background(), "s-1", domain.ExpectAny, domain.EventData{Type: text, Data: json.RawMessage(`{}`)})
	for _, err := range []error{err1, err2} {
		if err == nil {
			t.Fatal("accepted")
		}
		if msg := err.Error(); !utf8.ValidString(msg) || strings.Contains(msg, `\x`) || !strings.Contains(msg, "a"+strings.Repeat("é", 30)+"...") {
			t.Errorf("%q, want the text cut after a whole character", msg)
		}
	}
}
