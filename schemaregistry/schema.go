package schemaregistry

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/xeipuuv/gojsonschema"

	"cqrsgate/internal/jsonvalue"
)

// MaxSchemaBytes caps one schema document.
const MaxSchemaBytes = 256 << 10

// maxProblems caps the problems reported for one event.
const maxProblems = 20

// draft07 lists the $schema values accepted (draft-07 is the only draft
// supported).
var draft07 = map[string]bool{
	"http://json-schema.org/draft-07/schema#":  true,
	"http://json-schema.org/draft-07/schema":   true,
	"https://json-schema.org/draft-07/schema#": true,
	"https://json-schema.org/draft-07/schema":  true,
}

// compiled is a checked, compiled schema.
type compiled struct {
	raw         json.RawMessage // compact JSON
	doc         any             // decoded (UseNumber), for compatibility checks
	fingerprint string          // sha-256 of raw
	schema      *gojsonschema.Schema
	fast        *fastSchema // nil: the schema has no fast path
	// unusable, for a stored schema that no longer compiles (one
	// registered before a check refused it, such as a $ref loop): why.
	// Nothing validates against it (schema is nil); every event is a
	// problem, so a new version is needed.
	unusable error
}

// unusableSchema stands for a stored schema that does not compile (see
// compiled.unusable): it keeps its text and, for the compatibility checks
// of later versions, its document.
func unusableSchema(raw []byte, why error) *compiled {
	var compact bytes.Buffer
	if json.Compact(&compact, raw) != nil {
		compact.Reset()
		compact.Write(raw)
	}
	dec := json.NewDecoder(bytes.NewReader(compact.Bytes()))
	dec.UseNumber()
	var doc any
	if dec.Decode(&doc) != nil {
		doc = map[string]any{"type": "object"}
	}
	sum := sha256.Sum256(compact.Bytes())
	return &compiled{raw: compact.Bytes(), doc: doc, fingerprint: hex.EncodeToString(sum[:]), unusable: why}
}

// compileSchema checks and compiles an event schema: a JSON Schema
// draft-07 document (declared by $schema, or undeclared) whose root
// accepts only objects, with no reference outside itself and none that
// goes round a loop without descending into the data (checkRefCycles).
// Compiling never does I/O (localLoader). Errors are *Error with
// CodeInvalid, saying what is wrong. A new version must pass checkNoIDs as
// well (stored schemas registered before that rule keep working when their
// references resolve locally).
func compileSchema(raw []byte) (c *compiled, err error) {
	if len(raw) > MaxSchemaBytes {
		return nil, invalid("the schema is %d bytes; at most %d are accepted", len(raw), MaxSchemaBytes)
	}
	var doc any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return nil, invalid("the schema is not valid JSON: %v", err)
	}
	if dec.More() {
		return nil, invalid("the schema is not valid JSON: text after the document")
	}
	root, ok := doc.(map[string]any)
	if !ok {
		return nil, invalid("the schema must be a JSON object")
	}
	if s, ok := root["$schema"]; ok {
		str, _ := s.(string)
		if !draft07[str] {
			return nil, invalid("the schema declares $schema %v: only JSON Schema draft-07 (http://json-schema.org/draft-07/schema#) is supported", s)
		}
	}
	if t, _ := root["type"].(string); t != "object" {
		return nil, invalid(`an event schema must have "type": "object" at its root (event data is a JSON object)`)
	}
	// Before gojsonschema turns numbers into exact rationals: 1e-9999999
	// takes long to expand, and then panics in it.
	if n, why, bad := jsonvalue.RefusedNumber(raw); bad {
		if len(n) > 40 {
			n = n[:40] + "…"
		}
		return nil, invalid("the schema holds the number %s, which %s", n, why)
	}
	if err := checkRefs(doc, ""); err != nil {
		return nil, err
	}
	if err := checkRefCycles(doc); err != nil {
		return nil, err
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, raw); err != nil {
		return nil, invalid("the schema is not valid JSON: %v", err)
	}
	defer func() {
		// gojsonschema v1.2.0 panics on some values it does not expect
		// (a multipleOf it cannot represent, say).
		if r := recover(); r != nil {
			c, err = nil, invalid("the schema cannot be compiled: the validator fails on it (%v); is a number in it out of range?", r)
		}
	}()
	meta, err := draft07MetaSchema()
	if err != nil {
		return nil, fmt.Errorf("the draft-07 meta-schema: %w", err)
	}
	res, err := meta.Validate(gojsonschema.NewBytesLoader(compact.Bytes()))
	if err != nil {
		return nil, invalid("the schema is not a valid JSON Schema draft-07: %v", err)
	}
	if !res.Valid() {
		msgs := make([]string, len(res.Errors()))
		for i, e := range res.Errors() {
			msgs[i] = e.String()
		}
		return nil, invalid("the schema is not a valid JSON Schema draft-07: %s", strings.Join(msgs, "; "))
	}
	// Compiled with no meta-schema validation of its own: gojsonschema's
	// would install the file-and-HTTP loader for the schema's references.
	loader := gojsonschema.NewSchemaLoader()
	loader.Draft = gojsonschema.Draft7
	s, err := loader.Compile(localLoader{gojsonschema.NewBytesLoader(compact.Bytes())})
	if err != nil {
		return nil, invalid("the schema is not a valid JSON Schema draft-07: %v", err)
	}
	sum := sha256.Sum256(compact.Bytes())
	return &compiled{raw: compact.Bytes(), doc: doc, fingerprint: hex.EncodeToString(sum[:]), schema: s, fast: compileFast(doc)}, nil
}

