package graph_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"cqrsgate/domain"
	"cqrsgate/graph"
	"cqrsgate/internal/auth"
)

// viewerQuery asks for every field of Viewer.
const viewerQuery = `{ viewer { developmentMode credential name roles tenant canAdministerGateway expiresAt } }`

// viewer is the viewer query's answer; a field the gateway adds, or one
// it leaves out, makes the tests' comparisons fail.
type viewer struct {
	DevelopmentMode      bool     `json:"developmentMode"`
	Credential           *string  `json:"credential"`
	Name                 *string  `json:"name"`
	Roles                []string `json:"roles"`
	Tenant               *string  `json:"tenant"`
	CanAdministerGateway bool     `json:"canAdministerGateway"`
	ExpiresAt            *string  `json:"expiresAt"`
}

func ptr(s string) *string { return &s }

// diffViewer says how got differs from want ("" when it does not), both
// written as JSON.
func diffViewer(want, got viewer) string {
	w, _ := json.Marshal(want)
	g, _ := json.Marshal(got)
	if string(w) == string(g) {
		return ""
	}
	return "\n got " + string(g) + "\nwant " + string(w)
}

// A tenant's administrator, besides newAuthenticator's reader, writer and
// admin keys.
const acmeOpsKey = "acme-ops-key-0123456789"

// newViewerGateway serves the GraphQL handler (HTTP and websockets) on a
// memory store with a (nil: development mode), and returns its URL.
func newViewerGateway(t *testing.T, a *auth.Authenticator) string {
	t.Helper()
	store := memStore()
	log := slog.New(slog.DiscardHandler)
	ws := &graph.Websocket{}
	srv := httptest.NewServer(graph.NewHandler(graph.Config{
		Store: store, Commands: domain.NewService(store, log, time.Now, domain.ServiceOptions{}), Log: log, Websocket: ws, Auth: a,
	}))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = ws.Shutdown(ctx)
		srv.Close()
	})
	return srv.URL
}

