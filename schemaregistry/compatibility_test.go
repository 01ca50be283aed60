package schemaregistry

import (
	"encoding/json"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/xeipuuv/gojsonschema"

	"cqrsgate/internal/jsonvalue"
)

func doc(t testing.TB, s string) any {
	t.Helper()
	v, err := jsonvalue.DecodeAll([]byte(s))
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
		if wv, err := jsonvalue.DecodeAll([]byte(w)); err == nil {
			if rv, err := jsonvalue.DecodeAll([]byte(r)); err == nil {
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

// validator compiles a schema the way the registry does (draft-07), but
// without the meta-schema check: the validator is the ground truth the
// compatibility rules model, also for schemas the meta-schema would refuse.
func validator(t testing.TB, schema string) *gojsonschema.Schema {
	t.Helper()
	s, err := compileValidator(schema)
	if err != nil {
		t.Fatalf("compile %s: %v", schema, err)
	}
	return s
}

func compileValidator(schema string) (*gojsonschema.Schema, error) {
	l := gojsonschema.NewSchemaLoader()
	l.Draft = gojsonschema.Draft7
	return l.Compile(gojsonschema.NewStringLoader(schema))
}

func accepts(t testing.TB, s *gojsonschema.Schema, doc string) bool {
	t.Helper()
	res, err := s.Validate(gojsonschema.NewStringLoader(doc))
	if err != nil {
		t.Fatalf("validate %s: %v", doc, err)
	}
	return res.Valid()
}

// hugeNegative is -10^400: a bound too long for the rules to read.
var hugeNegative = "-1" + strings.Repeat("0", 400)

// TestSubsumesGaps checks changes the rules once wrongly called
// compatible. Each must be reported, at path with a reason containing
// word; witness (when set) is a document gojsonschema accepts under
// writer and rejects under reader, which shows the report is due.
func TestSubsumesGaps(t *testing.T) {
	cases := []struct {
		name, writer, reader string
		witness              string
		path, word           string
	}{
		{"empty enum in the writer matches everything", `{"enum": []}`, `{"enum": [1]}`, `2`, "", "restricts the values"},
		{"empty enum under a property", obj(`"a": {"enum": []}`, "", true), obj(`"a": {"type": "integer"}`, "", true), `{"a": "x"}`, "/a", "type"},
		{"reader const and enum both apply", `{"enum": [1]}`, `{"const": 1, "enum": [2]}`, `1`, "", "no longer allowed"},
		{"reader enum and const both apply", `{"const": "a"}`, `{"enum": ["a", "b"], "const": "b"}`, `"a"`, "", `"a"`},
		{"writer enum numbers compare as float64", `{"enum": [1]}`, `{"type": "integer"}`, `1.00000000000000000001`, "", "non-integer"},
		{"equal $ref, changed $defs", `{"type": "object", "properties": {"a": {"$ref": "#/$defs/a"}}, "$defs": {"a": {"type": "integer"}}}`,
			`{"type": "object", "properties": {"a": {"$ref": "#/$defs/a"}}, "$defs": {"a": {"type": "string"}}}`, `{"a": 1}`, "/a", "type"},
		{"equal $ref, changed definitions the rules skip", `{"type": "object", "items": {"definitions": {"x": {"type": "integer"}}}, "properties": {"a": {"$ref": "#/items/definitions/x"}}}`,
			`{"type": "object", "items": {"definitions": {"x": {"type": "string"}}}, "properties": {"a": {"$ref": "#/items/definitions/x"}}}`, `{"a": 1}`, "/a", "type"},
		{"equal $ref inside anyOf, changed $defs", `{"anyOf": [{"$ref": "#/$defs/a"}], "$defs": {"a": {"type": "integer"}}}`,
			`{"anyOf": [{"$ref": "#/$defs/a"}], "$defs": {"a": {"type": "string"}}}`, `1`, "", "anyOf"},
		{"an $id in a default captures the $ref", `{"properties": {"a": {"$ref": "#/definitions/a"}}, "definitions": {"a": {"type": "integer"}}, "default": {"$id": "#/definitions/a", "type": "string"}}`,
			`{"properties": {"a": {"$ref": "#/definitions/a"}}, "definitions": {"a": {"type": "integer"}}}`, `{"a": "x"}`, "/a", "$id"},
		{"format applies to numbers", `{"type": "integer"}`, `{"type": ["integer", "string"], "format": "date"}`, `1`, "", "format"},
		{"patternProperties stand in for additionalProperties", `{"type": "object", "patternProperties": {"^x": true}, "additionalProperties": false}`,
			`{"type": "object", "patternProperties": {"^x": true}, "additionalProperties": false, "properties": {"xa": {"type": "integer"}}}`, `{"xa": "s"}`, "/xa", "type"},
		{"a bound too long to read", `{"type": "integer"}`, `{"type": "integer", "maximum": ` + hugeNegative + `}`, `1`, "", "maximum"},
		{"an exclusive bound too long to read", `{"type": "integer", "minimum": 0}`, `{"type": "integer", "minimum": 0, "exclusiveMaximum": ` + hugeNegative + `}`, `1`, "", "exclusiveMaximum"},
		{"a keyword the rules do not know", `{"type": "integer"}`, `{"type": "integer", "x-max": 3}`, ``, "", "x-max"},
		{"a $ref cycle", `{"definitions": {"a": {"$ref": "#/definitions/a"}}, "properties": {"x": {"$ref": "#/definitions/a"}}}`,
			`{"definitions": {"a": {"$ref": "#/definitions/a"}}, "properties": {"x": {"$ref": "#/definitions/a"}}}`, ``, "/x", "cycle"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.witness != "" {
				if !accepts(t, validator(t, c.writer), c.witness) || accepts(t, validator(t, c.reader), c.witness) {
					t.Fatalf("%s is no witness: it must be valid under the writer only", c.witness)
				}
			}
			got := Subsumes(doc(t, c.writer), doc(t, c.reader))
			if !hasReason(got, c.path, c.word) {
				t.Fatalf("no reason at %q mentioning %q: %+v", c.path, c.word, got)
			}
		})
	}
}

// TestSubsumesRefs checks changes the rules prove compatible through
// $ref: references are resolved in each schema's own document.
func TestSubsumesRefs(t *testing.T) {
	const tree = `{"type": "object", "definitions": {"node": {"type": "object", "properties": {"v": {"type": "%s"}, "kids": {"type": "array", "items": {"$ref": "#/definitions/node"}}}, "required": ["v"]}}, "properties": {"root": {"$ref": "#/definitions/node"}}%s}`
	cases := []struct {
		name, writer, reader string
	}{
		{"same recursive schema", strings.Replace(strings.Replace(tree, "%s", "integer", 1), "%s", "", 1), strings.Replace(strings.Replace(tree, "%s", "integer", 1), "%s", "", 1)},
		{"recursive schema widened", strings.Replace(strings.Replace(tree, "%s", "integer", 1), "%s", "", 1), strings.Replace(strings.Replace(tree, "%s", "number", 1), "%s", "", 1)},
		{"unused definition changed", `{"properties": {"a": {"$ref": "#/definitions/a"}}, "definitions": {"a": {"type": "integer"}, "b": {"type": "string"}}}`,
			`{"properties": {"a": {"$ref": "#/definitions/a"}}, "definitions": {"a": {"type": "integer"}, "b": {"type": "boolean"}}}`},
		{"definition renamed", `{"properties": {"a": {"$ref": "#/definitions/a"}}, "definitions": {"a": {"type": "integer"}}}`,
			`{"properties": {"a": {"$ref": "#/definitions/n"}}, "definitions": {"n": {"type": "integer"}}}`},
		{"inlined and widened", `{"properties": {"a": {"$ref": "#/definitions/a"}}, "definitions": {"a": {"type": "integer"}}}`, `{"properties": {"a": {"type": "number"}}}`},
		{"siblings of $ref are ignored", `{"properties": {"a": {"$ref": "#/definitions/a", "type": "string"}}, "definitions": {"a": {"type": "integer"}}}`, `{"properties": {"a": {"type": "integer"}}}`},
		{"same anyOf with $ref", `{"anyOf": [{"$ref": "#/definitions/a"}], "definitions": {"a": {"type": "integer"}, "b": {}}}`, `{"anyOf": [{"$ref": "#/definitions/a"}], "definitions": {"a": {"type": "integer"}}}`},
		{"root $id", `{"$id": "https://example.com/s.json", "properties": {"a": {"$ref": "#/definitions/a"}}, "definitions": {"a": {"type": "integer"}}}`, `{"properties": {"a": {"type": "number"}}}`},
		{"examples with an id", `{"examples": [{"id": "e-1"}], "properties": {"id": {"type": "string"}, "a": {"$ref": "#/definitions/a"}}, "definitions": {"a": {"type": "integer"}}}`, `{"properties": {"a": {"type": "number"}}}`},
		{"patternProperties match a reader property", `{"type": "object", "patternProperties": {"^x": {"type": "integer"}}, "additionalProperties": false}`,
			`{"type": "object", "patternProperties": {"^x": {"type": "integer"}}, "additionalProperties": false, "properties": {"xa": {"type": "number"}}}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Subsumes(doc(t, c.writer), doc(t, c.reader)); got != nil {
				t.Fatalf("want compatible: %+v", got)
			}
		})
	}
}

// soundnessSchemas are the schemas TestSubsumesSoundness compares in every
// pair: the gaps above and their neighbours.
var soundnessSchemas = []string{
	`true`, `false`, `{}`,
	`{"enum": []}`, `{"enum": [1]}`, `{"enum": [1, 2]}`, `{"enum": [1.0, "a"]}`, `{"enum": ["a"]}`, `{"enum": [null, true]}`, `{"enum": [[1], {"b": 1}]}`,
	`{"const": 1}`, `{"const": 1.5}`, `{"const": "a"}`, `{"const": 1, "enum": [2]}`, `{"const": 1, "enum": [1, 2]}`, `{"const": "a", "enum": []}`,
	`{"type": "integer"}`, `{"type": "number"}`, `{"type": "string"}`, `{"type": ["integer", "string"]}`, `{"type": "integer", "enum": [1, 2]}`,
	`{"type": ["integer", "string"], "format": "date"}`, `{"type": ["number", "string"], "format": "email"}`, `{"type": "string", "format": "date"}`, `{"format": "date"}`,
	`{"type": "integer", "minimum": 1}`, `{"type": "number", "exclusiveMinimum": 1}`, `{"type": "integer", "maximum": 2}`, `{"type": "number", "multipleOf": 0.5}`,
	`{"type": "integer", "maximum": ` + hugeNegative + `}`, `{"type": "integer", "minimum": 0, "exclusiveMaximum": ` + hugeNegative + `}`,
	`{"type": "string", "minLength": 1}`, `{"type": "string", "maxLength": 1}`, `{"type": "string", "pattern": "^a"}`,
	`{"type": "array"}`, `{"type": "array", "items": {"type": "integer"}}`, `{"type": "array", "uniqueItems": true}`, `{"type": "array", "maxItems": 1}`,
	`{"type": "object"}`, `{"type": "object", "additionalProperties": false}`,
	`{"type": "object", "properties": {"a": {"type": "integer"}}}`, `{"type": "object", "properties": {"a": {"type": "number"}}, "required": ["a"]}`,
	`{"type": "object", "properties": {"a": {"enum": []}}}`, `{"type": "object", "properties": {"a": {"const": 1, "enum": [1]}}, "additionalProperties": false}`,
	`{"type": "object", "patternProperties": {"^x": true}, "additionalProperties": false}`,
	`{"type": "object", "patternProperties": {"^x": true}, "additionalProperties": false, "properties": {"xa": {"type": "integer"}}}`,
	`{"type": "object", "patternProperties": {"^x": {"type": "integer"}}, "additionalProperties": false, "properties": {"xa": {"type": "number"}}}`,
	`{"type": "object", "properties": {"a": {"$ref": "#/$defs/a"}}, "$defs": {"a": {"type": "integer"}}}`,
	`{"type": "object", "properties": {"a": {"$ref": "#/$defs/a"}}, "$defs": {"a": {"type": "string"}}}`,
	`{"type": "object", "properties": {"a": {"$ref": "#/$defs/a"}}, "$defs": {"a": {"enum": []}}}`,
	`{"type": "object", "items": {"definitions": {"x": {"type": "integer"}}}, "properties": {"a": {"$ref": "#/items/definitions/x"}}}`,
	`{"type": "object", "items": {"definitions": {"x": {"type": "string"}}}, "properties": {"a": {"$ref": "#/items/definitions/x"}}}`,
	`{"properties": {"a": {"$ref": "#/definitions/a", "type": "string"}}, "definitions": {"a": {"type": "integer"}}}`,
	`{"properties": {"a": {"$ref": "#/definitions/a"}}, "definitions": {"a": {"type": "integer"}}, "default": {"$id": "#/definitions/a", "type": "string"}}`,
	`{"properties": {"a": {"$ref": "#/definitions/a"}}, "definitions": {"a": {"type": "integer"}}, "examples": [{"id": "#/definitions/a", "type": "string"}]}`,
	`{"properties": {"a": {"$ref": "#/definitions/a"}}, "definitions": {"a": {"type": "integer"}}}`,
	`{"properties": {"a": {"$ref": "#/definitions/n"}}, "definitions": {"n": {"type": "number"}}}`,
	`{"properties": {"a": {"$ref": "#"}, "b": {"type": "integer"}}}`, `{"properties": {"a": {"$ref": "#"}, "b": {"type": "number"}}}`,
	`{"anyOf": [{"$ref": "#/$defs/a"}], "$defs": {"a": {"type": "integer"}}}`, `{"anyOf": [{"$ref": "#/$defs/a"}], "$defs": {"a": {"type": "string"}}}`,
	`{"type": "integer", "x-max": 3}`,
}

// soundnessValues are the sample values; TestSubsumesSoundness also tries
// each as property "a", "b" and "xa" of an object.
var soundnessValues = []string{
	`null`, `true`, `false`, `0`, `1`, `1.0`, `1.00000000000000000001`, `1.5`, `2`, `3`, `-1`, `1e3`,
	`""`, `"a"`, `"b"`, `"ab"`, `"2020-01-01"`, `"x@example.com"`,
	`[]`, `[1]`, `[1, 1]`, `[1, 2]`, `["a"]`, `{}`, `{"b": 1}`, `{"b": "x"}`, `{"a": {"b": "x"}}`,
}

// TestSubsumesSoundness is the property the rules promise: whenever
// Subsumes(w, r) reports nothing, every sample document gojsonschema
// accepts under w is accepted under r.
func TestSubsumesSoundness(t *testing.T) {
	docs := append([]string(nil), soundnessValues...)
	for _, v := range soundnessValues {
		docs = append(docs, `{"a": `+v+`}`, `{"b": `+v+`}`, `{"xa": `+v+`}`, `{"a": 1, "b": `+v+`}`)
	}
	valid := make([][]bool, len(soundnessSchemas))
	decoded := make([]any, len(soundnessSchemas))
	for i, s := range soundnessSchemas {
		v := validator(t, s)
		for _, d := range docs {
			valid[i] = append(valid[i], accepts(t, v, d))
		}
		decoded[i] = doc(t, s)
	}
	for i, w := range soundnessSchemas {
		for j, r := range soundnessSchemas {
			if Subsumes(decoded[i], decoded[j]) != nil {
				continue
			}
			for k, d := range docs {
				if valid[i][k] && !valid[j][k] {
					t.Errorf("Subsumes says %s reads all data of %s, but gojsonschema rejects %s", r, w, d)
					break
				}
			}
		}
	}
}

// TestSubsumesSoundnessRandom checks the same property on random schemas
// (from a fixed seed) and readers made from them by small changes, which
// the rules often call compatible.
func TestSubsumesSoundnessRandom(t *testing.T) {
	const pairs = 1500
	rng := rand.New(rand.NewPCG(7, 11))
	var values []any
	for _, v := range soundnessValues {
		values = append(values, doc(t, v))
	}
	g := &schemaGen{rng: rng, values: values}
	docs := append([]string(nil), soundnessValues...)
	for _, v := range soundnessValues {
		docs = append(docs, `{"a": `+v+`}`, `{"xa": `+v+`}`, `{"a": [`+v+`], "b": `+v+`}`, `[`+v+`]`)
	}
	compatible := 0
	for range pairs {
		w := g.root()
		r := g.mutate(clone(w), 0)
		ws, rs := marshal(t, w), marshal(t, r)
		wv, werr := compileValidator(ws)
		rv, rerr := compileValidator(rs)
		if werr != nil || rerr != nil || Subsumes(doc(t, ws), doc(t, rs)) != nil {
			continue // gojsonschema refuses a schema, or the rules do
		}
		compatible++
		for _, d := range docs {
			if accepts(t, wv, d) && !accepts(t, rv, d) {
				t.Errorf("Subsumes says %s reads all data of %s, but gojsonschema rejects %s", rs, ws, d)
				break
			}
		}
	}
	if compatible < pairs/10 {
		t.Errorf("only %d of %d random pairs were compatible: the test proves little", compatible, pairs)
	}
}

// schemaGen makes random schemas from the keywords the rules know.
type schemaGen struct {
	rng    *rand.Rand
	values []any
}

func (g *schemaGen) root() map[string]any {
	s := g.schema(0)
	if g.rng.IntN(2) == 0 {
		s["definitions"] = map[string]any{"d": g.definition("d"), "e": g.definition("e")}
	}
	return s
}

// definition makes definition d or e. Only d may be a $ref (to e): a
// cycle of $ref that reads no deeper into the data overflows
// gojsonschema's stack.
func (g *schemaGen) definition(name string) map[string]any {
	s := g.schema(1)
	if _, ok := s["$ref"]; ok {
		if name == "e" {
			delete(s, "$ref")
		} else {
			s["$ref"] = "#/definitions/e"
		}
	}
	return s
}

func (g *schemaGen) pick(xs ...any) any { return xs[g.rng.IntN(len(xs))] }

func (g *schemaGen) value() any { return g.values[g.rng.IntN(len(g.values))] }

func (g *schemaGen) values2() []any {
	out := []any{}
	for range g.rng.IntN(4) {
		v := g.value()
		if !slices.ContainsFunc(out, func(x any) bool { return jsonvalue.Equal(x, v) }) {
			out = append(out, v)
		}
	}
	return out
}

// keyword adds one random keyword to s.
func (g *schemaGen) keyword(s map[string]any, depth int) {
	types := []any{"null", "boolean", "integer", "number", "string", "array", "object"}
	switch g.rng.IntN(17) {
	case 0:
		s["type"] = g.pick(types...)
	case 1:
		s["type"] = []any{g.pick(types...), g.pick("integer", "string", "object")}
	case 2:
		s["enum"] = g.values2()
	case 3:
		s["const"] = g.value()
	case 4:
		s[g.pick("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum").(string)] = g.pick(json.Number("0"), json.Number("1"), json.Number("1.5"), json.Number("2"), json.Number(hugeNegative))
	case 5:
		s["multipleOf"] = g.pick(json.Number("0.5"), json.Number("1"), json.Number("2"))
	case 6:
		s[g.pick("minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties").(string)] = g.pick(json.Number("0"), json.Number("1"), json.Number("2"))
	case 7:
		s["pattern"] = g.pick("^a", "b")
	case 8:
		s["format"] = g.pick("date", "email", "int64")
	case 9:
		s["uniqueItems"] = g.rng.IntN(2) == 0
	case 10:
		if depth < 2 {
			s["items"] = g.schema(depth + 1)
		}
	case 11, 12:
		if depth < 2 {
			props, _ := s["properties"].(map[string]any)
			if props == nil {
				props = map[string]any{}
			}
			props[g.pick("a", "b", "xa").(string)] = g.schema(depth + 1)
			s["properties"] = props
		}
	case 13:
		s["required"] = []any{g.pick("a", "b", "xa")}
	case 14:
		if depth < 2 && g.rng.IntN(2) == 0 {
			s["additionalProperties"] = g.schema(depth + 1)
		} else {
			s["additionalProperties"] = g.rng.IntN(2) == 0
		}
	case 15:
		if depth < 2 {
			s["patternProperties"] = map[string]any{"^x": g.schema(depth + 1)}
		}
	case 16:
		s["$ref"] = g.pick("#/definitions/d", "#/definitions/e")
	}
}

func (g *schemaGen) schema(depth int) map[string]any {
	s := map[string]any{}
	for range 1 + g.rng.IntN(3) {
		g.keyword(s, depth)
	}
	return s
}

// mutate changes s a little: drops, adds or replaces keywords, here or
// below.
func (g *schemaGen) mutate(s map[string]any, depth int) map[string]any {
	keys := sortedKeys(s)
	switch g.rng.IntN(4) {
	case 0:
		if len(keys) > 0 {
			delete(s, keys[g.rng.IntN(len(keys))])
		}
	case 1:
		g.keyword(s, depth)
	case 2:
		if d, ok := s["definitions"].(map[string]any); ok {
			name := g.pick("d", "e").(string)
			d[name] = g.definition(name)
		} else if len(keys) > 0 {
			k := keys[g.rng.IntN(len(keys))]
			delete(s, k)
			g.keyword(s, depth)
		}
	case 3:
		for _, k := range []string{"items", "additionalProperties", "properties"} {
			switch x := s[k].(type) {
			case map[string]any:
				if k == "properties" {
					for _, name := range sortedKeys(x) {
						if sub, ok := x[name].(map[string]any); ok {
							x[name] = g.mutate(sub, depth+1)
							return s
						}
					}
				}
				s[k] = g.mutate(x, depth+1)
				return s
			}
		}
		g.keyword(s, depth)
	}
	return s
}

func clone(s map[string]any) map[string]any {
	var out map[string]any
	b, _ := json.Marshal(s)
	d := json.NewDecoder(strings.NewReader(string(b)))
	d.UseNumber()
	if err := d.Decode(&out); err != nil {
		panic(err)
	}
	return out
}

func marshal(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
