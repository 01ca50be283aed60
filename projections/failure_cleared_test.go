package projections_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"cqrsgate/domain"
	"cqrsgate/projections"
)

// TestFailureClearedOncePast: once a failed projection is past its failure
// (skipped here; a retry that succeeds likewise), its status no longer
// names the failed event; lastError was cleared, failedPosition and
// failedEventId were not.
func TestFailureClearedOncePast(t *testing.T) {
	e := newEnv(t)
	e.start(t, projections.Options{MaxFailures: 2, RetryBackoff: 10 * time.Millisecond}, poison{})
	ctx := context.Background()
	add := func(data string) domain.AppendResult {
		res, err := e.store.Append(ctx, "misc-1", domain.ExpectAny, domain.EventData{Type: "Misc", SchemaVersion: 1, Data: json.RawMessage(data)})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	bad := add(`{"poison": true}`)
	waitFor(t, "poison to fail", func() bool { return status(t, e.pool, "poison", 1).Status == "FAILED" })
	if _, err := projections.Skip(ctx, e.pool, "poison", bad.LastPosition); err != nil {
		t.Fatal(err)
	}
	after := add(`{"n": 2}`)
	waitFor(t, "poison to pass the event", caughtUp(t, e, "poison", 1, after.LastPosition))
	if s := status(t, e.pool, "poison", 1); s.FailedPosition != 0 || s.FailedEventID != "" {
		t.Errorf("healthy again (%s, failures %d, lastError %q) but still failedPosition %d, failedEventId %s",
			s.Status, s.Failures, s.LastError, s.FailedPosition, s.FailedEventID)
	}
}
