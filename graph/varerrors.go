package graph

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"cqrsgate/graph/model"
)

// explainVariable rewrites, in the client's terms, the message of the
// error with which gqlparser's check of an operation's variables
// (validator.VariableValues, which gqlgen runs for every operation)
// refused a value of the wrong kind for a built-in scalar or an input
// object. gqlparser names Go's kinds and, for a number an Int cannot take,
// the zero it failed to read it as: 1.5 for an Int was "cannot use value 0
// as Int" in a variable of its own and "cannot use string as Int" inside an
// input object or a list (the transports keep numbers as json.Number). Now
// it is `variable "amount": 1.5 is not an integer`, `variable "input" at
// quantity: ...`, `variable "events" at [3].version: ...`. The code
// (GRAPHQL_VALIDATION_FAILED) and the path stay gqlparser's, and so does
// every other error (a missing or null value, an unknown field, an enum's).
//
// errs are CreateOperationContext's: rc.Variables is nil when the check of
// variables failed (the operation's extensions, which run after it, see
// them checked); vars are the variables it checked.
func explainVariable(schema *ast.Schema, rc *graphql.OperationContext, vars map[string]any, errs gqlerror.List) {
	if schema == nil || rc == nil || rc.Operation == nil || rc.Variables != nil || len(errs) != 1 {
		return
	}
	err := errs[0]
	if len(err.Path) < 2 || err.Path[0] != ast.PathName("variable") {
		return
	}
	name, ok := err.Path[1].(ast.PathName)
	if !ok {
		return
	}
	def := rc.Operation.VariableDefinitions.ForName(string(name))
	if def == nil {
		return
	}
	v, present := vars[string(name)]
	if !present {
		return // its default, which the document's validation checked
	}
	typ := def.Type
	for _, el := range err.Path[2:] {
		switch el := el.(type) {
		case ast.PathIndex:
			if typ.Elem == nil {
				return
			}
			if list, isList := v.([]any); isList {
				if int(el) >= len(list) {
					return
				}
				v = list[el]
			} else if el != 0 {
				return // gqlparser makes a single value a list of one
			}
			typ = typ.Elem
		case ast.PathName:
			obj := schema.Types[typ.Name()]
			m, isObject := v.(map[string]any)
			if typ.Elem != nil || obj == nil || obj.Kind != ast.InputObject || !isObject {
				return
			}
			f := obj.Fields.ForName(string(el))
			if f == nil {
				return
			}
			if v, present = m[string(el)]; !present {
				return
			}
			typ = f.Type
		default:
			return
		}
	}
	if v == nil || typ.Elem != nil {
		return
	}
	t := schema.Types[typ.NamedType]
	if t == nil {
		return
	}
	var why string
	switch t.Kind {
	case ast.Scalar:
		why = scalarMismatch(typ.NamedType, v)
	case ast.InputObject:
		if _, isObject := v.(map[string]any); !isObject {
			why = fmt.Sprintf("a %s is an object, not %s", t.Name, kindOf(v))
		}
	}
	if why == "" {
		return
	}
	err.Message = fmt.Sprintf("variable %q%s: %s", name, pathWithin(err.Path[2:]), why)
}

// scalarMismatch says why gqlparser refused v for the built-in scalar
// named typ, or "" when it would not have (custom scalars check their
// values themselves, and answer VALIDATION).
func scalarMismatch(typ string, v any) string {
	switch typ {
	case "Int":
		return model.NotAnInteger(v)
	case "Float":
		switch x := v.(type) {
		case json.Number:
			if _, err := strconv.ParseFloat(string(x), 64); err != nil {
				return string(x) + " is out of range for a Float (a 64-bit floating-point number)"
			}
			return ""
		case string:
			if _, err := strconv.ParseFloat(x, 64); err != nil {
				return strconv.Quote(x) + " is not a number"
			}
			return ""
		case float64, int, int32, int64:
			return ""
		}
		return kindOf(v) + " is not a number"
	case "String":
		switch v.(type) {
		case string, json.Number:
			return ""
		}
		return kindOf(v) + " is not a string"
	case "Boolean":
		if _, ok := v.(bool); ok {
			return ""
		}
		return kindOf(v) + " is not a Boolean (true or false)"
	case "ID":
		switch x := v.(type) {
		case string, json.Number, int, int32, int64:
			return ""
		case float64:
			if x == math.Trunc(x) && !math.IsInf(x, 0) {
				return "" // gqlparser's own message says what it is
			}
		}
		return kindOf(v) + " is not an ID (a string or an integer)"
	}
	return ""
}

// kindOf names v, a value decoded from JSON, for an error: a number or a
// Boolean as it is, a string quoted (both cut to 64 bytes), other kinds by
// their JSON names.
func kindOf(v any) string {
	switch x := v.(type) {
	case json.Number:
		return model.CutText(string(x), 64)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case int, int32, int64:
		return fmt.Sprint(x)
	case string:
		return strconv.Quote(model.CutText(x, 64))
	case bool:
		return strconv.FormatBool(x)
	case map[string]any:
		return "an object"
	case []any:
		return "a list"
	}
	return "a value of another kind"
}

// pathWithin writes the path of a value inside a variable: " at
// quantity", " at [3].version"; "" for the variable itself.
func pathWithin(path ast.Path) string {
	if len(path) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString(" at ")
	for i, el := range path {
		switch el := el.(type) {
		case ast.PathIndex:
			b.WriteString("[" + strconv.Itoa(int(el)) + "]")
		case ast.PathName:
			if i > 0 {
				b.WriteByte('.')
			}
			b.WriteString(string(el))
		}
	}
	return b.String()
}
