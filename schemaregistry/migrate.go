package schemaregistry

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"

	"cqrsgate/internal/jsonvalue"
)

// Op is one operation of a declarative migration, which turns an event's
// data from schema version N into version N+1. Paths are JSON Pointers
// (RFC 6901) into the data, such as "/customer/name" or "/items/0/sku".
//
//	{"op": "rename", "from": "/total", "path": "/subtotal"}   move a value (also "move"); nothing happens when from is absent
//	{"op": "copy", "from": "/total", "path": "/gross"}        copy a value; nothing happens when from is absent
//	{"op": "remove", "path": "/legacyCode"}                   remove a field if present
//	{"op": "default", "path": "/currency", "value": "EUR"}    set a field that is absent or null
//	{"op": "set", "path": "/kind", "value": "retail"}         set a field whatever it holds
//	{"op": "mapValues", "path": "/status", "map": {"OPEN": "ACTIVE"}}
//	                                                          replace a value found in map (by its string, or its JSON text
//	                                                          for numbers and booleans); other values stay
//	{"op": "compute", "path": "/tax", "expr": "total - subtotal"}
//	                                                          set a field to an expression over the data (see CompileExpr)
//
// Operations run in order, each seeing the result of the ones before.
// Missing intermediate objects of a target path are created (counted
// against Options.MaxEventBytes). A path has at most MaxPathTokens
// reference tokens.
type Op struct {
	Op    string                     `json:"op"`
	Path  string                     `json:"path,omitempty"`
	From  string                     `json:"from,omitempty"`
	Value json.RawMessage            `json:"value,omitempty"`
	Map   map[string]json.RawMessage `json:"map,omitempty"`
	Expr  string                     `json:"expr,omitempty"`
}

// MaxOps caps the operations of one migration.
const MaxOps = 100

// MaxPathTokens caps the reference tokens of an operation's path or from
// (the levels it reaches into the data): a path of a million, which an
// administrator can send in a few megabytes, made a million nested
// objects, which overflowed the stack of whatever walked them and crashed
// the process. A migration stored before the cap keeps working (refused,
// it would keep the registry from loading): the objects its paths create
// count against Options.MaxEventBytes, like any data it adds.
const MaxPathTokens = 64

// Upcaster is a migration written in Go: it turns data of version N into
// version N+1 in place. It runs instead of a declarative migration for the
// same step (see Options.Upcasters).
type Upcaster func(data map[string]any) error

// step is a compiled migration from one version to the next.
type step struct {
	ops []Op // as registered (nil for a Go upcaster)
	raw json.RawMessage
	// apply runs the operations on data; the data they add counts against
	// budget.
	apply func(data map[string]any, budget *sizeBudget) error
}

// sizeBudget bounds the data a migration makes of an event, in bytes of
// JSON: copy and compute can double it with every operation (a hundred
// copies of /a into /b and back make 2^100 objects of {"a": {}}), and
// must fail before they exhaust memory.
type sizeBudget struct {
	limit int
	size  int // at least the data's size now (removals are not counted)
}

// add accounts for an operation about to add n bytes to d: when the bound
// would pass the limit, d is measured, and the operation refused if d
// plus n is too big.
func (b *sizeBudget) add(d map[string]any, n int) error {
	if b.size+n <= b.limit {
		b.size += n
		return nil
	}
	size, ok := jsonSize(d, b.limit-n)
	if n > b.limit || !ok {
		return b.exceeded()
	}
	b.size = size + n
	return nil
}

// measure measures d (after a Go upcaster, which may have made anything
// of it).
func (b *sizeBudget) measure(d map[string]any) error {
	size, ok := jsonSize(d, b.limit)
	if !ok {
		return b.exceeded()
	}
	b.size = size
	return nil
}

func (b *sizeBudget) exceeded() error {
	return fmt.Errorf("the migrated data would be larger than %d bytes", b.limit)
}

