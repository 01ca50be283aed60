package graph_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"cqrsgate/graph"
	"cqrsgate/internal/auth"
)

var jwtSecret = []byte("test-secret-test-secret-test-secret!")

// API keys of the test authenticator, one per role.
const (
	readerKey = "reader-key-0123456789"
	writerKey = "writer-key-0123456789"
	adminKey  = "admin-key-01234567890"
)

func newAuthenticator(t *testing.T) *auth.Authenticator {
	t.Helper()
	// A leeway of a second: a credential's expiry on a websocket is its exp
	// plus the leeway.
	a, err := auth.New(auth.Config{HMACSecret: jwtSecret, Leeway: time.Second, APIKeys: []auth.APIKey{
		{Name: "dashboard", Key: readerKey, Roles: []auth.Role{auth.Reader}},
		{Name: "billing", Key: writerKey, Roles: []auth.Role{auth.Writer}},
		{Name: "ops", Key: adminKey, Roles: []auth.Role{auth.Admin}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func token(t *testing.T, roles string, exp time.Time) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "alice", "roles": roles, "exp": exp.Unix()}).SignedString(jwtSecret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// The operations of each kind the tests run, and the role each needs.
var operations = []struct {
	name, query string
	needs       auth.Role // "" for none
}{
	{"typename", `{ __typename }`, ""},
	{"query", `{ events(first: 1) { head } }`, auth.Reader},
	{"introspection", `{ __schema { queryType { name } } }`, auth.Reader},
	{"query through a fragment", `query { ...F } fragment F on Query { projections { name } }`, auth.Reader},
	{"mutation", `mutation { appendEvents(stream: "note-1", events: [{type: "NoteTaken", data: {}}]) { position } }`, auth.Writer},
	{"admin mutation", `mutation { rebuildProjection(name: "accounts") { name } }`, auth.Admin},
	{"rebuild cancelled", `mutation { cancelProjectionRebuild(name: "accounts") { name } }`, auth.Admin},
	{"mutation with an admin field", `mutation { a: appendEvents(stream: "note-2", events: [{type: "NoteTaken", data: {}}]) { position } b: retryProjection(name: "accounts") { name } }`, auth.Admin},
	{"admin field in an inline fragment", `mutation { ... on Mutation { retryProjection(name: "accounts") { name } } }`, auth.Admin},
	{"admin field left out by @include", `mutation { a: appendEvents(stream: "note-3", events: [{type: "NoteTaken", data: {}}]) { position } b: retryProjection(name: "accounts") @include(if: false) { name } }`, auth.Writer},
	{"admin field kept by @skip(if: false)", `mutation { retryProjection(name: "accounts") @skip(if: false) { name } }`, auth.Admin},
	// The fulfilment saga's steps, by hand, are an operator's (a writer
	// confirming a submitted order would get it without paying).
	{"order confirmed by hand", `mutation { confirmOrder(input: {orderId: "o-none"}) { version } }`, auth.Admin},
	{"stock reserved by hand", `mutation { reserveStock(input: {sku: "s-none", orderId: "o-none", quantity: 1}) { version } }`, auth.Admin},
	{"stock released by hand", `mutation { releaseStock(input: {sku: "s-none", orderId: "o-none"}) { version } }`, auth.Admin},
	// Money out of a closed account: the bank's, not its holder's.
	{"a closed account paid out", `mutation { payOutClosedAccount(input: {accountId: "a-none"}) { version } }`, auth.Admin},
}

func TestRolesOverHTTP(t *testing.T) {
	g := newFullGatewayWith(t, fullOptions{readTimeout: 5 * time.Second, auth: newAuthenticator(t)})
	callers := []struct {
		name   string
		header []string
		role   auth.Role // "" for no credential
	}{
		{"anonymous", nil, ""},
		{"reader API key", []string{"X-API-Key", readerKey}, auth.Reader},
		{"writer API key as bearer", []string{"Authorization", "Bearer " + writerKey}, auth.Writer},
		{"admin API key", []string{"Authorization", adminKey}, auth.Admin},
		{"reader JWT", []string{"Authorization", "Bearer " + token(t, "reader", time.Now().Add(time.Hour))}, auth.Reader},
		{"admin JWT", []string{"Authorization", "Bearer " + token(t, "admin", time.Now().Add(time.Hour))}, auth.Admin},
	}
	rank := map[auth.Role]int{"": 0, auth.Reader: 1, auth.Writer: 2, auth.Admin: 3}
	for _, c := range callers {
		for _, op := range operations {
			t.Run(c.name+"/"+op.name, func(t *testing.T) {
				before := g.head()
				out, resp := g.post(op.query, nil, c.header...)
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("status %d", resp.StatusCode)
				}
				allowed := rank[c.role] >= rank[op.needs]
				if allowed {
					for _, e := range out.Errors {
						if code := e.Extensions["code"]; code == "UNAUTHORIZED" || code == "FORBIDDEN" {
							t.Fatalf("refused: %s (%v)", e.Message, code)
						}
					}
					// It ran: it has data, or errors from its resolvers.
					if len(out.Data) == 0 && len(out.Errors) == 0 {
						t.Fatal("neither data nor errors")
					}
					return
				}
				want := "FORBIDDEN"
				if c.role == "" {
					want = "UNAUTHORIZED"
				}
				if len(out.Errors) != 1 || out.Errors[0].Extensions["code"] != want {
					t.Fatalf("errors %+v, want one %s", out.Errors, want)
				}
				if out.Data != nil {
					t.Errorf("data %v alongside the refusal", out.Data)
				}
				if want == "FORBIDDEN" && out.Errors[0].Extensions["requiredRole"] == nil {
					t.Errorf("no requiredRole in %v", out.Errors[0].Extensions)
				}
				if g.head() != before {
					t.Error("a refused operation wrote events")
				}
			})
		}
	}
}

func TestBadCredentialsOverHTTP(t *testing.T) {
	g := newFullGatewayWith(t, fullOptions{readTimeout: 5 * time.Second, auth: newAuthenticator(t)})
	otherSecret, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"roles": "admin", "exp": time.Now().Add(time.Hour).Unix()}).SignedString([]byte("not-the-secret-not-the-secret-not!!"))
	tests := []struct {
		name, header, value, want string
	}{
		{"unknown API key", "X-API-Key", "guessed-key-0123456789", "unknown API key"},
		{"expired token", "Authorization", "Bearer " + token(t, "admin", time.Now().Add(-time.Hour)), "expired"},
		{"token signed with another secret", "Authorization", "Bearer " + otherSecret, "signature"},
		{"empty bearer", "Authorization", "Bearer", "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, resp := g.post(`{ __typename }`, nil, tt.header, tt.value)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401", resp.StatusCode)
			}
			if resp.Header.Get("WWW-Authenticate") == "" {
				t.Error("no WWW-Authenticate header")
			}
			if len(out.Errors) != 1 || out.Errors[0].Extensions["code"] != "UNAUTHORIZED" || !strings.Contains(out.Errors[0].Message, tt.want) {
				t.Fatalf("errors %+v, want UNAUTHORIZED mentioning %q", out.Errors, tt.want)
			}
			if len(tt.value) > 16 && strings.Contains(out.Errors[0].Message, tt.value[len(tt.value)-8:]) {
				t.Errorf("the message echoes the credential: %s", out.Errors[0].Message)
			}
		})
	}
}

