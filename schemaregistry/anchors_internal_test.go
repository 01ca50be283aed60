package schemaregistry

import (
	"os"
	"os/exec"
	"testing"
)

// Plain-name references ("$ref": "#a") are followed by the loop check only
// where what gojsonschema takes the name for leaves no doubt (see
// anchorTarget); the shapes here, where it may take it for something else
// (an id key hiding $id, a name given twice, a name under a repeated one or
// under a document's id, in examples too), were let through and crashed
// the process. Each either is refused or validates without going round a
// loop; gojsonschema's stack overflow would kill the process, so each runs
// in a child process, compiled afresh many times (Go's map order varies).
func TestPlainNameReferencesCannotHideALoop(t *testing.T) {
	shapes := []struct {
		name, schema string
		valid        bool // must be accepted
	}{
		{"a name", `{"type": "object", "properties": {"p": {"$ref": "#address"}}, "definitions": {"addr": {"$id": "#address", "type": "string"}}}`, true},
		{"id hides $id", `{"type": "object", "allOf": [{"$ref": "#a"}], "definitions": {"a": {"id": "#b", "$id": "#a", "type": "object"}}}`, false},
		{"an id that is no string hides $id", `{"type": "object", "allOf": [{"$ref": "#a"}], "definitions": {"a": {"id": 1, "$id": "#a"}}}`, false},
		{"a name given twice", `{"type": "object", "properties": {"p": {"$ref": "#a"}}, "definitions": {"a": {"$id": "#a", "type": "string"}, "b": {"$id": "#a", "allOf": [{"$ref": "#a"}]}}}`, false},
		{"a name in examples", `{"type": "object", "properties": {"p": {"$ref": "#a"}}, "definitions": {"a": {"$id": "#a", "type": "string"}}, "examples": [{"$id": "#a", "allOf": [{"$ref": "#a"}]}]}`, false},
		{"a name given nowhere", `{"type": "object", "allOf": [{"$ref": "#nowhere"}]}`, false},
		{"a name under a repeated one", `{"type": "object", "allOf": [{"$ref": "#a"}], "definitions": {"y": {"$id": "#d", "definitions": {"z": {"$id": "#d", "definitions": {"w": {"$id": "#a"}}}}}}}`, false},
		{"a name beside a repeated one", `{"type": "object", "allOf": [{"$ref": "#a"}], "definitions": {"x": {"$id": "#d"}, "y": {"$id": "#d", "allOf": [{"$id": "#a"}]}}}`, false},
		{"a name under a document's id in examples", `{"type": "object", "allOf": [{"$ref": "#a"}], "examples": [{"$id": "x.json", "allOf": [{"$id": "#a"}]}]}`, false},
	}
	for _, sh := range shapes {
		t.Run(sh.name, func(t *testing.T) {
			if sh.valid {
				if _, err := compileSchema([]byte(sh.schema)); err != nil {
					t.Fatalf("refused: %v", err)
				}
			}
			cmd := exec.Command(os.Args[0], "-test.run=^TestPlainNameReferenceChild$")
			cmd.Env = append(os.Environ(), "ANCHOR_SCHEMA="+sh.schema)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("the child validating against it died: %v\n%.2000s", err, out)
			}
		})
	}
}

// TestPlainNameReferenceChild compiles and validates against
// $ANCHOR_SCHEMA (see TestPlainNameReferencesCannotHideALoop).
func TestPlainNameReferenceChild(t *testing.T) {
	schema := os.Getenv("ANCHOR_SCHEMA")
	if schema == "" {
		t.Skip("run by TestPlainNameReferencesCannotHideALoop")
	}
	for range 50 {
		c, err := compileSchema([]byte(schema))
		if err != nil {
			return // refused: nothing validates against it
		}
		if _, err := c.validate([]byte(`{"p": "x"}`)); err != nil {
			t.Fatal(err)
		}
	}
}
