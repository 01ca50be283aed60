package graph

import (
	"strings"

	"cqrsgate/internal/jsonvalue"
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
				n, lone := jsonvalue.UnicodeEscape(doc, j)
				if lone {
					return doc[j : j+6], true
				}
				j += max(n, 2)
			}
			i = j
		}
	}
	return "", false
}
