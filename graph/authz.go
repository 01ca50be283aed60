package graph

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/gorilla/websocket"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"cqrsgate/domain"
	"cqrsgate/internal/auth"
)

// authorization enforces roles, in one place, for every operation over
// every transport: after an operation is parsed and validated and before
// any of it runs, each of its root fields is checked against the role it
// needs (its @hasRole, none for @authenticated, or READER for Query and
// Subscription fields and WRITER for Mutation fields). Every field but
// __typename needs a credential. One field the caller may not use refuses
// the whole operation.
type authorization struct{}

var (
	_ graphql.HandlerExtension        = authorization{}
	_ graphql.OperationContextMutator = authorization{}
)

func (authorization) ExtensionName() string { return "Authorization" }

// Validate refuses a schema that puts @hasRole, @gatewayWide or
// @authenticated anywhere but on a root field, where it would silently not
// be enforced, or @authenticated beside @hasRole or @gatewayWide, which
// contradict it.
func (authorization) Validate(es graphql.ExecutableSchema) error {
	s := es.Schema()
	roots := map[*ast.Definition]bool{s.Query: true, s.Mutation: true, s.Subscription: true}
	for _, def := range s.Types {
		for _, f := range def.Fields {
			for _, name := range []string{"gatewayWide", "authenticated"} {
				if f.Directives.ForName(name) != nil && !roots[def] {
					return fmt.Errorf("@%s on %s.%s: only fields of Query, Mutation and Subscription are checked", name, def.Name, f.Name)
				}
			}
			d := f.Directives.ForName("hasRole")
			if f.Directives.ForName("authenticated") != nil && (d != nil || f.Directives.ForName("gatewayWide") != nil) {
				return fmt.Errorf("@authenticated on %s.%s: a field that needs no role cannot also need one (@hasRole, @gatewayWide)", def.Name, f.Name)
			}
			if d == nil {
				continue
			}
			if !roots[def] {
				return fmt.Errorf("@hasRole on %s.%s: only fields of Query, Mutation and Subscription are checked", def.Name, f.Name)
			}
			if _, err := fieldRole(f, ast.Query); err != nil {
				return fmt.Errorf("@hasRole on %s.%s: %w", def.Name, f.Name, err)
			}
		}
	}
	return nil
}

// MutateOperationContext checks the caller's roles against the
// operation's root fields.
func (authorization) MutateOperationContext(ctx context.Context, rc *graphql.OperationContext) *gqlerror.Error {
	op := rc.Operation
	if op == nil {
		return nil
	}
	p := auth.FromContext(ctx)
	typeName := "Query"
	switch op.Operation {
	case ast.Mutation:
		typeName = "Mutation"
	case ast.Subscription:
		typeName = "Subscription"
	}
	fields, plain := plainFields(op.SelectionSet)
	if !plain {
		for _, f := range graphql.CollectFields(rc, op.SelectionSet, []string{typeName}) {
			fields = append(fields, f.Field)
		}
	}
	for _, f := range fields {
		if f.Name == "__typename" || f.Definition == nil {
			continue
		}
		role, err := fieldRole(f.Definition, op.Operation)
		if err != nil {
			return &gqlerror.Error{Message: "internal error", Extensions: map[string]any{"code": string(domain.Internal)}}
		}
		if p == nil {
			return &gqlerror.Error{
				Message:    fmt.Sprintf("%s needs a credential: send an API key or a bearer token (HTTP Authorization header, or the websocket connection_init payload)", f.Name),
				Path:       ast.Path{ast.PathName(f.Alias)},
				Extensions: map[string]any{"code": string(domain.Unauthorized)},
			}
		}
		if role != "" && !p.Has(role) {
			return &gqlerror.Error{
				Message:    fmt.Sprintf("%s needs the %s role", f.Name, role),
				Path:       ast.Path{ast.PathName(f.Alias)},
				Extensions: map[string]any{"code": string(domain.Forbidden), "requiredRole": strings.ToUpper(string(role))},
			}
		}
		if f.Definition.Directives.ForName("gatewayWide") != nil && p.Tenant != "" {
			// Projections and the schema registry serve every tenant.
			return &gqlerror.Error{
				Message:    fmt.Sprintf("%s administers the whole gateway: it needs an administrator without a tenant", f.Name),
				Path:       ast.Path{ast.PathName(f.Alias)},
				Extensions: map[string]any{"code": string(domain.Forbidden), "requiredRole": strings.ToUpper(string(role))},
			}
		}
	}
	return nil
}

// plainFields returns the fields of sel when it holds nothing but fields
// without directives (the usual operation), which are then exactly the
// fields graphql.CollectFields would collect, with less work; plain is
// false when sel holds a fragment or a directive (@skip, @include), which
// CollectFields must evaluate.
func plainFields(sel ast.SelectionSet) (fields []*ast.Field, plain bool) {
	fields = make([]*ast.Field, 0, len(sel))
	for _, s := range sel {
		f, ok := s.(*ast.Field)
		if !ok || len(f.Directives) > 0 {
			return fields[:0], false
		}
		fields = append(fields, f)
	}
	return fields, true
}

