package domain

import (
	"strings"
	"unicode/utf8"
)

// Tenancy. Every stream belongs to exactly one tenant: a tenant's streams
// are named "<tenant>~<stream>", and the default tenant's (callers without a
// tenant) carry no prefix. The separator is reserved: no aggregate id, stream
// name or tenant chosen by a client may contain it, so no client can name
// another tenant's stream. Events, snapshots and idempotency keys follow
// their stream, and read models key their rows by the qualified id
// ("<tenant>~<id>"), so the same aggregate id in two tenants is two
// aggregates.

// TenantSeparator separates a tenant from the stream or id it qualifies.
const TenantSeparator = "~"

// MaxTenantLength is the longest tenant name accepted, in bytes.
const MaxTenantLength = 64

// ValidateTenant returns an Invalid error when t is not a tenant name: 1 to
// 64 ASCII letters, digits, '.', '_' or '-'. The empty string (the default
// tenant) is valid.
func ValidateTenant(t string) error {
	if len(t) > MaxTenantLength {
		return InvalidField("tenant", "tenant is %d bytes; at most %d are allowed", len(t), MaxTenantLength)
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return InvalidField("tenant", "tenant %q may contain only letters, digits, '.', '_' and '-'", t)
		}
	}
	return nil
}

// Qualify returns name (a stream or an aggregate id) in tenant's namespace:
// name itself for the default tenant "", else "<tenant>~<name>".
func Qualify(tenant, name string) string {
	if tenant == "" {
		return name
	}
	return tenant + TenantSeparator + name
}

// SplitTenant is the inverse of Qualify: the tenant a qualified stream or id
// belongs to ("" for the default tenant) and the name within it.
func SplitTenant(qualified string) (tenant, name string) {
	if i := strings.Index(qualified, TenantSeparator); i >= 0 {
		return qualified[:i], qualified[i+len(TenantSeparator):]
	}
	return "", qualified
}

// TenantOf returns the tenant a qualified stream or id belongs to.
func TenantOf(qualified string) string {
	t, _ := SplitTenant(qualified)
	return t
}

// CheckUnqualified returns an Invalid error naming field when a
// client-supplied name contains the reserved tenant separator, or a NUL or
// bytes that are not UTF-8: no stored name can hold those (PostgreSQL's
// text cannot), and a read by one would fail in the database.
func CheckUnqualified(field, name string) error {
	if strings.Contains(name, TenantSeparator) {
		return InvalidField(field, "%s must not contain %q (reserved for tenant namespaces)", field, TenantSeparator)
	}
	return CheckStorable(field, name)
}

// CheckStorable returns an Invalid error naming field when a client-supplied
// text (a filter's value, say) holds a NUL or bytes that are not UTF-8: no
// stored text can hold those (PostgreSQL's cannot), and a query by one
// would fail in the database, an internal error.
func CheckStorable(field, text string) error {
	if strings.IndexByte(text, 0) >= 0 || !utf8.ValidString(text) {
		return InvalidField(field, "%s holds a NUL or bytes that are not UTF-8, which no stored name can", field)
	}
	return nil
}

// QualifyClientName returns a name a client supplied (a stream, an id, a
// prefix) in tenant's namespace, or an Invalid error naming field when it
// holds the tenant separator, which would name another tenant's data.
func QualifyClientName(tenant, field, name string) (string, error) {
	if err := CheckUnqualified(field, name); err != nil {
		return "", err
	}
	return Qualify(tenant, name), nil
}

// IDOf returns the qualified aggregate id ("<tenant>~<id>", or "<id>" for
// the default tenant) of a stream of kind k, and false when the stream is
// not one of k's.
func (k *Kind[A]) IDOf(stream string) (string, bool) {
	tenant, name := SplitTenant(stream)
	id, ok := strings.CutPrefix(name, k.Name+"-")
	if !ok {
		return "", false
	}
	return Qualify(tenant, id), true
}

// validateQualifiedID checks a possibly tenant-qualified aggregate id.
func validateQualifiedID(id string) error {
	tenant, plain := SplitTenant(id)
	if err := ValidateTenant(tenant); err != nil {
		return err
	}
	if strings.Contains(id, TenantSeparator) && tenant == "" {
		return InvalidField("id", "id %q has an empty tenant", id)
	}
	if err := validateReadID("id", plain); err != nil {
		return err
	}
	return nil
}

// qualifiedStream returns the stream of instance id of kind k in tenant,
// after checking both; the id as ids to read by are (validateReadID):
// instances created before IDRune stay commandable, and a new instance's
// id is checked by checkNewID.
func qualifiedStream[A Aggregate](k *Kind[A], tenant, id string) (string, error) {
	if err := ValidateTenant(tenant); err != nil {
		return "", err
	}
	if err := validateReadID(k.idField(), id); err != nil {
		return "", err
	}
	return k.StreamID(Qualify(tenant, id)), nil
}

// checkNewID checks the id of an instance a command creates
// (validateAggregateID).
func checkNewID[A Aggregate](k *Kind[A], id string) error {
	return validateAggregateID(k.idField(), id)
}

// idField is what errors about an instance's id call it.
func (k *Kind[A]) idField() string {
	if k.IDField == "" {
		return "id"
	}
	return k.IDField
}
