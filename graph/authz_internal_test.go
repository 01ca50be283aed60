package graph

import (
	"strings"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"

	"cqrsgate/graph/generated"
)

// schemaOnly is an executable schema of which authorization.Validate reads
// the schema alone.
type schemaOnly struct {
	graphql.ExecutableSchema
	s *ast.Schema
}

func (e schemaOnly) Schema() *ast.Schema { return e.s }

// The authorization extension refuses a schema whose directives it would
// not enforce as they read: on a field of another type than the roots, or
// @authenticated (no role) beside a role.
func TestAuthorizationRefusesDirectivesItCannotEnforce(t *testing.T) {
	const directives = `
enum Role { READER WRITER ADMIN }
directive @hasRole(role: Role!) on FIELD_DEFINITION
directive @gatewayWide on FIELD_DEFINITION
directive @authenticated on FIELD_DEFINITION
`
	for _, tc := range []struct{ name, sdl, want string }{
		{"@authenticated on a root field", `type Query { me: Int @authenticated }`, ""},
		{"@authenticated on another type", `type Query { me: Me } type Me { id: Int @authenticated }`, "@authenticated on Me.id: only fields of Query"},
		{"@authenticated with @hasRole", `type Query { me: Int @authenticated @hasRole(role: ADMIN) }`, "@authenticated on Query.me: a field that needs no role"},
		{"@authenticated with @gatewayWide", `type Query { me: Int @authenticated @gatewayWide }`, "@authenticated on Query.me: a field that needs no role"},
		{"@hasRole on another type", `type Query { me: Me } type Me { id: Int @hasRole(role: ADMIN) }`, "@hasRole on Me.id: only fields of Query"},
		{"@gatewayWide on another type", `type Query { me: Me } type Me { id: Int @gatewayWide }`, "@gatewayWide on Me.id: only fields of Query"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := gqlparser.LoadSchema(&ast.Source{Name: "test.graphqls", Input: directives + tc.sdl})
			if err != nil {
				t.Fatal(err)
			}
			err = authorization{}.Validate(schemaOnly{s: s})
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.want)) {
				t.Fatalf("Validate: %v, want %q", err, tc.want)
			}
		})
	}
	// The gateway's own schema passes.
	if err := (authorization{}).Validate(generated.NewExecutableSchema(generated.Config{})); err != nil {
		t.Fatal(err)
	}
}