// jsonSize returns about the size of v encoded as JSON (strings without
// their escapes), or false once it passes limit.
func jsonSize(v any, limit int) (int, bool) {
	size := 0
	var walk func(v any) bool
	walk = func(v any) bool {
		switch x := v.(type) {
		case map[string]any:
			size += 2
			for k, e := range x {
				size += len(k) + 4
				if size > limit || !walk(e) {
					return false
				}
			}
		case []any:
			size += 2
			for _, e := range x {
				size++
				if size > limit || !walk(e) {
					return false
				}
			}
		case string:
			size += len(x) + 2
		case json.Number:
			size += len(x)
		case nil:
			size += 4
		case bool:
			size += 5
		default:
			size += 24 // a number of another type
		}
		return size <= limit
	}
	if !walk(v) {
		return 0, false
	}
	return size, true
}

// ParseOps decodes and checks a migration's operations: a JSON array of Op.
// Errors are *Error with CodeInvalid naming the operation (1-based) and
// what is wrong with it.
func ParseOps(raw []byte) ([]Op, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var ops []Op
	if err := dec.Decode(&ops); err != nil {
		return nil, invalid("a migration must be a JSON array of operations: %v", err)
	}
	if _, err := compileOps(ops); err != nil {
		return nil, err
	}
	return ops, nil
}

// compileOps checks ops and compiles them into a step.
func compileOps(ops []Op) (*step, error) { return compileOpsFor(ops, false) }

// compileStoredOps compiles a stored migration. It may copy a value into
// itself, which compileOps refuses since: registered before, it keeps
// working, within the migration's size budget.
func compileStoredOps(ops []Op) (*step, error) { return compileOpsFor(ops, true) }

func compileOpsFor(ops []Op, stored bool) (*step, error) {
	if len(ops) == 0 {
		return nil, invalid("a migration needs at least one operation")
	}
	if len(ops) > MaxOps {
		return nil, invalid("a migration has at most %d operations, got %d", MaxOps, len(ops))
	}
	fns := make([]func(map[string]any, *sizeBudget) error, len(ops))
	for i, op := range ops {
		fn, err := compileOp(op, stored)
		if err != nil {
			return nil, &Error{Code: CodeInvalid, Message: fmt.Sprintf("operation %d (%s): %s", i+1, op.Op, err.Error()),
				Details: map[string]any{"operation": i + 1}}
		}
		fns[i] = fn
	}
	raw, _ := json.Marshal(ops)
	return &step{ops: ops, raw: raw, apply: func(data map[string]any, budget *sizeBudget) error {
		for i, fn := range fns {
			if err := fn(data, budget); err != nil {
				return fmt.Errorf("operation %d (%s): %w", i+1, ops[i].Op, err)
			}
		}
		return nil
	}}, nil
}

