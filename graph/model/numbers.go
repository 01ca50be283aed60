package model

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"

	"cqrsgate/domain"
)

// NotAnInteger says, in a client's terms, why v, a value decoded from
// JSON, is not a 64-bit integer, or "" when it is one. A number
// (json.Number as written, or float64 from a decoder without UseNumber) or
// a decimal string (quoted) is named with what is wrong with it: "1.5 is
// not an integer", "1e3 has a fraction or an exponent: send the integer in
// digits alone (1000)", "99999999999999999999 is out of range: at most
// 9223372036854775807"; another kind as JSON names it ("a list is not an
// integer"). Text quoted is cut to 64 bytes.
func NotAnInteger(v any) string {
	switch x := v.(type) {
	case json.Number:
		if why := integerProblem(string(x)); why != "" {
			return CutText(string(x), 64) + why
		}
		return ""
	case string:
		if why := integerProblem(x); why != "" {
			return strconv.Quote(CutText(x, 64)) + why
		}
		return ""
	case float64:
		switch {
		case math.IsNaN(x) || math.IsInf(x, 0) || x != math.Trunc(x):
			return strconv.FormatFloat(x, 'g', -1, 64) + " is not an integer"
		case x >= math.MaxInt64 || x < math.MinInt64:
			return strconv.FormatFloat(x, 'g', -1, 64) + outOfRange(x < 0)
		}
		return ""
	case int, int32, int64:
		return ""
	case bool:
		return strconv.FormatBool(x) + " is not an integer"
	}
	return describeJSON(v) + " is not an integer"
}

// integerProblem is what NotAnInteger says of the text s after quoting
// it: "" when strconv.ParseInt reads it.
func integerProblem(s string) string {
	if _, err := strconv.ParseInt(s, 10, 64); err == nil {
		return ""
	}
	n, ok := ParseDecimal(s)
	switch {
	case !ok || !n.integral():
		return " is not an integer"
	case n.Plain:
		return outOfRange(n.Negative)
	}
	// An integer written with a fraction or an exponent (1.0, 1e3): say
	// how to write it, when it is one that fits.
	if places := n.places(); places <= 19 {
		whole := "0"
		if n.Digits != "" {
			whole = n.Digits + strings.Repeat("0", places-len(n.Digits))
			if n.Negative {
				whole = "-" + whole
			}
		}
		if _, err := strconv.ParseInt(whole, 10, 64); err == nil {
			return " has a fraction or an exponent: send the integer in digits alone (" + whole + ")"
		}
	}
	return outOfRange(n.Negative)
}

func outOfRange(negative bool) string {
	if negative {
		return " is out of range: at least -9223372036854775808"
	}
	return " is out of range: at most 9223372036854775807"
}

// CutText cuts s to at most max bytes, at the start of a character, with
// "..." for what was cut: a client's text quoted in an error, a log line, a
// span or a close frame's reason. It is domain.CutText, the gateway's one
// cutter, under the name graph has used.
func CutText(s string, max int) string { return domain.CutText(s, max) }

// Decimal is a number in JSON's (and GraphQL's) syntax as digits times a
// power of ten, exactly as written: two texts of one number (1.50 and
// 15e-1) are equal Decimals, but for the sign of zero.
type Decimal struct {
	Negative bool
	Digits   string // without leading or trailing zeros; "" for zero
	Exp      int64  // the power of ten the digits are multiplied by (bounded)
	Plain    bool   // written without a fraction or an exponent
}

// integral reports whether the number is an integer.
func (d Decimal) integral() bool { return d.Digits == "" || d.Exp >= 0 }

// places is how many digits the integer has (for an integral d).
func (d Decimal) places() int {
	if d.Digits == "" {
		return 1
	}
	return len(d.Digits) + int(min(d.Exp, 1000))
}

// ParseDecimal reads s in JSON's number syntax (as GraphQL's, and Go's
// strconv.FormatFloat, write numbers), with a "+" sign allowed (as strconv
// takes it); false when s is not a number.
func ParseDecimal(s string) (Decimal, bool) {
	var d Decimal
	if s != "" && (s[0] == '-' || s[0] == '+') {
		d.Negative = s[0] == '-'
		s = s[1:]
	}
	i := 0
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	whole := s[:i]
	s = s[i:]
	frac := ""
	if s != "" && s[0] == '.' {
		i = 1
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		frac = s[1:i]
		if frac == "" {
			return d, false
		}
		s = s[i:]
	}
	if whole == "" {
		return d, false
	}
	var exp int64
	if s != "" && (s[0] == 'e' || s[0] == 'E') {
		s = s[1:]
		negExp := false
		if s != "" && (s[0] == '-' || s[0] == '+') {
			negExp = s[0] == '-'
			s = s[1:]
		}
		if s == "" {
			return d, false
		}
		for _, c := range []byte(s) {
			if !isDigit(c) {
				return d, false
			}
			exp = min(exp*10+int64(c-'0'), 1<<40) // bounded: beyond is beyond any int64 anyway
		}
		if negExp {
			exp = -exp
		}
		s = ""
	} else {
		d.Plain = frac == ""
	}
	if s != "" {
		return d, false
	}
	digits := strings.TrimLeft(whole+frac, "0")
	exp -= int64(len(frac))
	trimmed := strings.TrimRight(digits, "0")
	exp += int64(len(digits) - len(trimmed))
	d.Digits, d.Exp = trimmed, exp
	return d, true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