func viewerAuthenticator(t *testing.T) *auth.Authenticator {
	t.Helper()
	a, err := auth.New(auth.Config{HMACSecret: jwtSecret, APIKeys: []auth.APIKey{
		{Name: "dashboard", Key: readerKey, Roles: []auth.Role{auth.Reader}},
		{Name: "billing", Key: writerKey, Roles: []auth.Role{auth.Writer}},
		{Name: "ops", Key: adminKey, Roles: []auth.Role{auth.Admin}},
		{Name: "acme-ops", Key: acmeOpsKey, Roles: []auth.Role{auth.Admin}, Tenant: "acme"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// signed returns a JWT with claims, signed with the tests' secret.
func signed(t *testing.T, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(jwtSecret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// viewerCases are callers with credentials and what viewer answers them
// when authentication is on (the default leeway, 30s, after a JWT's exp).
func viewerCases(t *testing.T) []struct {
	name, credential string
	want             viewer
} {
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	expires := ptr(exp.Add(30 * time.Second).UTC().Format(time.RFC3339))
	all := []string{"READER", "WRITER", "ADMIN"}
	return []struct {
		name, credential string
		want             viewer
	}{
		{"reader API key", readerKey, viewer{Credential: ptr("API_KEY"), Name: ptr("dashboard"), Roles: []string{"READER"}}},
		{"writer API key", writerKey, viewer{Credential: ptr("API_KEY"), Name: ptr("billing"), Roles: []string{"READER", "WRITER"}}},
		{"admin API key", adminKey, viewer{Credential: ptr("API_KEY"), Name: ptr("ops"), Roles: all, CanAdministerGateway: true}},
		// A tenant's administrator administers its tenant's data, not the
		// gateway: gateway-wide fields refuse it.
		{"tenant's admin API key", acmeOpsKey, viewer{Credential: ptr("API_KEY"), Name: ptr("acme-ops"), Roles: all, Tenant: ptr("acme")}},
		{"tenant's writer JWT", signed(t, jwt.MapClaims{"sub": "gina", "roles": "writer", "tenant": "globex", "exp": exp.Unix()}),
			viewer{Credential: ptr("JWT"), Name: ptr("gina"), Roles: []string{"READER", "WRITER"}, Tenant: ptr("globex"), ExpiresAt: expires}},
		{"admin JWT with roles repeated", signed(t, jwt.MapClaims{"sub": "alice", "roles": []string{"reader", "admin", "reader"}, "exp": exp.Unix()}),
			viewer{Credential: ptr("JWT"), Name: ptr("alice"), Roles: all, CanAdministerGateway: true, ExpiresAt: expires}},
		// Roles of other systems are no roles here: the caller may ask who
		// it is, and learns why everything else is refused.
		{"JWT without a role known here, nor sub", signed(t, jwt.MapClaims{"roles": []string{"ADMIN", "billing-admin"}, "exp": exp.Unix()}),
			viewer{Credential: ptr("JWT"), Roles: []string{}, ExpiresAt: expires}},
	}
}

// viewerIn decodes the viewer in a response's data, refusing a field it does not know.
func viewerIn(t *testing.T, data json.RawMessage) viewer {
	t.Helper()
	var d struct {
		Viewer json.RawMessage `json:"viewer"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(strings.NewReader(string(d.Viewer)))
	dec.DisallowUnknownFields()
	var v viewer
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("viewer %s: %v", d.Viewer, err)
	}
	return v
}

// TestViewerOverHTTP: with authentication on, viewer tells each caller
// with a credential who it is (its credential's kind and name, roles
// including those they include, tenant, whether it may administer the
// gateway, when its credential stops being accepted) whatever its roles;
// a caller without a credential gets UNAUTHORIZED, as for every other
// field; nothing of the credential itself comes back.
func TestViewerOverHTTP(t *testing.T) {
	url := newViewerGateway(t, viewerAuthenticator(t))
	c := &client{t: t, url: url}
	for _, tc := range viewerCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			c := &client{t: t, url: url}
			out, resp := c.post(viewerQuery, nil, "Authorization", "Bearer "+tc.credential)
			if resp.StatusCode != http.StatusOK || len(out.Errors) > 0 {
				t.Fatalf("status %d, errors %+v", resp.StatusCode, out.Errors)
			}
			raw, _ := json.Marshal(out.Data)
			if strings.Contains(string(raw), tc.credential) {
				t.Errorf("the answer holds the credential: %s", raw)
			}
			if diff := diffViewer(tc.want, viewerIn(t, raw)); diff != "" {
				t.Errorf("viewer:%s", diff)
			}
		})
	}

	t.Run("X-API-Key", func(t *testing.T) {
		out, _ := c.post(viewerQuery, nil, "X-API-Key", writerKey)
		raw, _ := json.Marshal(out.Data)
		if v := viewerIn(t, raw); len(out.Errors) > 0 || v.Name == nil || *v.Name != "billing" {
			t.Fatalf("errors %+v, viewer %+v", out.Errors, v)
		}
	})

	t.Run("no credential", func(t *testing.T) {
		out, resp := c.post(viewerQuery, nil)
		if resp.StatusCode != http.StatusOK || len(out.Errors) != 1 || out.Errors[0].Extensions["code"] != "UNAUTHORIZED" ||
			!strings.HasPrefix(out.Errors[0].Message, "viewer needs a credential") || out.Data != nil {
			t.Fatalf("status %d, data %v, errors %+v; want one UNAUTHORIZED and no data", resp.StatusCode, out.Data, out.Errors)
		}
	})

	t.Run("a credential that does not verify", func(t *testing.T) {
		out, resp := c.post(viewerQuery, nil, "X-API-Key", "guessed-key-0123456789")
		if resp.StatusCode != http.StatusUnauthorized || len(out.Errors) != 1 || out.Errors[0].Extensions["code"] != "UNAUTHORIZED" {
			t.Fatalf("status %d, errors %+v; want 401 UNAUTHORIZED", resp.StatusCode, out.Errors)
		}
	})

	t.Run("viewer beside a field the caller may not use", func(t *testing.T) {
		// viewer needs no role; the operation's other fields still do, and
		// one refused refuses the whole operation.
		noRole := signed(t, jwt.MapClaims{"sub": "x", "roles": "billing-admin", "exp": time.Now().Add(time.Hour).Unix()})
		out, _ := c.post(`{ viewer { roles } events(first: 1) { head } }`, nil, "Authorization", "Bearer "+noRole)
		if len(out.Errors) != 1 || out.Errors[0].Extensions["code"] != "FORBIDDEN" || out.Data != nil {
			t.Fatalf("data %v, errors %+v; want one FORBIDDEN and no data", out.Data, out.Errors)
		}
	})
}

// TestViewerOverWebsocket: over a websocket, viewer answers for the
// credential that authenticated the connection (from connection_init, or
// the upgrade request's headers).
func TestViewerOverWebsocket(t *testing.T) {
	url := newViewerGateway(t, viewerAuthenticator(t))
	for i, tc := range viewerCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			var header http.Header
			payload := map[string]any{"authorization": "Bearer " + tc.credential}
			if i == 0 {
				header, payload = http.Header{"X-Api-Key": {tc.credential}}, nil
			}
			c := dialAuth(t, url, header)
			c.send(map[string]any{"type": "connection_init", "payload": payload})
			c.expect("connection_ack")
			c.send(subscribeMsg("me", viewerQuery, nil))
			m := c.expect("next")
			var p struct {
				Data   json.RawMessage
				Errors []any
			}
			if err := json.Unmarshal(m.Payload, &p); err != nil || len(p.Errors) > 0 {
				t.Fatalf("%s: %v", m.Payload, err)
			}
			if diff := diffViewer(tc.want, viewerIn(t, p.Data)); diff != "" {
				t.Errorf("viewer:%s", diff)
			}
			c.expect("complete")
		})
	}
}

// TestViewerInDevelopmentMode: without authentication every caller is an
// administrator without a tenant, whatever credential it sends (none is
// read), over HTTP and websockets alike.
func TestViewerInDevelopmentMode(t *testing.T) {
	url := newViewerGateway(t, nil)
	want := viewer{DevelopmentMode: true, Roles: []string{"READER", "WRITER", "ADMIN"}, CanAdministerGateway: true}
	c := &client{t: t, url: url}
	for _, header := range [][]string{nil, {"X-API-Key", acmeOpsKey}} {
		out, resp := c.post(viewerQuery, nil, header...)
		if resp.StatusCode != http.StatusOK || len(out.Errors) > 0 {
			t.Fatalf("status %d, errors %+v", resp.StatusCode, out.Errors)
		}
		raw, _ := json.Marshal(out.Data)
		if diff := diffViewer(want, viewerIn(t, raw)); diff != "" {
			t.Errorf("with %v: viewer:%s", header, diff)
		}
	}
	ws := dialAuth(t, url, nil)
	ws.init()
	ws.send(subscribeMsg("me", viewerQuery, nil))
	m := ws.expect("next")
	var p struct{ Data json.RawMessage }
	if err := json.Unmarshal(m.Payload, &p); err != nil {
		t.Fatal(err)
	}
	if diff := diffViewer(want, viewerIn(t, p.Data)); diff != "" {
		t.Errorf("over a websocket: viewer:%s", diff)
	}
}
