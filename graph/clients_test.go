package graph_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"cqrsgate/graph"
)

// TestReferenceClients runs the reference clients from npm, graphql-ws and
// subscriptions-transport-ws, against the transport: each runs a query
// that completes, then subscribes to the log and receives every event.
// .ci/run installs them (npm ci in graph/testdata/wsclients); without them
// the test fails in CI and is skipped elsewhere, saying how to install them.
func TestReferenceClients(t *testing.T) {
	node, dir := nodeModule(t, "graphql-ws")
	for _, protocol := range []string{graph.ProtocolTransportWS, graph.ProtocolLegacyWS} {
		t.Run(protocol, func(t *testing.T) {
			s := newWSServer(t, &graph.Websocket{})
			want := appendN(t, s.store, "npm-1", 5)
			cmd := exec.Command(node, "client.mjs", protocol, s.url, fmt.Sprint(len(want)))
			cmd.Dir = dir
			cmd.Stderr = os.Stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("%s client: %v\n%s", protocol, err, out)
			}
			var got struct {
				Typename  string  `json:"typename"`
				Completed bool    `json:"completed"`
				Positions []int64 `json:"positions"`
			}
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatalf("client output %q: %v", out, err)
			}
			if got.Typename != "Query" || !got.Completed || fmt.Sprint(got.Positions) != fmt.Sprint(want) {
				t.Fatalf("%s client saw %+v, want the query completed and positions %v", protocol, got, want)
			}
		})
	}
}

// nodeModule returns node and the directory of the npm packages the tests
// drive (graph/testdata/wsclients), once module is installed there. When
// it is not, the test fails in CI and is skipped elsewhere, saying how to
// install it.
func nodeModule(t *testing.T, module string) (node, dir string) {
	t.Helper()
	dir = filepath.Join("testdata", "wsclients")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", module)); err != nil {
		msg := module + " is not installed: run npm ci in graph/testdata/wsclients"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is not installed, but %s is", module)
	}
	return node, dir
}
