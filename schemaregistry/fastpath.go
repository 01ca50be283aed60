package schemaregistry

import (
	"encoding/json"
	"math/big"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/xeipuuv/gojsonschema"
)

// fastSchema is a schema (or a part of one) compiled for the fast path of
// validation: a check that an event's data is valid, without gojsonschema,
// for schemas written with the keywords event schemas mostly use (type,
// properties, required, additionalProperties, items, enum of strings,
// bounds on numbers, lengths and counts, pattern and format of strings).
//
// It only ever says "valid" when gojsonschema would: each keyword keeps
// gojsonschema's (v1.2.0) meaning, exactly (numbers are compared as exact
// rationals, lengths count runes, formats are gojsonschema's checkers).
// When it cannot say, or the data is invalid, validate asks gojsonschema,
// which gives the verdict and the problems. A schema with any other
// keyword anywhere ($ref, allOf, const, multipleOf, ...) has no fast path.
type fastSchema struct {
	pass *bool // a boolean schema: true accepts anything, false nothing

	types    uint8 // typeBits accepted; 0: any
	props    map[string]*fastSchema
	required []string
	// additionalProperties: nil when absent (anything), else a schema
	// (a boolean one for true and false).
	additional *fastSchema
	items      *fastSchema // one schema for every element (not a tuple)

	minProps, maxProps int // -1: none
	minItems, maxItems int
	minLen, maxLen     int

	pattern *regexp.Regexp
	format  string              // "": none
	enum    map[string]struct{} // strings only; nil: none

	min, max, exMin, exMax *limit
}

const (
	typeNull uint8 = 1 << iota
	typeBoolean
	typeInteger
	typeNumber
	typeString
	typeArray
	typeObject
)

var typeBits = map[string]uint8{
	"null": typeNull, "boolean": typeBoolean, "integer": typeInteger, "number": typeNumber,
	"string": typeString, "array": typeArray, "object": typeObject,
}

// limit is a numeric bound of a schema: exact, and as an int64 when it is
// an integer that fits, for the comparison of the usual integer data.
type limit struct {
	rat   *big.Rat
	small int64
	isInt bool // small holds it
}

// annotations are keywords that do not take part in validation.
var annotations = map[string]bool{
	"$schema": true, "$id": true, "$comment": true, "title": true, "description": true,
	"default": true, "examples": true, "readOnly": true, "writeOnly": true,
	"contentMediaType": true, "contentEncoding": true,
}

// compileFast compiles a decoded (UseNumber) schema for the fast path; nil
// when it uses a keyword the fast path does not know.
func compileFast(node any) *fastSchema {
	if b, ok := node.(bool); ok {
		return &fastSchema{pass: &b}
	}
	m, ok := node.(map[string]any)
	if !ok {
		return nil
	}
	f := &fastSchema{minProps: -1, maxProps: -1, minItems: -1, maxItems: -1, minLen: -1, maxLen: -1}
	for k, v := range m {
		if annotations[k] {
			continue
		}
		ok := true
		switch k {
		case "type":
			ok = f.compileType(v)
		case "properties":
			ok = f.compileProperties(v)
		case "required":
			f.required, ok = stringList(v)
		case "additionalProperties":
			f.additional = compileFast(v)
			ok = f.additional != nil
		case "items":
			if _, tuple := v.([]any); !tuple {
				f.items = compileFast(v)
				ok = f.items != nil
			} else {
				ok = false
			}
		case "enum":
			ok = f.compileEnum(v)
		case "pattern":
			s, isString := v.(string)
			var err error
			f.pattern, err = regexp.Compile(s)
			ok = isString && err == nil
		case "format":
			f.format, ok = v.(string)
		default:
			if l := f.limits()[k]; l != nil {
				*l, ok = compileLimit(v)
			} else if c := f.counts()[k]; c != nil {
				*c, ok = count(v)
			} else {
				ok = false
			}
		}
		if !ok {
			return nil
		}
	}
	return f
}

// limits are f's numeric bounds by keyword.
func (f *fastSchema) limits() map[string]**limit {
	return map[string]**limit{"minimum": &f.min, "maximum": &f.max, "exclusiveMinimum": &f.exMin, "exclusiveMaximum": &f.exMax}
}

// counts are f's bounds on lengths and counts by keyword.
func (f *fastSchema) counts() map[string]*int {
	return map[string]*int{"minLength": &f.minLen, "maxLength": &f.maxLen, "minItems": &f.minItems,
		"maxItems": &f.maxItems, "minProperties": &f.minProps, "maxProperties": &f.maxProps}
}

func (f *fastSchema) compileType(v any) bool {
	names := []any{v}
	if list, isList := v.([]any); isList {
		names = list
	}
	for _, n := range names {
		s, _ := n.(string)
		bit, known := typeBits[s]
		if !known {
			return false
		}
		f.types |= bit
	}
	return f.types != 0
}

func (f *fastSchema) compileProperties(v any) bool {
	m, ok := v.(map[string]any)
	if !ok {
		return false
	}
	f.props = make(map[string]*fastSchema, len(m))
	for name, s := range m {
		if f.props[name] = compileFast(s); f.props[name] == nil {
			return false
		}
	}
	return true
}

func (f *fastSchema) compileEnum(v any) bool {
	list, ok := v.([]any)
	if !ok || len(list) == 0 {
		return false
	}
	f.enum = make(map[string]struct{}, len(list))
	for _, e := range list {
		s, isString := e.(string)
		if !isString {
			return false
		}
		f.enum[s] = struct{}{}
	}
	return true
}

