package graph_test

import (
	"fmt"
	"testing"
)

// An enum value in a variable must be written as the schema has it:
// another case is refused as a validation error naming the value to send
// (gqlparser let it through, and the field then failed as INTERNAL), at
// the top, in an input object and in a list of them; the schema's own case
// passes.
func TestEnumVariablesAreCaseSensitive(t *testing.T) {
	c := newServer(t, memStore(), nil)
	for _, tc := range []struct {
		name, query string
		vars        map[string]any
		path, msg   string
	}{
		{"top", `query($s: FulfilmentState) { fulfilments(state: $s) { totalCount } }`, map[string]any{"s": "running"},
			"[variable s]", `"running" is not a value of FulfilmentState: enum values are case-sensitive; send RUNNING`},
		{"in an input object", `query($o: OrderOrderBy) { orders(orderBy: $o) { totalCount } }`, map[string]any{"o": map[string]any{"field": "TOTAL", "direction": "desc"}},
			"[variable o direction]", `"desc" is not a value of SortDirection: enum values are case-sensitive; send DESC`},
		{"in a list", `mutation($m: [MigrationOperationInput!]!) { registerEventMigration(type: "T", fromVersion: 1, operations: $m) { __typename } }`,
			map[string]any{"m": []any{map[string]any{"op": "REMOVE", "path": "/a"}, map[string]any{"op": "Remove", "path": "/c"}}},
			"[variable m 1 op]", `"Remove" is not a value of MigrationOp: enum values are case-sensitive; send REMOVE`},
	} {
		out, _ := c.post(tc.query, tc.vars)
		if len(out.Errors) != 1 || out.Errors[0].Message != tc.msg || fmt.Sprint(out.Errors[0].Path) != tc.path ||
			out.Errors[0].Extensions["code"] != "GRAPHQL_VALIDATION_FAILED" {
			t.Errorf("%s: %+v", tc.name, out.Errors)
		}
	}
	// The schema's case passes the check (and meets this server's missing
	// read side).
	out, _ := c.post(`query($o: OrderOrderBy) { orders(orderBy: $o) { totalCount } }`, map[string]any{"o": map[string]any{"field": "TOTAL", "direction": "DESC"}})
	if len(out.Errors) != 1 || out.Errors[0].Extensions["code"] != "UNAVAILABLE" {
		t.Errorf("DESC: %+v", out.Errors)
	}
}
