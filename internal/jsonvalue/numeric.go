package jsonvalue

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
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
	return refusedNumber(data, true)
}

// UnstorableNumber is RefusedNumber without the bound on the digits that
// numbers with an exponent stand for: the first number of data that
// PostgreSQL's jsonb cannot hold, for a document that is stored but never
// validated against a schema nor computed with (an aggregate's snapshot).
func UnstorableNumber(data []byte) (number, why string, refused bool) {
	return refusedNumber(data, false)
}

func refusedNumber(data []byte, bounded bool) (number, why string, refused bool) {
	if len(data) <= NumericMaxFracDigits && !hasExponent(data) {
		return "", "", false
	}
	expanded := 0
	eachNumber(data, func(i, j int) bool {
		n := data[i:j]
		digits, ok := fullDigits(n)
		if !ok {
			number, why, refused = string(n), fmt.Sprintf("cannot be stored: PostgreSQL's numeric holds at most %d digits before the decimal point and %d after it",
				NumericMaxIntDigits, NumericMaxFracDigits), true
			return false
		}
		if bounded && bytes.ContainsAny(n, "eE") {
			if expanded += digits; expanded > MaxExpandedDigits {
				number, why, refused = string(n), fmt.Sprintf("is one too many: written out in full, the numbers with an exponent in one document may have at most %d digits in all",
					MaxExpandedDigits), true
				return false
			}
		}
		return true
	})
	return number, why, refused
}

// eachNumber calls fn with the bounds of each number of data (valid JSON),
// in order, outside its strings, until fn returns false.
func eachNumber(data []byte, fn func(i, j int) bool) {
	for i := 0; i < len(data); {
		switch c := data[i]; {
		case c == '"':
			i = skipString(data, i+1)
		case c == '-' || c >= '0' && c <= '9':
			j := i + 1
			for j < len(data) && isNumberByte(data[j]) {
				j++
			}
			if !fn(i, j) {
				return
			}
			i = j
		default:
			i++
		}
	}
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

// StoredNumber returns the JSON number n as PostgreSQL's jsonb gives it
// back (numeric's output): its exact value, written without an exponent,
// with as many digits after the point as n has after its point less its
// exponent (none when that is negative), and without a sign when it is
// zero. 1e16 is 10000000000000000, 1.5e1 is 15, 0.10e1 is 1.0, 1e-2 is
// 0.01, -0.0 is 0.0; a number written without an exponent is n itself,
// but for a negative zero. Errors: n is not a JSON number, or PostgreSQL's
// numeric cannot hold it (see NumericMaxIntDigits), including a zero with
// an exponent beyond NumericMaxIntDigits, which RefusedNumber refuses too
// although PostgreSQL takes it.
func StoredNumber(n string) (string, error) {
	if n != "" {
		d := decoder{data: []byte(n)}
		if _, ok := d.number(); ok && d.pos == len(n) {
			return storedNumber(d.data)
		}
	}
	return "", fmt.Errorf("%q is not a JSON number", n)
}

// storedNumber is StoredNumber for a well-formed JSON number.
func storedNumber(n []byte) (string, error) {
	if _, ok := fullDigits(n); !ok {
		return "", fmt.Errorf("the number %s cannot be stored: PostgreSQL's numeric holds at most %d digits before the decimal point and %d after it",
			n, NumericMaxIntDigits, NumericMaxFracDigits)
	}
	neg := n[0] == '-'
	mantissa, exp := bytes.TrimPrefix(n, []byte("-")), 0
	if k := bytes.IndexAny(mantissa, "eE"); k >= 0 {
		exp, _ = strconv.Atoi(string(mantissa[k+1:])) // fullDigits read it
		mantissa = mantissa[:k]
	}
	intPart, frac, _ := bytes.Cut(mantissa, []byte("."))
	digits := append(append([]byte(nil), intPart...), frac...)
	// scale is how many of digits follow the point; PostgreSQL shows that
	// many (its display scale), or none when it is negative.
	var whole, fraction []byte
	if scale := len(frac) - exp; scale <= 0 {
		whole = append(digits, bytes.Repeat([]byte("0"), -scale)...)
	} else {
		if len(digits) <= scale {
			digits = append(bytes.Repeat([]byte("0"), scale-len(digits)+1), digits...)
		}
		whole, fraction = digits[:len(digits)-scale], digits[len(digits)-scale:]
	}
	if whole = bytes.TrimLeft(whole, "0"); len(whole) == 0 {
		whole = []byte("0")
	}
	var b strings.Builder
	b.Grow(len(whole) + len(fraction) + 2)
	if neg && firstNonZero(digits) >= 0 {
		b.WriteByte('-')
	}
	b.Write(whole)
	if len(fraction) > 0 {
		b.WriteByte('.')
		b.Write(fraction)
	}
	return b.String(), nil
}

// StoredNumbers returns the JSON text data with each number spelled as
// StoredNumber spells it, which is how PostgreSQL's jsonb gives it back:
// decoded, the result has the values a read of data stored as jsonb has
// (white space, the order of members and the escapes in strings, which
// jsonb changes too, decode the same). It returns data itself when no
// number is spelled otherwise. data must be valid JSON, and its numbers
// should have passed RefusedNumber, which bounds how long they grow
// written out. Errors are StoredNumber's.
func StoredNumbers(data []byte) ([]byte, error) {
	if !hasExponent(data) && !bytes.Contains(data, []byte("-0")) {
		return data, nil
	}
	var out []byte // nil until a number is respelled
	done := 0      // data[:done] is in out
	var err error
	eachNumber(data, func(i, j int) bool {
		n := data[i:j]
		if !bytes.ContainsAny(n, "eE") && !bytes.HasPrefix(n, []byte("-0")) {
			return true
		}
		var s string
		if s, err = StoredNumber(string(n)); err != nil {
			return false
		}
		if s != string(n) {
			out = append(append(out, data[done:i]...), s...)
			done = j
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	if out == nil {
		return data, nil
	}
	return append(out, data[done:]...), nil
}
