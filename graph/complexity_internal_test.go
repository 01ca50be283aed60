package graph

import (
	"context"
	"testing"

	"cqrsgate/graph/generated"
)

// Every list field a client sizes with first costs more for more items:
// one left out of listComplexity (fulfilments was) lets an operation of
// thousands of aliases each ask for the most items.
func TestEveryListFieldIsWeightedByFirst(t *testing.T) {
	var cfg generated.Config
	listComplexity(&cfg.Complexity)
	es := generated.NewExecutableSchema(cfg)
	ctx := context.Background()
	checked := 0
	for _, typ := range es.Schema().Types {
		for _, f := range typ.Fields {
			if f.Arguments.ForName("first") == nil {
				continue
			}
			one, ok1 := es.Complexity(ctx, typ.Name, f.Name, 2, map[string]any{"first": 1})
			many, ok2 := es.Complexity(ctx, typ.Name, f.Name, 2, map[string]any{"first": 500})
			if !ok1 || !ok2 || many < 500 || many <= one {
				t.Errorf("%s.%s: complexity %d (%v) for first 1, %d (%v) for first 500: not weighted by first (listComplexity)", typ.Name, f.Name, one, ok1, many, ok2)
			}
			checked++
		}
	}
	if checked < 7 {
		t.Fatalf("only %d fields with first found", checked)
	}
	for _, field := range []string{"accountAt", "orderAt"} {
		if c, ok := es.Complexity(ctx, "Query", field, 2, map[string]any{"id": "x"}); !ok || c < timeTravelCost {
			t.Errorf("Query.%s: complexity %d (%v), want at least %d", field, c, ok, timeTravelCost)
		}
	}
}
