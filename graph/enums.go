package graph

import (
	"context"
	"reflect"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// exactEnums refuses an operation whose variables hold an enum value
// written in another case than the schema's ("desc" for DESC), as a
// validation error that names the value to send. gqlparser's check of
// variables matches enum values whatever their case, and gqlgen's
// generated enums then could not read such a value: the field failed as
// INTERNAL, an internal error logged for a client's mistake. Enum values
// are case-sensitive (GraphQL specification, 2.9.6), as they are already
// in an operation's text.
//
// It reads the variables gqlparser has checked, so it must be used after
// listVariables, which puts long lists back into them.
type exactEnums struct {
	schema *ast.Schema
	// enumIn says, by input type name, whether values of the type can hold
	// an enum value (an enum, or an input object with one in its fields):
	// the variables of other types are not looked at.
	enumIn map[string]bool
}

var (
	_ graphql.HandlerExtension        = (*exactEnums)(nil)
	_ graphql.OperationContextMutator = (*exactEnums)(nil)
)

func (*exactEnums) ExtensionName() string { return "ExactEnums" }

func (e *exactEnums) Validate(es graphql.ExecutableSchema) error {
	e.schema = es.Schema()
	e.enumIn = map[string]bool{}
	var holds func(name string, seen map[string]bool) bool
	holds = func(name string, seen map[string]bool) bool {
		def := e.schema.Types[name]
		switch {
		case def == nil || seen[name]:
			return false
		case def.Kind == ast.Enum:
			return true
		case def.Kind != ast.InputObject:
			return false
		}
		seen[name] = true
		for _, f := range def.Fields {
			if holds(f.Type.Name(), seen) {
				return true
			}
		}
		return false
	}
	for name, def := range e.schema.Types {
		if def.Kind == ast.Enum || def.Kind == ast.InputObject {
			e.enumIn[name] = holds(name, map[string]bool{})
		}
	}
	return nil
}

func (e *exactEnums) MutateOperationContext(_ context.Context, rc *graphql.OperationContext) *gqlerror.Error {
	if rc.Operation == nil {
		return nil
	}
	for _, def := range rc.Operation.VariableDefinitions {
		if !e.enumIn[def.Type.Name()] {
			continue
		}
		path := ast.Path{ast.PathName("variable"), ast.PathName(def.Variable)}
		if err := e.check(def.Type, rc.Variables[def.Variable], path); err != nil {
			return err
		}
	}
	return nil
}

// check walks v, a value of typ gqlparser has accepted, for enum values.
func (e *exactEnums) check(typ *ast.Type, v any, path ast.Path) *gqlerror.Error {
	if v == nil {
		return nil
	}
	if typ.Elem != nil {
		// gqlparser keeps a list as it came ([]any) or makes a single value
		// a list of its own type.
		list := reflect.ValueOf(v)
		if list.Kind() != reflect.Slice {
			return e.check(typ.Elem, v, path)
		}
		for i := range list.Len() {
			if err := e.check(typ.Elem, list.Index(i).Interface(), append(path, ast.PathIndex(i))); err != nil {
				return err
			}
		}
		return nil
	}
	def := e.schema.Types[typ.NamedType]
	if def == nil {
		return nil
	}
	switch def.Kind {
	case ast.Enum:
		s, ok := v.(string)
		if !ok || def.EnumValues.ForName(s) != nil {
			return nil
		}
		for _, ev := range def.EnumValues {
			if strings.EqualFold(s, ev.Name) {
				err := gqlerror.ErrorPathf(path, "%q is not a value of %s: enum values are case-sensitive; send %s", s, def.Name, ev.Name)
				errcode.Set(err, errcode.ValidationFailed)
				return err
			}
		}
	case ast.InputObject:
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		for _, f := range def.Fields {
			if !e.enumIn[f.Type.Name()] {
				continue
			}
			if err := e.check(f.Type, m[f.Name], append(path, ast.PathName(f.Name))); err != nil {
				return err
			}
		}
	}
	return nil
}
