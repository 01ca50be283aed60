package jsonvalue

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

func stdDecode(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	err := dec.Decode(&v)
	return v, err
}

var seeds = []string{
	`{"n": 1}`, `{"a": [1, 2.5, -0.0, 1e10, 1E-2, "x", true, false, null, {}, []], "b": {"c": "d"}}`,
	`"plain"`, `"esc\"aped\n"`, `"\u00e9t\u00e9 <b> & \u2028"`, `"été ✓"`, "\"\xff\"", "\"a\x01b\"",
	`123`, `-`, `01`, `1.`, `1e`, `-0`, `.5`, `{"a":1,"a":2}`, `{"a" 1}`, `[1,]`, `{,}`, `[`, `{"a":`, ``, `   `,
	`{"a":1} trailing`, `123abc`, `nul`, `true false`, `[[[[[[[[[[1]]]]]]]]]]`, `{"k\u0041y": 1}`,
	`"\ud83d\ude00"`, `"\ud83d"`, `"\ud83d\u0041"`, `"\/\b\f\r\t\\"`, `"\u12"`,
}

func addSeeds(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
}

func FuzzDecode(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		got, gotErr := Decode(data)
		want, wantErr := stdDecode(data)
		if (gotErr == nil) != (wantErr == nil) || !reflect.DeepEqual(got, want) {
			t.Fatalf("Decode(%q) = %#v, %v; encoding/json: %#v, %v", data, got, gotErr, want, wantErr)
		}
	})
}

func FuzzDecodeAll(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		got, gotErr := DecodeAll(data)
		want, wantErr := stdDecode(data)
		if wantErr == nil && !json.Valid(data) { // something after the value
			want, wantErr = nil, errors.New("not one JSON document")
		}
		if (gotErr == nil) != (wantErr == nil) || gotErr == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("DecodeAll(%q) = %#v, %v; encoding/json: %#v, %v", data, got, gotErr, want, wantErr)
		}
	})
}

func FuzzMarshal(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := stdDecode(data)
		if err != nil {
			return
		}
		got, gotErr := Marshal(v)
		want, wantErr := json.Marshal(v)
		if (gotErr == nil) != (wantErr == nil) || !bytes.Equal(got, want) {
			t.Fatalf("Marshal(%#v) = %s, %v; json.Marshal: %s, %v", v, got, gotErr, want, wantErr)
		}
	})
}

func TestMarshalOtherValues(t *testing.T) {
	for _, v := range []any{
		json.Number("1x"), // invalid: json.Marshal's error
		map[string]any{"f": 1.5, "i": int64(2), "s": []string{"a"}},
		[]any(nil), map[string]any{"z": nil, "a": []any{}},
	} {
		got, gotErr := Marshal(v)
		want, wantErr := json.Marshal(v)
		if (gotErr == nil) != (wantErr == nil) || !bytes.Equal(got, want) {
			t.Errorf("Marshal(%#v) = %s, %v; json.Marshal: %s, %v", v, got, gotErr, want, wantErr)
		}
	}
}

// Strings with escapes are decoded without encoding/json; a lone or
// broken surrogate (which encoding/json turns into U+FFFD) and an unknown
// escape are left to it.
func TestDecodeEscapesItself(t *testing.T) {
	for _, doc := range []string{
		`"esc\"aped\n"`, `"\\ \/ \b \f \n \r \t"`, `"\u00e9t\u00E9 \u2028 \u0000"`, `"\ud83d\ude00 smile"`,
		`"été \"✓\""`, `{"query": "{ account(id: \"acc-1\") { id } }", "variables": {"k\u0041y": "a\tb"}}`,
		`["pre\\", "\"", "x\u0041"]`,
	} {
		d := decoder{data: []byte(doc)}
		got, ok := d.value(0)
		if !ok || d.pos != len(doc) {
			t.Errorf("%s: left to encoding/json (at %d)", doc, d.pos)
			continue
		}
		want, err := stdDecode([]byte(doc))
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %#v, encoding/json gives %#v (%v)", doc, got, want, err)
		}
	}
	for _, doc := range []string{`"\ud83d"`, `"\ude00"`, `"\ud83d\u0041"`, `"\ud83dx"`, `"\x"`, `"\u12"`, `"\u12g4"`, `"a\`, "\"\\n\xff\"", "\"\\n\x01\""} {
		d := decoder{data: []byte(doc)}
		if v, ok := d.value(0); ok {
			t.Errorf("%q: decoded as %#v, want it left to encoding/json", doc, v)
		}
		got, gotErr := Decode([]byte(doc))
		want, wantErr := stdDecode([]byte(doc))
		if (gotErr == nil) != (wantErr == nil) || !reflect.DeepEqual(got, want) {
			t.Errorf("Decode(%q) = %#v, %v; encoding/json: %#v, %v", doc, got, gotErr, want, wantErr)
		}
	}
}

// DecodeAllText refuses what DecodeAll would read as U+FFFD, and decodes
// the rest as DecodeAll does.
func TestDecodeAllTextRefusesWhatWouldNotReadAsSent(t *testing.T) {
	for _, doc := range []string{
		"{\"k\": \"a\xffb\"}",          // invalid UTF-8
		`{"k": "\ud800"}`,              // a high surrogate alone
		`{"k": "x\udc00"}`,             // a low one alone
		`{"k": "\ud800\u0041"}`,        // a high one before another escape
		`{"k": ["\udbff"], "x": "\\"}`, // deeper, beside an escaped backslash
	} {
		if _, err := DecodeAllText([]byte(doc)); !errors.Is(err, ErrNotText) {
			t.Errorf("%q: got %v, want ErrNotText", doc, err)
		}
		if _, err := DecodeAll([]byte(doc)); err != nil {
			t.Errorf("%q: DecodeAll: %v (it reads U+FFFD)", doc, err)
		}
	}
	for _, doc := range []string{`{"k": "\ud83d\ude00 \ufffd �", "n": 1e400}`, `{"k": "\\ud800"}`, `[1, "é"]`} {
		got, err := DecodeAllText([]byte(doc))
		want, _ := DecodeAll([]byte(doc))
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%q: got %v, %v; want %v", doc, got, err, want)
		}
	}
	// Not JSON: the decoder's error, not one about text.
	if _, err := DecodeAllText([]byte(`{"k": "\ud800`)); err == nil || errors.Is(err, ErrNotText) {
		t.Errorf("truncated document: got %v", err)
	}
	if err := CheckText([]byte(`{"k": "\ud800`)); err != nil {
		t.Errorf("CheckText of a truncated document: %v, want nil", err)
	}
}
