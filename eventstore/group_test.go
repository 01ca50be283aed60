package eventstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"cqrsgate/domain"
	"cqrsgate/eventstore"
	"cqrsgate/eventstore/eventstoretest"
	"cqrsgate/internal/pgtest"
)

// TestGroupedAppendsKeepTheirOwnOutcomes: many appends at once (so they
// are written in shared batches) each get their own outcome: the right
// versions and positions, a conflict for a wrong expected version, an
// idempotent answer for a retry, and for two appends carrying the same new
// event id, exactly one success.
func TestGroupedAppendsKeepTheirOwnOutcomes(t *testing.T) {
	ctx := context.Background()
	s := newPostgres(t, pgtest.NewPool(t))
	for i := 0; i < 40; i++ { // streams at version 1
		if _, err := s.Append(ctx, fmt.Sprintf("g-%d", i), domain.ExpectNoStream, eventstoretest.Ev("Seeded", i)); err != nil {
			t.Fatal(err)
		}
	}
	retry := eventstoretest.Ev("Retried", 0)
	retry.ID = "0194f1a6-0000-7000-8000-000000000001"
	first, err := s.Append(ctx, "retry", domain.ExpectAny, retry)
	if err != nil {
		t.Fatal(err)
	}
	shared := eventstoretest.Ev("Shared", 0)
	shared.ID = "0194f1a6-0000-7000-8000-000000000002"

	type outcome struct {
		res domain.AppendResult
		err error
	}
	outcomes := make([]outcome, 84)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range outcomes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			var res domain.AppendResult
			var err error
			switch {
			case i < 40: // right expected version
				res, err = s.Append(ctx, fmt.Sprintf("g-%d", i), 1, eventstoretest.Ev("Next", i), eventstoretest.Ev("Next", i))
			case i < 80: // wrong expected version
				res, err = s.Append(ctx, fmt.Sprintf("g-%d", i-40), 5, eventstoretest.Ev("Wrong", i))
			case i < 82: // an idempotent retry
				res, err = s.Append(ctx, "retry", domain.ExpectAny, retry)
			default: // one new id, two streams
				res, err = s.Append(ctx, fmt.Sprintf("shared-%d", i), domain.ExpectAny, shared)
			}
			outcomes[i] = outcome{res, err}
		}()
	}
	close(start)
	wg.Wait()
	positions := map[int64]bool{}
	sharedWins := 0
	for i, o := range outcomes {
		switch {
		case i < 40:
			if o.err != nil || o.res.FirstVersion != 2 || o.res.LastVersion != 3 || o.res.LastPosition != o.res.FirstPosition+1 {
				t.Errorf("append %d: %+v, %v", i, o.res, o.err)
			}
			for _, e := range o.res.Events {
				if positions[e.Position] {
					t.Errorf("position %d given twice", e.Position)
				}
				positions[e.Position] = true
			}
		case i < 80:
			var wrong *eventstore.WrongExpectedVersionError
			if !errors.As(o.err, &wrong) || wrong.Expected != 5 {
				t.Errorf("append %d with a wrong expected version: %+v, %v", i, o.res, o.err)
			}
		case i < 82:
			if o.err != nil || !o.res.Duplicate || o.res.LastPosition != first.LastPosition {
				t.Errorf("retry %d: %+v, %v", i, o.res, o.err)
			}
		default:
			if o.err == nil {
				sharedWins++
			} else if !errors.Is(o.err, eventstore.ErrDuplicateEventID) {
				t.Errorf("shared id %d: %v", i, o.err)
			}
		}
	}
	if sharedWins != 1 {
		t.Errorf("%d appends of one new event id succeeded, want 1", sharedWins)
	}
	// The log has every event once, in a gap-safe order.
	page, err := s.ReadAll(ctx, eventstore.AllQuery{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Events) != 40+1+80+1 {
		t.Errorf("%d events in the log, want %d", len(page.Events), 40+1+80+1)
	}
}

