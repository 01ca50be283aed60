package schemaregistry

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/big"
	"regexp"
	"slices"
	"sort"
	"strings"

	"cqrsgate/internal/jsonvalue"
)

// Mode is a compatibility mode of an event type.
type Mode string

// The compatibility modes, as established schema registries name them.
const (
	Backward           Mode = "BACKWARD"            // the new version reads data written with the previous one
	BackwardTransitive Mode = "BACKWARD_TRANSITIVE" // ... with every earlier version
	Forward            Mode = "FORWARD"             // the previous version reads data written with the new one
	ForwardTransitive  Mode = "FORWARD_TRANSITIVE"  // every earlier version reads data written with the new one
	Full               Mode = "FULL"                // both, with the previous version
	FullTransitive     Mode = "FULL_TRANSITIVE"     // both, with every earlier version
	None               Mode = "NONE"                // no structural check
)

var modes = []Mode{Backward, BackwardTransitive, Forward, ForwardTransitive, Full, FullTransitive, None}

// ParseMode reads a mode name (case-insensitive).
func ParseMode(s string) (Mode, error) {
	m := Mode(strings.ToUpper(strings.TrimSpace(s)))
	if slices.Contains(modes, m) {
		return m, nil
	}
	names := make([]string, len(modes))
	for i, m := range modes {
		names[i] = string(m)
	}
	return "", fmt.Errorf("unknown compatibility mode %q: use %s", s, strings.Join(names, ", "))
}

func (m Mode) backward() bool {
	return m == Backward || m == BackwardTransitive || m == Full || m == FullTransitive
}

func (m Mode) forward() bool {
	return m == Forward || m == ForwardTransitive || m == Full || m == FullTransitive
}

func (m Mode) transitive() bool {
	return m == BackwardTransitive || m == ForwardTransitive || m == FullTransitive
}

// Incompatibility is one reason a schema change is not compatible.
type Incompatibility struct {
	// Version is the earlier version the new schema was compared with.
	Version int `json:"version"`
	// Direction is "BACKWARD" (the new schema reading data of Version) or
	// "FORWARD" (Version reading data of the new schema).
	Direction string `json:"direction"`
	// Path is a JSON Pointer into the data ("" for the root; "/*" stands for
	// every array element or additional property).
	Path string `json:"path"`
	// Reason says what changed.
	Reason string `json:"reason"`
}

