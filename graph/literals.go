package graph

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"cqrsgate/graph/model"
)

// exactLiterals refuses an operation holding a number literal that would
// not be read as written. gqlparser reads every literal with a fraction or
// an exponent as a 64-bit float, so an inline 0.30000000000000001 in a JSON
// argument (an event's data, a schema's bound) or 9007199254740993.0 for a
// Long would be stored as 0.3 and 9007199254740992 without a word.
// Variables keep numbers as written, and the error says so.
type exactLiterals struct{}

func (exactLiterals) ExtensionName() string                   { return "ExactLiterals" }
func (exactLiterals) Validate(graphql.ExecutableSchema) error { return nil }
func (exactLiterals) MutateOperationContext(_ context.Context, rc *graphql.OperationContext) *gqlerror.Error {
	if rc.Operation == nil {
		return nil
	}
	var w literalWalk
	for _, v := range rc.Operation.VariableDefinitions {
		w.value(v.DefaultValue)
	}
	w.directives(rc.Operation.Directives)
	w.selections(rc.Operation.SelectionSet)
	if w.bad == nil {
		return nil
	}
	err := gqlerror.ErrorPosf(w.bad.Position, "%s; pass numbers that need it in a variable, where they are kept as written", w.why)
	errcode.Set(err, errcode.ValidationFailed)
	return err
}

// explainIntLiterals rewrites gqlparser's refusal of an Int literal
// beyond 64 bits, "Int cannot represent non 32-bit signed integer value",
// which names a bound that is not this gateway's (an Int literal up to
// 9223372036854775807 is taken): it says the literal is out of range and
// what the range is. Other errors are left as they are.
func explainIntLiterals(errs gqlerror.List) {
	const prefix = "Int cannot represent non 32-bit signed integer value: "
	for _, err := range errs {
		if lit, ok := strings.CutPrefix(err.Message, prefix); ok {
			if why := model.NotAnInteger(json.Number(lit)); why != "" {
				err.Message = "the Int literal " + why
			}
		}
	}
}

// literalWalk goes through an operation's argument values, and those of the
// fragments it spreads, for the first inexact number literal.
type literalWalk struct {
	seen map[string]bool // fragments gone through (nil until the first)
	bad  *ast.Value
	why  string
}

func (w *literalWalk) selections(set ast.SelectionSet) {
	for _, s := range set {
		if w.bad != nil {
			return
		}
		switch s := s.(type) {
		case *ast.Field:
			for _, a := range s.Arguments {
				w.value(a.Value)
			}
			w.directives(s.Directives)
			w.selections(s.SelectionSet)
		case *ast.InlineFragment:
			w.directives(s.Directives)
			w.selections(s.SelectionSet)
		case *ast.FragmentSpread:
			w.directives(s.Directives)
			if s.Definition != nil && !w.seen[s.Name] {
				if w.seen == nil {
					w.seen = map[string]bool{}
				}
				w.seen[s.Name] = true
				w.directives(s.Definition.Directives)
				w.selections(s.Definition.SelectionSet)
			}
		}
	}
}

func (w *literalWalk) directives(ds ast.DirectiveList) {
	for _, d := range ds {
		for _, a := range d.Arguments {
			w.value(a.Value)
		}
	}
}

func (w *literalWalk) value(v *ast.Value) {
	if v == nil || w.bad != nil {
		return
	}
	switch v.Kind {
	case ast.FloatValue:
		if why := inexactFloat(v.Raw); why != "" {
			w.bad, w.why = v, why
		}
	case ast.ListValue, ast.ObjectValue:
		for _, c := range v.Children {
			w.value(c.Value)
		}
	}
}

// inexactFloat says why the float literal raw would not be read as
// written, or returns "" when its 64-bit float is the same number (written
// the shortest way: 0.1 and 1.50 are fine).
func inexactFloat(raw string) string {
	f, err := strconv.ParseFloat(raw, 64)
	if err != nil {
		return "the number " + raw + " is beyond the range of a 64-bit float"
	}
	read := strconv.FormatFloat(f, 'g', -1, 64)
	if sameDecimal(raw, read) {
		return ""
	}
	return "the number " + raw + " would be read as " + read + " (a 64-bit float)"
}

// sameDecimal reports whether the decimal numbers a and b (GraphQL or Go
// float syntax) are equal.
func sameDecimal(a, b string) bool {
	x, aok := model.ParseDecimal(a)
	y, bok := model.ParseDecimal(b)
	if !aok || !bok {
		return false
	}
	if x.Digits == "" || y.Digits == "" { // zero, of either sign
		return x.Digits == y.Digits
	}
	return x.Negative == y.Negative && x.Digits == y.Digits && x.Exp == y.Exp
}