// Appends that bring no event ids are written in one round trip, their
// expected versions checked by the INSERT itself: each gets its own outcome
// (every kind of expectation, right and wrong), with the stream's actual
// version when wrong.
func TestGroupedAppendsWithoutIDsCheckEachExpectation(t *testing.T) {
	ctx := context.Background()
	s := newPostgres(t, pgtest.NewPool(t))
	const n = 30
	for i := 0; i < n; i++ {
		if _, err := s.Append(ctx, fmt.Sprintf("g-%d", i), domain.ExpectNoStream, eventstoretest.Ev("Seeded", i)); err != nil {
			t.Fatal(err)
		}
	}
	type outcome struct {
		res domain.AppendResult
		err error
	}
	outcomes := make([]outcome, 5*n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range outcomes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			k := i % n
			var o outcome
			switch i / n {
			case 0: // right: exact
				o.res, o.err = s.Append(ctx, fmt.Sprintf("g-%d", k), 1, eventstoretest.Ev("Next", i), eventstoretest.Ev("Next", i))
			case 1: // wrong: the stream does not exist
				o.res, o.err = s.Append(ctx, fmt.Sprintf("missing-%d", k), domain.ExpectStreamExists, eventstoretest.Ev("Nope", i))
			case 2: // wrong: the stream exists
				o.res, o.err = s.Append(ctx, fmt.Sprintf("g-%d", k), domain.ExpectNoStream, eventstoretest.Ev("Nope", i))
			case 3: // right: any, on a new stream
				o.res, o.err = s.Append(ctx, fmt.Sprintf("new-%d", k), domain.ExpectAny, eventstoretest.Ev("First", i))
			default: // right: the stream exists
				o.res, o.err = s.Append(ctx, fmt.Sprintf("h-%d", k), domain.ExpectAny, eventstoretest.Ev("First", i))
			}
			outcomes[i] = o
		}()
	}
	close(start)
	wg.Wait()
	for i, o := range outcomes {
		var wrong *eventstore.WrongExpectedVersionError
		switch i / n {
		case 0:
			if o.err != nil || o.res.FirstVersion != 2 || o.res.LastVersion != 3 || o.res.LastPosition != o.res.FirstPosition+1 {
				t.Errorf("append %d: %+v, %v", i, o.res, o.err)
			}
		case 1:
			if !errors.As(o.err, &wrong) || wrong.Expected != domain.ExpectStreamExists || wrong.Actual != 0 {
				t.Errorf("append %d to a missing stream: %v", i, o.err)
			}
		case 2:
			if !errors.As(o.err, &wrong) || wrong.Expected != domain.ExpectNoStream || (wrong.Actual != 1 && wrong.Actual != 3) {
				t.Errorf("append %d expecting no stream: %v", i, o.err)
			}
		default:
			if o.err != nil || o.res.FirstVersion != 1 || len(o.res.Events) != 1 || o.res.Events[0].Position == 0 {
				t.Errorf("append %d: %+v, %v", i, o.res, o.err)
			}
		}
	}
	page, err := s.ReadAll(ctx, eventstore.AllQuery{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if want := n + 2*n + n + n; len(page.Events) != want {
		t.Errorf("%d events in the log, want %d", len(page.Events), want)
	}
	for i := 1; i < len(page.Events); i++ {
		if page.Events[i].Position <= page.Events[i-1].Position {
			t.Fatalf("positions out of order at %d", i)
		}
	}
}

// TestTransactionIDsFollowPositions: across many batches in flight
// together, no event has a lower transaction id than an event at a lower
// position. Gap-safe reads rely on it: a transaction is given its id while
// it holds the allocation lock, when it reserves its positions.
func TestTransactionIDsFollowPositions(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	s := newPostgres(t, pool)
	const writers, appends = 16, 25
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < appends; i++ {
				if _, err := s.Append(ctx, fmt.Sprintf("tx-%d-%d", w, i), domain.ExpectNoStream, eventstoretest.Ev("Ticked", i), eventstoretest.Ev("Ticked", i)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	var events, transactions, outOfOrder int
	if err := pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT tx_id), count(*) FILTER (WHERE prev > tx_id)
		FROM (SELECT tx_id, lag(tx_id) OVER (ORDER BY position) AS prev FROM events) AS t`).Scan(&events, &transactions, &outOfOrder); err != nil {
		t.Fatal(err)
	}
	if events != writers*appends*2 || transactions < 2 {
		t.Fatalf("%d events in %d transactions, want %d events", events, transactions, writers*appends*2)
	}
	if outOfOrder != 0 {
		t.Errorf("%d events have a lower transaction id than the event before them (%d events, %d transactions)", outOfOrder, events, transactions)
	}
}

// The text[] parameters appends send their ids, types, data and metadata in
// reach PostgreSQL exactly as a []string's would, whatever the strings
// hold, in every query mode.
func TestTextArraysReachPostgresIntact(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	values := []string{"", "plain", `{"a": "quote \" and \\ backslash"}`, "NULL", "{braces}, commas", "ünïcödé ✓", " spaced "}
	for _, mode := range everyQueryMode {
		text := eventstore.TextArrays(mode)
		for _, q := range []string{"SELECT $1::text[]", "SELECT array_length($1::text[], 1)::text || ':' || array_to_string($1::text[], '|')"} {
			var want, got any
			if err := pool.QueryRow(ctx, q, mode, values).Scan(&want); err != nil {
				t.Fatal(err)
			}
			if err := pool.QueryRow(ctx, q, mode, text(values)).Scan(&got); err != nil {
				t.Fatalf("%v: %v", mode, err)
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("%v, %s: got %q, want %q", mode, q, got, want)
			}
		}
		var isNull bool
		if err := pool.QueryRow(ctx, "SELECT $1::text[] IS NULL", mode, text(nil)).Scan(&isNull); err != nil || !isNull {
			t.Errorf("%v, a nil array: NULL = %v, %v; want true", mode, isNull, err)
		}
		var n int
		if err := pool.QueryRow(ctx, "SELECT cardinality($1::text[])", mode, text([]string{})).Scan(&n); err != nil || n != 0 {
			t.Errorf("%v, an empty array: cardinality %d, %v; want 0", mode, n, err)
		}
	}
	if fmt.Sprintf("%T", eventstore.TextArrays(pgx.QueryExecModeCacheStatement)(values)) == fmt.Sprintf("%T", values) {
		t.Errorf("the default mode passes text[] parameters as []string, boxing each element")
	}
}

// Appends work whatever the pool's query mode, including those in which
// pgx does not learn the parameters' types from PostgreSQL (Exec and the
// simple protocol), and store what they were given.
func TestAppendsInEveryQueryMode(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	var reader *eventstore.Postgres
	for i, pool := range poolPerQueryMode(t, url) {
		mode := everyQueryMode[i]
		s := newPostgres(t, pool)
		if i == 0 {
			reader = s
		}
		stream := fmt.Sprintf("mode-%d", i)
		given := eventstoretest.Ev("Noted", 1)
		given.Data = json.RawMessage(`{"text": "quote \" backslash \\ comma, {brace} ünï"}`)
		given.Metadata = json.RawMessage(`{"correlationId": "c-1", "note": "NULL"}`)
		withID := given
		withID.ID = domain.NewID()
		for _, events := range [][]domain.EventData{{given, given}, {withID}} {
			if _, err := s.Append(ctx, stream, domain.ExpectAny, events...); err != nil {
				t.Fatalf("%v: %v", mode, err)
			}
		}
		got, err := reader.ReadStream(ctx, stream, eventstore.StreamQuery{})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 3 || got[2].ID != withID.ID {
			t.Fatalf("%v: read back %d events (last id %v), want 3 (the last %s)", mode, len(got), got[len(got)-1].ID, withID.ID)
		}
		for _, e := range got {
			var data, meta map[string]any
			if json.Unmarshal(e.Data, &data) != nil || json.Unmarshal(e.Metadata, &meta) != nil ||
				data["text"] != "quote \" backslash \\ comma, {brace} ünï" || meta["note"] != "NULL" || e.Type != "Noted" {
				t.Errorf("%v: stored %s %s %s", mode, e.Type, e.Data, e.Metadata)
			}
		}
	}
}

// occupyWriters makes s's hook hold the batch of each append to a stream
// named busy-<i> until release is closed (other streams go to hook), and
// has appends to busy-0 ... busy-3 occupy every batch writer; wait returns
// once they are answered.
func occupyWriters(t *testing.T, s *eventstore.Postgres, hook func(ctx context.Context, stream string) error) (release chan struct{}, wait func()) {
	t.Helper()
	release = make(chan struct{})
	entered := make(chan struct{})
	s.SetBeforeCommit(func(ctx context.Context, stream string) error {
		if strings.HasPrefix(stream, "busy-") {
			entered <- struct{}{}
			<-release
			return nil
		}
		if hook != nil {
			return hook(ctx, stream)
		}
		return nil
	})
	var wg sync.WaitGroup
	for i := range 4 { // maxGroupWriters, one after the other
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.Append(context.Background(), fmt.Sprintf("busy-%d", i), domain.ExpectNoStream, eventstoretest.Ev("Busy", i)); err != nil {
				t.Error(err)
			}
		}()
		<-entered
	}
	if _, writers := s.GroupState(); writers != 4 {
		t.Fatalf("%d batch writers at work; want 4", writers)
	}
	return release, wg.Wait
}

// waitQueued waits until n appends wait in s's group-commit queue.
func waitQueued(t *testing.T, s *eventstore.Postgres, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		if queued, _ := s.GroupState(); queued == n {
			return
		}
		if time.Now().After(deadline) {
			queued, _ := s.GroupState()
			t.Fatalf("%d appends queued; want %d", queued, n)
		}
	}
}

// waitIdle waits until s has no batch writer at work.
func waitIdle(t *testing.T, s *eventstore.Postgres) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		if _, writers := s.GroupState(); writers == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the batch writers are still at work")
		}
	}
}

// An append whose caller gives up while it waits in the queue (every batch
// writer busy) is answered with the context's error and is never written.
func TestAppendCancelledWhileQueuedIsNotWritten(t *testing.T) {
	ctx := context.Background()
	s := newPostgres(t, pgtest.NewPool(t))
	release, wait := occupyWriters(t, s, nil)
	cctx, cancel := context.WithCancel(ctx)
	answered := appendVictim(cctx, s)
	waitQueued(t, s, 1)
	cancel()
	err := <-answered
	if !errors.Is(err, context.Canceled) || domain.CodeOf(err) == domain.Unavailable {
		t.Errorf("append cancelled in the queue answered %v (code %q); want the context's error", err, domain.CodeOf(err))
	}
	close(release)
	wait()
	waitIdle(t, s)
	if evs, err := s.ReadStream(ctx, "victim", eventstore.StreamQuery{}); err != nil || len(evs) != 0 {
		t.Fatalf("the stream of the cancelled append holds %d events (%v); want none", len(evs), err)
	}
}

// An append whose caller gives up while its batch is being written is
// answered UNAVAILABLE, as of unknown outcome (the batch commits it here).
func TestAppendCancelledWhileWrittenIsOfUnknownOutcome(t *testing.T) {
	ctx := context.Background()
	s := newPostgres(t, pgtest.NewPool(t))
	writing, resume := make(chan struct{}), make(chan struct{})
	release, wait := occupyWriters(t, s, func(ctx context.Context, stream string) error {
		if stream == "victim" {
			close(writing)
			<-resume
		}
		return nil
	})
	cctx, cancel := context.WithCancel(ctx)
	answered := appendVictim(cctx, s)
	waitQueued(t, s, 1)
	release <- struct{}{} // one busy writer goes on to the victim's batch
	<-writing
	cancel()
	err := <-answered
	if domain.CodeOf(err) != domain.Unavailable || !errors.Is(err, context.Canceled) {
		t.Errorf("append cancelled while written answered %v (code %q); want UNAVAILABLE wrapping the context's error", err, domain.CodeOf(err))
	}
	close(resume)
	close(release)
	wait()
	waitIdle(t, s)
	if evs, err := s.ReadStream(ctx, "victim", eventstore.StreamQuery{}); err != nil || len(evs) != 1 {
		t.Fatalf("the stream of the append holds %d events (%v); want the one its batch wrote", len(evs), err)
	}
}

// appendVictim appends one event to stream "victim" on ctx in the
// background; the channel gives its answer.
func appendVictim(ctx context.Context, s *eventstore.Postgres) <-chan error {
	answered := make(chan error, 1)
	go func() {
		_, err := s.Append(ctx, "victim", domain.ExpectNoStream, eventstoretest.Ev("Deposited", 1))
		answered <- err
	}()
	return answered
}