// A request with Authorization (or X-API-Key) twice was authenticated by
// the first, which an intermediary may have added; RFC 9110 does not allow
// either repeated. One with both was authenticated by Authorization, the
// API key ignored. Either is refused as a credential that does not verify is,
// saying why: over HTTP with 401 before any GraphQL runs, on a websocket
// whose upgrade request carries them (and its connection_init none) with
// 4403.
func TestRepeatedCredentialHeadersAreRefused(t *testing.T) {
	g := newFullGatewayWith(t, fullOptions{readTimeout: 5 * time.Second, auth: newAuthenticator(t)})
	for name, header := range map[string]http.Header{
		"Authorization twice": {"Authorization": {"Bearer " + adminKey, "Bearer " + readerKey}},
		"X-API-Key twice":     {"X-Api-Key": {readerKey, adminKey}},
		"both":                {"Authorization": {"Bearer " + adminKey}, "X-Api-Key": {readerKey}},
	} {
		t.Run(name, func(t *testing.T) {
			before := g.head()
			body := `{"query":"mutation { appendEvents(stream: \"note-r\", events: [{type: \"NoteTaken\", data: {}}]) { position } }"}`
			req, _ := http.NewRequest(http.MethodPost, g.url, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			for k, vs := range header {
				req.Header[k] = vs
			}
			out, resp := g.do(req)
			if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" {
				t.Fatalf("status %d, WWW-Authenticate %q; want 401 with the header", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
			}
			if len(out.Errors) != 1 || out.Errors[0].Extensions["code"] != "UNAUTHORIZED" ||
				out.Errors[0].Message != "invalid credential: more than one credential is given: send one Authorization or X-API-Key" {
				t.Fatalf("errors %+v, want one UNAUTHORIZED saying more than one credential is given", out.Errors)
			}
			if out.Data != nil || g.head() != before {
				t.Fatalf("data %v, head %d (was %d): the operation ran", out.Data, g.head(), before)
			}

			c := dialAuth(t, g.url, header)
			c.send(map[string]any{"type": "connection_init"})
			if code, reason := c.closeFrame(); code != graph.CloseForbidden || !strings.HasPrefix(reason, "Forbidden: invalid credential: more than one credential is given") {
				t.Fatalf("websocket: close %d %q, want 4403 saying more than one credential is given", code, reason)
			}
		})
	}
}

// dialAuth opens a graphql-transport-ws connection with the upgrade
// request's headers.
func dialAuth(t *testing.T, url string, header http.Header) *wsClient {
	t.Helper()
	d := websocket.Dialer{Subprotocols: []string{graph.ProtocolTransportWS}, HandshakeTimeout: 5 * time.Second}
	conn, resp, err := d.Dial("ws"+strings.TrimPrefix(url, "http"), header)
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, resp)
	}
	t.Cleanup(func() { conn.Close() })
	return &wsClient{t: t, conn: conn}
}

