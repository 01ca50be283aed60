package model

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// A Time that is not one is quoted in the error cut at the start of a
// character (CutText): cut after its 64th byte, it could end
// mid-character, in escapes of bytes that are not UTF-8.
func TestBadTimeIsQuotedInWholeCharacters(t *testing.T) {
	_, err := UnmarshalTime("a" + strings.Repeat("é", 50)) // 101 bytes: the 65th is mid-é
	if err == nil {
		t.Fatal("accepted")
	}
	if msg := err.Error(); !utf8.ValidString(msg) || strings.Contains(msg, `\x`) || !strings.Contains(msg, `not "a`+strings.Repeat("é", 30)+`..."`) {
		t.Errorf("%q, want the text cut after a whole character", msg)
	}
}
