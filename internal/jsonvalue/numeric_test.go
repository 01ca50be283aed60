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
		// UnstorableNumber has no such bound: each of these numbers can
		// be stored.
		if n, why, found := UnstorableNumber([]byte(tc.data)); found {
			t.Errorf("UnstorableNumber(%.40s…) = %q, %q: refused a number jsonb stores", tc.data, n, why)
		}
	}
	// It refuses what jsonb cannot hold, as RefusedNumber does.
	for _, bad := range []string{"1e131072", "1e-16384", "1e1000000"} {
		if n, why, found := UnstorableNumber([]byte(`[1e999, ` + bad + `]`)); n != bad || !found || !strings.Contains(why, "cannot be stored") {
			t.Errorf("UnstorableNumber([1e999, %s]) = %q, %q, %v; want it refused as beyond numeric", bad, n, why, found)
		}
	}
}

// TestStoredNumber: each case is what PostgreSQL's jsonb gives back for a
// spelling ("" when it refuses it), as SELECT $1::jsonb::text said on
// PostgreSQL 15.18 (the schema registry's TestStoredNumbersAreWhatPostgreSQLGivesBack
// compares StoredNumber with the server it starts, over many more). An
// exponent beyond 1000 is taken (1e1001 is 1 and 1001 zeros).
func TestStoredNumber(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"0", "0"}, {"-0", "0"}, {"-0.0", "0.0"}, {"-0e5", "0"}, {"-0.0e+3", "0"}, {"0e-3", "0.000"}, {"-0.00e-2", "0.0000"},
		{"0.000", "0.000"}, {"1", "1"}, {"-1", "-1"}, {"1.50", "1.50"}, {"-0.5", "-0.5"},
		{"123456789012345678901234567890", "123456789012345678901234567890"},
		{"1e16", "10000000000000000"}, {"1.5e1", "15"}, {"1e0", "1"}, {"1e-0", "1"}, {"0.10e1", "1.0"},
		{"1e-2", "0.01"}, {"150e-1", "15.0"}, {"12.34e1", "123.4"}, {"1E+2", "100"}, {"1e+0001", "10"},
		{"1e00000000000000000000001", "10"}, {"100e-2", "1.00"}, {"0.0001e4", "1"}, {"1.0e-1", "0.10"},
		{"-1.5e-3", "-0.0015"}, {"-12.5E2", "-1250"}, {"0.5e1", "5"}, {"9.99e2", "999"}, {"0.001E3", "1"},
		{"1e1001", "1" + strings.Repeat("0", 1001)}, {"1e-1001", "0." + strings.Repeat("0", 1000) + "1"},
		{"0e1001", "0"}, {"0e-1001", "0." + strings.Repeat("0", 1001)},
		{"1e131071", "1" + strings.Repeat("0", 131071)}, {"0.5e131072", "5" + strings.Repeat("0", 131071)},
		{"1e-16383", "0." + strings.Repeat("0", 16382) + "1"}, {"0e-16383", "0." + strings.Repeat("0", 16383)},
		{"0.00001e-16378", "0." + strings.Repeat("0", 16382) + "1"},
		{"1e131072", ""}, {"0.1e131073", ""}, {"1e-16384", ""}, {"0e-16384", ""}, {"10e-16384", ""},
		{"1.0e-16383", ""}, {"1e2147483648", ""}, {"0e2147483648", ""}, {"1e-1073741823", ""},
	} {
		got, err := StoredNumber(tc.in)
		switch {
		case tc.want == "" && (err == nil || !strings.Contains(err.Error(), "cannot be stored")):
			t.Errorf("StoredNumber(%s) = %.40s, %v; want it refused", tc.in, got, err)
		case tc.want != "" && (err != nil || got != tc.want):
			t.Errorf("StoredNumber(%s) = %.40s…, %v; want %.40s…", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "-", "01", "1.", ".5", "1e", "+1", "1_000", "0x10", "Infinity", "NaN", " 1", "1 "} {
		if got, err := StoredNumber(bad); err == nil || !strings.Contains(err.Error(), "is not a JSON number") {
			t.Errorf("StoredNumber(%q) = %q, %v; want an error", bad, got, err)
		}
	}
}

func TestStoredNumbers(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"n": 1, "s": "1e5 -0", "a": [1.50, -0.5, 2]}`, `{"n": 1, "s": "1e5 -0", "a": [1.50, -0.5, 2]}`},
		{`{"n": 1e16, "m": -0, "1e2": "-0.0", "a": [1.5e1,-0.0,{"b":1E-2}], "e": "\"1e3", "t": true}`,
			`{"n": 10000000000000000, "m": 0, "1e2": "-0.0", "a": [15,0.0,{"b":0.01}], "e": "\"1e3", "t": true}`},
		{`[0.10e1]`, `[1.0]`},
		{`-0`, `0`},
	} {
		got, err := StoredNumbers([]byte(tc.in))
		if err != nil || string(got) != tc.want {
			t.Errorf("StoredNumbers(%s) = %s, %v; want %s", tc.in, got, err, tc.want)
		}
	}
	plain := []byte(`{"n": 1, "s": "1e5"}`)
	if got, _ := StoredNumbers(plain); &got[0] != &plain[0] {
		t.Error("StoredNumbers copied a document with nothing to respell")
	}
	if _, err := StoredNumbers([]byte(`{"n": 1e131072}`)); err == nil || !strings.Contains(err.Error(), "1e131072 cannot be stored") {
		t.Errorf("StoredNumbers of a number PostgreSQL refuses: %v", err)
	}
}
