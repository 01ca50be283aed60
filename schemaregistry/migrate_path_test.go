package schemaregistry_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"cqrsgate/schemaregistry"
)

// TestDeepMigrationPathDoesNotCrashTheGateway: a migration operation's
// path could be as long as the admin liked. A set of "/a/a/a/..." one
// million levels deep (a 2 MB string; the GraphQL body limit is 16 MiB)
// created one million nested objects, which no size budget counted (only
// the value set was), and encoding the result to check it overflowed the
// goroutine stack: "fatal error: stack overflow", which no recover
// catches. A dry run (Check) was enough, as soon as one event of the type
// was stored. Such a path is refused, naming the operation. The check runs
// in a child process, since a crash would kill the test binary.
func TestDeepMigrationPathDoesNotCrashTheGateway(t *testing.T) {
	if os.Getenv("CQRSGATE_DEEP_PATH_CHILD") == "1" {
		deepMigrationPathChild(t)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestDeepMigrationPathDoesNotCrashTheGateway$", "-test.v")
	cmd.Env = append(os.Environ(), "CQRSGATE_DEEP_PATH_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil || strings.Contains(string(out), "fatal error") {
		lines := strings.Split(string(out), "\n")
		for i, l := range lines {
			if strings.Contains(l, "fatal error") || strings.Contains(l, "exceeds") || strings.Contains(l, "Check of a path") {
				t.Logf("child: %s", strings.Join(lines[max(0, i-1):min(len(lines), i+2)], " | "))
				break
			}
		}
		t.Fatalf("checking a migration with a deep path crashed or failed: %v", err)
	}
}

func deepMigrationPathChild(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, schemaregistry.Options{})
	e.mustRegister("Deep", `{"type": "object"}`, "")
	e.appendRaw("deep-1", "Deep", 1, `{}`)
	ops := []schemaregistry.Op{{Op: "default", Path: "/x", Value: json.RawMessage(`0`)}, {Op: "set", Path: strings.Repeat("/a", 1<<20), Value: json.RawMessage(`1`)}}
	_, err := e.reg.Check(ctx, schemaregistry.Registration{Type: "Deep", Schema: json.RawMessage(`{"type": "object", "properties": {"x": {}}}`), Migration: ops})
	var re *schemaregistry.Error
	if !errors.As(err, &re) || re.Code != schemaregistry.CodeInvalid || !strings.HasPrefix(re.Message, "operation 2 (set): path:") ||
		!strings.Contains(re.Message, "1048576 levels") || !strings.Contains(re.Message, "at most 64") || len(re.Message) > 300 {
		t.Fatalf("Check of a path 2^20 levels deep: %.300v, want a validation error naming operation 2 and the limit", err)
	}
}
