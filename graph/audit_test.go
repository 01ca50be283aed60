package graph_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"testing"

	"cqrsgate/graph"
)

// TestGraphQLOverHTTPAudit runs the graphql-http package's server audit
// (the GraphQL-over-HTTP specification's checks) against the handler: no
// audit may fail or warn. Installed and skipped like TestReferenceClients.
func TestGraphQLOverHTTPAudit(t *testing.T) {
	node, dir := nodeModule(t, "graphql-http")
	s := newWSServer(t, &graph.Websocket{})
	cmd := exec.Command(node, "audit.mjs", "http"+s.url[len("ws"):])
	cmd.Dir = dir
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("audit: %v\n%s", err, out)
	}
	counts := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		var r struct {
			Status, ID, Name, Reason string
			Response                 any
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("audit output %q: %v", sc.Text(), err)
		}
		counts[r.Status]++
		if r.Status == "error" || r.Status == "warn" {
			t.Errorf("%s %s %s: %s (%v)", r.Status, r.ID, r.Name, r.Reason, r.Response)
		}
	}
	t.Logf("graphql-http audit: %v", counts)
	if counts["ok"] < 40 {
		t.Fatalf("only %d audits passed: %v", counts["ok"], counts)
	}
}
