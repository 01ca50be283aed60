package graph_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// Methods other than GET, POST and OPTIONS are answered 405 with Allow
// and a JSON error with a code: gqlgen answered PUT, DELETE and PATCH 400
// "transport not supported", a JSON body labelled text/plain, and HEAD 405
// without the Allow header the status requires.
func TestGraphQLRefusesOtherMethodsWith405(t *testing.T) {
	c := newServer(t, memStore(), nil)
	for _, method := range []string{http.MethodPut, http.MethodDelete, http.MethodPatch, http.MethodHead, "PROPFIND"} {
		req, _ := http.NewRequest(method, c.url, strings.NewReader(`{"query":"{ __typename }"}`))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, POST, OPTIONS" {
			t.Errorf("%s: %d (Allow %q) %s, want 405 with Allow: GET, POST, OPTIONS", method, resp.StatusCode, resp.Header.Get("Allow"), raw)
			continue
		}
		if method == http.MethodHead {
			continue // no body
		}
		var body struct {
			Errors []gqlError `json:"errors"`
		}
		if err := json.Unmarshal(raw, &body); err != nil || len(body.Errors) != 1 || body.Errors[0].Extensions["code"] != "METHOD_NOT_ALLOWED" ||
			resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s: %s (%s), want a JSON error with code METHOD_NOT_ALLOWED", method, raw, resp.Header.Get("Content-Type"))
		}
	}
	req, _ := http.NewRequest(http.MethodOptions, c.url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("OPTIONS: %d, want 200", resp.StatusCode)
	}
}
