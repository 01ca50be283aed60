package jsonvalue

import (
	"bytes"
	"strconv"
)

// PostgreSQL's numeric, which jsonb keeps numbers in, holds at most
// NumericMaxIntDigits digits before the decimal point and
// NumericMaxFracDigits after it; a larger number is refused
// ("value overflows numeric format").
const (
	NumericMaxIntDigits  = 131072
	NumericMaxFracDigits = 16383
)

// UnstorableNumber returns the first number in the JSON text data that
// PostgreSQL's jsonb cannot hold (see NumericMaxIntDigits), and whether
// there is one. data must be valid JSON. It costs a scan for an exponent
// (a digit followed by e or E) and nothing more unless it finds one or
// data is longer than the digits a stored number may have: numbers that
// could not be stored are caught before anything (a schema's validation,
// exact arithmetic on them) spends time on them.
func UnstorableNumber(data []byte) (string, bool) {
	if len(data) <= NumericMaxFracDigits && !hasExponent(data) {
		return "", false
	}
	for i := 0; i < len(data); {
		switch c := data[i]; {
		case c == '"':
			i = skipString(data, i+1)
		case c == '-' || c >= '0' && c <= '9':
			j := i + 1
			for j < len(data) && isNumberByte(data[j]) {
				j++
			}
			if !storable(data[i:j]) {
				return string(data[i:j]), true
			}
			i = j
		default:
			i++
		}
	}
	return "", false
}

// hasExponent reports whether data has a digit followed by e or E.
func hasExponent(data []byte) bool {
	for _, e := range []byte{'e', 'E'} {
		for i, rest := 0, data; ; {
			k := bytes.IndexByte(rest, e)
			if k < 0 {
				break
			}
			if i+k > 0 && data[i+k-1] >= '0' && data[i+k-1] <= '9' {
				return true
			}
			i, rest = i+k+1, rest[k+1:]
		}
	}
	return false
}

// skipString returns the index after the string whose text starts at i.
func skipString(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case '\\':
			i += 2
		case '"':
			return i + 1
		default:
			i++
		}
	}
	return i
}

func isNumberByte(c byte) bool {
	return c >= '0' && c <= '9' || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-'
}

// storable reports whether PostgreSQL's numeric holds the JSON number n:
// at most NumericMaxIntDigits digits before the point, counted from the
// first that is not zero, and NumericMaxFracDigits after it.
func storable(n []byte) bool {
	if n[0] == '-' {
		n = n[1:]
	}
	mantissa, exp := n, 0
	if k := bytes.IndexAny(n, "eE"); k >= 0 {
		mantissa = n[:k]
		e, err := strconv.Atoi(string(n[k+1:]))
		if err != nil || e > 1<<24 || e < -(1<<24) {
			return false
		}
		exp = e
	}
	intPart, frac := mantissa, []byte(nil)
	if k := bytes.IndexByte(mantissa, '.'); k >= 0 {
		intPart, frac = mantissa[:k], mantissa[k+1:]
	}
	if len(frac)-exp > NumericMaxFracDigits {
		return false
	}
	// The first digit that is not zero, counted from the point.
	digits := append(intPart[:len(intPart):len(intPart)], frac...)
	first := bytes.IndexFunc(digits, func(r rune) bool { return r != '0' })
	if first < 0 {
		return exp <= NumericMaxIntDigits // zero
	}
	return len(intPart)-first+exp <= NumericMaxIntDigits
}
