// Package auth authenticates callers of the gateway and carries who they
// are (a Principal) through the request context.
//
// Two kinds of credential are accepted, both as a bearer token (the HTTP
// Authorization header, or the websocket connection_init payload):
//
//   - JWTs, which must carry an expiry (exp), verified with an HMAC secret
//     or RSA, ECDSA or Ed25519 public keys; roles come from a claim
//     (default "roles": an array, or a space- or comma-separated string;
//     names matched exactly, see ParseRole) and an optional tenant from
//     another;
//   - static API keys for services, each with a name and roles.
//
// Roles are ordered: admin includes writer, writer includes reader.
package auth

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"cqrsgate/domain"
)

// Role is what a caller may do.
type Role string

// The roles, from least to most.
const (
	Reader Role = "reader" // queries and subscriptions
	Writer Role = "writer" // commands (mutations), and what readers do
	Admin  Role = "admin"  // the registry and projection administration, and what writers do
)

var rank = map[Role]int{Reader: 1, Writer: 2, Admin: 3}

// ParseRole reads a role name: "reader", "writer" or "admin", exactly.
// Names are case-sensitive and hold no white space, as a token's roles
// claim is matched: "ADMIN" or " admin" is another system's role, not
// admin. It returns an error for any other name, which says so when the
// name is one of the roles in another case or with white space around it.
func ParseRole(s string) (Role, error) {
	r := Role(s)
	if rank[r] > 0 {
		return r, nil
	}
	if near := Role(strings.ToLower(strings.TrimSpace(s))); rank[near] > 0 {
		return "", fmt.Errorf("unknown role %q: role names are matched exactly (in lower case, without white space): did you mean %q?", s, near)
	}
	return "", fmt.Errorf("unknown role %q (want reader, writer or admin)", s)
}

// Principal is an authenticated caller.
type Principal struct {
	Subject string
	Roles   []Role
	// Tenant scopes the caller's data, when the credential names one.
	Tenant string
	// ExpiresAt is when the credential stops being accepted (zero: never):
	// a token's exp plus the leeway its checks allow for clock skew, so
	// that a websocket it opened closes when a request with it would be
	// refused, not while requests with it are still served.
	ExpiresAt time.Time
	// Method is how the caller was authenticated: MethodJWT, MethodAPIKey
	// or MethodDevelopment.
	Method string
}

// The ways a Principal is authenticated (its Method).
const (
	MethodJWT         = "jwt"
	MethodAPIKey      = "api-key"
	MethodDevelopment = "development" // authentication is off: see Development
)

// Has reports whether the principal holds role, or one that includes it.
func (p *Principal) Has(role Role) bool {
	if p == nil {
		return false
	}
	for _, r := range p.Roles {
		if rank[r] >= rank[role] {
			return true
		}
	}
	return false
}

// Scope names what a caller's query results depend on: its tenant and
// roles. Callers with the same scope see the same data.
func (p *Principal) Scope() string {
	if p == nil {
		return "anonymous"
	}
	roles := make([]string, len(p.Roles))
	for i, r := range p.Roles {
		roles[i] = string(r)
	}
	slices.Sort(roles)
	return p.Tenant + "|" + strings.Join(roles, ",")
}

// Development is the principal of every caller when no authentication is
// configured: an administrator.
var Development = &Principal{Subject: "development", Roles: []Role{Admin}, Method: MethodDevelopment}

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the caller, or nil for an unauthenticated one.
func FromContext(ctx context.Context) *Principal {
	p, _ := ctx.Value(principalKey{}).(*Principal)
	return p
}

// ErrInvalidCredential is returned for a credential that is malformed,
// unknown, badly signed, not yet valid or expired.
var ErrInvalidCredential = errors.New("invalid credential")

var (
	errEmpty      = errors.New("empty credential")
	errUnknownKey = errors.New("unknown API key")
	errNotString  = errors.New("not a string")
	errBadTenant  = errors.New("bad tenant claim")
	errBadRoles   = errors.New("bad roles claim")
	errBadTime    = errors.New("time claim beyond the year 9999")
	errRepeated   = errors.New("more than one credential given")
)

// maxNumericDate is the latest exp, nbf or iat accepted, 9999-12-31T23:59:59Z:
// the JWT library turns seconds into a time through an int64 that wraps
// beyond about 9.2e18, and an nbf far in the future read as one long past
// would let a token in before its time.
const maxNumericDate = 253402300799

