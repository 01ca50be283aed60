package jsonvalue

import (
	"bytes"
	"encoding/json"
	"testing"
)

func decode(t *testing.T, s string) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("%s: %v", s, err)
	}
	return v
}

func TestEqual(t *testing.T) {
	for _, tc := range []struct {
		a, b  string
		equal bool
	}{
		{`1`, `1.0`, true},
		{`1.10`, `1.1`, true},
		{`100`, `1e2`, true},
		{`1E+2`, `100.00`, true},
		{`0.001`, `1e-3`, true},
		{`0`, `-0.0e5`, true},
		{`-1`, `1`, false},
		{`9007199254740993`, `9007199254740992`, false},
		{`1e999999999`, `1e999999999`, true},
		{`1e999999999`, `1e999999998`, false},
		{`{"a": 1, "b": [1, "x", null, true]}`, `{"b": [1.0, "x", null, true], "a": 1}`, true},
		{`{"a": 1}`, `{"a": 1, "b": 2}`, false},
		{`{"a": 1}`, `{"b": 1}`, false},
		{`[1, 2]`, `[2, 1]`, false},
		{`"1"`, `1`, false},
		{`null`, `false`, false},
		{`{"a": {}}`, `{"a": []}`, false},
	} {
		if got := Equal(decode(t, tc.a), decode(t, tc.b)); got != tc.equal {
			t.Errorf("Equal(%s, %s) = %v, want %v", tc.a, tc.b, got, tc.equal)
		}
		if got := Equal(decode(t, tc.b), decode(t, tc.a)); got != tc.equal {
			t.Errorf("Equal(%s, %s) = %v, want %v", tc.b, tc.a, got, tc.equal)
		}
	}
	// Go numbers compare with decoded ones by value.
	if !Equal(float64(0.5), json.Number("5e-1")) || !Equal(int64(7), json.Number("7.0")) || Equal(3, json.Number("3.5")) {
		t.Fatal("Go numbers are not compared by value")
	}
	if Equal(json.Number("1x"), json.Number("1x")) {
		t.Fatal("a malformed number compared equal")
	}
}
