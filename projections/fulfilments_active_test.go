package projections_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"cqrsgate/domain"
	"cqrsgate/projections"
)

// TestActiveFulfilmentsComeLongestUnchangedFirst: the fulfilment process
// looks at a limited number of unended sagas a tick (domain.ActivePerTick);
// they come longest without a change first, so that a saga whose deadline
// has passed is looked at however many sagas run, where the first 10,000
// by id were listed and the others never looked at after a restart.
func TestActiveFulfilmentsComeLongestUnchangedFirst(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var last int64
	saga := func(id string, evs ...domain.Event) {
		t.Helper()
		last = e.appendEvents(t, domain.Fulfilments.StreamID(id), evs...)
	}
	started := domain.FulfilmentStarted{AccountID: "a1", Currency: "EUR", Amount: 20, Items: []domain.FulfilmentItem{{Sku: "widget", Quantity: 2}}, StartedAt: at}
	saga("o-z", started)
	saga("o-a", started)
	saga("acme~o-m", started)
	saga("o-done", started, domain.FulfilmentFinished{State: domain.FulfilmentCompensated, At: at})
	saga("o-z", domain.FulfilmentStepSucceeded{Step: "reserve", Sku: "widget", At: at}) // o-z changed last
	p := projections.Fulfilments{}
	e.start(t, projections.Options{}, p)
	waitFor(t, "the fulfilments to catch up", func() bool { return status(t, e.pool, p.Name(), p.Version()).Position >= last })

	q := projections.NewFulfilmentQueries(e.pool)
	for limit, want := range map[int][]string{
		1:  {"o-a"},
		2:  {"o-a", "acme~o-m"},
		10: {"o-a", "acme~o-m", "o-z"},
	} {
		got, err := q.Active(ctx, limit)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("Active(%d) = %q, %v; want %q", limit, got, err, want)
		}
	}
}
