package eventstore

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"cqrsgate/domain"
)

// TestHubPageSharesLongRunsAndCopiesTheRest: a subscriber's events of a
// live page are the page's own (shared with the other subscribers, never
// copied for each) when they are a run of at least half its events
// holding at least half its bytes, with the capacity capped so that an
// append cannot write into the page; otherwise they are a copy, so that a
// subscriber taking a few events of a large page (a run of one large
// event, or of many small ones) keeps only those alive, and the hub's
// limits on what waits for a subscriber, which count its events, bound
// what it keeps alive. Either way they are exactly the events after the
// floor that match the filter, with their size.
func TestHubPageSharesLongRunsAndCopiesTheRest(t *testing.T) {
	// Positions 1-10: a-1 (1-8), then b-1 (9), then a-2 (10); event 9 is
	// large (1,000 bytes of data), the others small.
	var events []domain.RecordedEvent
	for p := int64(1); p <= 10; p++ {
		stream, data := "a-1", `{}`
		switch p {
		case 9:
			stream, data = "b-1", `{"pad":"`+strings.Repeat("x", 990)+`"}`
		case 10:
			stream = "a-2"
		}
		events = append(events, domain.RecordedEvent{EventData: domain.EventData{Type: "Tick", SchemaVersion: 1, Data: json.RawMessage(data)}, StreamID: stream, Position: p})
	}
	page := newHubPage(events, 12)
	inPage := func(got []domain.RecordedEvent) bool {
		return len(got) > 0 && &got[0] == &events[got[0].Position-1]
	}
	for _, tc := range []struct {
		name   string
		floor  int64
		q      AllQuery
		want   []int64
		shared bool
	}{
		{"the whole log", 0, AllQuery{}, []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, true},
		{"the whole log after the floor", 3, AllQuery{}, []int64{4, 5, 6, 7, 8, 9, 10}, true},
		{"a filter every event passes", 0, AllQuery{Types: []string{"Tick"}}, []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, true},
		{"a run of the large event alone", 0, AllQuery{Stream: "b-1"}, []int64{9}, false},
		{"a run of half the events and most bytes", 5, AllQuery{}, []int64{6, 7, 8, 9, 10}, true},
		{"a run of fewer than half the events and most bytes", 6, AllQuery{}, []int64{7, 8, 9, 10}, false},
		{"a long run of the small events", 0, AllQuery{Stream: "a-1"}, []int64{1, 2, 3, 4, 5, 6, 7, 8}, false},
		{"events that are no run", 0, AllQuery{StreamPrefix: "a-"}, []int64{1, 2, 3, 4, 5, 6, 7, 8, 10}, false},
		{"nothing after the floor", 10, AllQuery{}, nil, false},
		{"nothing matching", 0, AllQuery{Stream: "c-1"}, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, size := page.take(tc.floor, tc.q)
			var positions []int64
			wantSize := 0
			for _, e := range got {
				positions = append(positions, e.Position)
				wantSize += eventBytes(e)
			}
			if !slices.Equal(positions, tc.want) || size != wantSize {
				t.Fatalf("took %v (%d bytes), want %v (%d bytes)", positions, size, tc.want, wantSize)
			}
			if inPage(got) != tc.shared {
				t.Fatalf("shared with the page: %v, want %v", inPage(got), tc.shared)
			}
			if tc.shared && cap(got) != len(got) {
				t.Fatalf("a shared run has capacity %d beyond its %d events: an append would write into the page", cap(got), len(got))
			}
		})
	}
}