func stringList(v any) ([]string, bool) {
	list, ok := v.([]any)
	if !ok {
		return nil, false
	}
	out := make([]string, len(list))
	for i, e := range list {
		if out[i], ok = e.(string); !ok {
			return nil, false
		}
	}
	return out, true
}

// count is a non-negative integer keyword (minLength, maxItems, ...).
func count(v any) (int, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(string(n))
	return i, err == nil && i >= 0
}

func compileLimit(v any) (*limit, bool) {
	r := number(v) // as compatibility checks read bounds
	if r == nil {
		return nil, false
	}
	b := &limit{rat: r}
	if r.IsInt() && r.Num().IsInt64() {
		b.small, b.isInt = r.Num().Int64(), true
	}
	return b, true
}

// valid reports whether v (a document decoded with UseNumber) is valid
// against f for certain; false when it is not, or when only gojsonschema
// can tell.
func (f *fastSchema) valid(v any) bool {
	if f.pass != nil {
		return *f.pass
	}
	switch x := v.(type) {
	case nil:
		return f.accepts(typeNull) && f.enum == nil
	case bool:
		return f.accepts(typeBoolean) && f.enum == nil
	case json.Number:
		return f.validNumber(x)
	case string:
		return f.accepts(typeString) && f.validString(x)
	case []any:
		return f.accepts(typeArray) && f.enum == nil && f.validArray(x)
	case map[string]any:
		return f.accepts(typeObject) && f.enum == nil && f.validObject(x)
	}
	return false
}

func (f *fastSchema) accepts(t uint8) bool { return f.types == 0 || f.types&t != 0 }

// plainInt reports whether a JSON number's text is an integer without a
// fraction or an exponent.
func plainInt(n json.Number) bool { return !strings.ContainsAny(string(n), ".eE") }

func (f *fastSchema) validNumber(n json.Number) bool {
	if f.enum != nil || f.format != "" {
		return false // gojsonschema compares (and checks the format of) numbers its own way
	}
	plain := plainInt(n)
	var rat *big.Rat // n exactly, once needed
	exact := func() bool {
		if rat == nil {
			rat, _ = new(big.Rat).SetString(string(n)) // nil when it cannot be read
		}
		return rat != nil
	}
	if f.types != 0 && f.types&typeNumber == 0 {
		// 1.0 and 1e2 are integers to gojsonschema.
		if f.types&typeInteger == 0 || !plain && (!exact() || !rat.IsInt()) {
			return false
		}
	}
	if f.min == nil && f.max == nil && f.exMin == nil && f.exMax == nil {
		return true
	}
	var (
		small    int64
		smallErr error = strconv.ErrSyntax
	)
	if plain {
		small, smallErr = strconv.ParseInt(string(n), 10, 64)
	}
	cmp := func(b *limit) int {
		if smallErr == nil && b.isInt {
			switch {
			case small < b.small:
				return -1
			case small > b.small:
				return 1
			}
			return 0
		}
		if !exact() {
			return 2 // not comparable: never valid here
		}
		return rat.Cmp(b.rat)
	}
	if f.min != nil && !in(cmp(f.min), 0, 1) ||
		f.max != nil && !in(cmp(f.max), -1, 0) ||
		f.exMin != nil && cmp(f.exMin) != 1 ||
		f.exMax != nil && cmp(f.exMax) != -1 {
		return false
	}
	return true
}

func in(c, a, b int) bool { return c == a || c == b }

func (f *fastSchema) validString(s string) bool {
	if f.enum != nil {
		if _, ok := f.enum[s]; !ok {
			return false
		}
	}
	if f.minLen >= 0 || f.maxLen >= 0 {
		n := utf8.RuneCountInString(s)
		if f.minLen >= 0 && n < f.minLen || f.maxLen >= 0 && n > f.maxLen {
			return false
		}
	}
	if f.pattern != nil && !f.pattern.MatchString(s) {
		return false
	}
	switch f.format {
	case "":
		return true
	case "date-time":
		return isDateTime(s)
	default:
		return gojsonschema.FormatCheckers.IsFormat(f.format, s)
	}
}

// dateTimeLayouts are the layouts gojsonschema's date-time checker accepts
// (any one of them), the usual ones first.
var dateTimeLayouts = []string{time.RFC3339, time.RFC3339Nano, "15:04:05", "15:04:05Z07:00", "2006-01-02"}

// isDateTime is gojsonschema's date-time format checker, trying RFC 3339
// first: a timestamp is then parsed once rather than failing three
// layouts first.
func isDateTime(s string) bool {
	for _, layout := range dateTimeLayouts {
		if _, err := time.Parse(layout, s); err == nil {
			return true
		}
	}
	return false
}

func (f *fastSchema) validArray(a []any) bool {
	if f.minItems >= 0 && len(a) < f.minItems || f.maxItems >= 0 && len(a) > f.maxItems {
		return false
	}
	if f.items != nil {
		for _, e := range a {
			if !f.items.valid(e) {
				return false
			}
		}
	}
	return true
}

func (f *fastSchema) validObject(m map[string]any) bool {
	if f.minProps >= 0 && len(m) < f.minProps || f.maxProps >= 0 && len(m) > f.maxProps {
		return false
	}
	for _, r := range f.required {
		if _, ok := m[r]; !ok {
			return false
		}
	}
	for k, v := range m {
		if s, ok := f.props[k]; ok {
			if !s.valid(v) {
				return false
			}
		} else if f.additional != nil && !f.additional.valid(v) {
			return false
		}
	}
	return true
}
