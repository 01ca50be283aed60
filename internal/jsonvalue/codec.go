package jsonvalue

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"unicode/utf16"
	"unicode/utf8"
)

// Decode decodes a JSON document into the values encoding/json gives with
// UseNumber (map[string]any, []any, json.Number, string, bool, nil), with
// the same result: the common case (valid UTF-8, escapes included, and no
// unusual nesting) in one pass without reflection, anything else (lone
// surrogates, invalid UTF-8, errors) by encoding/json itself. As a json.Decoder does, it reads the first value
// and ignores what follows it.
func Decode(data []byte) (any, error) {
	d := decoder{data: data}
	if v, ok := d.value(0); ok {
		return v, nil
	}
	v, _, err := decodeStd(data)
	return v, err
}

// DecodeAll is Decode for a whole document, as json.Unmarshal reads one:
// anything but white space after the value is an error.
func DecodeAll(data []byte) (any, error) {
	d := decoder{data: data}
	if v, ok := d.value(0); ok {
		if d.space(); d.pos == len(data) {
			return v, nil
		}
	}
	v, end, err := decodeStd(data)
	if err != nil {
		return nil, err
	}
	if rest := bytes.TrimLeft(data[end:], " \t\r\n"); len(rest) > 0 {
		return nil, fmt.Errorf("invalid character %q after top-level value", rest[0])
	}
	return v, nil
}

// ErrNotText is the error of DecodeAllText for a document whose strings
// would not read as written: invalid UTF-8, or an escaped half of a UTF-16
// surrogate pair without its other half. encoding/json (and Decode) read
// both as U+FFFD, the replacement character, so that different ids or keys
// would arrive as the same one.
var ErrNotText = errors.New("not valid text")

// DecodeAllText is DecodeAll for a document whose text must arrive as it
// was sent: invalid UTF-8 and lone surrogate escapes are ErrNotText, where
// DecodeAll reads them as U+FFFD. The common case costs nothing more: the
// fast path takes neither.
func DecodeAllText(data []byte) (any, error) {
	d := decoder{data: data}
	if v, ok := d.value(0); ok {
		if d.space(); d.pos == len(data) {
			return v, nil
		}
	}
	if err := CheckText(data); err != nil {
		return nil, err
	}
	return DecodeAll(data)
}

// CheckText returns ErrNotText, saying why, when data holds invalid UTF-8
// or, being valid JSON, a lone surrogate escape; otherwise nil (whether or
// not data is JSON: its decoder says what else is wrong).
func CheckText(data []byte) error {
	if !utf8.Valid(data) {
		return fmt.Errorf("%w: it is not UTF-8", ErrNotText)
	}
	if !bytes.Contains(data, []byte(`\u`)) || !json.Valid(data) {
		return nil
	}
	if esc, bad := LoneSurrogate(data); bad {
		return fmt.Errorf("%w: it holds the escape %s, half of a UTF-16 surrogate pair without its other half", ErrNotText, esc)
	}
	return nil
}

// LoneSurrogate finds in raw, valid JSON, an escaped UTF-16 surrogate that
// is not half of a pair (a high one, \ud800 to \udbff, followed by an
// escaped low one, \udc00 to \udfff): encoding/json reads it as U+FFFD,
// PostgreSQL's jsonb refuses it. It returns the escape.
func LoneSurrogate(raw []byte) (string, bool) {
	for i := 0; ; {
		j := bytes.IndexByte(raw[i:], '\\')
		if j < 0 {
			return "", false
		}
		i += j
		n, lone := UnicodeEscape(raw, i)
		if lone {
			return string(raw[i : i+6]), true
		}
		i += max(n, 2) // in valid JSON a backslash starts an escape
	}
}

// UnicodeEscape reads the escape \uXXXX at i of s (JSON's, and GraphQL's
// strings'): n is its length, 12 for a UTF-16 surrogate pair (a high
// surrogate, \ud800 to \udbff, then an escaped low one, \udc00 to
// \udfff), 6 for another, 0 when there is none at i; lone reports a
// surrogate without its other half.
func UnicodeEscape[T string | []byte](s T, i int) (n int, lone bool) {
	if i+1 >= len(s) || s[i] != '\\' || s[i+1] != 'u' {
		return 0, false
	}
	r, ok := hexRune(s, i+2)
	switch {
	case !ok:
		return 0, false
	case !utf16.IsSurrogate(r):
		return 6, false
	}
	if i+7 < len(s) && s[i+6] == '\\' && s[i+7] == 'u' {
		if low, ok := hexRune(s, i+8); ok && utf16.DecodeRune(r, low) != utf8.RuneError {
			return 12, false
		}
	}
	return 6, true
}

