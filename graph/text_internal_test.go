package graph

import "testing"

func TestLoneSurrogateLiteral(t *testing.T) {
	for doc, want := range map[string]string{
		`{ a(k: "\uD800") }`:                       `\uD800`,
		`{ a(k: "x\udbffy") }`:                     `\udbff`,
		`{ a(k: "\uDC00\uD800") }`:                 `\uDC00`,
		`{ a(k: "\uD83D\uDE00 then \uD800") }`:     `\uD800`,
		`{ a(k: "\\", j: "\uD800") }`:              `\uD800`,
		`{ a(k: "\uD800\u0041") }`:                 `\uD800`,
		`{ a(k: "\uD83D\uDE00") }`:                 "",
		`{ a(k: "\\uD800") }`:                      "", // an escaped backslash, then text
		"# \\uD800 in a comment\n{ a }":            "",
		`{ a(k: """\uD800 in a block string""") }`: "",
		`{ a(k: """ \""" \uD800 """) }`:            "",
		`{ a(k: "\u{1F600}") }`:                    "",
		`{ a(k: "\uD8`:                             "", // cut short: the parser says so
	} {
		got, bad := loneSurrogateLiteral(doc)
		if got != want || bad != (want != "") {
			t.Errorf("%s: got %q %v, want %q", doc, got, bad, want)
		}
	}
}
