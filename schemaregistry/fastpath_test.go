package schemaregistry

import (
	"io/fs"
	"strings"
	"testing"

	"github.com/xeipuuv/gojsonschema"

	"cqrsgate/domain"
	"cqrsgate/internal/jsonvalue"
)

// fastCases are schemas with a fast path, each with documents it accepts
// (the fast path must accept them itself) and documents it refuses.
var fastCases = []struct {
	schema        string
	valid, refuse []string
}{
	{
		schema: `{"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}`,
		valid:  []string{`{"n": 1}`, `{"n": -0}`, `{"n": 1.0}`, `{"n": 1e2}`, `{"n": 12345678901234567890123}`, `{"n": 2, "extra": [1, {"a": null}]}`},
		refuse: []string{`{}`, `{"n": 1.5}`, `{"n": 1e-2}`, `{"n": "1"}`, `{"n": null}`, `{"n": true}`, `{"m": 1}`},
	},
	{
		schema: `{"$schema": "http://json-schema.org/draft-07/schema#", "title": "t", "description": "d", "type": "object",
			"properties": {"amount": {"type": "integer", "minimum": 0, "description": "minor units"}, "at": {"type": "string", "format": "date-time"},
			"status": {"type": "string", "enum": ["OPEN", "CLOSED"]}, "note": {"type": ["string", "null"], "minLength": 2, "maxLength": 4}},
			"required": ["amount"], "additionalProperties": false}`,
		valid: []string{`{"amount": 0}`, `{"amount": 9007199254740993, "at": "2026-11-26T12:00:00Z", "status": "OPEN", "note": "héé"}`,
			`{"amount": 1, "at": "2026-11-26T12:00:00.123456+01:00", "note": null}`, `{"amount": 1, "at": "12:00:00"}`, `{"amount": 1, "at": "2026-11-26"}`,
			`{"amount": 1, "note": "ab"}`, `{"amount": 100e-2}`},
		refuse: []string{`{"amount": -1}`, `{"amount": -0.5}`, `{"amount": 1, "other": 1}`, `{"amount": 1, "at": "yesterday"}`, `{"amount": 1, "at": 5}`,
			`{"amount": 1, "status": "open"}`, `{"amount": 1, "status": 1}`, `{"amount": 1, "note": "a"}`, `{"amount": 1, "note": "ééééé"}`,
			`{"amount": 1, "note": 12}`, `{"amount": -99999999999999999999999}`},
	},
	{
		schema: `{"type": "object", "properties": {
			"items": {"type": "array", "minItems": 1, "maxItems": 2, "items": {"type": "object", "properties": {"sku": {"type": "string", "pattern": "^[A-Z]+-[0-9]+$"},
				"qty": {"type": "number", "exclusiveMinimum": 0, "maximum": 10.5}}, "required": ["sku"], "additionalProperties": {"type": "boolean"}}},
			"tags": {"type": "object", "minProperties": 1, "maxProperties": 2, "additionalProperties": true},
			"any": true, "none": false, "lim": {"exclusiveMaximum": 3, "minimum": -2.5}}}`,
		valid: []string{`{}`, `{"items": [{"sku": "AB-1", "qty": 0.001, "gift": true}]}`, `{"items": [{"sku": "A-1", "qty": 10.5}, {"sku": "B-2"}]}`,
			`{"tags": {"a": 1}}`, `{"any": [1, "x"]}`, `{"lim": 2.999}`, `{"lim": -2.5}`, `{"lim": "not a number"}`, `{"items": [{"sku": "A-1", "qty": 1e1}]}`},
		refuse: []string{`{"items": []}`, `{"items": [{"sku": "a-1"}]}`, `{"items": [{"sku": "A-1", "qty": 0}]}`, `{"items": [{"sku": "A-1", "qty": 10.51}]}`,
			`{"items": [{"sku": "A-1", "gift": "yes"}]}`, `{"items": [{"sku": "A-1"}, {"sku": "A-2"}, {"sku": "A-3"}]}`, `{"items": {"sku": "A-1"}}`,
			`{"tags": {}}`, `{"tags": {"a": 1, "b": 2, "c": 3}}`, `{"none": 1}`, `{"lim": 3}`, `{"lim": -2.51}`, `{"lim": 3e0}`},
	},
}

// gojsonschemaValid is gojsonschema's verdict on doc, decoded its own way.
func gojsonschemaValid(t testing.TB, c *compiled, doc string) (valid bool) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			valid = false // gojsonschema panics on some numbers beyond float64
		}
	}()
	res, err := c.schema.Validate(gojsonschema.NewStringLoader(doc))
	return err == nil && res.Valid()
}

func fastValid(t testing.TB, c *compiled, doc string) bool {
	t.Helper()
	v, err := jsonvalue.Decode([]byte(doc))
	return err == nil && c.fast.valid(v)
}

