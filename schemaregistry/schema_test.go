package schemaregistry

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

const orderV1 = `{
  "$schema": "http://json-schema.org/draft-07/schema#",
  "type": "object",
  "properties": {
    "total": {"type": "integer", "minimum": 0},
    "customer": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]},
    "lines": {"type": "array", "items": {"type": "object", "properties": {"sku": {"type": "string"}}, "required": ["sku"]}}
  },
  "required": ["total"],
  "additionalProperties": false
}`

func TestCompileSchemaRefusesBadSchemas(t *testing.T) {
	tests := []struct {
		name, schema, want string
	}{
		{"not JSON", `{"type": "object"`, "not valid JSON"},
		{"two documents", `{"type": "object"} {}`, "text after the document"},
		{"not an object", `[1, 2]`, "must be a JSON object"},
		{"draft 4", `{"$schema": "http://json-schema.org/draft-04/schema#", "type": "object"}`, "only JSON Schema draft-07"},
		{"draft 2020-12", `{"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object"}`, "only JSON Schema draft-07"},
		{"root not an object type", `{"type": "string"}`, `"type": "object"`},
		{"no type", `{"properties": {}}`, `"type": "object"`},
		{"remote $ref", `{"type": "object", "properties": {"a": {"$ref": "http://example.com/s.json"}}}`, "/properties/a/$ref: only references within the schema"},
		{"file $ref", `{"type": "object", "properties": {"a": {"$ref": "file:///etc/passwd"}}}`, "only references within the schema"},
		{"bad keyword value", `{"type": "object", "properties": {"a": {"type": "strng"}}}`, "not a valid JSON Schema draft-07"},
		{"bad minimum", `{"type": "object", "properties": {"a": {"minimum": "zero"}}}`, "not a valid JSON Schema draft-07"},
		{"too big", `{"type": "object", "description": "` + strings.Repeat("x", MaxSchemaBytes) + `"}`, "at most"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := compileSchema([]byte(tt.schema))
			var e *Error
			if !errors.As(err, &e) || e.Code != CodeInvalid || !strings.Contains(e.Message, tt.want) {
				t.Fatalf("err = %v, want VALIDATION mentioning %q", err, tt.want)
			}
		})
	}
	for _, ok := range []string{orderV1, `{"type": "object"}`, `{"$schema": "http://json-schema.org/draft-07/schema", "type": "object", "definitions": {"a": {"type": "string"}}, "properties": {"x": {"$ref": "#/definitions/a"}}}`} {
		if _, err := compileSchema([]byte(ok)); err != nil {
			t.Errorf("refused a good schema: %v\n%s", err, ok)
		}
	}
}

func TestValidateReportsEveryFailingPath(t *testing.T) {
	c, err := compileSchema([]byte(orderV1))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		data      string
		wantPaths []string
	}{
		{`{"total": 10}`, nil},
		{`{"total": 10, "customer": {"name": "Ann"}, "lines": [{"sku": "a"}]}`, nil},
		{`{}`, []string{"/total"}},
		{`{"total": "ten"}`, []string{"/total"}},
		{`{"total": -1}`, []string{"/total"}},
		{`{"total": 1.5}`, []string{"/total"}},
		{`{"total": 1, "extra": true}`, []string{""}},
		{`{"total": 1, "customer": {}}`, []string{"/customer/name"}},
		{`{"total": 1, "lines": [{"sku": "a"}, {"sku": 2}]}`, []string{"/lines/1/sku"}},
		{`{"customer": {"name": 5}}`, []string{"/customer/name", "/total"}},
	}
	for _, tt := range tests {
		problems, err := c.validate([]byte(tt.data))
		if err != nil {
			t.Fatal(err)
		}
		var paths []string
		for _, p := range problems {
			paths = append(paths, p.Path)
			if p.Message == "" {
				t.Errorf("%s: a problem without a message", tt.data)
			}
		}
		if strings.Join(paths, ",") != strings.Join(tt.wantPaths, ",") {
			t.Errorf("%s: problems at %q, want %q (%+v)", tt.data, paths, tt.wantPaths, problems)
		}
	}
}

// TestHugeNumbersAreAProblemNotAPanic: gojsonschema panics on numbers
// beyond float64's range under enum, const and uniqueItems; validation
// reports a problem instead.
func TestHugeNumbersAreAProblemNotAPanic(t *testing.T) {
	for _, schema := range []string{
		`{"type": "object", "properties": {"x": {"enum": [1, 2]}}}`,
		`{"type": "object", "properties": {"x": {"const": 1}}}`,
		`{"type": "object", "properties": {"x": {"type": "array", "uniqueItems": true}}}`,
	} {
		c, err := compileSchema([]byte(schema))
		if err != nil {
			t.Fatal(err)
		}
		for _, data := range []string{`{"x": 1e400}`, `{"x": [1e400, 1]}`} {
			problems, err := c.validate([]byte(data))
			if err != nil || len(problems) == 0 && strings.Contains(schema, "enum") {
				t.Errorf("%s under %s: %v, %v", data, schema, problems, err)
			}
		}
	}
}

// TestNumbersBeyondNumericAreAProblem: a number PostgreSQL cannot store is
// a problem of its own, found before any schema keyword spends exact
// arithmetic on it (1e1000000 takes milliseconds to expand), whatever the
// schema; a storable one is checked as usual.
func TestNumbersBeyondNumericAreAProblem(t *testing.T) {
	for _, schema := range []string{
		`{"type": "object", "properties": {"x": {"type": "integer"}}}`,
		`{"type": "object", "properties": {"x": {"type": "number", "minimum": 0}}}`,
		`{"type": "object", "properties": {"x": {"const": 1}}}`,
	} {
		c, err := compileSchema([]byte(schema))
		if err != nil {
			t.Fatal(err)
		}
		for _, data := range []string{`{"x": 1e1000000}`, `{"x": 1e-16384}`, `{"y": [1E+131072]}`} {
			problems, err := c.validate([]byte(data))
			if err != nil || len(problems) != 1 || !strings.Contains(problems[0].Message, "cannot be stored") {
				t.Errorf("%s under %s: %v, %v", data, schema, problems, err)
			}
		}
		if problems, err := c.validate([]byte(`{"x": 1e3}`)); err != nil || strings.Contains(fmt.Sprint(problems), "cannot be stored") {
			t.Errorf("1e3 under %s: %v, %v", schema, problems, err)
		}
	}
}

func TestValidationErrorMessage(t *testing.T) {
	err := error(&ValidationError{Type: "OrderPlaced", Version: 2, Problems: []Problem{{Path: "/total", Message: "Invalid type."}, {Message: "Additional property x is not allowed"}}})
	if !errors.Is(err, ErrInvalidEvent) {
		t.Error("not ErrInvalidEvent")
	}
	want := "OrderPlaced v2 does not match its schema: /total: Invalid type.; Additional property x is not allowed"
	if err.Error() != want {
		t.Errorf("message %q, want %q", err.Error(), want)
	}
}
