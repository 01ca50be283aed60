package jsonvalue

import (
	"bytes"
	"fmt"
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

// MaxExpandedDigits bounds the digits that the numbers of one document
// written with an exponent stand for, in all, written out in full: a few
// bytes (1e131071) can stand for 131072 digits, which exact arithmetic (a
// schema's integer type or bounds) takes about a millisecond to expand,
// so that a small document of many of them could take seconds. The bound
// is above the most digits one storable number has.
const MaxExpandedDigits = 150_000

// RefusedNumber returns the first number in the JSON text data that is
// refused, and why (to follow the number in a message): PostgreSQL's jsonb
// cannot hold it (see NumericMaxIntDigits), or with it the numbers written
// with an exponent stand for more than MaxExpandedDigits digits. data must
// be valid JSON. It costs a scan for an exponent (a digit followed by e or
// E) and nothing more unless it finds one or data is longer than the
// digits a stored number may have after its point: such numbers are caught
// before anything (a schema's validation, exact arithmetic) spends time on
// them.
func RefusedNumber(data []byte) (number, why string, refused bool) {
	if len(data) <= NumericMaxFracDigits && !hasExponent(data) {
		return "", "", false
	}
	expanded := 0
	for i := 0; i < len(data); {
		switch c := data[i]; {
		case c == '"':
			i = skipString(data, i+1)
		case c == '-' || c >= '0' && c <= '9':
			j := i + 1
			for j < len(data) && isNumberByte(data[j]) {
				j++
			}
			n := data[i:j]
			digits, ok := fullDigits(n)
			if !ok {
				return string(n), fmt.Sprintf("cannot be stored: PostgreSQL's numeric holds at most %d digits before the decimal point and %d after it",
					NumericMaxIntDigits, NumericMaxFracDigits), true
			}
			if bytes.ContainsAny(n, "eE") {
				if expanded += digits; expanded > MaxExpandedDigits {
					return string(n), fmt.Sprintf("is one too many: written out in full, the numbers with an exponent in one document may have at most %d digits in all",
						MaxExpandedDigits), true
				}
			}
			i = j
		default:
			i++
		}
	}
	return "", "", false
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

// fullDigits returns how many digits the JSON number n has written out in
// full (its exponent applied), and whether PostgreSQL's numeric holds it:
// at most NumericMaxIntDigits digits before the point, counted from the
// first that is not zero, and NumericMaxFracDigits after it.
func fullDigits(n []byte) (int, bool) {
	if len(n) > 0 && n[0] == '-' {
		n = n[1:]
	}
	mantissa, exp := n, 0
	if k := bytes.IndexAny(n, "eE"); k >= 0 {
		mantissa = n[:k]
		e, err := strconv.Atoi(string(n[k+1:]))
		if err != nil || e > 1<<24 || e < -(1<<24) {
			return 0, false
		}
		exp = e
	}
	intPart, frac := mantissa, []byte(nil)
	if k := bytes.IndexByte(mantissa, '.'); k >= 0 {
		intPart, frac = mantissa[:k], mantissa[k+1:]
	}
	fracDigits := max(len(frac)-exp, 0)
	if fracDigits > NumericMaxFracDigits {
		return 0, false
	}
	// The digits before the point count from the first that is not zero.
	var intDigits int
	if k := firstNonZero(intPart); k >= 0 {
		intDigits = len(intPart) - k + exp
	} else if k := firstNonZero(frac); k >= 0 {
		intDigits = exp - k
	} else {
		return 1 + fracDigits, exp <= NumericMaxIntDigits // zero
	}
	return max(intDigits, 1) + fracDigits, intDigits <= NumericMaxIntDigits
}

// firstNonZero returns the index of the first digit of b that is not 0, or
// -1.
func firstNonZero(b []byte) int {
	for i, c := range b {
		if c != '0' {
			return i
		}
	}
	return -1
}
