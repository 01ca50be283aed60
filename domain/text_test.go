package domain

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// CutText cuts at the start of a character: text with characters of more
// than one byte at the cut ends in whole characters, as UTF-8.
func TestCutText(t *testing.T) {
	for _, tc := range []struct {
		s     string
		limit int
		want  string
	}{
		{"EUR", 64, "EUR"},
		{strings.Repeat("a", 64), 64, strings.Repeat("a", 64)},
		{strings.Repeat("a", 65), 64, strings.Repeat("a", 61) + "..."},
		{strings.Repeat("é", 40), 64, strings.Repeat("é", 30) + "..."},             // the cut at byte 61, mid-é
		{strings.Repeat("日本", 20), 64, strings.Repeat("日本", 10) + "..."},           // at 61, after the 20th character
		{"a" + strings.Repeat("日", 30), 64, "a" + strings.Repeat("日", 20) + "..."}, // at 61, a character's start
		{strings.Repeat("😀", 20), 64, strings.Repeat("😀", 15) + "..."},
		{"ab" + strings.Repeat("😀", 20), 35, "ab" + strings.Repeat("😀", 7) + "..."},
		{"😀😀", 4, "..."},
		{"abcdef", 0, "a..."}, // a limit below 4 is taken as 4
		{"abc", 1, "abc"},
	} {
		got := CutText(tc.s, tc.limit)
		if got != tc.want || !utf8.ValidString(got) || len(got) > max(tc.limit, 4) {
			t.Errorf("CutText(%q, %d) = %q, want %q", tc.s, tc.limit, got, tc.want)
		}
	}
}

// A client's text quoted in a command's error is cut as CutText cuts it:
// it was cut at its 32nd byte, which could fall mid-character, so that the
// message ended in bytes that are not UTF-8 (%s) or in escapes of them
// (%q: "\xe6\x97").
func TestErrorsQuoteWholeCharacters(t *testing.T) {
	text := strings.Repeat("日本", 30)
	started := []Event{FulfilmentStarted{AccountID: "acc", Currency: "EUR", Amount: 5, Items: []FulfilmentItem{{"p1", 1}}, StartedAt: testNow}}
	for name, tc := range map[string]struct {
		given []Event
		run   func(given []Event) error
	}{
		"currency of a new account (%q)": {nil, func([]Event) error {
			_, err := Accounts.Decide(Accounts.New("a1"), OpenAccount{AccountID: "a1", Owner: "Ann", Currency: text}, testNow)
			return err
		}},
		"step of a saga (%s)": {started, func(given []Event) error {
			f := Fulfilments.New("o1")
			for _, e := range given {
				f.Apply(e)
			}
			_, err := Fulfilments.Decide(f, RecordFulfilmentStep{OrderID: "o1", Step: text, Succeeded: true}, testNow)
			return err
		}},
	} {
		err := tc.run(tc.given)
		if err == nil {
			t.Fatalf("%s: accepted", name)
		}
		msg := err.Error()
		if !utf8.ValidString(msg) || strings.Contains(msg, `\x`) || !strings.Contains(msg, strings.Repeat("日本", 10)+"...") {
			t.Errorf("%s: %q, want the text cut after a whole character", name, msg)
		}
	}
}

// Free text that holds a character it may not says which kind: a
// zero-width space is not a control character to the client who sent it.
func TestTextErrorsNameTheKindOfCharacter(t *testing.T) {
	for in, want := range map[string]string{
		"a\x01b":     "owner contains a control character (U+0001)",
		"a\u0085b":   "owner contains a control character (U+0085)",
		"a\u2028b":   "owner contains a line or paragraph separator (U+2028)",
		"a\u200bb":   "owner contains an invisible character (U+200B)",
		"a\u202eb":   "owner contains an invisible character (U+202E)",
		"caf\u00e9!": "",
	} {
		err := checkText("owner", in, 100)
		got := ""
		if err != nil {
			got = err.(*Error).Message
		}
		if got != want {
			t.Errorf("checkText(%q) = %q, want %q", in, got, want)
		}
	}
}