func TestRolesOverWebsocket(t *testing.T) {
	g := newFullGatewayWith(t, fullOptions{readTimeout: 5 * time.Second, auth: newAuthenticator(t)})

	t.Run("refused at connection_init with 4403", func(t *testing.T) {
		// The close frame's reason says what was wrong, as HTTP's 401 does
		// (a dashboard shows it to its user).
		for name, tc := range map[string]struct {
			payload map[string]any
			reason  string
		}{
			"no credential":         {map[string]any{}, "Forbidden: no credential"},
			"unknown API key":       {map[string]any{"apiKey": "guessed-key-0123456789"}, "Forbidden: invalid credential: unknown API key"},
			"expired token":         {map[string]any{"authorization": "Bearer " + token(t, "admin", time.Now().Add(-time.Hour))}, "Forbidden: invalid credential: the token has expired"},
			"credential not string": {map[string]any{"authorization": 12}, "Forbidden: invalid credential: "},
		} {
			c := dialAuth(t, g.url, nil)
			c.send(map[string]any{"type": "connection_init", "payload": tc.payload})
			if code, reason := c.closeFrame(); code != graph.CloseForbidden || !strings.HasPrefix(reason, tc.reason) {
				t.Errorf("%s: close %d %q, want 4403 %q", name, code, reason, tc.reason)
			}
		}
	})

	t.Run("each role on each kind of operation", func(t *testing.T) {
		for _, caller := range []struct {
			role    auth.Role
			payload map[string]any
			header  http.Header
		}{
			{auth.Reader, nil, http.Header{"X-Api-Key": {readerKey}}}, // from the upgrade request
			{auth.Writer, map[string]any{"authorization": "Bearer " + token(t, "writer", time.Now().Add(time.Hour))}, nil},
			{auth.Admin, map[string]any{"apiKey": adminKey}, nil},
		} {
			c := dialAuth(t, g.url, caller.header)
			c.send(map[string]any{"type": "connection_init", "payload": caller.payload})
			c.expect("connection_ack")
			for i, op := range operations {
				id := string(caller.role) + "-" + itoa(int64(i))
				c.send(subscribeMsg(id, op.query, nil))
				m := c.read()
				allowed := op.needs == "" || caller.role == auth.Admin || caller.role == auth.Writer && op.needs != auth.Admin || op.needs == auth.Reader
				if allowed {
					if m.Type != "next" || strings.Contains(string(m.Payload), "FORBIDDEN") {
						t.Fatalf("%s %s: got %s %s", caller.role, op.name, m.Type, m.Payload)
					}
					c.expect("complete")
					continue
				}
				if m.Type != "error" || m.ID != id || !strings.Contains(string(m.Payload), `"FORBIDDEN"`) {
					t.Fatalf("%s %s: got %s %s, want an error FORBIDDEN", caller.role, op.name, m.Type, m.Payload)
				}
			}
			// A reader can subscribe.
			c.send(subscribeMsg("sub", `subscription { events { position } }`, nil))
			g.mustMutate("openAccount", map[string]any{"owner": "Ann", "currency": "EUR"}, "X-API-Key", writerKey)
			if m := c.expect("next"); m.ID != "sub" {
				t.Fatalf("next for %q", m.ID)
			}
		}
	})

	t.Run("an expiring credential closes the socket with 4403", func(t *testing.T) {
		c := dialAuth(t, g.url, nil)
		c.send(map[string]any{"type": "connection_init", "payload": map[string]any{"token": token(t, "reader", time.Now().Add(time.Second))}})
		c.expect("connection_ack")
		c.send(subscribeMsg("1", `subscription { events { position } }`, nil))
		start := time.Now()
		if code, reason := c.closeFrame(); code != graph.CloseForbidden || reason != "Forbidden: credential expired" {
			t.Fatalf("close %d %q, want 4403 Forbidden: credential expired", code, reason)
		}
		if waited := time.Since(start); waited > 4*time.Second {
			t.Errorf("closed %v after subscribing, long after the token expired", waited)
		}
	})
}