func compileOp(op Op, stored bool) (func(map[string]any, *sizeBudget) error, error) {
	need := func(fields ...string) error {
		for _, f := range fields {
			var empty bool
			switch f {
			case "path":
				empty = op.Path == ""
			case "from":
				empty = op.From == ""
			case "value":
				empty = len(op.Value) == 0
			case "map":
				empty = len(op.Map) == 0
			case "expr":
				empty = op.Expr == ""
			}
			if empty {
				return fmt.Errorf("needs %q", f)
			}
		}
		return nil
	}
	unused := func(fields ...string) error {
		for _, f := range fields {
			var set bool
			switch f {
			case "from":
				set = op.From != ""
			case "value":
				set = len(op.Value) > 0
			case "map":
				set = op.Map != nil
			case "expr":
				set = op.Expr != ""
			}
			if set {
				return fmt.Errorf("does not take %q", f)
			}
		}
		return nil
	}
	pointer := func(field, p string) ([]string, error) {
		if p == "" {
			return nil, nil
		}
		tokens, err := parsePointer(p)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", field, err)
		}
		if len(tokens) > MaxPathTokens && !stored {
			return nil, fmt.Errorf("%s: %s reaches %d levels into the data; a migration's paths reach at most %d",
				field, truncatePointer(p), len(tokens), MaxPathTokens)
		}
		return tokens, nil
	}
	path, err := pointer("path", op.Path)
	if err != nil {
		return nil, err
	}
	from, err := pointer("from", op.From)
	if err != nil {
		return nil, err
	}
	switch op.Op {
	case "rename", "move", "copy":
		if err := firstErr(need("from", "path"), unused("value", "map", "expr")); err != nil {
			return nil, err
		}
		if isPrefix(from, path) && !(stored && op.Op == "copy") {
			// Moved, it would vanish; copied, it would grow with every
			// operation doing so (and double with each of them).
			verb := "move"
			if op.Op == "copy" {
				verb = "copy"
			}
			return nil, fmt.Errorf("cannot %s %s into itself (%s)", verb, op.From, op.Path)
		}
		remove := op.Op != "copy"
		return func(d map[string]any, budget *sizeBudget) error {
			v, ok := getPointer(d, from)
			if !ok {
				return nil
			}
			if remove {
				removePointer(d, from)
			} else {
				n, ok := jsonSize(v, budget.limit)
				if !ok {
					return budget.exceeded()
				}
				if err := budget.add(d, n); err != nil {
					return err
				}
				v = deepCopy(v)
			}
			return setPointer(d, path, v, budget)
		}, nil
	case "remove":
		if err := firstErr(need("path"), unused("from", "value", "map", "expr")); err != nil {
			return nil, err
		}
		return func(d map[string]any, _ *sizeBudget) error { removePointer(d, path); return nil }, nil
	case "default", "set":
		if err := firstErr(need("path", "value"), unused("from", "map", "expr")); err != nil {
			return nil, err
		}
		value, err := jsonvalue.DecodeAll(op.Value)
		if err != nil {
			return nil, fmt.Errorf("value: %w", err)
		}
		onlyIfAbsent := op.Op == "default"
		n, _ := jsonSize(value, math.MaxInt)
		return func(d map[string]any, budget *sizeBudget) error {
			if onlyIfAbsent {
				if v, ok := getPointer(d, path); ok && v != nil {
					return nil
				}
			}
			if err := budget.add(d, n); err != nil {
				return err
			}
			return setPointer(d, path, deepCopy(value), budget)
		}, nil
	case "mapValues":
		if err := firstErr(need("path", "map"), unused("from", "value", "expr")); err != nil {
			return nil, err
		}
		m := make(map[string]any, len(op.Map))
		largest := 0
		for k, raw := range op.Map {
			v, err := jsonvalue.DecodeAll(raw)
			if err != nil {
				return nil, fmt.Errorf("map[%q]: %w", k, err)
			}
			m[k] = v
			n, _ := jsonSize(v, math.MaxInt)
			largest = max(largest, n)
		}
		return func(d map[string]any, budget *sizeBudget) error {
			v, ok := getPointer(d, path)
			if !ok {
				return nil
			}
			if nv, ok := m[valueKey(v)]; ok {
				if err := budget.add(d, largest); err != nil {
					return err
				}
				return setPointer(d, path, deepCopy(nv), budget)
			}
			return nil
		}, nil
	case "compute":
		if err := firstErr(need("path", "expr"), unused("from", "value", "map")); err != nil {
			return nil, err
		}
		e, err := CompileExpr(op.Expr)
		if err != nil {
			return nil, err
		}
		return func(d map[string]any, budget *sizeBudget) error {
			v, err := e.Eval(d)
			if err != nil {
				return err
			}
			n, ok := jsonSize(v, budget.limit)
			if !ok {
				return budget.exceeded()
			}
			if err := budget.add(d, n); err != nil {
				return err
			}
			return setPointer(d, path, deepCopy(v), budget) // a field reference may return an object of d
		}, nil
	case "":
		return nil, fmt.Errorf(`needs "op": one of rename, move, copy, remove, default, set, mapValues, compute`)
	}
	return nil, fmt.Errorf("unknown operation %q: use rename, move, copy, remove, default, set, mapValues or compute", op.Op)
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// valueKey is how mapValues looks a value up: a string as itself, anything
// else as its JSON text.
func valueKey(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// decodeObject decodes event data: a JSON object.
func decodeObject(raw []byte) (map[string]any, error) {
	v, err := jsonvalue.DecodeAll(raw)
	if err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("event data is not a JSON object")
	}
	return m, nil
}