// TestFastPathAgreesWithGojsonschema: the fast path accepts exactly the
// documents gojsonschema accepts, for schemas it covers, and validate
// reports gojsonschema's problems for the others.
func TestFastPathAgreesWithGojsonschema(t *testing.T) {
	for i, tc := range fastCases {
		c, err := compileSchema([]byte(tc.schema))
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if c.fast == nil {
			t.Fatalf("case %d: no fast path for %s", i, tc.schema)
		}
		for _, doc := range tc.valid {
			if !gojsonschemaValid(t, c, doc) {
				t.Errorf("case %d: gojsonschema refuses %s (the case is wrong)", i, doc)
			}
			if !fastValid(t, c, doc) {
				t.Errorf("case %d: the fast path does not accept %s", i, doc)
			}
			if problems, err := c.validate([]byte(doc)); err != nil || problems != nil {
				t.Errorf("case %d: validate(%s) = %v, %v", i, doc, problems, err)
			}
		}
		for _, doc := range tc.refuse {
			if gojsonschemaValid(t, c, doc) {
				t.Errorf("case %d: gojsonschema accepts %s (the case is wrong)", i, doc)
			}
			if fastValid(t, c, doc) {
				t.Errorf("case %d: the fast path accepts %s, which gojsonschema refuses", i, doc)
			}
			if problems, err := c.validate([]byte(doc)); err != nil || len(problems) == 0 {
				t.Errorf("case %d: validate(%s) = %v, %v; want problems", i, doc, problems, err)
			}
		}
	}
}

// TestSchemasWithoutFastPath: a schema with a keyword the fast path does not
// know anywhere in it has none, and validate still gives gojsonschema's
// verdict.
func TestSchemasWithoutFastPath(t *testing.T) {
	for _, tc := range []struct{ schema, valid, invalid string }{
		{`{"type": "object", "properties": {"a": {"$ref": "#/definitions/x"}}, "definitions": {"x": {"type": "string"}}}`, `{"a": "s"}`, `{"a": 1}`},
		{`{"type": "object", "properties": {"a": {"anyOf": [{"type": "string"}, {"type": "integer"}]}}}`, `{"a": 1}`, `{"a": true}`},
		{`{"type": "object", "properties": {"a": {"const": 1}}}`, `{"a": 1.0}`, `{"a": 2}`},
		{`{"type": "object", "properties": {"a": {"multipleOf": 0.5}}}`, `{"a": 1.5}`, `{"a": 1.25}`},
		{`{"type": "object", "properties": {"a": {"enum": [1, "x"]}}}`, `{"a": 1.0}`, `{"a": 2}`},
		{`{"type": "object", "properties": {"a": {"items": [{"type": "string"}]}}}`, `{"a": ["s", 1]}`, `{"a": [1]}`},
		{`{"type": "object", "patternProperties": {"^x": {"type": "string"}}}`, `{"xa": "s"}`, `{"xa": 1}`},
		{`{"type": "object", "x-custom": {"type": "string"}}`, `{"a": 1}`, `[]`},
	} {
		c, err := compileSchema([]byte(tc.schema))
		if err != nil {
			t.Fatalf("%s: %v", tc.schema, err)
		}
		if c.fast != nil {
			t.Errorf("%s has a fast path", tc.schema)
		}
		if problems, err := c.validate([]byte(tc.valid)); err != nil || problems != nil {
			t.Errorf("%s: validate(%s) = %v, %v", tc.schema, tc.valid, problems, err)
		}
		if problems, err := c.validate([]byte(tc.invalid)); err != nil || len(problems) == 0 {
			t.Errorf("%s: validate(%s) = %v, %v; want problems", tc.schema, tc.invalid, problems, err)
		}
	}
}

// TestShippedSchemasHaveAFastPath: every event schema the domain ships is
// validated by the fast path.
func TestShippedSchemasHaveAFastPath(t *testing.T) {
	n := 0
	err := fs.WalkDir(domain.EventSchemas(), ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".json") || strings.HasSuffix(path, ".migration.json") {
			return err
		}
		raw, err := fs.ReadFile(domain.EventSchemas(), path)
		if err != nil {
			return err
		}
		c, err := compileSchema(raw)
		if err != nil {
			return err
		}
		if c.fast == nil {
			t.Errorf("%s has no fast path", path)
		}
		n++
		return nil
	})
	if err != nil || n == 0 {
		t.Fatalf("walking the shipped schemas: %d, %v", n, err)
	}
}

// TestDateTimeIsGojsonschemas: isDateTime accepts what gojsonschema's
// date-time checker accepts.
func TestDateTimeIsGojsonschemas(t *testing.T) {
	for _, s := range []string{"2026-11-26T12:00:00Z", "2026-11-26T12:00:00.5+01:00", "2026-11-26t12:00:00z", "2026-11-26 12:00:00Z",
		"2026-11-26", "2026-13-01", "12:00:00", "12:00:00+02:00", "24:00:00", "2026-11-26T12:00:00", "", "now", "2026-02-29T00:00:00Z"} {
		if got, want := isDateTime(s), (gojsonschema.DateTimeFormatChecker{}).IsFormat(s); got != want {
			t.Errorf("isDateTime(%q) = %v, gojsonschema says %v", s, got, want)
		}
	}
}

// FuzzFastPath: whatever the document, the fast path never accepts one
// that gojsonschema refuses.
func FuzzFastPath(f *testing.F) {
	var schemas []*compiled
	for i, tc := range fastCases {
		c, err := compileSchema([]byte(tc.schema))
		if err != nil {
			f.Fatal(err)
		}
		schemas = append(schemas, c)
		for _, doc := range append(tc.valid, tc.refuse...) {
			f.Add(uint8(i), doc)
		}
	}
	f.Fuzz(func(t *testing.T, i uint8, doc string) {
		c := schemas[int(i)%len(schemas)]
		if fastValid(t, c, doc) && !gojsonschemaValid(t, c, doc) {
			t.Fatalf("the fast path accepts %q, which gojsonschema refuses (schema %d)", doc, int(i)%len(schemas))
		}
	})
}
