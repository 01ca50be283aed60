package graph

import (
	"context"
	"encoding/json"
	"maps"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// longList is the length from which a list variable is checked by
// listVariables rather than by gqlparser.
const longList = 16

// listVariables takes long list variables out of the way of gqlparser's
// check of an operation's variables, after checking them itself.
//
// gqlparser (validator.VariableValues, which gqlgen runs for every
// operation) walks variables by reflection, boxing each input field's name
// and writing each field back into its map: for the 100 events of an
// appendEvents, about 1.4 µs an event, 18% of the gateway's CPU under the
// bench's 100-event appends. listVariables makes the same checks of a list
// variable (input objects' fields known, required fields present, scalars
// and enums of the right kind) with type switches, on the values the
// transports decode (map[string]any, []any, json.Number, string, bool,
// nil). A list it accepts is one gqlparser accepts and leaves as it is, so
// it hands gqlparser an empty list in its place (which its type accepts)
// and puts the list back into the operation's variables as soon as
// gqlparser is done, before any other extension reads them. Anything it
// does not accept, a value gqlparser would refuse or coerce (a single
// value given for a list, say) included, is left to gqlparser, so errors
// and coercions are gqlparser's own (its errors worded by explainVariable).
//
// It acts only on operations whose transport marked them (holdLongLists:
// the POST and websocket transports, which decode with decodePost) and
// that gqlgen's query cache already holds, parsed and validated; it must be used after the extensions that rewrite an
// operation's parameters (AutomaticPersistedQuery) and before those that
// read its variables.
type listVariables struct {
	cache  graphql.Cache[*ast.QueryDocument] // the server's query cache
	schema *ast.Schema
}

var (
	_ graphql.HandlerExtension          = (*listVariables)(nil)
	_ graphql.OperationParameterMutator = (*listVariables)(nil)
	_ graphql.OperationContextMutator   = (*listVariables)(nil)
)

type heldListsKey struct{}

// heldLists carries the lists listVariables took out, from its first hook
// to its second.
type heldLists struct {
	names  []string
	values []any
}

// holdLongLists marks ctx for listVariables when vars has a list of at
// least longList values; other requests pay nothing for it.
func holdLongLists(ctx context.Context, vars map[string]any) context.Context {
	for _, v := range vars {
		if l, ok := v.([]any); ok && len(l) >= longList {
			return context.WithValue(ctx, heldListsKey{}, &heldLists{})
		}
	}
	return ctx
}

func (*listVariables) ExtensionName() string { return "ListVariables" }

func (l *listVariables) Validate(es graphql.ExecutableSchema) error {
	l.schema = es.Schema()
	return nil
}

// MutateOperationParameters runs before gqlparser's check: it checks the
// long list variables and swaps those it accepts for empty lists.
func (l *listVariables) MutateOperationParameters(ctx context.Context, params *graphql.RawParams) *gqlerror.Error {
	held, _ := ctx.Value(heldListsKey{}).(*heldLists)
	if held == nil {
		return nil
	}
	// Each operation holds its own lists: nothing is left of an earlier
	// one made with the same context (whose check may have failed before
	// MutateOperationContext ran).
	held.names, held.values = held.names[:0], held.values[:0]
	doc, ok := l.cache.Get(ctx, params.Query)
	if !ok {
		return nil
	}
	op := doc.Operations.ForName(params.OperationName)
	if op == nil {
		return nil
	}
	var vars map[string]any
	for _, def := range op.VariableDefinitions {
		if def.Type.Elem == nil {
			continue
		}
		list, ok := params.Variables[def.Variable].([]any)
		if !ok || len(list) < longList || !l.accepts(def.Type, list) {
			continue
		}
		if vars == nil {
			vars = maps.Clone(params.Variables) // the caller's map stays whole
		}
		vars[def.Variable] = []any{}
		held.names = append(held.names, def.Variable)
		held.values = append(held.values, list)
		listsHeld.Add(1)
	}
	if vars != nil {
		params.Variables = vars
	}
	return nil
}

// MutateOperationContext runs after gqlparser's check: it puts the lists
// back.
func (l *listVariables) MutateOperationContext(ctx context.Context, rc *graphql.OperationContext) *gqlerror.Error {
	held, _ := ctx.Value(heldListsKey{}).(*heldLists)
	if held == nil {
		return nil
	}
	for i, name := range held.names {
		rc.Variables[name] = held.values[i]
	}
	held.names, held.values = held.names[:0], held.values[:0]
	return nil
}

// listsHeld counts the lists listVariables took out of gqlparser's way,
// for tests: that the handler's extensions run it where it does its work.
var listsHeld atomic.Int64

// accepts reports whether gqlparser's validator.VariableValues accepts v,
// as a value of typ inside a variable, and leaves it unchanged. It answers
// false when in doubt: gqlparser then decides.
func (l *listVariables) accepts(typ *ast.Type, v any) bool {
	if v == nil {
		return !typ.NonNull
	}
	if typ.Elem != nil {
		list, ok := v.([]any)
		if !ok {
			return false // gqlparser wraps a single value into a list
		}
		for _, e := range list {
			if !l.accepts(typ.Elem, e) {
				return false
			}
		}
		return true
	}
	def := l.schema.Types[typ.NamedType]
	if def == nil {
		return false
	}
	switch def.Kind {
	case ast.Scalar:
		s, isText := text(v)
		if !isText {
			if _, isBool := v.(bool); isBool && typ.NamedType == "Boolean" {
				return true
			}
			return !builtinScalar(typ.NamedType) // custom scalars take anything
		}
		switch typ.NamedType {
		case "Int":
			_, err := strconv.ParseInt(s, 10, 64)
			return err == nil
		case "Float":
			_, err := strconv.ParseFloat(s, 64)
			return err == nil
		case "Boolean":
			return false
		}
		return true // String, ID and custom scalars
	case ast.Enum:
		s, isText := text(v)
		if !isText {
			return false
		}
		for _, ev := range def.EnumValues {
			if strings.EqualFold(s, ev.Name) {
				return true
			}
		}
		return false
	case ast.InputObject:
		m, ok := v.(map[string]any)
		if !ok {
			return false
		}
		for k := range m {
			if k != "__typename" && def.Fields.ForName(k) == nil {
				return false
			}
		}
		for _, f := range def.Fields {
			x, present := m[f.Name]
			if !present {
				if f.Type.NonNull {
					if f.DefaultValue == nil {
						return false
					}
					if _, err := f.DefaultValue.Value(nil); err != nil {
						return false
					}
				}
				continue
			}
			if !l.accepts(f.Type, x) {
				return false
			}
		}
		return true
	}
	return false
}

// text returns v as gqlparser sees a value of reflect.Kind String: a
// string or a json.Number.
func text(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case json.Number:
		return string(x), true
	}
	return "", false
}

func builtinScalar(name string) bool {
	switch name {
	case "Int", "Float", "String", "Boolean", "ID":
		return true
	}
	return false
}
