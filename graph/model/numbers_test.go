package model

import (
	"encoding/json"
	"strings"
	"testing"
)

// NotAnInteger says what is wrong with a value that is not a 64-bit
// integer, in the client's terms, and nothing of one that is.
func TestNotAnInteger(t *testing.T) {
	long := strings.Repeat("9", 100)
	for _, tc := range []struct {
		v    any
		want string
	}{
		{json.Number("15"), ""},
		{json.Number("-9223372036854775808"), ""},
		{"15", ""},
		{float64(15), ""},
		{int64(-1), ""},
		{json.Number("1.5"), "1.5 is not an integer"},
		{json.Number("-0.5e1"), "-0.5e1 has a fraction or an exponent: send the integer in digits alone (-5)"},
		{json.Number("1e-3"), "1e-3 is not an integer"},
		{json.Number("120e-1"), "120e-1 has a fraction or an exponent: send the integer in digits alone (12)"},
		{json.Number("1e3"), "1e3 has a fraction or an exponent: send the integer in digits alone (1000)"},
		{json.Number("1.0"), "1.0 has a fraction or an exponent: send the integer in digits alone (1)"},
		{json.Number("-0.0"), "-0.0 has a fraction or an exponent: send the integer in digits alone (0)"},
		{json.Number("0e999999999999999999999"), "0e999999999999999999999 has a fraction or an exponent: send the integer in digits alone (0)"},
		{json.Number("9.3e18"), "9.3e18 is out of range: at most 9223372036854775807"},
		{json.Number("-1e30"), "-1e30 is out of range: at least -9223372036854775808"},
		{json.Number("1e999999999999999999999"), "1e999999999999999999999 is out of range: at most 9223372036854775807"},
		{json.Number("1e-999999999999999999999"), "1e-999999999999999999999 is not an integer"},
		{json.Number("9223372036854775808"), "9223372036854775808 is out of range: at most 9223372036854775807"},
		{json.Number("-" + long), "-" + long[:60] + "... is out of range: at least -9223372036854775808"},
		{"1.5", `"1.5" is not an integer`},
		{"ten", `"ten" is not an integer`},
		{"", `"" is not an integer`},
		{"1.", `"1." is not an integer`},
		{".5", `".5" is not an integer`},
		{"1e", `"1e" is not an integer`},
		{"--1", `"--1" is not an integer`},
		{"1e3", `"1e3" has a fraction or an exponent: send the integer in digits alone (1000)`},
		{float64(1.5), "1.5 is not an integer"},
		{float64(1e20), "1e+20 is out of range: at most 9223372036854775807"},
		{true, "true is not an integer"},
		{[]any{1}, "a list is not an integer"},
		{map[string]any{}, "an object is not an integer"},
	} {
		if got := NotAnInteger(tc.v); got != tc.want {
			t.Errorf("NotAnInteger(%#v) = %q, want %q", tc.v, got, tc.want)
		}
	}
}
