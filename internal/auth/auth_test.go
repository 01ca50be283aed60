package auth

import (
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var (
	secret = []byte("0123456789abcdef0123456789abcdef")
	now    = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
)

func clock() time.Time { return now }

func sign(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func pemOf(t *testing.T, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func TestJWT(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	otherEC, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	keys := append(pemOf(t, &rsaKey.PublicKey), pemOf(t, &ecKey.PublicKey)...)
	a, err := New(Config{HMACSecret: secret, PublicKeysPEM: keys, Issuer: "https://idp", Audience: "cqrsgate", Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	if !a.Enabled() {
		t.Fatal("not enabled with keys configured")
	}
	base := func() jwt.MapClaims {
		return jwt.MapClaims{"sub": "alice", "iss": "https://idp", "aud": "cqrsgate", "exp": now.Add(time.Hour).Unix(), "roles": []any{"writer", "billing"}, "tenant": "acme"}
	}
	with := func(k string, v any) jwt.MapClaims {
		c := base()
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	tests := []struct {
		name       string
		token      string
		wantRoles  []Role
		wantTenant string
		wantReason string // "" when the token is accepted
	}{
		{"HS256", sign(t, jwt.SigningMethodHS256, secret, base()), []Role{Writer}, "acme", ""},
		{"HS512 with Bearer prefix", "Bearer " + sign(t, jwt.SigningMethodHS512, secret, base()), []Role{Writer}, "acme", ""},
		{"RS256", sign(t, jwt.SigningMethodRS256, rsaKey, base()), []Role{Writer}, "acme", ""},
		{"ES256", sign(t, jwt.SigningMethodES256, ecKey, base()), []Role{Writer}, "acme", ""},
		{"roles as a string", sign(t, jwt.SigningMethodHS256, secret, with("roles", "reader admin")), []Role{Reader, Admin}, "acme", ""},
		{"no roles", sign(t, jwt.SigningMethodHS256, secret, with("roles", nil)), nil, "acme", ""},
		{"no tenant", sign(t, jwt.SigningMethodHS256, secret, with("tenant", nil)), []Role{Writer}, "", ""},
		{"within leeway", sign(t, jwt.SigningMethodHS256, secret, with("exp", now.Add(-10*time.Second).Unix())), []Role{Writer}, "acme", ""},
		{"expired", sign(t, jwt.SigningMethodHS256, secret, with("exp", now.Add(-time.Minute).Unix())), nil, "", "the token has expired"},
		{"not yet valid", sign(t, jwt.SigningMethodHS256, secret, with("nbf", now.Add(time.Hour).Unix())), nil, "", "the token is not valid yet"},
		{"wrong secret", sign(t, jwt.SigningMethodHS256, []byte("another secret of thirty-two bytes!!"), base()), nil, "", "signature does not verify"},
		{"unknown EC key", sign(t, jwt.SigningMethodES256, otherEC, base()), nil, "", "signature does not verify"},
		{"alg none", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, base()), nil, "", "signature does not verify"},
		{"wrong issuer", sign(t, jwt.SigningMethodHS256, secret, with("iss", "https://evil")), nil, "", "issuer"},
		{"wrong audience", sign(t, jwt.SigningMethodHS256, secret, with("aud", "other")), nil, "", "audience"},
		{"malformed", "a.b.c", nil, "", "malformed"},
		{"empty", "Bearer ", nil, "", "empty"},
		{"not a token", "hello", nil, "", "unknown API key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := a.Authenticate(tt.token)
			if tt.wantReason != "" {
				if err == nil {
					t.Fatalf("accepted: %+v", p)
				}
				if !errors.Is(err, ErrInvalidCredential) {
					t.Errorf("error %v is not ErrInvalidCredential", err)
				}
				if r := Reason(err); !strings.Contains(r, tt.wantReason) {
					t.Errorf("Reason = %q, want it to mention %q", r, tt.wantReason)
				}
				return
			}
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			if p.Subject != "alice" || p.Method != "jwt" || p.Tenant != tt.wantTenant {
				t.Errorf("principal %+v", p)
			}
			if !slicesEqual(p.Roles, tt.wantRoles) {
				t.Errorf("roles %v, want %v", p.Roles, tt.wantRoles)
			}
			if p.ExpiresAt.IsZero() {
				t.Error("no expiry")
			}
		})
	}
}

func slicesEqual(a, b []Role) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestHMACTokenIsRefusedWithOnlyPublicKeys(t *testing.T) {
	// An attacker must not be able to sign HS256 with a public key as the secret.
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pub := pemOf(t, &ecKey.PublicKey)
	a, err := New(Config{PublicKeysPEM: pub, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	tok := sign(t, jwt.SigningMethodHS256, pub, jwt.MapClaims{"sub": "x", "roles": "admin", "exp": now.Add(time.Hour).Unix()})
	if p, err := a.Authenticate(tok); err == nil {
		t.Fatalf("HS256 token accepted with only public keys configured: %+v", p)
	}
}

func TestAPIKeys(t *testing.T) {
	a, err := New(Config{APIKeys: []APIKey{
		{Name: "billing", Key: "billing-key-0123456789", Roles: []Role{Writer}},
		{Name: "dash", Key: "dashboard-key-0123456789", Roles: []Role{Reader}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	p, err := a.Authenticate("Bearer billing-key-0123456789")
	if err != nil || p.Subject != "billing" || p.Method != "api-key" || !p.Has(Writer) || !p.Has(Reader) || p.Has(Admin) {
		t.Fatalf("billing key: %+v, %v", p, err)
	}
	r, _ := http.NewRequest("POST", "/graphql", nil)
	r.Header.Set("X-API-Key", "dashboard-key-0123456789")
	if p, err := a.FromRequest(r); err != nil || p.Subject != "dash" || p.Has(Writer) {
		t.Fatalf("X-API-Key: %+v, %v", p, err)
	}
	if _, err := a.Authenticate("dashboard-key-012345678"); err == nil || Reason(err) != "unknown API key" {
		t.Fatalf("a near miss: %v", err)
	}
	r, _ = http.NewRequest("POST", "/graphql", nil)
	if p, err := a.FromRequest(r); p != nil || err != nil {
		t.Fatalf("no credential: %+v, %v", p, err)
	}
	if p, err := a.FromInitPayload(map[string]any{"apiKey": "dashboard-key-0123456789"}); err != nil || p.Subject != "dash" {
		t.Fatalf("init payload: %+v, %v", p, err)
	}
	if _, err := a.FromInitPayload(map[string]any{"authorization": 42}); err == nil || Reason(err) != "the credential must be a string" {
		t.Fatalf("a number in the payload: %v", err)
	}
	if p, err := a.FromInitPayload(map[string]any{"other": "x"}); p != nil || err != nil {
		t.Fatalf("no credential in the payload: %+v, %v", p, err)
	}
	// GraphiQL sends its headers tab as the payload, as typed: the names
	// HTTP takes count in any case (X-API-Key was refused with 4403).
	for _, k := range []string{"X-API-Key", "x-api-key", "APIKEY", "Token"} {
		if p, err := a.FromInitPayload(map[string]any{k: "dashboard-key-0123456789"}); err != nil || p == nil || p.Subject != "dash" {
			t.Errorf("init payload with %s: %+v, %v", k, p, err)
		}
	}
	if p, err := a.FromInitPayload(map[string]any{"AUTHORIZATION": "dashboard-key-0123456789"}); err != nil || p == nil || p.Subject != "dash" {
		t.Errorf("init payload with AUTHORIZATION: %+v, %v", p, err)
	}
	if _, err := a.FromInitPayload(map[string]any{"authorization": "dashboard-key-0123456789", "Authorization": "other-key-0123456789"}); err == nil {
		t.Error("a payload with authorization twice, in two cases, was accepted")
	}
}

func TestBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"short secret", Config{HMACSecret: []byte("short")}, "at least 32 bytes"},
		{"not PEM", Config{PublicKeysPEM: []byte("hello")}, "no PEM PUBLIC KEY block"},
		{"bad key", Config{PublicKeysPEM: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte("junk")})}, "JWT public keys"},
		{"short API key", Config{APIKeys: []APIKey{{Name: "a", Key: "short", Roles: []Role{Reader}}}}, "at least 16 characters"},
		{"API key without role", Config{APIKeys: []APIKey{{Name: "a", Key: "0123456789abcdef"}}}, "no role"},
		{"audience without a key", Config{Audience: "cqrsgate"}, "no key to verify tokens with"},
		{"issuer without a key", Config{Issuer: "https://id.example.com", APIKeys: []APIKey{{Name: "a", Key: "0123456789abcdef", Roles: []Role{Reader}}}}, "no key to verify tokens with"},
		{"same API key twice", Config{APIKeys: []APIKey{{Name: "a", Key: "0123456789abcdef", Roles: []Role{Reader}}, {Name: "b", Key: "0123456789abcdef", Roles: []Role{Admin}}}}, "same key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
	a, err := New(Config{})
	if err != nil || a.Enabled() {
		t.Fatalf("empty config: enabled=%v err=%v", a.Enabled(), err)
	}
}

func TestRoles(t *testing.T) {
	for _, s := range []string{"reader", "writer", "admin"} {
		if r, err := ParseRole(s); err != nil || string(r) != s {
			t.Errorf("ParseRole(%q): %q, %v", s, r, err)
		}
	}
	// Role names are matched exactly: another case, or white space around,
	// is another name (it was read as the role), and the error says so.
	for s, near := range map[string]string{" Writer ": "writer", "ADMIN": "admin", "Admin": "admin", "admin\n": "admin", "\treader": "reader"} {
		if r, err := ParseRole(s); err == nil || !strings.Contains(err.Error(), "matched exactly") || !strings.Contains(err.Error(), `did you mean "`+near+`"`) {
			t.Errorf("ParseRole(%q): %q, %v; want an error suggesting %s", s, r, err, near)
		}
	}
	for _, s := range []string{"root", "", "administrator"} {
		if _, err := ParseRole(s); err == nil || !strings.Contains(err.Error(), "want reader, writer or admin") {
			t.Errorf("ParseRole(%q): %v", s, err)
		}
	}
	var none *Principal
	if none.Has(Reader) {
		t.Error("nil principal has a role")
	}
	if !Development.Has(Admin) {
		t.Error("development is not admin")
	}
	a := &Principal{Tenant: "t1", Roles: []Role{Writer, Reader}}
	b := &Principal{Tenant: "t1", Roles: []Role{Reader, Writer}}
	c := &Principal{Tenant: "t2", Roles: []Role{Reader, Writer}}
	if a.Scope() != b.Scope() || a.Scope() == c.Scope() {
		t.Errorf("scopes %q %q %q", a.Scope(), b.Scope(), c.Scope())
	}
}

// TestTokenWithoutExpiryIsRefused: a JWT without exp would be valid for
// ever; it is refused, and the reason says so.
func TestTokenWithoutExpiryIsRefused(t *testing.T) {
	a, err := New(Config{HMACSecret: secret, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	p, err := a.Authenticate(sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "x", "roles": "admin"}))
	if err == nil {
		t.Fatalf("a token without exp was accepted: %+v", p)
	}
	if !errors.Is(err, ErrInvalidCredential) || !strings.Contains(Reason(err), "no expiry") {
		t.Fatalf("err = %v, Reason = %q", err, Reason(err))
	}
}

// TestExpiresAtIsWhenTheTokenStopsBeingAccepted: a token is accepted until
// its exp plus the leeway, and the principal's ExpiresAt (which closes a
// websocket) is that instant: it was exp itself, so a websocket opened with
// a token within the leeway was acknowledged and closed at once, while
// requests with the same token were served.
func TestExpiresAtIsWhenTheTokenStopsBeingAccepted(t *testing.T) {
	for _, leeway := range []time.Duration{0, 5 * time.Second} {
		at := now
		a, err := New(Config{HMACSecret: secret, Leeway: leeway, Now: func() time.Time { return at }})
		if err != nil {
			t.Fatal(err)
		}
		exp := now.Add(-time.Second) // expired a second ago
		tok := sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "x", "roles": "admin", "exp": exp.Unix()})
		p, err := a.Authenticate(tok)
		if err != nil {
			t.Fatalf("leeway %v: a token a second past its exp was refused: %v", leeway, err)
		}
		effective := leeway
		if effective == 0 {
			effective = 30 * time.Second // the default
		}
		if want := exp.Add(effective); !p.ExpiresAt.Equal(want) {
			t.Errorf("leeway %v: ExpiresAt %v, want %v (exp plus the leeway)", leeway, p.ExpiresAt, want)
		}
		at = p.ExpiresAt.Add(time.Second)
		if _, err := a.Authenticate(tok); err == nil {
			t.Errorf("leeway %v: the token was still accepted after ExpiresAt", leeway)
		}
	}
}

// TestEd25519Keys: an Ed25519 public key verifies EdDSA tokens signed by
// its private key, and no others; keys of a kind no JWT algorithm uses are
// refused at start.
func TestEd25519Keys(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, otherPriv, _ := ed25519.GenerateKey(rand.Reader)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	a, err := New(Config{PublicKeysPEM: append(pemOf(t, pub), pemOf(t, &ecKey.PublicKey)...), Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	claims := jwt.MapClaims{"sub": "ed", "roles": "writer", "exp": now.Add(time.Hour).Unix()}
	p, err := a.Authenticate(sign(t, jwt.SigningMethodEdDSA, priv, claims))
	if err != nil || p.Subject != "ed" || !p.Has(Writer) {
		t.Fatalf("EdDSA token: %+v, %v (%s)", p, err, Reason(err))
	}
	if p, err := a.Authenticate(sign(t, jwt.SigningMethodES256, ecKey, claims)); err != nil || p.Subject != "ed" {
		t.Fatalf("ES256 token beside an Ed25519 key: %+v, %v", p, err)
	}
	if p, err := a.Authenticate(sign(t, jwt.SigningMethodEdDSA, otherPriv, claims)); err == nil {
		t.Fatalf("an EdDSA token of another key was accepted: %+v", p)
	}

	x, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{PublicKeysPEM: pemOf(t, x.PublicKey())}); err == nil || !strings.Contains(err.Error(), "verifies no JWT algorithm") {
		t.Fatalf("an X25519 key: err = %v, want a refusal", err)
	}
}

// TestTimeClaimsBeyondTheYear9999AreRefused: the library reads seconds
// into a time through an int64, which wraps past about 9.2e18: an nbf of
// 1e19 (a token not valid for ages) was read as long past, and the token
// accepted at once. exp, nbf and iat beyond the year 9999 are refused, and
// one of the wrong type says so.
func TestTimeClaimsBeyondTheYear9999AreRefused(t *testing.T) {
	a, err := New(Config{HMACSecret: secret, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	exp := now.Add(time.Hour).Unix()
	for name, claims := range map[string]jwt.MapClaims{
		"nbf 1e19":     {"exp": exp, "nbf": 1e19},
		"iat 1e19":     {"exp": exp, "iat": 1e19},
		"exp 9e18":     {"exp": 9e18},
		"exp in 10000": {"exp": float64(maxNumericDate + 1)},
		"nbf 1.8e19":   {"exp": exp, "nbf": 1.8446744073709552e19},
	} {
		p, err := a.Authenticate(sign(t, jwt.SigningMethodHS256, secret, claims))
		if err == nil {
			t.Errorf("%s: accepted: %+v", name, p)
			continue
		}
		if !errors.Is(err, ErrInvalidCredential) || !strings.Contains(Reason(err), "beyond the year 9999") {
			t.Errorf("%s: err = %v, Reason = %q", name, err, Reason(err))
		}
	}
	if _, err := a.Authenticate(sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"exp": float64(maxNumericDate)})); err != nil {
		t.Errorf("exp at the end of 9999: %v", err)
	}
	_, err = a.Authenticate(sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"exp": "4102444800"}))
	if err == nil || !strings.Contains(Reason(err), "wrong type") {
		t.Errorf("exp as a string: err = %v, Reason = %q, want it to say the claim has the wrong type", err, Reason(err))
	}
}

// TestRolesClaimOfTheWrongTypeIsRefused: a roles claim that is not a
// string or an array of strings was read as no role (or, in an array, its
// strings kept and the rest dropped); it is refused with a reason, as a bad
// tenant claim is. Role names of other systems are still ignored.
func TestRolesClaimOfTheWrongTypeIsRefused(t *testing.T) {
	a, err := New(Config{HMACSecret: secret, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	exp := now.Add(time.Hour).Unix()
	for name, roles := range map[string]any{
		"number":            5,
		"object":            map[string]any{"admin": true},
		"null":              nil,
		"bool":              true,
		"array with number": []any{"admin", 5},
		"nested array":      []any{[]any{"admin"}},
	} {
		p, err := a.Authenticate(sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"exp": exp, "roles": roles}))
		if err == nil {
			t.Errorf("roles %s: accepted: %+v", name, p)
			continue
		}
		if !errors.Is(err, ErrInvalidCredential) || !strings.Contains(Reason(err), "roles claim must be a string or an array of strings") {
			t.Errorf("roles %s: err = %v, Reason = %q", name, err, Reason(err))
		}
	}
	p, err := a.Authenticate(sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"exp": exp, "roles": []any{"billing", "reader"}}))
	if err != nil || !slicesEqual(p.Roles, []Role{Reader}) {
		t.Errorf("roles [billing reader]: %+v, %v", p, err)
	}
	p, err = a.Authenticate(sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"exp": exp, "roles": []any{}}))
	if err != nil || len(p.Roles) != 0 {
		t.Errorf("roles []: %+v, %v", p, err)
	}
}