// Reason says why a credential was refused, in words safe to show the
// client: it never echoes the credential.
func Reason(err error) string {
	switch {
	case errors.Is(err, errEmpty):
		return "the credential is empty"
	case errors.Is(err, errUnknownKey):
		return "unknown API key"
	case errors.Is(err, jwt.ErrTokenExpired):
		return "the token has expired"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "the token has no expiry (exp claim), which is required"
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "the token is not valid yet"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return "the token's signature does not verify with any configured key and algorithm"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "the token's issuer is not accepted"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "the token's audience is not accepted"
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "the token is malformed"
	case errors.Is(err, errBadTime):
		return "the token's exp, nbf or iat is beyond the year 9999"
	case errors.Is(err, jwt.ErrInvalidType):
		return "a claim has the wrong type (exp, nbf, iat: numbers; iss: a string; aud: strings)"
	case errors.Is(err, errNotString):
		return "the credential must be a string"
	case errors.Is(err, errBadTenant):
		return "the token's tenant claim must be a string of 1 to 64 letters, digits, '.', '_' or '-'"
	case errors.Is(err, errBadRoles):
		return "the token's roles claim must be a string or an array of strings"
	case errors.Is(err, errRepeated):
		return "more than one credential is given: send one Authorization or X-API-Key"
	}
	return "the credential is not valid"
}

// APIKey is a static credential for a service.
type APIKey struct {
	Name  string
	Key   string
	Roles []Role
	// Tenant, when set, scopes the service to that tenant's data.
	Tenant string
}

