package jsonvalue

import (
	"strings"
	"testing"
)

// TestUnstorableNumber: the limits are PostgreSQL's (checked against
// '…'::jsonb on PostgreSQL 15: 1e131071 and 0.5e131072 are stored, 1e131072
// is not; 1e-16383 and 12.5e-16382 are, 1e-16384 and 12.5e-16383 are not).
func TestUnstorableNumber(t *testing.T) {
	for _, tc := range []struct {
		data string
		bad  string
	}{
		{`{"n": 1}`, ""},
		{`{"n": 1e131071, "m": -1E131071}`, ""},
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
		bad, found := UnstorableNumber([]byte(tc.data))
		if found != (tc.bad != "") || bad != tc.bad {
			t.Errorf("UnstorableNumber(%.60s) = %.40q, %v; want %.40q", tc.data, bad, found, tc.bad)
		}
	}
}
