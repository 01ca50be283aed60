package eventstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

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