// truncatePointer shortens a pointer for a message.
func truncatePointer(p string) string {
	return strconv.Quote(cutText(p, 64))
}

// parsePointer splits a JSON Pointer into unescaped reference tokens. The
// whole document ("") cannot be the target of an operation.
func parsePointer(p string) ([]string, error) {
	if !strings.HasPrefix(p, "/") {
		return nil, fmt.Errorf("%q is not a JSON Pointer (it must start with /)", p)
	}
	tokens := strings.Split(p[1:], "/")
	for i, t := range tokens {
		if strings.Contains(strings.ReplaceAll(strings.ReplaceAll(t, "~0", ""), "~1", ""), "~") {
			return nil, fmt.Errorf("%q: ~ must be escaped as ~0", p)
		}
		tokens[i] = strings.ReplaceAll(strings.ReplaceAll(t, "~1", "/"), "~0", "~")
	}
	return tokens, nil
}

// isPrefix reports whether pointer a is b or an ancestor of b.
func isPrefix(a, b []string) bool {
	if len(a) > len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// arrayIndex reads a reference token as an index of arr.
func arrayIndex(tok string, arr []any) (int, bool) {
	i, err := strconv.Atoi(tok)
	if err != nil || i < 0 || i >= len(arr) || (len(tok) > 1 && tok[0] == '0') {
		return 0, false
	}
	return i, true
}

func getPointer(d map[string]any, tokens []string) (any, bool) {
	var cur any = d
	for _, t := range tokens {
		switch c := cur.(type) {
		case map[string]any:
			v, ok := c[t]
			if !ok {
				return nil, false
			}
			cur = v
		case []any:
			i, ok := arrayIndex(t, c)
			if !ok {
				return nil, false
			}
			cur = c[i]
		default:
			return nil, false
		}
	}
	return cur, true
}

// setPointer sets the value at tokens, creating missing objects on the
// way, whose size counts against budget (nil only where every object on
// the way exists). Setting inside a value that is neither object nor
// array, or at an array index that does not exist, is an error, and so is
// creating objects beyond the budget.
func setPointer(d map[string]any, tokens []string, v any, budget *sizeBudget) error {
	var cur any = d
	charged := false // for the objects from here on, which are all new
	for i, t := range tokens {
		last := i == len(tokens)-1
		switch c := cur.(type) {
		case map[string]any:
			if last {
				c[t] = v
				return nil
			}
			next, ok := c[t]
			if !ok || next == nil {
				if !charged && budget != nil {
					// Each new object is "t":{} in its parent.
					n := 0
					for _, t := range tokens[i : len(tokens)-1] {
						n += len(t) + 6
					}
					if err := budget.add(d, n); err != nil {
						return err
					}
					charged = true
				}
				next = map[string]any{}
				c[t] = next
			}
			cur = next
		case []any:
			idx, ok := arrayIndex(t, c)
			if !ok {
				return fmt.Errorf("/%s: no array element %q", strings.Join(tokens[:i], "/"), t)
			}
			if last {
				c[idx] = v
				return nil
			}
			cur = c[idx]
		default:
			return fmt.Errorf("/%s is not an object", strings.Join(tokens[:i], "/"))
		}
	}
	return nil
}

func removePointer(d map[string]any, tokens []string) {
	parentPath := tokens[:len(tokens)-1]
	parent, ok := getPointer(d, parentPath)
	if !ok {
		return
	}
	last := tokens[len(tokens)-1]
	switch p := parent.(type) {
	case map[string]any:
		delete(p, last)
	case []any:
		// Like JSON Patch: the elements after it shift down.
		if i, ok := arrayIndex(last, p); ok {
			_ = setPointer(d, parentPath, append(p[:i:i], p[i+1:]...), nil) // the parent exists
		}
	}
}

func deepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = deepCopy(e)
		}
		return m
	case []any:
		s := make([]any, len(x))
		for i, e := range x {
			s[i] = deepCopy(e)
		}
		return s
	}
	return v
}
