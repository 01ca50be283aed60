// Package jsonvalue compares decoded JSON values as PostgreSQL's jsonb
// does: objects by their members whatever their order, numbers by their
// exact decimal value (1.10 equals 1.1; 9007199254740993 is not
// 9007199254740992, though the two are the same float64).
package jsonvalue

import (
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
)

// Equal reports whether a and b, JSON values as encoding/json decodes them
// (with or without UseNumber), are equal.
func Equal(a, b any) bool {
	switch x := a.(type) {
	case json.Number, float64, int, int64:
		na, okA := decimalOf(a)
		nb, okB := decimalOf(b)
		return okA && okB && na == nb
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			if w, ok := y[k]; !ok || !Equal(v, w) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !Equal(x[i], y[i]) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(a, b)
}

// decimal is a number in a canonical form: sign, significant digits
// without leading or trailing zeros, and the power of ten they are
// multiplied by. Zero is the empty digit string.
type decimal struct {
	neg    bool
	digits string
	exp    int64
}

// decimalOf returns the canonical form of a number (json.Number, float64,
// int, int64); false for anything else.
func decimalOf(v any) (decimal, bool) {
	switch n := v.(type) {
	case json.Number:
		return parse(string(n))
	case float64:
		return parse(strconv.FormatFloat(n, 'g', -1, 64))
	case int:
		return parse(strconv.Itoa(n))
	case int64:
		return parse(strconv.FormatInt(n, 10))
	}
	return decimal{}, false
}

// parse reads a JSON number's text without big arithmetic, so that an
// exponent of any size costs nothing; false when it is not a number.
func parse(s string) (decimal, bool) {
	var d decimal
	if strings.HasPrefix(s, "-") {
		d.neg, s = true, s[1:]
	}
	mantissa, exponent, hasExp := strings.Cut(strings.ToLower(s), "e")
	if hasExp {
		e, err := strconv.ParseInt(strings.TrimPrefix(exponent, "+"), 10, 64)
		if err != nil || e > 1<<40 || e < -1<<40 {
			return decimal{}, false
		}
		d.exp = e
	}
	whole, frac, _ := strings.Cut(mantissa, ".")
	digits := whole + frac
	if digits == "" || strings.Trim(digits, "0123456789") != "" {
		return decimal{}, false
	}
	d.exp -= int64(len(frac))
	digits = strings.TrimLeft(digits, "0")
	trimmed := strings.TrimRight(digits, "0")
	d.exp += int64(len(digits) - len(trimmed))
	d.digits = trimmed
	if d.digits == "" {
		return decimal{}, true // zero, whatever its sign and exponent
	}
	return d, true
}