// fieldRole is the role a root field needs: "" for none (@authenticated:
// a credential is enough).
func fieldRole(f *ast.FieldDefinition, op ast.Operation) (auth.Role, error) {
	if f.Directives.ForName("authenticated") != nil {
		return "", nil
	}
	if d := f.Directives.ForName("hasRole"); d != nil {
		// The schema's enum value (ADMIN) names the role (admin).
		v, _ := d.ArgumentMap(nil)["role"].(string)
		return auth.ParseRole(strings.ToLower(v))
	}
	if op == ast.Mutation {
		return auth.Writer, nil
	}
	return auth.Reader, nil
}

// authenticate puts the caller of each HTTP request in its context: the
// principal of its credential (Authorization: Bearer, or X-API-Key), none
// when it carries no credential, or auth.Development for every request
// when authentication is off. A credential that does not verify, or a
// request with Authorization or X-API-Key more than once or with both, is
// refused with 401 before any GraphQL runs. Websocket upgrades are let
// through: the
// transport authenticates their connection_init (see wsInit).
func authenticate(a *auth.Authenticator, log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.Enabled() {
			next.ServeHTTP(w, r.WithContext(auth.WithPrincipal(r.Context(), auth.Development)))
			return
		}
		if websocket.IsWebSocketUpgrade(r) {
			next.ServeHTTP(w, r) // the transport closes a refused connection with 4403
			return
		}
		p, err := a.FromRequest(r)
		if err != nil {
			log.InfoContext(r.Context(), "graphql: credential refused", "requestId", RequestID(r.Context()), "err", err)
			w.Header().Set("WWW-Authenticate", `Bearer realm="cqrsgate"`)
			writeRequestError(w, r, http.StatusUnauthorized, "invalid credential: "+auth.Reason(err), domain.Unauthorized)
			return
		}
		if p != nil {
			r = r.WithContext(auth.WithPrincipal(r.Context(), p))
		}
		next.ServeHTTP(w, r)
	})
}

// LoopbackHostOnly refuses, with 403, every request whose Host header does
// not name the loopback interface: localhost, an address in 127.0.0.0/8 or
// ::1, with or without a port. It protects a gateway in development mode
// (no authentication, every caller an administrator, listening on loopback
// only) from DNS rebinding: a web page on a name of the attacker's that
// resolves to 127.0.0.1 reaches the gateway with the browser's full
// authority, but with that name in Host. Requests without Host (HTTP/1.0)
// come from no browser and pass.
func LoopbackHostOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Host == "" || LoopbackHost(r.Host) {
			next.ServeHTTP(w, r)
			return
		}
		writeRequestError(w, r, http.StatusForbidden,
			fmt.Sprintf("development mode (no authentication) answers only requests addressed to localhost, 127.0.0.1 or [::1], not to %q: "+
				"open the gateway at http://localhost:<port>/, or configure authentication (AUTH_*) to serve other names", r.Host),
			domain.Forbidden)
	})
}

// LoopbackHost reports whether host (a Host header or a URL's host: name
// or address, with or without a port) names the loopback interface.
func LoopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	} else if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true // browsers resolve *.localhost to loopback themselves (RFC 6761)
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Zone() == "" && ip.Unmap().IsLoopback()
}

// writeRequestError answers a request that is refused before GraphQL runs
// with a GraphQL response body carrying one error.
func writeRequestError[C ~string](w http.ResponseWriter, r *http.Request, status int, message string, code C) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	body, _ := json.Marshal(map[string]any{"errors": []any{map[string]any{
		"message":    message,
		"extensions": map[string]any{"code": string(code), "requestId": RequestID(r.Context())},
	}}})
	_, _ = w.Write(body)
}

// wsInit authenticates a websocket connection from its connection_init
// payload or, when that carries no credential, its upgrade request's
// headers. With authentication on, a connection without a valid credential
// is refused (the transport closes it with 4403); the principal's expiry
// ends the connection the same way.
func wsInit(a *auth.Authenticator, log *slog.Logger) InitFunc {
	return func(ctx context.Context, payload map[string]any) (context.Context, error) {
		if !a.Enabled() {
			return auth.WithPrincipal(ctx, auth.Development), nil
		}
		p, err := a.FromInitPayload(payload)
		if err == nil && p == nil {
			p, err = a.FromRequest(&http.Request{Header: UpgradeHeaders(ctx)})
		}
		// The errors' messages go to the client, in the close frame's
		// reason (see InitFunc): what was wrong, as HTTP's 401 says it.
		if err != nil {
			log.InfoContext(ctx, "graphql ws: credential refused", "err", err)
			return nil, errors.New("invalid credential: " + auth.Reason(err))
		}
		if p == nil {
			return nil, errors.New("no credential (send one in connection_init's payload, as authorization or x-api-key)")
		}
		return auth.WithPrincipal(ctx, p), nil
	}
}
