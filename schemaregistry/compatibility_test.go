package schemaregistry

import (
	"encoding/json"
	"strings"
	"testing"
)

func doc(t testing.TB, s string) any {
	t.Helper()
	v, err := decodeJSON([]byte(s))
	if err != nil {
		t.Fatalf("%s: %v", s, err)
	}
	return v
}

// obj builds an object schema from property schemas, required names and
// whether it is closed.
func obj(props string, required string, closed bool) string {
	s := `{"type": "object", "properties": {` + props + `}`
	if required != "" {
		s += `, "required": [` + required + `]`
	}
	if closed {
		s += `, "additionalProperties": false`
	}
	return s + `}`
}

// TestCompatibilityRules checks each kind of change under each mode. For
// every change, back says whether the new schema reads data of the old
// (BACKWARD holds) and fwd whether the old reads data of the new (FORWARD
// holds).
func TestCompatibilityRules(t *testing.T) {
	const (
		a    = `"a": {"type": "integer"}`
		aNum = `"a": {"type": "number"}`
		b    = `"b": {"type": "string"}`
	)
	changes := []struct {
		name      string
		old, new  string
		back, fwd bool
		path      string // where the incompatibility is reported
		word      string // a word the reason contains
	}{
		{"nothing", obj(a, `"a"`, true), obj(a, `"a"`, true), true, true, "", ""},
		{"add optional property to a closed model", obj(a, `"a"`, true), obj(a+","+b, `"a"`, true), true, false, "/b", "not allowed"},
		{"add optional property to an open model", obj(a, `"a"`, false), obj(a+","+b, `"a"`, false), false, true, "/b", "type"},
		{"add required property", obj(a, `"a"`, true), obj(a+","+b, `"a","b"`, true), false, false, "/b", ""},
		{"remove optional property (closed)", obj(a+","+b, `"a"`, true), obj(a, `"a"`, true), false, true, "/b", "not allowed"},
		{"remove optional property (open)", obj(a+","+b, `"a"`, false), obj(a, `"a"`, false), true, false, "/b", "type"},
		{"make optional property required", obj(a+","+b, `"a"`, true), obj(a+","+b, `"a","b"`, true), false, true, "/b", "required"},
		{"make required property optional", obj(a+","+b, `"a","b"`, true), obj(a+","+b, `"a"`, true), true, false, "/b", "required"},
		{"widen integer to number", obj(a, `"a"`, true), obj(aNum, `"a"`, true), true, false, "/a", "narrowed"},
		{"narrow number to integer", obj(aNum, `"a"`, true), obj(a, `"a"`, true), false, true, "/a", "narrowed"},
		{"add enum value", obj(`"s": {"enum": ["A", "B"]}`, "", true), obj(`"s": {"enum": ["A", "B", "C"]}`, "", true), true, false, "/s", `"C"`},
		{"remove enum value", obj(`"s": {"enum": ["A", "B"]}`, "", true), obj(`"s": {"enum": ["A"]}`, "", true), false, true, "/s", `"B"`},
		{"raise minimum", obj(`"n": {"type": "integer", "minimum": 0}`, "", true), obj(`"n": {"type": "integer", "minimum": 1}`, "", true), false, true, "/n", "minimum"},
		{"lower maximum", obj(`"n": {"type": "integer", "maximum": 100}`, "", true), obj(`"n": {"type": "integer", "maximum": 50}`, "", true), false, true, "/n", "maximum"},
		{"exclusive minimum at the same value", obj(`"n": {"type": "number", "minimum": 0}`, "", true), obj(`"n": {"type": "number", "exclusiveMinimum": 0}`, "", true), false, true, "/n", "minimum"},
		{"change pattern", obj(`"s": {"type": "string", "pattern": "^[a-z]+$"}`, "", true), obj(`"s": {"type": "string", "pattern": "^[a-z0-9]+$"}`, "", true), false, false, "/s", "pattern"},
		{"lower maxLength", obj(`"s": {"type": "string", "maxLength": 20}`, "", true), obj(`"s": {"type": "string", "maxLength": 10}`, "", true), false, true, "/s", "maximum length"},
		{"change items type", obj(`"l": {"type": "array", "items": {"type": "integer"}}`, "", true), obj(`"l": {"type": "array", "items": {"type": "string"}}`, "", true), false, false, "/l/*", "type"},
		{"close an open model", obj(a, "", false), obj(a, "", true), false, true, "", "additional properties"},
		{"open a closed model", obj(a, "", true), obj(a, "", false), true, false, "", "additional properties"},
		{"change an anyOf", obj(`"u": {"anyOf": [{"type": "string"}, {"type": "integer"}]}`, "", true), obj(`"u": {"anyOf": [{"type": "string"}]}`, "", true), false, false, "/u", "anyOf"},
		{"same anyOf", obj(`"u": {"anyOf": [{"type": "string"}]}`, "", true), obj(`"u": {"anyOf": [{"type": "string"}]}`, "", true), true, true, "", ""},
		{"property schema true vs false", obj(`"x": true`, "", true), obj(`"x": false`, "", true), false, true, "/x", "accepts nothing"},
		{"nested required field", obj(`"c": `+obj(`"n": {"type": "string"}`, "", true), "", true), obj(`"c": `+obj(`"n": {"type": "string"}`, `"n"`, true), "", true), false, true, "/c/n", "required"},
		{"description only", obj(`"a": {"type": "integer", "description": "x"}`, "", true), obj(`"a": {"type": "integer", "description": "y", "title": "A"}`, "", true), true, true, "", ""},
	}
	modes := []struct {
		mode      Mode
		back, fwd bool
	}{
		{Backward, true, false}, {BackwardTransitive, true, false}, {Forward, false, true}, {ForwardTransitive, false, true},
		{Full, true, true}, {FullTransitive, true, true}, {None, false, false},
	}
	for _, c := range changes {
		for _, m := range modes {
			t.Run(c.name+"/"+string(m.mode), func(t *testing.T) {
				got := CheckCompatibility(m.mode, []any{doc(t, c.old)}, doc(t, c.new), nil)
				wantOK := (!m.back || c.back) && (!m.fwd || c.fwd)
				if wantOK != (len(got) == 0) {
					t.Fatalf("compatible = %v, want %v: %+v", len(got) == 0, wantOK, got)
				}
				for _, in := range got {
					if in.Version != 1 || (in.Direction != "BACKWARD" && in.Direction != "FORWARD") {
						t.Errorf("incompatibility %+v", in)
					}
					if in.Direction == "BACKWARD" && c.back || in.Direction == "FORWARD" && c.fwd {
						t.Errorf("reported %s, which holds: %+v", in.Direction, in)
					}
				}
				if len(got) > 0 && !hasReason(got, c.path, c.word) {
					t.Errorf("no reason at %q mentioning %q: %+v", c.path, c.word, got)
				}
			})
		}
	}
}

