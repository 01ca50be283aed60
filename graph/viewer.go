package graph

import (
	"fmt"
	"strings"

	"cqrsgate/domain"
	"cqrsgate/graph/model"
	"cqrsgate/internal/auth"
)

// viewerOf says who p is as the gateway sees it (the viewer query): only
// what its own credential holds or grants. It returns an Unauthorized
// error for no caller (which the authorization extension refuses before
// any resolver runs) and an Internal one for a principal authenticated in
// a way the schema cannot name.
func viewerOf(p *auth.Principal) (*model.Viewer, error) {
	if p == nil {
		return nil, &domain.Error{Code: domain.Unauthorized, Message: "viewer needs a credential"}
	}
	v := &model.Viewer{Roles: []model.Role{}}
	for _, r := range []auth.Role{auth.Reader, auth.Writer, auth.Admin} {
		if p.Has(r) {
			v.Roles = append(v.Roles, model.Role(strings.ToUpper(string(r))))
		}
	}
	v.CanAdministerGateway = p.Has(auth.Admin) && p.Tenant == ""
	switch p.Method {
	case auth.MethodDevelopment:
		v.DevelopmentMode = true
		return v, nil // no credential was read: nothing names the caller
	case auth.MethodJWT:
		k := model.CredentialKindJwt
		v.Credential = &k
	case auth.MethodAPIKey:
		k := model.CredentialKindAPIKey
		v.Credential = &k
	default:
		return nil, fmt.Errorf("viewer: a principal authenticated by %q", p.Method)
	}
	if p.Subject != "" {
		v.Name = &p.Subject
	}
	if p.Tenant != "" {
		v.Tenant = &p.Tenant
	}
	if !p.ExpiresAt.IsZero() {
		exp := p.ExpiresAt.UTC()
		v.ExpiresAt = &exp
	}
	return v, nil
}