// Config configures an Authenticator. With nothing set, authentication is
// off and every caller is Development.
type Config struct {
	// HMACSecret verifies HS256/384/512 tokens.
	HMACSecret []byte
	// PublicKeysPEM holds RSA, ECDSA and/or Ed25519 public keys (PEM
	// "PUBLIC KEY" blocks) that verify RS*/PS*, ES* and EdDSA tokens
	// respectively.
	PublicKeysPEM []byte
	// Issuer and Audience, when set, must match the token's iss and aud.
	Issuer, Audience string
	// RolesClaim names the claim with the roles (default "roles");
	// TenantClaim the one with the tenant (default "tenant").
	RolesClaim, TenantClaim string
	// Leeway tolerates clock skew in exp/nbf/iat (default 30s).
	Leeway  time.Duration
	APIKeys []APIKey
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// minRSABits is the smallest RSA public key accepted: Go verifies nothing
// with fewer than 1024 bits, and 1024 are within reach of factoring.
const minRSABits = 2048

// pemHint says what to do with a PEM block of another type than PUBLIC KEY.
func pemHint(typ string) string {
	switch {
	case typ == "CERTIFICATE":
		return ": give the certificate's public key (openssl x509 -in cert.pem -pubkey -noout)"
	case strings.Contains(typ, "PRIVATE KEY"):
		return ": a private key does not belong here; give its public key (openssl pkey -in key.pem -pubout), and keep the private key secret"
	case typ == "RSA PUBLIC KEY":
		return ": convert it from PKCS #1 (openssl rsa -RSAPublicKey_in -in key.pem -pubout)"
	}
	return ""
}

// Authenticator verifies credentials.
type Authenticator struct {
	cfg     Config
	keys    []jwt.VerificationKey // public keys
	methods []string
	apiKeys map[[32]byte]*Principal
}

// New checks cfg and returns its Authenticator. It returns an error for a
// short HMAC secret, public keys that do not parse (a PEM block of another
// type than PUBLIC KEY, one cut short), are of a kind no JWT algorithm uses
// (DSA, X25519, ECDSA on another curve than P-256, P-384 or P-521) or are
// RSA keys of fewer than 2048 bits, or a bad API key.
func New(cfg Config) (*Authenticator, error) {
	if cfg.RolesClaim == "" {
		cfg.RolesClaim = "roles"
	}
	if cfg.TenantClaim == "" {
		cfg.TenantClaim = "tenant"
	}
	if cfg.Leeway == 0 {
		cfg.Leeway = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	a := &Authenticator{cfg: cfg, apiKeys: map[[32]byte]*Principal{}}
	if len(cfg.HMACSecret) > 0 {
		if len(cfg.HMACSecret) < 32 {
			return nil, errors.New("the JWT HMAC secret must be at least 32 bytes")
		}
		a.methods = append(a.methods, "HS256", "HS384", "HS512")
	}
	kinds := map[string]bool{} // of the public keys
	rest := cfg.PublicKeysPEM
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		n := len(a.keys) + 1
		if block.Type != "PUBLIC KEY" {
			return nil, fmt.Errorf("JWT public keys: block %d is a %q block, not a PUBLIC KEY one%s", n, block.Type, pemHint(block.Type))
		}
		key, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("JWT public keys: key %d: %w", n, err)
		}
		switch k := key.(type) {
		case *rsa.PublicKey:
			if k.N.BitLen() < minRSABits {
				return nil, fmt.Errorf("JWT public keys: key %d is a %d-bit RSA key: at least %d bits are required", n, k.N.BitLen(), minRSABits)
			}
			kinds["rsa"] = true
		case *ecdsa.PublicKey:
			if c := k.Curve.Params().Name; c != "P-256" && c != "P-384" && c != "P-521" {
				return nil, fmt.Errorf("JWT public keys: key %d is an ECDSA key on %s, which no JWT algorithm uses (ES256, ES384 and ES512 use P-256, P-384 and P-521)", n, c)
			}
			kinds["ecdsa"] = true
		case ed25519.PublicKey:
			kinds["ed25519"] = true
		default:
			return nil, fmt.Errorf("JWT public keys: key %d is a %T, which verifies no JWT algorithm: use RSA, ECDSA or Ed25519 keys", n, key)
		}
		a.keys = append(a.keys, key)
	}
	if begun := bytes.Count(cfg.PublicKeysPEM, []byte("-----BEGIN ")); begun > len(a.keys) {
		// pem.Decode skips a block it cannot decode: a key cut short, or
		// with a damaged line, would be left out without a word, and the
		// tokens it signs refused.
		return nil, fmt.Errorf("JWT public keys: %d PEM blocks begin, but only %d decode (one cut short, or with a damaged line?)", begun, len(a.keys))
	}
	if len(cfg.PublicKeysPEM) > 0 && len(a.keys) == 0 {
		return nil, errors.New("JWT public keys: no PEM PUBLIC KEY block found")
	}
	if kinds["rsa"] {
		a.methods = append(a.methods, "RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
	}
	if kinds["ecdsa"] {
		a.methods = append(a.methods, "ES256", "ES384", "ES512")
	}
	if kinds["ed25519"] {
		a.methods = append(a.methods, "EdDSA")
	}
	if len(a.methods) == 0 && (cfg.Issuer != "" || cfg.Audience != "") {
		// Someone meant to turn JWTs on: without a key no token verifies,
		// and with no API key either the gateway would run unauthenticated.
		return nil, errors.New("a JWT issuer or audience is set, but no key to verify tokens with (an HMAC secret or public keys)")
	}
	for _, k := range cfg.APIKeys {
		if len(k.Key) < 16 {
			return nil, fmt.Errorf("API key %q: a key must be at least 16 characters", k.Name)
		}
		if len(k.Roles) == 0 {
			return nil, fmt.Errorf("API key %q has no role", k.Name)
		}
		if err := domain.ValidateTenant(k.Tenant); err != nil {
			return nil, fmt.Errorf("API key %q: %w", k.Name, err)
		}
		h := sha256.Sum256([]byte(k.Key))
		if _, dup := a.apiKeys[h]; dup {
			return nil, fmt.Errorf("API key %q is the same key as another", k.Name)
		}
		a.apiKeys[h] = &Principal{Subject: k.Name, Roles: k.Roles, Tenant: k.Tenant, Method: MethodAPIKey}
	}
	return a, nil
}

// Enabled reports whether any credential is configured; when it is not,
// the gateway runs in development mode.
func (a *Authenticator) Enabled() bool {
	return a != nil && (len(a.methods) > 0 || len(a.apiKeys) > 0)
}

// Authenticate verifies a credential: "Bearer <token>" or the bare token,
// an API key or a JWT.
func (a *Authenticator) Authenticate(credential string) (*Principal, error) {
	token := strings.TrimSpace(credential)
	if scheme, rest, _ := strings.Cut(token, " "); strings.EqualFold(scheme, "bearer") {
		token = strings.TrimSpace(rest)
	}
	if token == "" {
		return nil, fmt.Errorf("%w: %w", ErrInvalidCredential, errEmpty)
	}
	h := sha256.Sum256([]byte(token))
	for k, p := range a.apiKeys { // compare every key in constant time
		if subtle.ConstantTimeCompare(k[:], h[:]) == 1 {
			return p, nil
		}
	}
	if len(a.methods) == 0 || strings.Count(token, ".") != 2 {
		return nil, fmt.Errorf("%w: %w", ErrInvalidCredential, errUnknownKey)
	}
	return a.verifyJWT(token)
}

func (a *Authenticator) verifyJWT(token string) (*Principal, error) {
	opts := []jwt.ParserOption{jwt.WithValidMethods(a.methods), jwt.WithLeeway(a.cfg.Leeway), jwt.WithTimeFunc(a.cfg.Now), jwt.WithIssuedAt(),
		jwt.WithExpirationRequired()} // a token without exp would never expire
	if a.cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(a.cfg.Issuer))
	}
	if a.cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(a.cfg.Audience))
	}
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) {
		if strings.HasPrefix(t.Method.Alg(), "HS") {
			return a.cfg.HMACSecret, nil
		}
		// Any configured public key of the token's kind may have signed it.
		return jwt.VerificationKeySet{Keys: a.keys}, nil
	}, opts...)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidCredential, err)
	}
	for _, name := range []string{"exp", "nbf", "iat"} {
		// The parser checked that each is a number.
		if f, ok := claims[name].(float64); ok && f > maxNumericDate {
			return nil, fmt.Errorf("%w: %s: %w", ErrInvalidCredential, name, errBadTime)
		}
	}
	p := &Principal{Method: MethodJWT}
	p.Subject, _ = claims["sub"].(string)
	if v, ok := claims[a.cfg.TenantClaim]; ok {
		// A tenant claim that does not name a tenant must not be read as
		// "no tenant": that would open the default tenant's data.
		t, isString := v.(string)
		if !isString || t == "" || domain.ValidateTenant(t) != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidCredential, errBadTenant)
		}
		p.Tenant = t
	}
	if exp, err := claims.GetExpirationTime(); err == nil && exp != nil {
		p.ExpiresAt = exp.Time.Add(a.cfg.Leeway)
	}
	var names []string
	switch v := claims[a.cfg.RolesClaim].(type) {
	case string:
		names = strings.FieldsFunc(v, func(r rune) bool { return r == ' ' || r == ',' })
	case []any:
		for _, x := range v {
			s, ok := x.(string)
			if !ok {
				return nil, fmt.Errorf("%w: %w", ErrInvalidCredential, errBadRoles)
			}
			names = append(names, s)
		}
	default:
		if _, present := claims[a.cfg.RolesClaim]; present {
			// A number, an object or null: the issuer meant something the
			// gateway cannot read, which is refused rather than read as
			// "no role".
			return nil, fmt.Errorf("%w: %w", ErrInvalidCredential, errBadRoles)
		}
	}
	for _, n := range names {
		// Roles of other systems are ignored, "ADMIN" and " admin" too:
		// another system's role names are its own, in any case.
		if r, err := ParseRole(n); err == nil {
			p.Roles = append(p.Roles, r)
		}
	}
	return p, nil
}