// hexRune reads the four hexadecimal digits at i of s as a rune.
func hexRune[T string | []byte](s T, i int) (rune, bool) {
	if i < 0 || i+4 > len(s) {
		return 0, false
	}
	var r rune
	for k := i; k < i+4; k++ {
		c := s[k]
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

// decodeStd decodes the first value of data with encoding/json, numbers as
// json.Number; end is where the value ends.
func decodeStd(data []byte) (v any, end int64, err error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	err = dec.Decode(&v)
	return v, dec.InputOffset(), err
}

// maxDepth is the nesting the fast path takes; deeper documents go to
// encoding/json (which has its own limit).
const maxDepth = 256

type decoder struct {
	data []byte
	pos  int
}

func (d *decoder) space() {
	for d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

// value decodes the value at the current position; false hands the whole
// document to encoding/json.
func (d *decoder) value(depth int) (any, bool) {
	d.space()
	if d.pos >= len(d.data) || depth > maxDepth {
		return nil, false
	}
	switch c := d.data[d.pos]; {
	case c == '{':
		m := map[string]any{}
		for more := d.open('}'); more; {
			d.space()
			k, ok := d.str()
			if !ok {
				return nil, false
			}
			d.space()
			if d.pos >= len(d.data) || d.data[d.pos] != ':' {
				return nil, false
			}
			d.pos++
			v, ok := d.value(depth + 1)
			if !ok {
				return nil, false
			}
			m[k] = v
			if more, ok = d.next('}'); !ok {
				return nil, false
			}
		}
		return m, true
	case c == '[':
		a := []any{}
		for more := d.open(']'); more; {
			v, ok := d.value(depth + 1)
			if !ok {
				return nil, false
			}
			a = append(a, v)
			if more, ok = d.next(']'); !ok {
				return nil, false
			}
		}
		return a, true
	case c == '"':
		return d.str()
	case c == 't':
		return true, d.literal("true")
	case c == 'f':
		return false, d.literal("false")
	case c == 'n':
		return nil, d.literal("null")
	case c == '-' || c >= '0' && c <= '9':
		return d.number()
	}
	return nil, false
}

// open steps over an object's or array's opening character; false when
// the closing one follows at once (it is stepped over too).
func (d *decoder) open(closing byte) bool {
	d.pos++
	d.space()
	if d.pos < len(d.data) && d.data[d.pos] == closing {
		d.pos++
		return false
	}
	return true
}

// next steps over what follows a member or an element: a comma (more to
// come) or the closing character; ok is false for anything else.
func (d *decoder) next(closing byte) (more, ok bool) {
	d.space()
	if d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ',':
			d.pos++
			return true, true
		case closing:
			d.pos++
			return false, true
		}
	}
	return false, false
}

func (d *decoder) literal(word string) bool {
	if !bytes.HasPrefix(d.data[d.pos:], []byte(word)) {
		return false
	}
	d.pos += len(word)
	return true
}

// str reads a string of valid UTF-8 and no control characters, escapes
// decoded (escaped); anything else (a lone surrogate, which encoding/json
// turns into U+FFFD) goes to encoding/json.
func (d *decoder) str() (string, bool) {
	if d.pos >= len(d.data) || d.data[d.pos] != '"' {
		return "", false
	}
	start := d.pos + 1
	ascii := true
	for i := start; i < len(d.data); i++ {
		switch c := d.data[i]; {
		case c == '"':
			s := d.data[start:i]
			if !ascii && !utf8.Valid(s) {
				return "", false
			}
			d.pos = i + 1
			return string(s), true
		case c == '\\':
			return d.escaped(start, i)
		case c < 0x20:
			return "", false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return "", false
}

// escaped is str for a string (from start) with an escape at i: what
// precedes it is copied as it is, the rest is decoded into a new buffer.
func (d *decoder) escaped(start, i int) (string, bool) {
	buf := make([]byte, i-start, i-start+32)
	copy(buf, d.data[start:i])
	for i < len(d.data) {
		switch c := d.data[i]; {
		case c == '"':
			// The escapes added valid UTF-8, and a sequence cut short in
			// the raw text stays invalid next to one: buf is valid when
			// the raw text was.
			if !utf8.Valid(buf) {
				return "", false
			}
			d.pos = i + 1
			return string(buf), true
		case c == '\\':
			if i+1 >= len(d.data) {
				return "", false
			}
			switch e := d.data[i+1]; e {
			case '"', '\\', '/':
				buf = append(buf, e)
			case 'b':
				buf = append(buf, '\b')
			case 'f':
				buf = append(buf, '\f')
			case 'n':
				buf = append(buf, '\n')
			case 'r':
				buf = append(buf, '\r')
			case 't':
				buf = append(buf, '\t')
			case 'u':
				// Only a high surrogate followed by an escaped low one
				// makes a character: a lone one goes to encoding/json.
				n, lone := UnicodeEscape(d.data, i)
				if n == 0 || lone {
					return "", false
				}
				r, _ := hexRune(d.data, i+2)
				if n == 12 {
					low, _ := hexRune(d.data, i+8)
					r = utf16.DecodeRune(r, low)
				}
				buf = utf8.AppendRune(buf, r)
				i += n - 2
			default:
				return "", false
			}
			i += 2
		case c < 0x20:
			return "", false
		default:
			buf = append(buf, c)
			i++
		}
	}
	return "", false
}

// number reads a number as JSON's grammar has it:
// -? (0 | [1-9][0-9]*) (.[0-9]+)? ([eE][+-]?[0-9]+)?
func (d *decoder) number() (any, bool) {
	start, i := d.pos, d.pos
	digits := func() int {
		n := 0
		for i < len(d.data) && d.data[i] >= '0' && d.data[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if d.data[i] == '-' {
		i++
	}
	switch {
	case i < len(d.data) && d.data[i] == '0':
		i++
	case digits() == 0:
		return nil, false
	}
	if i < len(d.data) && d.data[i] == '.' {
		i++
		if digits() == 0 {
			return nil, false
		}
	}
	if i < len(d.data) && (d.data[i] == 'e' || d.data[i] == 'E') {
		i++
		if i < len(d.data) && (d.data[i] == '+' || d.data[i] == '-') {
			i++
		}
		if digits() == 0 {
			return nil, false
		}
	}
	d.pos = i
	return json.Number(d.data[start:i]), true
}

// Marshal encodes a decoded JSON value (what Decode returns) exactly as
// json.Marshal does, keys sorted and HTML characters escaped, without
// reflection; values of other types go to json.Marshal.
func Marshal(v any) ([]byte, error) {
	if b, ok := appendValue(nil, v); ok {
		return b, nil
	}
	return json.Marshal(v)
}

func appendValue(b []byte, v any) ([]byte, bool) {
	switch x := v.(type) {
	case nil:
		return append(b, "null"...), true
	case bool:
		if x {
			return append(b, "true"...), true
		}
		return append(b, "false"...), true
	case string:
		return appendString(b, x), true
	case json.Number:
		d := decoder{data: []byte(x)}
		if _, ok := d.number(); !ok || d.pos != len(x) {
			return nil, false // json.Marshal says what is wrong with it
		}
		return append(b, x...), true
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(appendString(b, k), ':')
			var ok bool
			if b, ok = appendValue(b, x[k]); !ok {
				return nil, false
			}
		}
		return append(b, '}'), true
	case []any:
		if x == nil {
			return append(b, "null"...), true
		}
		b = append(b, '[')
		for i, e := range x {
			if i > 0 {
				b = append(b, ',')
			}
			var ok bool
			if b, ok = appendValue(b, e); !ok {
				return nil, false
			}
		}
		return append(b, ']'), true
	}
	return nil, false
}

const hex = "0123456789abcdef"

// appendString quotes s as encoding/json does (escaping <, > and &, the
// line and paragraph separators, and invalid UTF-8 as U+FFFD).
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(append(b, s[start:i]...), `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(append(b, s[start:i]...), '\\', 'u', '2', '0', '2', hex[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	return append(append(b, s[start:]...), '"')
}
