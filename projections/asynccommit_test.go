package projections_test

import (
	"context"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"cqrsgate/domain"
	"cqrsgate/eventstore/eventstoretest"
	"cqrsgate/projections"
)

// commitProbe records the synchronous_commit setting its batches run with.
type commitProbe struct {
	mu       sync.Mutex
	settings []string
}

func (*commitProbe) Name() string                               { return "commit_probe" }
func (*commitProbe) Version() int                               { return 1 }
func (*commitProbe) EventTypes() []string                       { return []string{"Tick"} }
func (*commitProbe) Tables() []string                           { return nil }
func (*commitProbe) Setup(ctx context.Context, tx pgx.Tx) error { return nil }
func (p *commitProbe) Apply(ctx context.Context, tx pgx.Tx, events []domain.RecordedEvent) error {
	var s string
	if err := tx.QueryRow(ctx, "SELECT current_setting('synchronous_commit')").Scan(&s); err != nil {
		return err
	}
	p.mu.Lock()
	p.settings = append(p.settings, s)
	p.mu.Unlock()
	return nil
}

// TestProjectionsCommitAsynchronously: a projection's batches run with
// synchronous_commit off (read models are derived: a database crash may
// lose their last moments, which are applied again from the log), while
// the events they read were committed durably; the setting does not leak
// into the pool's other transactions. Checkpoints over events a projection
// does not read move too.
func TestProjectionsCommitAsynchronously(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	probe := &commitProbe{}
	e.start(t, projections.Options{}, probe)
	if _, err := e.store.Append(ctx, "probe-1", domain.ExpectAny, eventstoretest.Ev("Tick", 1)); err != nil {
		t.Fatal(err)
	}
	res, err := e.store.Append(ctx, "probe-2", domain.ExpectAny, eventstoretest.Ev("Other", 1))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the probe's checkpoint to pass an event it does not read", func() bool {
		var pos int64
		err := e.pool.QueryRow(ctx, "SELECT position FROM projections WHERE name = 'commit_probe'").Scan(&pos)
		return err == nil && pos >= res.LastPosition
	})
	probe.mu.Lock()
	settings := probe.settings
	probe.mu.Unlock()
	if len(settings) == 0 {
		t.Fatal("the probe applied nothing")
	}
	for _, s := range settings {
		if s != "off" {
			t.Fatalf("a projection batch ran with synchronous_commit = %s, want off", s)
		}
	}
	for i := 0; i < 5; i++ { // the pool's connections are back to the default
		var s string
		if err := e.pool.QueryRow(ctx, "SELECT current_setting('synchronous_commit')").Scan(&s); err != nil {
			t.Fatal(err)
		}
		if s != "on" {
			t.Fatalf("synchronous_commit = %s outside a projection batch, want on", s)
		}
	}
}
