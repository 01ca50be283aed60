package jsonvalue

import (
	"strings"
	"testing"
)

// TestRefusedNumberCannotBeStored: the limits are PostgreSQL's (checked against
// '…'::jsonb on PostgreSQL 15: 1e131071 and 0.5e131072 are stored, 1e131072
// is not; 1e-16383 and 12.5e-16382 are, 1e-16384 and 12.5e-16383 are not).
func TestRefusedNumberCannotBeStored(t *testing.T) {
	for _, tc := range []struct {
		data string
		bad  string
	}{
		{`{"n": 1}`, ""},
		{`{"n": 1e131071}`, ""},
		{`{"m": -1E131071}`, ""},
		{`{"n": 0.5e131072}`, ""},
		{`{"n": 1e-16383, "m": 12.5e-16382}`, ""},
		{`{"n": 0e10, "s": "1e999999 in a string", "t": "\"1e999999"}`, ""},
		{`{"n": 1e131072}`, "1e131072"},
		{`{"a": [1, {"n": -1E+131072}]}`, "-1E+131072"},
		{`{"n": 1e-16384}`, "1e-16384"},
		{`{"n": 12.5e-16383}`, "12.5e-16383"},
		{`{"n": 1e99999999999999999999}`, "1e99999999999999999999"},
		{`{"n": 1e1000000}`, "1e1000000"},
		{`{"n": 1` + strings.Repeat("0", 131072) + `}`, "1" + strings.Repeat("0", 131072)},
		{`{"n": 0.` + strings.Repeat("1", 16384) + `}`, "0." + strings.Repeat("1", 16384)},
		{`{"n": 0.` + strings.Repeat("1", 16383) + `, "s": "` + strings.Repeat("e", 20000) + `"}`, ""},
	} {
		bad, why, found := RefusedNumber([]byte(tc.data))
		if found != (tc.bad != "") || bad != tc.bad || found && !strings.Contains(why, "cannot be stored") {
			t.Errorf("RefusedNumber(%.60s) = %.40q, %q, %v; want %.40q", tc.data, bad, why, found, tc.bad)
		}
	}
}

// TestRefusedNumberExpandsTooFar: numbers written with an exponent may
// stand for MaxExpandedDigits digits in all, whatever their count; plain
// numbers (as long as they are written) do not count.
func TestRefusedNumberExpandsTooFar(t *testing.T) {
	many := func(n string, k int) string {
		return `{"a": [` + strings.TrimSuffix(strings.Repeat(n+", ", k), ", ") + `]}`
	}
	for _, tc := range []struct {
		data string
		bad  bool
	}{
		{many("1e131071", 1), false},        // 131072 digits
		{many("1e131071", 2), true},         // 262144
		{many("1e999", 150), false},         // 150000
		{many("1e999", 151), true},          // 151000
		{many("1.5e-999", 149), false},      // 1000 each (0.00…15)
		{many("123456789", 20000), false},   // plain: not counted
		{many("0e99", 100000) + ` `, false}, // zero: one digit each
		{many("2E+3", 10000) + ` `, false},  // 4 digits each
	} {
		n, why, found := RefusedNumber([]byte(tc.data))
		if found != tc.bad || found && !strings.Contains(why, "at most 150000 digits in all") {
			t.Errorf("RefusedNumber(%.40s…) = %q, %q, %v; want refused: %v", tc.data, n, why, found, tc.bad)
		}
	}
}
