package schemaregistry

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func applyOps(t *testing.T, ops, data string) (string, error) {
	t.Helper()
	parsed, err := ParseOps([]byte(ops))
	if err != nil {
		t.Fatalf("ParseOps(%s): %v", ops, err)
	}
	s, err := compileOps(parsed)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := decodeObject([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.apply(obj, &sizeBudget{limit: DefaultMaxEventBytes, size: len(data)}); err != nil {
		return "", err
	}
	out, _ := json.Marshal(obj)
	return string(out), nil
}

func TestMigrationOperations(t *testing.T) {
	tests := []struct {
		name, ops, data, want string
	}{
		{"rename", `[{"op": "rename", "from": "/total", "path": "/subtotal"}]`, `{"total": 5}`, `{"subtotal":5}`},
		{"rename absent is a no-op", `[{"op": "rename", "from": "/total", "path": "/subtotal"}]`, `{"x": 1}`, `{"x":1}`},
		{"move into a new object", `[{"op": "move", "from": "/name", "path": "/customer/name"}]`, `{"name": "Ann"}`, `{"customer":{"name":"Ann"}}`},
		{"move out of an array", `[{"op": "move", "from": "/lines/0", "path": "/first"}]`, `{"lines": ["a", "b"]}`, `{"first":"a","lines":["b"]}`},
		{"copy is deep", `[{"op": "copy", "from": "/a", "path": "/b"}, {"op": "set", "path": "/b/x", "value": 2}]`, `{"a": {"x": 1}}`, `{"a":{"x":1},"b":{"x":2}}`},
		{"remove", `[{"op": "remove", "path": "/legacy"}]`, `{"legacy": 1, "keep": 2}`, `{"keep":2}`},
		{"remove absent", `[{"op": "remove", "path": "/a/b/c"}]`, `{"a": 1}`, `{"a":1}`},
		{"remove array element shifts", `[{"op": "remove", "path": "/l/1"}]`, `{"l": [1, 2, 3]}`, `{"l":[1,3]}`},
		{"default when absent", `[{"op": "default", "path": "/currency", "value": "EUR"}]`, `{}`, `{"currency":"EUR"}`},
		{"default when null", `[{"op": "default", "path": "/currency", "value": "EUR"}]`, `{"currency": null}`, `{"currency":"EUR"}`},
		{"default keeps a value", `[{"op": "default", "path": "/currency", "value": "EUR"}]`, `{"currency": "USD"}`, `{"currency":"USD"}`},
		{"default of an object", `[{"op": "default", "path": "/meta", "value": {"v": [1]}}]`, `{}`, `{"meta":{"v":[1]}}`},
		{"set replaces", `[{"op": "set", "path": "/kind", "value": "retail"}]`, `{"kind": "x"}`, `{"kind":"retail"}`},
		{"set keeps big integers exact", `[{"op": "set", "path": "/n", "value": 9007199254740993}]`, `{}`, `{"n":9007199254740993}`},
		{"mapValues", `[{"op": "mapValues", "path": "/status", "map": {"OPEN": "ACTIVE", "GONE": "CLOSED"}}]`, `{"status": "OPEN"}`, `{"status":"ACTIVE"}`},
		{"mapValues leaves others", `[{"op": "mapValues", "path": "/status", "map": {"OPEN": "ACTIVE"}}]`, `{"status": "NEW"}`, `{"status":"NEW"}`},
		{"mapValues numbers", `[{"op": "mapValues", "path": "/level", "map": {"1": "LOW", "2": "HIGH"}}]`, `{"level": 2}`, `{"level":"HIGH"}`},
		{"compute", `[{"op": "compute", "path": "/tax", "expr": "total - subtotal"}]`, `{"total": 120, "subtotal": 100}`, `{"subtotal":100,"tax":20,"total":120}`},
		{"operations see each other", `[{"op": "copy", "from": "/total", "path": "/subtotal"}, {"op": "default", "path": "/tax", "value": 0}, {"op": "compute", "path": "/total", "expr": "subtotal + tax"}]`,
			`{"total": 7}`, `{"subtotal":7,"tax":0,"total":7}`},
		{"compute of an object is a copy", `[{"op": "compute", "path": "/b", "expr": "a"}, {"op": "set", "path": "/b/x", "value": 2}]`, `{"a": {"x": 1}}`, `{"a":{"x":1},"b":{"x":2}}`},
		{"escaped pointer", `[{"op": "rename", "from": "/a~1b", "path": "/c~0d"}]`, `{"a/b": 1}`, `{"c~d":1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := applyOps(t, tt.ops, tt.data)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestMigrationFailsOnData(t *testing.T) {
	if _, err := applyOps(t, `[{"op": "set", "path": "/a/b", "value": 1}]`, `{"a": 5}`); err == nil || !strings.Contains(err.Error(), "/a is not an object") {
		t.Errorf("setting inside a number: %v", err)
	}
	if _, err := applyOps(t, `[{"op": "compute", "path": "/x", "expr": "a + 1"}]`, `{}`); err == nil || !strings.Contains(err.Error(), "operation 1 (compute)") {
		t.Errorf("compute over a missing field: %v", err)
	}
}

func TestParseOpsRefusesBadMigrations(t *testing.T) {
	tests := []struct {
		name, ops, want string
	}{
		{"not JSON", `[{"op": `, "JSON array of operations"},
		{"not an array", `{"op": "remove"}`, "JSON array of operations"},
		{"empty", `[]`, "at least one operation"},
		{"unknown operation", `[{"op": "explode", "path": "/a"}]`, `operation 1 (explode): unknown operation "explode"`},
		{"no op", `[{"path": "/a"}]`, `needs "op"`},
		{"unknown field", `[{"op": "remove", "path": "/a", "paht": "/b"}]`, "unknown field"},
		{"missing path", `[{"op": "remove"}]`, `operation 1 (remove): needs "path"`},
		{"missing from", `[{"op": "rename", "path": "/a"}]`, `needs "from"`},
		{"missing value", `[{"op": "default", "path": "/a"}]`, `needs "value"`},
		{"field it does not take", `[{"op": "remove", "path": "/a", "value": 1}]`, `does not take "value"`},
		{"not a pointer", `[{"op": "remove", "path": "a.b"}]`, "not a JSON Pointer"},
		{"bad escape", `[{"op": "remove", "path": "/a~2"}]`, "~ must be escaped"},
		{"move into itself (a cycle)", `[{"op": "move", "from": "/a", "path": "/a/b"}]`, "into itself"},
		{"rename onto itself", `[{"op": "rename", "from": "/a", "path": "/a"}]`, "into itself"},
		{"bad expression", `[{"op": "compute", "path": "/a", "expr": "1 +"}]`, "operation 1 (compute)"},
		{"unknown function", `[{"op": "compute", "path": "/a", "expr": "explode(b)"}]`, "operation 1 (compute)"},
		{"second op bad", `[{"op": "remove", "path": "/a"}, {"op": "set", "path": "/b"}]`, `operation 2 (set): needs "value"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseOps([]byte(tt.ops))
			var e *Error
			if !errors.As(err, &e) || e.Code != CodeInvalid || !strings.Contains(e.Message, tt.want) {
				t.Fatalf("err = %v, want VALIDATION mentioning %q", err, tt.want)
			}
		})
	}
	tooMany := "[" + strings.Repeat(`{"op": "remove", "path": "/a"},`, MaxOps) + `{"op": "remove", "path": "/a"}]`
	if _, err := ParseOps([]byte(tooMany)); err == nil || !strings.Contains(err.Error(), "at most") {
		t.Errorf("%d operations: %v", MaxOps+1, err)
	}
}

// FuzzMigration applies arbitrary migrations to arbitrary data and
// validates the result: nothing may panic.
func FuzzMigration(f *testing.F) {
	f.Add(`[{"op": "rename", "from": "/total", "path": "/subtotal"}]`, `{"total": 5}`)
	f.Add(`[{"op": "move", "from": "/l/0", "path": "/l/1/x"}]`, `{"l": [1, {"x": 2}]}`)
	f.Add(`[{"op": "remove", "path": "/l/5"}, {"op": "copy", "from": "/", "path": "/a/b/c"}]`, `{"": [], "a": 1}`)
	f.Add(`[{"op": "mapValues", "path": "/s", "map": {"1": [1], "a": null}}]`, `{"s": 1}`)
	f.Add(`[{"op": "compute", "path": "/t", "expr": "coalesce(a, 0) * 2 + len(concat(b, \"x\"))"}]`, `{"a": 9223372036854775807, "b": "y"}`)
	f.Add(`[{"op": "default", "path": "/a/0/b", "value": {"c": 1}}]`, `{"a": [null]}`)
	schema, err := compileSchema([]byte(orderV1))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, ops, data string) {
		parsed, err := ParseOps([]byte(ops))
		if err != nil {
			return
		}
		s, err := compileOps(parsed)
		if err != nil {
			t.Fatalf("ParseOps accepted what compileOps refuses: %v", err)
		}
		obj, err := decodeObject([]byte(data))
		if err != nil {
			return
		}
		if err := s.apply(obj, &sizeBudget{limit: DefaultMaxEventBytes, size: len(data)}); err != nil {
			return
		}
		out, err := json.Marshal(obj)
		if err != nil {
			t.Fatalf("migrated data does not encode: %v", err)
		}
		if _, err := schema.validate(out); err != nil {
			t.Fatalf("validate: %v", err)
		}
	})
}

// TestPathTokensAreCapped: a path reaching more than MaxPathTokens levels
// into the data is refused, naming the operation; a stored migration with
// one still compiles (refused, it would keep the registry from loading),
// and the objects its path creates count against the size budget, so that
// no event grows a million levels deep.
func TestPathTokensAreCapped(t *testing.T) {
	ok := strings.Repeat("/a", MaxPathTokens)
	for _, ops := range []string{
		`[{"op": "set", "path": "` + ok + `", "value": 1}]`,
		`[{"op": "copy", "from": "` + ok + `", "path": "/b"}]`,
	} {
		if _, err := ParseOps([]byte(ops)); err != nil {
			t.Errorf("a path of %d tokens: %v", MaxPathTokens, err)
		}
	}
	deep := ok + "/a"
	for _, tc := range []struct{ ops, want string }{
		{`[{"op": "remove", "path": "/x"}, {"op": "set", "path": "` + deep + `", "value": 1}]`, `operation 2 (set): path: "/a/a/`},
		{`[{"op": "move", "from": "` + deep + `", "path": "/b"}]`, `operation 1 (move): from: "/a/a/`},
	} {
		_, err := ParseOps([]byte(tc.ops))
		var re *Error
		if !errors.As(err, &re) || re.Code != CodeInvalid || !strings.HasPrefix(re.Message, tc.want) ||
			!strings.Contains(re.Message, "reaches 65 levels into the data; a migration's paths reach at most 64") {
			t.Errorf("a path of 65 tokens: %v", err)
		}
	}

	// Stored, a path of a million tokens compiles; what it would create
	// (7 bytes a level) is beyond the budget, and refused before it is made.
	s, err := compileStoredOps([]Op{{Op: "set", Path: strings.Repeat("/a", 1<<20), Value: json.RawMessage(`1`)}})
	if err != nil {
		t.Fatalf("a stored migration with a deep path: %v", err)
	}
	data := map[string]any{}
	if err := s.apply(data, &sizeBudget{limit: 1 << 20, size: 2}); err == nil || !strings.Contains(err.Error(), "larger than 1048576 bytes") {
		t.Fatalf("a path of 2^20 levels within a 1 MiB budget: %v", err)
	}
	if len(data) != 0 {
		t.Fatalf("the refused operation created %d objects", len(data))
	}
	// Within the budget, the objects it creates are counted.
	s, err = compileStoredOps([]Op{{Op: "set", Path: strings.Repeat("/abc", 100), Value: json.RawMessage(`1`)}})
	if err != nil {
		t.Fatal(err)
	}
	budget := &sizeBudget{limit: 1 << 20, size: 2}
	if err := s.apply(map[string]any{}, budget); err != nil || budget.size != 2+1+99*(3+6) {
		t.Fatalf("budget after creating 99 objects: %d, %v; want %d", budget.size, err, 2+1+99*9)
	}
}