// FromRequest authenticates an HTTP request by its Authorization header
// (or X-API-Key). It returns nil, nil when the request carries neither. A
// request that carries either header more than once, or both with a
// value, is refused (ErrInvalidCredential, whose Reason says so): RFC 9110
// does not allow them repeated, and which credential is the caller cannot
// be told (an intermediary may have added one), so none is taken.
func (a *Authenticator) FromRequest(r *http.Request) (*Principal, error) {
	var credential, from string
	for _, name := range []string{"Authorization", "X-API-Key"} {
		switch v := r.Header.Values(name); {
		case len(v) > 1:
			return nil, fmt.Errorf("%w: %s header given %d times: %w", ErrInvalidCredential, name, len(v), errRepeated)
		case len(v) == 1 && v[0] != "" && credential != "":
			return nil, fmt.Errorf("%w: %s and %s both given: %w", ErrInvalidCredential, from, name, errRepeated)
		case len(v) == 1 && credential == "":
			credential, from = v[0], name
		}
	}
	if credential == "" {
		return nil, nil
	}
	return a.Authenticate(credential)
}

// FromInitPayload authenticates a websocket connection_init payload: the
// credential is in "authorization", "x-api-key", "token" or "apiKey"
// (names in any case, as clients such as GraphiQL send their HTTP headers
// as the payload). A name given twice in different cases, or two of them
// with a value, is refused. It returns nil, nil when there is none.
func (a *Authenticator) FromInitPayload(payload map[string]any) (*Principal, error) {
	var found string
	for _, name := range []string{"authorization", "x-api-key", "token", "apikey"} {
		var key string
		for k := range payload {
			if strings.EqualFold(k, name) {
				if key != "" {
					return nil, fmt.Errorf("%w: %q and %q both given: %w", ErrInvalidCredential, key, k, errRepeated)
				}
				key = k
			}
		}
		if key == "" || payload[key] == "" {
			continue
		}
		if found != "" {
			return nil, fmt.Errorf("%w: %q and %q both given: %w", ErrInvalidCredential, found, key, errRepeated)
		}
		found = key
	}
	if found == "" {
		return nil, nil
	}
	s, ok := payload[found].(string)
	if !ok {
		return nil, fmt.Errorf("%w: %s: %w", ErrInvalidCredential, found, errNotString)
	}
	return a.Authenticate(s)
}
