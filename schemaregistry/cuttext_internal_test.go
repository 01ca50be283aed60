package schemaregistry

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestQuotedTextIsCutAtACharacter: the registry's messages quote a part of
// an expression, a value or a JSON Pointer; cut at a byte, text of
// characters of more than one byte ended in bytes that are not UTF-8.
func TestQuotedTextIsCutAtACharacter(t *testing.T) {
	long := "é" + strings.Repeat("日本", maxExprBytes)
	_, err := CompileExpr(`"` + long + `"`)
	var ee *ExprError
	if !errors.As(err, &ee) || !utf8.ValidString(ee.Expr) || !strings.HasSuffix(ee.Expr, "...") || len(ee.Expr) > 64 {
		t.Errorf("a long expression: %#v, want its start cut at a character", err)
	}
	if got := show("a" + strings.Repeat("é", 100)); !utf8.ValidString(got) || len(got) > 80 {
		t.Errorf("show cut a value to %q", got)
	}
	if got := truncatePointer("/a" + strings.Repeat("ü", 100)); !utf8.ValidString(got) || strings.Contains(got, `\x`) {
		t.Errorf("a pointer quoted as %s", got)
	}
	for _, c := range []struct {
		in   string
		want string
	}{
		{"abc", "abc"},
		{"abcdefgh", "abcd..."},
		{"abcdé", "abcdé"},
		{"abcdéfgh", "abcd..."},
		{"abcdefé", "abcd..."},
	} {
		if got := cutText(c.in, 7); got != c.want {
			t.Errorf("cutText(%q, 7) = %q, want %q", c.in, got, c.want)
		}
	}
}
