package graph

import (
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// loneSurrogateLiteral finds, in the string literals of a GraphQL document,
// an escaped half of a UTF-16 surrogate pair without its other half
// (`"\uD800"`), and returns the escape. gqlparser reads one as U+FFFD, as
// encoding/json does in JSON (see jsonvalue.ErrNotText): two different
// literal ids or idempotency keys would arrive as one. Comments and block
// strings, which take no escapes, are passed over.
func loneSurrogateLiteral(doc string) (string, bool) {
	if !strings.Contains(doc, `\u`) {
		return "", false
	}
	for i := 0; i < len(doc); i++ {
		switch doc[i] {
		case '#': // a comment, to the end of its line
			j := strings.IndexAny(doc[i:], "\n\r")
			if j < 0 {
				return "", false
			}
			i += j
		case '"':
			if strings.HasPrefix(doc[i:], `"""`) { // a block string, to its end (\""" is a quote)
				j := i + 3
				for {
					k := strings.Index(doc[j:], `"""`)
					if k < 0 {
						return "", false
					}
					if doc[j+k-1] == '\\' {
						j += k + 3
						continue
					}
					i = j + k + 2
					break
				}
				continue
			}
			j := i + 1
			for j < len(doc) && doc[j] != '"' && doc[j] != '\n' && doc[j] != '\r' {
				if doc[j] != '\\' {
					j++
					continue
				}
				if r, ok := hexRune(doc, j+2); ok && doc[j+1] == 'u' && utf16.IsSurrogate(r) {
					low, ok := hexRune(doc, j+8)
					if !ok || doc[j+6] != '\\' || doc[j+7] != 'u' || utf16.DecodeRune(r, low) == utf8.RuneError {
						return doc[j : j+6], true
					}
					j += 12
					continue
				}
				j += 2
			}
			i = j
		}
	}
	return "", false
}

// hexRune reads the four hexadecimal digits at i of s, if there are.
func hexRune(s string, i int) (rune, bool) {
	if i < 0 || i+4 > len(s) {
		return 0, false
	}
	var r rune
	for _, c := range []byte(s[i : i+4]) {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}
