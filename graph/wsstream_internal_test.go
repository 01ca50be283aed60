package graph

import (
	"context"
	"encoding/json"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
	"weak"

	"cqrsgate/domain"
	"cqrsgate/internal/allocs"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"
)

// rootField parses q and returns it with its first root field.
func rootField(t *testing.T, q string) (*ast.QueryDocument, *ast.Field) {
	t.Helper()
	doc, err := parser.ParseQuery(&ast.Source{Input: q})
	if err != nil {
		t.Fatal(err)
	}
	return doc, doc.Operations[0].SelectionSet[0].(*ast.Field)
}

// TestSelectionTextsHoldFieldsWeakly: the remembered text of a selection
// is the field's own, found again for that field, and does not keep the
// field (and its document) alive once nothing else does.
func TestSelectionTextsHoldFieldsWeakly(t *testing.T) {
	var s selectionTexts
	parse := func(q string) (*ast.QueryDocument, *ast.Field) { return rootField(t, q) }
	doc, f := parse(`subscription { events { position } }`)
	otherDoc, other := parse(`subscription { events { position type } }`)
	if a, b := s.of(f, doc), s.of(other, otherDoc); strings.Contains(a, "type") || !strings.Contains(b, "type") || s.of(f, doc) != a {
		t.Fatalf("texts %q and %q", a, b)
	}
	w := weak.Make(f)
	f, doc = nil, nil
	for range 3 {
		runtime.GC()
	}
	if w.Value() != nil {
		t.Fatal("the remembered text keeps its field alive")
	}
	runtime.KeepAlive(other)
	runtime.KeepAlive(otherDoc)
}

// TestSelectionTextsForgetOnlyTheDead: when the memory is full, the
// entries of fields no longer in use go first; a field in use keeps its
// text.
func TestSelectionTextsForgetOnlyTheDead(t *testing.T) {
	var s selectionTexts
	parse := func(q string) (*ast.QueryDocument, *ast.Field) { return rootField(t, q) }
	doc, kept := parse(`subscription { events { position } }`)
	s.of(kept, doc)
	for i := range 3 * selectionTextsMax {
		d, f := parse(`subscription { events { position type } }`)
		s.of(f, d)
		if i%100 == 0 {
			runtime.GC() // the fields parsed so far are dead
		}
	}
	s.mu.Lock()
	_, ok := s.text[weak.Make(kept)]
	n := len(s.text)
	s.mu.Unlock()
	if !ok {
		t.Errorf("a field in use lost its text when the memory filled (%d entries)", n)
	}
	if n > selectionTextsMax {
		t.Errorf("%d entries, more than %d", n, selectionTextsMax)
	}
	runtime.KeepAlive(doc)
}

// TestLogStreamQueuesBatchesWithoutCopies: a log stream queues the hub's
// batches as they are (the taker reads the very events pushed), takes
// them one at a time in order across batches, makes the hub's worker wait
// while logStreamQueue events or more are queued and lets it on once the
// taker brings them under, and ends the operation once, after the last
// event, when the hub has closed it.
func TestLogStreamQueuesBatchesWithoutCopies(t *testing.T) {
	batch := func(from, to int64) []domain.RecordedEvent {
		var b []domain.RecordedEvent
		for p := from; p <= to; p++ {
			b = append(b, domain.RecordedEvent{Position: p})
		}
		return b
	}
	batches := [][]domain.RecordedEvent{batch(1, 40), batch(41, 80), batch(81, 100)}
	// pushed[p] is the address of the pushed event at position p.
	pushed := map[int64]*domain.RecordedEvent{}
	for _, b := range batches {
		for i := range b {
			pushed[b[i].Position] = &b[i]
		}
	}
	s := &logStream{}
	gate := make(chan struct{})
	took := make(chan int64, 200)
	ended := make(chan struct{})
	ctx := context.Background()
	// Queued before the transport starts the stream (as the hub may), and
	// peeked at under its lock: what it queued is the pushed batches
	// themselves.
	if !s.push(ctx, batches[0]) || !s.push(ctx, batches[1]) {
		t.Fatal("push refused with room in the queue")
	}
	s.mu.Lock()
	queued, head, rest := s.queued, s.head, s.rest
	s.mu.Unlock()
	if queued != 80 || len(head) != 40 || &head[0] != pushed[1] || len(rest) != 1 || &rest[0][0] != pushed[41] {
		t.Fatalf("queued %d events (want 80): head %d events, rest %d batches, not the pushed ones", queued, len(head), len(rest))
	}
	s.start(func(e domain.RecordedEvent) bool {
		<-gate
		took <- e.Position
		return true
	}, func() { close(ended) })
	third := make(chan bool, 1)
	go func() { third <- s.push(ctx, batches[2]) }()
	select {
	case <-third:
		t.Fatal("a push went through with 80 events queued")
	case <-time.After(50 * time.Millisecond):
	}
	// The taker holds one event out of the queue while it handles it: 15
	// handled and the 16th in hand leave 64 queued, still full.
	for i := 0; i < 15; i++ {
		gate <- struct{}{}
	}
	select {
	case <-third:
		t.Fatal("a push went through with 64 events queued")
	case <-time.After(50 * time.Millisecond):
	}
	gate <- struct{}{} // the 17th in hand: 63 left
	select {
	case ok := <-third:
		if !ok {
			t.Fatal("push refused")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the push still waits with 63 events queued")
	}
	s.close()
	close(gate)
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the operation did not end after the last event")
	}
	close(took)
	var got []int64
	for p := range took {
		got = append(got, p)
	}
	if want := slices.Collect(func(yield func(int64) bool) {
		for p := int64(1); p <= 100 && yield(p); p++ {
		}
	}); !slices.Equal(got, want) {
		t.Fatalf("took %v, want 1..100 in order", got)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.head != nil || s.rest != nil || s.queued != 0 {
		t.Fatalf("an idle stream holds %d events in %d+%d batches", s.queued, len(s.head), len(s.rest))
	}
}

// TestAppendFrameEncodesAsJSONMarshal: the writer's framing of a payload
// is the message json.Marshal encodes, whatever the operation id holds
// (quotes, backslashes, controls, HTML characters, non-ASCII, invalid
// UTF-8), and allocates nothing for a plain id.
func TestAppendFrameEncodesAsJSONMarshal(t *testing.T) {
	payload := []byte(`{"data":{"events":{"position":7}}}`)
	for _, id := range []string{"1", "", "0b7c6d2e-9f1a-4c3b-8d5e-6f7a8b9c0d1e", `a"b`, `a\b`, "a\nb\x00", "<script>&", "é\u2028", "\xff"} {
		want, err := json.Marshal(struct {
			ID      string          `json:"id"`
			Type    string          `json:"type"`
			Payload json.RawMessage `json:"payload"`
		}{id, "next", payload})
		if err != nil {
			t.Fatal(err)
		}
		if got := appendFrame(nil, id, "next", payload); string(got) != string(want) {
			t.Errorf("id %q: framed %s, want %s", id, got, want)
		}
	}
	buf := make([]byte, 0, 256)
	if n := allocs.Fewest(100, func() { buf = appendFrame(buf[:0], "17", "next", payload) }); n != 0 {
		t.Fatalf("framing a payload for a plain id allocates %v times", n)
	}
}