// TestReasonsFitAWebsocketCloseFrame: a websocket refused at
// connection_init gets "Forbidden: invalid credential: " and the reason in
// its close frame, at most 123 bytes; a longer reason is cut mid-word.
func TestReasonsFitAWebsocketCloseFrame(t *testing.T) {
	for _, err := range []error{errEmpty, errUnknownKey, errNotString, errBadTenant, errBadRoles, errBadTime,
		jwt.ErrTokenExpired, jwt.ErrTokenRequiredClaimMissing, jwt.ErrTokenNotValidYet, jwt.ErrTokenSignatureInvalid,
		jwt.ErrTokenInvalidIssuer, jwt.ErrTokenInvalidAudience, jwt.ErrTokenMalformed, jwt.ErrInvalidType, errRepeated, errors.New("other")} {
		if r := "Forbidden: invalid credential: " + Reason(err); len(r) > 123 {
			t.Errorf("%v: %q is %d bytes, more than a close frame's 123", err, r, len(r))
		}
	}
}

// TestBadPublicKeysAreRefused: a PEM block of another type was refused with
// an ASN.1 parser's message (a certificate, a private key) or taken (any
// type holding a public key); a block cut short was left out without a
// word; RSA keys too short for Go to verify with, and ECDSA keys on a curve
// no JWT algorithm uses, were taken, and every token they signed refused.
func TestBadPublicKeysAreRefused(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	good := pemOf(t, &rsaKey.PublicKey)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "idp"}, NotBefore: now, NotAfter: now.Add(time.Hour)}
	cert, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &rsaKey.PublicKey, rsaKey)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := x509.MarshalPKCS8PrivateKey(rsaKey)
	if err != nil {
		t.Fatal(err)
	}
	short, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	spki, _ := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	damaged := strings.Replace(string(good), "\n", "\n!", 2) // a bad line inside the first block
	tests := []struct {
		name string
		pem  []byte
		want string
	}{
		{"certificate", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert}), `block 1 is a "CERTIFICATE" block, not a PUBLIC KEY one: give the certificate's public key`},
		{"private key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: priv}), "a private key does not belong here"},
		{"PKCS #1 key", pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&rsaKey.PublicKey)}), "convert it from PKCS #1"},
		{"another type", append(append([]byte{}, good...), pem.EncodeToMemory(&pem.Block{Type: "KEY", Bytes: spki})...), `block 2 is a "KEY" block`},
		{"1024-bit RSA", pemOf(t, &short.PublicKey), "1024-bit RSA key: at least 2048 bits"},
		{"P-224", pemOf(t, &p224.PublicKey), "ECDSA key on P-224, which no JWT algorithm uses"},
		{"second key cut short", append(append([]byte{}, good...), good[:len(good)-40]...), "2 PEM blocks begin, but only 1 decode"},
		{"first key damaged", append([]byte(damaged), good...), "2 PEM blocks begin, but only 1 decode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := New(Config{PublicKeysPEM: tt.pem})
			if err == nil {
				t.Fatalf("accepted, with %d keys", len(a.keys))
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
	// Text around the blocks (comments, openssl's dump) is not a block.
	if _, err := New(Config{PublicKeysPEM: append([]byte("# the IdP's key, 2026\n"), good...)}); err != nil {
		t.Errorf("a key with a comment before it: %v", err)
	}
}

// TestRepeatedCredentialHeadersAreRefused: a request with Authorization
// (or X-API-Key) twice was authenticated by the first, which an
// intermediary may have added. RFC 9110 does not allow either header
// repeated: the request is refused, saying why, whichever the credentials.
func TestRepeatedCredentialHeadersAreRefused(t *testing.T) {
	a, err := New(Config{APIKeys: []APIKey{
		{Name: "dash", Key: "dashboard-key-0123456789", Roles: []Role{Reader}},
		{Name: "ops", Key: "ops-key-0123456789", Roles: []Role{Admin}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	for name, header := range map[string]http.Header{
		"Authorization twice":                {"Authorization": {"Bearer ops-key-0123456789", "Bearer dashboard-key-0123456789"}},
		"the same Authorization twice":       {"Authorization": {"Bearer ops-key-0123456789", "Bearer ops-key-0123456789"}},
		"an empty Authorization and another": {"Authorization": {"", "Bearer ops-key-0123456789"}},
		"X-API-Key twice":                    {"X-Api-Key": {"dashboard-key-0123456789", "ops-key-0123456789"}},
		"Authorization, and X-API-Key twice": {"Authorization": {"ops-key-0123456789"}, "X-Api-Key": {"dashboard-key-0123456789", "ops-key-0123456789"}},
		"Authorization twice, and X-API-Key": {"Authorization": {"ops-key-0123456789", "dashboard-key-0123456789"}, "X-Api-Key": {"dashboard-key-0123456789"}},
	} {
		p, err := a.FromRequest(&http.Request{Header: header})
		if err == nil || !errors.Is(err, ErrInvalidCredential) || !strings.Contains(Reason(err), "more than one credential") {
			t.Errorf("%s: %+v, %v (Reason %q), want ErrInvalidCredential: more than one credential", name, p, err, Reason(err))
		}
	}
	// Nor two credentials of different names: which is the caller? (The
	// Authorization header was taken, and X-API-Key ignored.) An empty
	// header beside a credential is none.
	p, err := a.FromRequest(&http.Request{Header: http.Header{"Authorization": {"ops-key-0123456789"}, "X-Api-Key": {"dashboard-key-0123456789"}}})
	if err == nil || !strings.Contains(Reason(err), "more than one credential") {
		t.Errorf("Authorization and X-API-Key: %+v, %v, want both refused", p, err)
	}
	for _, h := range []http.Header{{"Authorization": {""}, "X-Api-Key": {"ops-key-0123456789"}}, {"Authorization": {"ops-key-0123456789"}, "X-Api-Key": {""}}} {
		if p, err := a.FromRequest(&http.Request{Header: h}); err != nil || p.Subject != "ops" {
			t.Errorf("%v: %+v, %v, want ops", h, p, err)
		}
	}
	for _, payload := range []map[string]any{
		{"authorization": "ops-key-0123456789", "apiKey": "dashboard-key-0123456789"},
		{"token": "ops-key-0123456789", "X-API-Key": "ops-key-0123456789"},
	} {
		if _, err := a.FromInitPayload(payload); !strings.Contains(Reason(err), "more than one credential") {
			t.Errorf("payload %v: %v (Reason %q), want both refused", payload, err, Reason(err))
		}
	}
	if p, err := a.FromInitPayload(map[string]any{"authorization": "", "token": "ops-key-0123456789"}); err != nil || p.Subject != "ops" {
		t.Errorf("an empty authorization beside a token: %+v, %v, want ops", p, err)
	}
	// Nor in the websocket's payload: a name given in two cases says so.
	if _, err := a.FromInitPayload(map[string]any{"authorization": "ops-key-0123456789", "Authorization": "dashboard-key-0123456789"}); !strings.Contains(Reason(err), "more than one credential") {
		t.Errorf("payload with authorization twice: %v (Reason %q)", err, Reason(err))
	}
}

// TestTokenRolesAreMatchedExactly: a token's role names were lower-cased
// and trimmed, so "ADMIN" or " admin" from another system's token (whose
// roles are its own) made its bearer an administrator here. Names are
// matched exactly, as Hasura matches its roles; others are ignored, as any
// other system's roles are.
func TestTokenRolesAreMatchedExactly(t *testing.T) {
	a, err := New(Config{HMACSecret: secret, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	exp := now.Add(time.Hour).Unix()
	for _, tc := range []struct {
		roles any
		want  []Role
	}{
		{[]any{"ADMIN"}, nil},
		{[]any{" admin"}, nil},
		{[]any{"admin "}, nil},
		{[]any{"Writer", "reader"}, []Role{Reader}},
		{"ADMIN reader", []Role{Reader}},
		{"Admin,Writer", nil},
		{[]any{"admin"}, []Role{Admin}},
		{"reader, writer", []Role{Reader, Writer}},
	} {
		p, err := a.Authenticate(sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"exp": exp, "roles": tc.roles}))
		if err != nil || !slicesEqual(p.Roles, tc.want) {
			t.Errorf("roles %q: %+v, %v; want %v", tc.roles, p, err, tc.want)
		}
	}
}
