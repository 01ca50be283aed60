package graph

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"cqrsgate/domain"
)

// mutationResults refuses, before it runs, a mutation whose selection asks
// for event data at a version below 1 (`events { data(asVersion: 0) }`).
// The data resolver refuses such a version too, but only once the mutation
// has written: the client was answered an error and no result for a
// command that had run, and a retry without an idempotency key ran it
// again. What can only be known once the events exist (a version their
// type lacks, a migration that fails) still fails after the write; the
// results' events are nullable, so the rest of the result still says what
// was written.
type mutationResults struct{}

var _ graphql.OperationContextMutator = mutationResults{}

func (mutationResults) ExtensionName() string                   { return "MutationResults" }
func (mutationResults) Validate(graphql.ExecutableSchema) error { return nil }

func (mutationResults) MutateOperationContext(_ context.Context, rc *graphql.OperationContext) *gqlerror.Error {
	if rc.Operation == nil || rc.Operation.Operation != ast.Mutation {
		return nil
	}
	w := asVersionWalk{vars: rc.Variables}
	w.selections(rc.Operation.SelectionSet)
	return w.bad
}

// asVersionWalk goes through a selection, and the fragments it spreads,
// for an Event's data asked for at a version below 1.
type asVersionWalk struct {
	vars map[string]any
	seen map[string]bool
	bad  *gqlerror.Error
}

func (w *asVersionWalk) selections(set ast.SelectionSet) {
	for _, s := range set {
		if w.bad != nil {
			return
		}
		switch s := s.(type) {
		case *ast.Field:
			if w.skipped(s.Directives) {
				continue
			}
			if s.Name == "data" && s.ObjectDefinition != nil && s.ObjectDefinition.Name == "Event" {
				w.check(s.Arguments.ForName("asVersion"))
			}
			w.selections(s.SelectionSet)
		case *ast.InlineFragment:
			if !w.skipped(s.Directives) {
				w.selections(s.SelectionSet)
			}
		case *ast.FragmentSpread:
			if w.skipped(s.Directives) {
				continue
			}
			if s.Definition != nil && !w.seen[s.Name] {
				if w.seen == nil {
					w.seen = map[string]bool{}
				}
				w.seen[s.Name] = true
				w.selections(s.Definition.SelectionSet)
			}
		}
	}
}

// skipped reports whether directives leave out what they are on (@skip
// with if true, @include with if false): it never runs, and its arguments
// are never read.
func (w *asVersionWalk) skipped(directives ast.DirectiveList) bool {
	for _, d := range directives {
		if d.Name != "skip" && d.Name != "include" {
			continue
		}
		arg := d.Arguments.ForName("if")
		if arg == nil {
			continue
		}
		v, err := arg.Value.Value(w.vars)
		if b, ok := v.(bool); err == nil && ok && b == (d.Name == "skip") {
			return true
		}
	}
	return false
}

func (w *asVersionWalk) check(a *ast.Argument) {
	if a == nil {
		return
	}
	v, err := a.Value.Value(w.vars)
	if err != nil {
		return // the resolver says what is wrong with it
	}
	var n int64
	switch x := v.(type) {
	case int64:
		n = x
	case int:
		n = int64(x)
	case json.Number:
		if n, err = x.Int64(); err != nil {
			return
		}
	default:
		return // null: the version as stored
	}
	if n < 1 {
		w.bad = &gqlerror.Error{
			Message:    fmt.Sprintf("asVersion must be 1 or more, got %d (refused before the mutation ran: nothing was written)", n),
			Locations:  []gqlerror.Location{{Line: a.Position.Line, Column: a.Position.Column}},
			Extensions: map[string]any{"code": string(domain.Invalid), "field": "asVersion"},
		}
	}
}
