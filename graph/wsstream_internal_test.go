package graph

import (
	"runtime"
	"strings"
	"testing"
	"weak"

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
