package graph

import (
	"context"

	"cqrsgate/domain"
	"cqrsgate/internal/auth"
)

// Tenancy at the GraphQL edge. A caller whose credential names a tenant
// works in that tenant's namespace and nowhere else; callers without one
// work in the default tenant's (see domain.Qualify). Every id and stream a
// client names is qualified here on the way in (a name holding the
// reserved separator is refused, so no client can spell another tenant's
// stream), every read of the log is filtered by tenant, and streams come
// back unqualified, so a tenant sees its data in its own terms. Global
// positions are shared by all tenants: a tenant can tell that other writes
// happen, never what they are.

// tenantOf returns the caller's tenant ("" for the default tenant).
func tenantOf(ctx context.Context) string {
	if p := auth.FromContext(ctx); p != nil {
		return p.Tenant
	}
	return ""
}

// tenantFilter returns the eventstore filter for the caller's tenant.
func tenantFilter(ctx context.Context) *string {
	t := tenantOf(ctx)
	return &t
}

// qualify returns a client-supplied stream or id in the caller's
// namespace; field names the argument in the Invalid error for a name that
// holds the tenant separator.
func qualify(ctx context.Context, field, name string) (string, error) {
	return domain.QualifyClientName(tenantOf(ctx), field, name)
}

// unqualified returns a stored stream or id without its tenant. The edge
// only ever returns the caller's own, so the tenant is the caller's.
func unqualified(name string) string {
	_, n := domain.SplitTenant(name)
	return n
}

// streamOf returns the stream of the caller's instance id of kind k.
func streamOf[A domain.Aggregate](ctx context.Context, k *domain.Kind[A], field, id string) (string, error) {
	// An id no aggregate can have is the client's error, as reads say it
	// (a subscription to it would wait for good).
	if err := domain.ValidateReadID(field, id); err != nil {
		return "", err
	}
	qid, err := qualify(ctx, field, id)
	if err != nil {
		return "", err
	}
	return k.StreamID(qid), nil
}