func hasReason(got []Incompatibility, path, word string) bool {
	for _, in := range got {
		if in.Path == path && strings.Contains(in.Reason, word) {
			return true
		}
	}
	return false
}

// TestTransitiveModes: transitive modes compare with every earlier
// version, the others with the latest only.
func TestTransitiveModes(t *testing.T) {
	v1 := doc(t, obj(`"a": {"type": "integer"}`, `"a"`, true))
	v2 := doc(t, obj(`"a": {"type": "integer"}, "b": {"type": "string"}`, `"a"`, true))
	v3 := doc(t, obj(`"a": {"type": "integer"}, "b": {"type": "string"}`, `"a","b"`, true))
	previous := []any{v1, v2}
	// FORWARD: v2 reads v3 data (b is allowed); v1 does not (closed, no b).
	if got := CheckCompatibility(Forward, previous, v3, nil); got != nil {
		t.Fatalf("FORWARD against v2: %+v", got)
	}
	got := CheckCompatibility(ForwardTransitive, previous, v3, nil)
	if len(got) != 1 || got[0].Version != 1 || got[0].Direction != "FORWARD" || got[0].Path != "/b" {
		t.Fatalf("FORWARD_TRANSITIVE: %+v", got)
	}
	// BACKWARD: a v4 widening a to number reads every earlier version;
	// one that drops the closed b reads v1 but neither v2 nor v3.
	v4 := doc(t, obj(`"a": {"type": "number"}`, `"a"`, true))
	got = CheckCompatibility(BackwardTransitive, []any{v1, v2, v3}, v4, nil)
	if len(got) != 2 || got[0].Version != 2 || got[1].Version != 3 {
		t.Fatalf("BACKWARD_TRANSITIVE: %+v", got)
	}
	if got := CheckCompatibility(Backward, []any{v1, v2, v3}, v4, nil); len(got) != 1 || got[0].Version != 3 {
		t.Fatalf("BACKWARD (latest only): %+v", got)
	}
	// A migration from v2 and v3 exempts them from the structural BACKWARD check.
	if got := CheckCompatibility(FullTransitive, []any{v1, v2, v3}, v4, map[int]bool{2: true, 3: true}); len(got) != 4 {
		t.Fatalf("FULL_TRANSITIVE with migrations: want only the 4 FORWARD reasons, got %+v", got)
	} else {
		for _, in := range got {
			if in.Direction != "FORWARD" {
				t.Errorf("a skipped BACKWARD check reported %+v", in)
			}
		}
	}
}

func TestParseMode(t *testing.T) {
	for _, s := range []string{"backward", "FULL_TRANSITIVE", " none "} {
		if _, err := ParseMode(s); err != nil {
			t.Errorf("ParseMode(%q): %v", s, err)
		}
	}
	if _, err := ParseMode("SIDEWAYS"); err == nil || !strings.Contains(err.Error(), "BACKWARD") {
		t.Errorf("ParseMode(SIDEWAYS): %v", err)
	}
}

func FuzzSubsumes(f *testing.F) {
	f.Add(`{"type": "object", "properties": {"a": {"type": "integer", "minimum": 1}}, "required": ["a"]}`, `{"type": "object", "additionalProperties": false}`)
	f.Add(`true`, `false`)
	f.Add(`{"enum": [1, "a", null]}`, `{"type": ["integer", "string"], "maxLength": 3}`)
	f.Add(`{"type": "array", "items": [{"type": "string"}]}`, `{"type": "array", "items": {"multipleOf": 0.5}}`)
	f.Add(`{"exclusiveMaximum": 1e400, "multipleOf": 0}`, `{"maximum": 1e-400, "multipleOf": 3}`)
	f.Fuzz(func(t *testing.T, w, r string) {
		var wd, rd any
		if json.Unmarshal([]byte(w), &wd) != nil || json.Unmarshal([]byte(r), &rd) != nil {
			return
		}
		Subsumes(wd, rd)
		if wv, err := decodeJSON([]byte(w)); err == nil {
			if rv, err := decodeJSON([]byte(r)); err == nil {
				Subsumes(wv, rv)
				if got := Subsumes(wv, wv); got != nil && !strings.Contains(w, "items") {
					// A schema reads its own data, except where the rules cannot tell.
					for _, in := range got {
						if !strings.Contains(in.Reason, "cannot prove") {
							t.Fatalf("a schema does not read itself: %s: %+v", w, got)
						}
					}
				}
			}
		}
	})
}
