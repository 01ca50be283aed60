package domain

import "unicode/utf8"

// maxQuoted is the most of a client's text an error quotes, in bytes (see
// CutText).
const maxQuoted = 64

// CutText cuts s to at most limit bytes, at the start of a character, with
// "..." for what was cut: a client's text quoted in an error, a log line, a
// span or a close frame's reason (a number of a million digits, a currency
// of a megabyte, is not echoed whole). Cut at a byte, text with characters
// of more than one byte (é, 日本, an emoji) could end mid-character, in
// bytes that are not UTF-8. A limit below 4 is taken as 4, the least that
// holds a character and the "...".
func CutText(s string, limit int) string {
	limit = max(limit, 4)
	if len(s) <= limit {
		return s
	}
	cut := limit - len("...")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}