// CheckCompatibility checks schema next against the earlier versions
// previous (previous[0] is version 1; next would be version
// len(previous)+1) under mode. Non-transitive modes compare with the
// latest version only. The BACKWARD direction is not checked for the
// versions in skipBackward: their data is transformed by a migration on
// its way to next (the registry replays it instead). Schemas are decoded
// JSON. The result is nil when compatible, otherwise sorted by version,
// direction and path.
//
// The rules are structural and conservative: a writer schema W is readable
// by a reader schema R when every instance valid under W is valid under R.
// Types may widen (integer to number), enums gain values, bounds loosen,
// and required properties become optional, in the reading direction; a
// closed content model (additionalProperties: false) may gain optional
// properties that an open one may not (an open writer may already carry
// them with any value); a property the reader requires must be required by
// the writer. A $ref stands for the schema it names in its own document
// (its sibling keywords are ignored, as gojsonschema ignores them).
// Keywords the rules do not understand (allOf, anyOf, oneOf, not,
// if/then/else, patternProperties, unknown keywords, ...) must be
// unchanged in the reader.
//
// The rules model the validator the registry runs (gojsonschema v1.2.0,
// draft-07) where it departs from the specification: const and enum
// compare values as float64 (so an enum value 1 also matches
// 1.00000000000000000001), an empty enum allows everything, and format
// applies to numbers too (a format it knows rejects every number).
func CheckCompatibility(mode Mode, previous []any, next any, skipBackward map[int]bool) []Incompatibility {
	if mode == None || len(previous) == 0 {
		return nil
	}
	first := len(previous)
	if mode.transitive() {
		first = 1
	}
	var out []Incompatibility
	for v := first; v <= len(previous); v++ {
		if mode.backward() && !skipBackward[v] {
			for _, in := range Subsumes(previous[v-1], next) {
				in.Version, in.Direction = v, "BACKWARD"
				out = append(out, in)
			}
		}
		if mode.forward() {
			for _, in := range Subsumes(next, previous[v-1]) {
				in.Version, in.Direction = v, "FORWARD"
				out = append(out, in)
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Version != b.Version {
			return a.Version < b.Version
		}
		if a.Direction != b.Direction {
			return a.Direction < b.Direction
		}
		return a.Path < b.Path
	})
	return out
}

// Subsumes reports the reasons why an instance valid under writer may be
// invalid under reader; nil means every instance valid under writer is
// valid under reader. Both are whole schema documents: a $ref resolves in
// the document it appears in.
func Subsumes(writer, reader any) []Incompatibility {
	c := &comparer{w: &document{root: writer}, r: &document{root: reader}, seen: map[[2]string]bool{}}
	c.schema(schemaNode{v: writer}, schemaNode{v: reader}, "", 0)
	return c.out
}

// comparer compares a writer schema with a reader schema.
type comparer struct {
	w, r *document
	// seen holds the pairs of schema locations compared or being compared.
	// A recursive schema is compared once per pair, assuming the pair
	// compatible meanwhile; that is sound because every cycle through a
	// $ref reads one level deeper into the data (resolve refuses the
	// others).
	seen map[[2]string]bool
	out  []Incompatibility
}

func (c *comparer) add(path, format string, args ...any) {
	c.out = append(c.out, Incompatibility{Path: path, Reason: fmt.Sprintf(format, args...)})
}

// schemaNode is a schema (a map or a bool) and where it is in its document.
type schemaNode struct {
	v   any
	loc string // a JSON Pointer into the document, or impliedLoc
}

// impliedLoc locates the schema true that an absent keyword
// (additionalProperties, items) stands for; it is no JSON Pointer, and
// every such schema is the same.
const impliedLoc = "true"

var implied = schemaNode{v: true, loc: impliedLoc}

// member returns the schema under keyword k of n (whose map is m), or
// true when there is none.
func member(n schemaNode, m map[string]any, k string) schemaNode {
	if v, ok := m[k]; ok {
		return schemaNode{v: v, loc: n.loc + "/" + escapePointer(k)}
	}
	return implied
}

// opaque keywords are compared for equality only (with any $ref in them
// resolving to equal schemas).
var opaque = []string{"allOf", "anyOf", "oneOf", "not", "if", "then", "else", "dependencies",
	"patternProperties", "propertyNames", "contains", "additionalItems"}

// understood are the keywords the rules reason about; with opaque and
// annotation, they are every keyword gojsonschema acts on for draft-07.
var understood = map[string]bool{"$ref": true, "type": true, "enum": true, "const": true,
	"multipleOf": true, "minimum": true, "maximum": true, "exclusiveMinimum": true, "exclusiveMaximum": true,
	"minLength": true, "maxLength": true, "pattern": true, "format": true,
	"items": true, "minItems": true, "maxItems": true, "uniqueItems": true,
	"properties": true, "additionalProperties": true, "required": true, "minProperties": true, "maxProperties": true}

// numeric keywords take a number, read exactly with number.
var numeric = []string{"multipleOf", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
	"minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties"}

const maxDepth = 64

func (c *comparer) schema(w, r schemaNode, path string, depth int) {
	if depth > maxDepth {
		c.add(path, "cannot prove compatible: the schema nests too deeply")
		return
	}
	var err error
	if w, err = c.w.resolve(w); err != nil {
		c.add(path, "cannot prove compatible: the writer's %v", err)
		return
	}
	if r, err = c.r.resolve(r); err != nil {
		c.add(path, "cannot prove compatible: the reader's %v", err)
		return
	}
	pair := [2]string{w.loc, r.loc}
	if c.seen[pair] {
		return
	}
	c.seen[pair] = true
	wb, wIsBool := w.v.(bool)
	rb, rIsBool := r.v.(bool)
	rm, _ := r.v.(map[string]any)
	wm, _ := w.v.(map[string]any)
	switch {
	case rIsBool && rb, !rIsBool && rm != nil && acceptsAll(rm):
		return // the reader accepts everything
	case wIsBool && !wb:
		return // the writer writes nothing
	case rIsBool && !rb:
		c.add(path, "the reader accepts nothing here")
		return
	case wIsBool && wb:
		wm = map[string]any{}
	}
	if wm == nil || rm == nil {
		c.add(path, "cannot prove compatible: not a schema")
		return
	}
	c.unchanged(wm, rm, path)
	wv, err := valuesOf(wm)
	if err != nil {
		wv = valueSet{} // gojsonschema refuses the schema; assume no restriction
	}
	rv, err := valuesOf(rm)
	if err != nil {
		c.add(path, "cannot prove compatible: %v", err)
	}
	wt, rt := typesOf(wm), typesOf(rm)
	c.types(wt, rt, wv, path)
	c.enum(wv, rv, path)
	if mayBe(wt, "number") && mayBe(rt, "number") {
		c.numbers(wm, rm, path)
	}
	if mayBe(wt, "string") && mayBe(rt, "string") {
		c.lower(wm, rm, "minLength", path, "minimum length")
		c.upper(wm, rm, "maxLength", path, "maximum length")
		c.same(wm, rm, "pattern", path)
	}
	// gojsonschema checks format on numbers as well as strings (and a
	// format it knows rejects every number).
	if (mayBe(wt, "string") || mayBe(wt, "number")) && (mayBe(rt, "string") || mayBe(rt, "number")) {
		c.same(wm, rm, "format", path)
	}
	if mayBe(wt, "array") && mayBe(rt, "array") {
		c.lower(wm, rm, "minItems", path, "minimum number of items")
		c.upper(wm, rm, "maxItems", path, "maximum number of items")
		if rm["uniqueItems"] == true && wm["uniqueItems"] != true {
			c.add(path, "the reader requires unique items")
		}
		_, wTuple := wm["items"].([]any)
		_, rTuple := rm["items"].([]any)
		if !wTuple && !rTuple {
			c.schema(member(w, wm, "items"), member(r, rm, "items"), path+"/*", depth+1)
		}
	}
	if mayBe(wt, "object") && mayBe(rt, "object") {
		c.object(w, r, wm, rm, path, depth)
	}
}

// unchanged checks what the rules only compare for equality: opaque
// keywords, keywords of the reader the rules do not know, numbers they
// cannot read, and tuples of items.
func (c *comparer) unchanged(wm, rm map[string]any, path string) {
	for _, k := range opaque {
		wv, wok := wm[k]
		rv, rok := rm[k]
		if (wok || rok) && (wok != rok || !c.sameMeaning(wv, rv)) {
			c.add(path, "cannot prove compatible: %s differs", k)
		}
	}
	for _, k := range sortedKeys(rm) {
		if understood[k] || annotation[k] || slices.Contains(opaque, k) {
			continue
		}
		if wv, ok := wm[k]; !ok || !c.sameMeaning(wv, rm[k]) {
			c.add(path, "cannot prove compatible: %s (a keyword the rules do not know) differs", k)
		}
	}
	for _, k := range numeric {
		if rv, ok := rm[k]; ok && number(rv) == nil {
			if wv, ok := wm[k]; !ok || !jsonvalue.Equal(wv, rv) {
				c.add(path, "cannot prove compatible: %s %s is not a number the rules can read", k, show(rv))
			}
		}
	}
	if items, ok := wm["items"].([]any); ok && !c.sameMeaning(items, rm["items"]) {
		c.add(path, "cannot prove compatible: items (a tuple) differs")
	} else if items, ok := rm["items"].([]any); ok && !c.sameMeaning(items, wm["items"]) {
		c.add(path, "cannot prove compatible: items (a tuple) differs")
	}
}

// acceptsAll reports a schema without any constraint.
func acceptsAll(m map[string]any) bool {
	for k := range m {
		if !annotation[k] {
			return false
		}
	}
	return true
}

// annotation keywords constrain nothing: gojsonschema ignores them
// (definitions, and $defs as later drafts name them, matter only through
// a $ref, which is resolved).
var annotation = map[string]bool{"title": true, "description": true, "default": true, "examples": true, "$comment": true,
	"$schema": true, "$id": true, "readOnly": true, "writeOnly": true, "deprecated": true, "definitions": true, "$defs": true,
	"contentMediaType": true, "contentEncoding": true}

// typesOf returns the schema's types (nil: any type).
func typesOf(m map[string]any) []string {
	switch t := m["type"].(type) {
	case string:
		return []string{t}
	case []any:
		var out []string
		for _, x := range t {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// mayBe reports whether a node of types ts may hold a value of kind (a
// "number" kind includes integers).
func mayBe(ts []string, kind string) bool {
	if ts == nil {
		return true
	}
	for _, t := range ts {
		if t == kind || kind == "number" && t == "integer" {
			return true
		}
	}
	return false
}

func allows(rt []string, t string) bool {
	return rt == nil || slices.Contains(rt, t) || t == "integer" && slices.Contains(rt, "number")
}

func (c *comparer) types(wt, rt []string, wv valueSet, path string) {
	if rt == nil {
		return
	}
	if wt == nil {
		// The writer allows any type, unless const or enum say otherwise.
		if !wv.restricted {
			c.add(path, "the reader restricts the type to %s; the writer allows any", strings.Join(rt, " or "))
			return
		}
		for i, text := range wv.texts {
			var v any
			if err := json.Unmarshal([]byte(text), &v); err != nil {
				c.add(path, "cannot prove compatible: value %s: %v", show(wv.values[i]), err)
				continue
			}
			switch t := jsonType(v); {
			case !allows(rt, t):
				c.add(path, "the writer's value %s is a %s, which the reader does not allow", show(wv.values[i]), t)
			case t == "integer" && !allows(rt, "number"):
				c.add(path, "the writer's value %s also matches non-integer numbers (gojsonschema compares them as float64), which the reader does not allow", show(wv.values[i]))
			}
		}
		return
	}
	for _, t := range wt {
		if allows(rt, t) {
			continue
		}
		if t == "number" && slices.Contains(rt, "integer") {
			c.add(path, "type narrowed from number to integer")
		} else {
			c.add(path, "type %s is no longer allowed (the reader allows %s)", t, strings.Join(rt, " or "))
		}
	}
}

// valueSet is what const and enum restrict a schema's instances to.
type valueSet struct {
	restricted bool
	values     []any    // the values, one for each text
	texts      []string // their JSON text, as gojsonschema compares them
}

// valuesOf returns the values a schema's const and enum allow, as
// gojsonschema reads them: both apply, an empty enum allows everything,
// and values compare by valueText.
func valuesOf(m map[string]any) (valueSet, error) {
	s := valueSet{values: []any{}}
	if v, ok := m["const"]; ok {
		text, err := valueText(v)
		if err != nil {
			return valueSet{}, err
		}
		s = valueSet{restricted: true, values: []any{v}, texts: []string{text}}
	}
	enum, _ := m["enum"].([]any)
	if len(enum) == 0 {
		return s, nil
	}
	e := valueSet{restricted: true, values: []any{}}
	for _, v := range enum {
		text, err := valueText(v)
		if err != nil {
			return valueSet{}, err
		}
		if slices.Contains(e.texts, text) || s.restricted && !slices.Contains(s.texts, text) {
			continue
		}
		e.values, e.texts = append(e.values, v), append(e.texts, text)
	}
	return e, nil
}

// valueText is the text gojsonschema compares a value by: its JSON after
// a round trip through float64 numbers.
func valueText(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("value %s: %v", show(v), err)
	}
	var f any
	if err := json.Unmarshal(b, &f); err != nil {
		return "", fmt.Errorf("value %s: %v", show(v), err)
	}
	if b, err = json.Marshal(f); err != nil {
		return "", fmt.Errorf("value %s: %v", show(v), err)
	}
	return string(b), nil
}

func (c *comparer) enum(wv, rv valueSet, path string) {
	if !rv.restricted {
		return
	}
	if !wv.restricted {
		c.add(path, "the reader restricts the values to %s; the writer does not", show(rv.values))
		return
	}
	for i, text := range wv.texts {
		if !slices.Contains(rv.texts, text) {
			c.add(path, "value %s is no longer allowed", show(wv.values[i]))
		}
	}
}

// bound is a numeric bound, exclusive or not.
type bound struct {
	v         *big.Rat
	exclusive bool
}

func lowerBound(m map[string]any) *bound {
	var b *bound
	if v := number(m["minimum"]); v != nil {
		b = &bound{v: v}
	}
	if v := number(m["exclusiveMinimum"]); v != nil && (b == nil || v.Cmp(b.v) >= 0) {
		b = &bound{v: v, exclusive: true}
	}
	return b
}

func upperBound(m map[string]any) *bound {
	var b *bound
	if v := number(m["maximum"]); v != nil {
		b = &bound{v: v}
	}
	if v := number(m["exclusiveMaximum"]); v != nil && (b == nil || v.Cmp(b.v) <= 0) {
		b = &bound{v: v, exclusive: true}
	}
	return b
}

func (b *bound) String() string {
	if b.exclusive {
		return "exclusive " + b.v.RatString()
	}
	return b.v.RatString()
}

func (c *comparer) numbers(wm, rm map[string]any, path string) {
	if rl := lowerBound(rm); rl != nil {
		wl := lowerBound(wm)
		switch cmp := 0; {
		case wl == nil:
			c.add(path, "the reader sets a minimum (%s) that the writer does not", rl)
		default:
			cmp = wl.v.Cmp(rl.v)
			if cmp < 0 || cmp == 0 && rl.exclusive && !wl.exclusive {
				c.add(path, "minimum raised from %s to %s", wl, rl)
			}
		}
	}
	if ru := upperBound(rm); ru != nil {
		wu := upperBound(wm)
		switch cmp := 0; {
		case wu == nil:
			c.add(path, "the reader sets a maximum (%s) that the writer does not", ru)
		default:
			cmp = wu.v.Cmp(ru.v)
			if cmp > 0 || cmp == 0 && ru.exclusive && !wu.exclusive {
				c.add(path, "maximum lowered from %s to %s", wu, ru)
			}
		}
	}
	if rmul := number(rm["multipleOf"]); rmul != nil && rmul.Sign() > 0 {
		wmul := number(wm["multipleOf"])
		if wmul == nil || !new(big.Rat).Quo(wmul, rmul).IsInt() {
			c.add(path, "the reader requires multiples of %s", rmul.RatString())
		}
	}
}

// lower checks a lower-bound keyword (minLength, minItems, minProperties).
func (c *comparer) lower(wm, rm map[string]any, k, path, what string) {
	r := number(rm[k])
	if r == nil {
		return
	}
	if w := number(wm[k]); w == nil || w.Cmp(r) < 0 {
		c.add(path, "%s raised from %s to %s", what, ratOr(w, "none"), r.RatString())
	}
}

// upper checks an upper-bound keyword (maxLength, maxItems, maxProperties).
func (c *comparer) upper(wm, rm map[string]any, k, path, what string) {
	r := number(rm[k])
	if r == nil {
		return
	}
	if w := number(wm[k]); w == nil || w.Cmp(r) > 0 {
		c.add(path, "%s lowered from %s to %s", what, ratOr(w, "none"), r.RatString())
	}
}

func ratOr(r *big.Rat, none string) string {
	if r == nil {
		return none
	}
	return r.RatString()
}

func (c *comparer) same(wm, rm map[string]any, k, path string) {
	r, ok := rm[k]
	if ok && !jsonvalue.Equal(wm[k], r) {
		if w, ok := wm[k]; ok {
			c.add(path, "%s changed from %s to %s", k, show(w), show(r))
		} else {
			c.add(path, "the reader adds %s %s", k, show(r))
		}
	}
}

func (c *comparer) object(w, r schemaNode, wm, rm map[string]any, path string, depth int) {
	wReq, rReq := stringSet(wm["required"]), stringSet(rm["required"])
	for _, name := range sortedKeys(rReq) {
		if !wReq[name] {
			c.add(path+"/"+escapePointer(name), "property %q is required by the reader but may be missing in data of the writer", name)
		}
	}
	wPatterns, err := patterns(wm)
	if err != nil {
		c.add(path, "cannot prove compatible: the writer's %v", err)
		return
	}
	rPatterns, err := patterns(rm)
	if err != nil {
		c.add(path, "cannot prove compatible: the reader's %v", err)
		return
	}
	wProps, _ := wm["properties"].(map[string]any)
	rProps, _ := rm["properties"].(map[string]any)
	wAdd, rAdd := member(w, wm, "additionalProperties"), member(r, rm, "additionalProperties")
	names := map[string]bool{}
	for n := range wProps {
		names[n] = true
	}
	for n := range rProps {
		names[n] = true
	}
	for _, name := range sortedKeys(names) {
		ws, ok := property(w, wProps, name)
		if !ok {
			ws = unnamed(w, wm, wPatterns, name, true)
		}
		if b, ok := ws.v.(bool); ok && !b {
			continue // the writer never writes it
		}
		rs, ok := property(r, rProps, name)
		if !ok {
			rs = unnamed(r, rm, rPatterns, name, false)
			if b, ok := rs.v.(bool); ok && !b {
				c.add(path+"/"+escapePointer(name), "property %q is not allowed by the reader", name)
				continue
			}
		}
		c.schema(ws, rs, path+"/"+escapePointer(name), depth+1)
	}
	// Properties neither names (nor patternProperties, which are the same
	// on both sides or reported).
	if b, ok := wAdd.v.(bool); !ok || b {
		if b, ok := rAdd.v.(bool); ok && !b {
			c.add(path, "the reader refuses additional properties the writer allows")
		} else {
			before := len(c.out)
			c.schema(wAdd, rAdd, path+"/*", depth+1)
			for i := before; i < len(c.out); i++ {
				c.out[i].Reason = "additional properties: " + c.out[i].Reason
			}
		}
	}
	c.lower(wm, rm, "minProperties", path, "minimum number of properties")
	c.upper(wm, rm, "maxProperties", path, "maximum number of properties")
}

// property returns the schema properties (the map of n) gives name.
func property(n schemaNode, properties map[string]any, name string) (schemaNode, bool) {
	v, ok := properties[name]
	return schemaNode{v: v, loc: n.loc + "/properties/" + escapePointer(name)}, ok
}

// unnamed returns a schema that holds for property name of n when
// properties does not name it: gojsonschema applies the schemas of the
// patternProperties that match the name, or additionalProperties when none
// does. Of several matches, the first is enough for a writer (its data
// meets them all); a reader gets true, since the writer has the same
// patternProperties (compared as an opaque keyword) and its data meets
// them.
func unnamed(n schemaNode, m map[string]any, patterns []*regexp.Regexp, name string, writer bool) schemaNode {
	for _, p := range patterns {
		if !p.MatchString(name) {
			continue
		}
		if !writer {
			return implied
		}
		pp := member(n, m, "patternProperties")
		return schemaNode{v: pp.v.(map[string]any)[p.String()], loc: pp.loc + "/" + escapePointer(p.String())}
	}
	return member(n, m, "additionalProperties")
}

// patterns compiles the patterns of a schema's patternProperties, in the
// order of their text.
func patterns(m map[string]any) ([]*regexp.Regexp, error) {
	pp, _ := m["patternProperties"].(map[string]any)
	var out []*regexp.Regexp
	for _, p := range sortedKeys(pp) {
		re, err := regexp.Compile(p)
		if err != nil {
			return nil, fmt.Errorf("patternProperties has an invalid pattern %q", p)
		}
		out = append(out, re)
	}
	return out, nil
}

func stringSet(v any) map[string]bool {
	out := map[string]bool{}
	if list, ok := v.([]any); ok {
		for _, x := range list {
			if s, ok := x.(string); ok {
				out[s] = true
			}
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

// number reads a JSON number (json.Number or float64) exactly.
func number(v any) *big.Rat {
	var s string
	switch n := v.(type) {
	case json.Number:
		s = n.String()
	case float64:
		r := new(big.Rat)
		if r.SetFloat64(n) == nil {
			return nil
		}
		return r
	case int:
		return new(big.Rat).SetInt64(int64(n))
	case int64:
		return new(big.Rat).SetInt64(n)
	default:
		return nil
	}
	if len(s) > 400 {
		return nil // absurd exponents would cost too much
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return nil
	}
	return r
}

func jsonType(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	default:
		if r := number(x); r != nil && r.IsInt() {
			return "integer"
		}
		return "number"
	}
}

func show(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return cutText(string(b), 80)
}