// checkRefs refuses $ref values that point outside the document: the
// registry never fetches anything.
func checkRefs(node any, path string) error {
	switch n := node.(type) {
	case map[string]any:
		for k, v := range n {
			if k == "$ref" {
				if s, ok := v.(string); !ok || !strings.HasPrefix(s, "#") {
					return invalid("%s/$ref: only references within the schema (starting with #) are allowed, got %v", path, v)
				}
			}
			if err := checkRefs(v, path+"/"+escapePointer(k)); err != nil {
				return err
			}
		}
	case []any:
		for i, v := range n {
			if err := checkRefs(v, fmt.Sprintf("%s/%d", path, i)); err != nil {
				return err
			}
		}
	}
	return nil
}

// validate checks an event's data (a JSON document) against the schema and
// returns the problems found, nil when it is valid. The data is decoded
// once; the schema's fast path (see fastSchema) accepts valid data when it
// can, and gojsonschema decides the rest and says what is wrong.
func (c *compiled) validate(data []byte) (problems []Problem, err error) {
	if c.unusable != nil {
		return []Problem{{Message: "the registered schema cannot be used (" + c.unusable.Error() + "): register a new version of the type"}}, nil
	}
	doc, decodeErr := jsonvalue.Decode(data)
	if decodeErr == nil {
		// Before any exact arithmetic on such numbers: 1e131071 takes a
		// millisecond to expand (see jsonvalue.MaxExpandedDigits).
		if n, why, bad := jsonvalue.RefusedNumber(data); bad {
			if len(n) > 40 {
				n = n[:40] + "…"
			}
			return []Problem{{Message: fmt.Sprintf("the number %s %s", n, why)}}, nil
		}
		if c.fast != nil && c.fast.valid(doc) {
			return nil, nil
		}
	}
	defer func() {
		// gojsonschema v1.2.0 panics on a number beyond float64's range
		// (1e400, say) where the schema has const, enum or uniqueItems.
		if r := recover(); r != nil {
			problems, err = []Problem{{Message: "the document cannot be validated: does it hold a number beyond ±1.8e308?"}}, nil
		}
	}()
	res, err := c.schema.Validate(documentLoader{JSONLoader: gojsonschema.NewBytesLoader(data), doc: doc, err: decodeErr})
	if err != nil {
		return []Problem{{Message: "not valid JSON: " + err.Error()}}, nil
	}
	if res.Valid() {
		return nil, nil
	}
	for _, e := range res.Errors() {
		problems = append(problems, Problem{Path: contextPointer(e.Context(), e.Field(), e.Type(), e.Details()), Message: e.Description()})
	}
	sort.SliceStable(problems, func(i, j int) bool { return problems[i].Path < problems[j].Path })
	if len(problems) > maxProblems {
		problems = append(problems[:maxProblems], Problem{Message: fmt.Sprintf("and %d more problems", len(problems)-maxProblems)})
	}
	return problems, nil
}

// documentLoader is gojsonschema's loader of a document's bytes, decoded
// already with jsonvalue.Decode: the values (and errors) gojsonschema's own
// decoding gives, in one pass without reflection for the usual document.
type documentLoader struct {
	gojsonschema.JSONLoader
	doc any
	err error
}

func (l documentLoader) LoadJSON() (any, error) { return l.doc, l.err }

// contextPointer turns gojsonschema's context ("(root).a.0") into a JSON
// Pointer ("/a/0"). A missing required property is reported at the
// property's own path.
func contextPointer(ctx *gojsonschema.JsonContext, field, errType string, details gojsonschema.ErrorDetails) string {
	var parts []string
	if ctx != nil {
		parts = strings.Split(ctx.String("\x00"), "\x00")
		if len(parts) > 0 && parts[0] == "(root)" {
			parts = parts[1:]
		}
	}
	if errType == "required" {
		if p, ok := details["property"].(string); ok {
			parts = append(parts, p)
		}
	}
	var b strings.Builder
	for _, p := range parts {
		b.WriteByte('/')
		b.WriteString(escapePointer(p))
	}
	return b.String()
}

// escapePointer escapes a JSON Pointer reference token (RFC 6901).
func escapePointer(s string) string {
	if !strings.ContainsAny(s, "~/") {
		return s
	}
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}
