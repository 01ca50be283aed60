// Package eventstoretest is the conformance suite every eventstore.Store
// implementation must pass.
package eventstoretest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"cqrsgate/domain"
	"cqrsgate/eventstore"
)

// NewStore returns an empty store for one test; it is called once per
// subtest and must clean up after itself (t.Cleanup).
type NewStore func(t *testing.T) eventstore.Store

// Run runs the conformance suite against the stores newStore makes.
func Run(t *testing.T, newStore NewStore) {
	tests := []struct {
		name string
		fn   func(*testing.T, eventstore.Store)
	}{
		{"AppendAndReadStream", testAppendAndReadStream},
		{"ExpectedVersion", testExpectedVersion},
		{"ConcurrentAppendsAtSameVersion", testConcurrentSameVersion},
		{"Idempotency", testIdempotency},
		{"ExactNumbers", testExactNumbers},
		{"ConcurrentIdempotentRetries", testConcurrentRetries},
		{"BadInput", testBadInput},
		{"ReadAllFilters", testReadAllFilters},
		{"ReadAllSeveralTypes", testReadAllSeveralTypes},
		{"ReadAllByTenant", testReadAllByTenant},
		{"ReadByCorrelation", testReadByCorrelation},
		{"Snapshots", testSnapshots},
		{"ChangedWakesWaiters", testChanged},
		{"ManyConcurrentWriters", testManyWriters},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore(t)) })
	}
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// Ev builds an event of type typ with data {"n": n}.
func Ev(typ string, n int) domain.EventData {
	return domain.EventData{Type: typ, SchemaVersion: 1, Data: json.RawMessage(fmt.Sprintf(`{"n": %d}`, n))}
}

func mustAppend(t *testing.T, s eventstore.Store, stream string, exp domain.ExpectedVersion, evs ...domain.EventData) domain.AppendResult {
	t.Helper()
	res, err := s.Append(ctxFor(t), stream, exp, evs...)
	if err != nil {
		t.Fatalf("append to %s: %v", stream, err)
	}
	return res
}

func jsonEq(t *testing.T, got, want json.RawMessage) bool {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("stored JSON %s does not parse: %v", got, err)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatalf("JSON %s does not parse: %v", want, err)
	}
	return reflect.DeepEqual(g, w)
}

func testAppendAndReadStream(t *testing.T, s eventstore.Store) {
	ctx := ctxFor(t)
	evs := []domain.EventData{Ev("Opened", 1), Ev("Deposited", 2), Ev("Deposited", 3)}
	evs[1].Metadata = json.RawMessage(`{"correlationId": "c1", "actor": "alice"}`)
	res := mustAppend(t, s, "acct-1", domain.ExpectNoStream, evs...)
	if res.FirstVersion != 1 || res.LastVersion != 3 || len(res.Events) != 3 || res.Duplicate {
		t.Fatalf("result = %+v, want versions 1..3, 3 events, not duplicate", res)
	}
	if !(res.FirstPosition > 0 && res.LastPosition > res.FirstPosition) {
		t.Fatalf("positions %d..%d are not increasing", res.FirstPosition, res.LastPosition)
	}
	for i, e := range res.Events {
		if !domain.ValidID(e.ID) {
			t.Errorf("event %d got id %q, want a generated UUID", i, e.ID)
		}
		if i > 0 && e.Position <= res.Events[i-1].Position {
			t.Errorf("positions not increasing: %d then %d", res.Events[i-1].Position, e.Position)
		}
	}
	got, err := s.ReadStream(ctx, "acct-1", eventstore.StreamQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("read %d events, want 3", len(got))
	}
	for i, e := range got {
		want := res.Events[i]
		if e.ID != want.ID || e.Type != evs[i].Type || e.StreamVersion != int64(i+1) || e.Position != want.Position || e.StreamID != "acct-1" || e.SchemaVersion != 1 {
			t.Errorf("event %d = %+v, want %+v", i, e, want)
		}
		if !jsonEq(t, e.Data, evs[i].Data) {
			t.Errorf("event %d data = %s, want %s", i, e.Data, evs[i].Data)
		}
		if e.RecordedAt.IsZero() {
			t.Errorf("event %d has no recorded time", i)
		}
	}
	if !jsonEq(t, got[1].Metadata, evs[1].Metadata) || !jsonEq(t, got[0].Metadata, json.RawMessage(`{}`)) {
		t.Errorf("metadata = %s and %s, want %s and {}", got[1].Metadata, got[0].Metadata, evs[1].Metadata)
	}

	from2, _ := s.ReadStream(ctx, "acct-1", eventstore.StreamQuery{From: 2, Limit: 1})
	if len(from2) != 1 || from2[0].StreamVersion != 2 {
		t.Errorf("forward from 2 limit 1 = %v, want version 2", versions(from2))
	}
	back, _ := s.ReadStream(ctx, "acct-1", eventstore.StreamQuery{Backward: true, Limit: 2})
	if !reflect.DeepEqual(versions(back), []int64{3, 2}) {
		t.Errorf("latest 2 backwards = %v, want [3 2]", versions(back))
	}
	back, _ = s.ReadStream(ctx, "acct-1", eventstore.StreamQuery{Backward: true, From: 2})
	if !reflect.DeepEqual(versions(back), []int64{2, 1}) {
		t.Errorf("backwards from 2 = %v, want [2 1]", versions(back))
	}
	none, err := s.ReadStream(ctx, "nope", eventstore.StreamQuery{})
	if err != nil || len(none) != 0 {
		t.Errorf("reading a missing stream = %v, %v; want empty, nil", none, err)
	}
	one, err := s.ReadEvent(ctx, strings.ToUpper(res.Events[1].ID))
	if err != nil || one.ID != res.Events[1].ID || one.StreamVersion != 2 || one.Position != res.Events[1].Position {
		t.Errorf("ReadEvent = %+v, %v; want the second event", one, err)
	}
	if _, err := s.ReadEvent(ctx, domain.NewID()); !errors.Is(err, eventstore.ErrEventNotFound) || domain.CodeOf(err) != domain.NotFound {
		t.Errorf("ReadEvent of an unknown id: err = %v, want ErrEventNotFound", err)
	}
	if _, err := s.ReadEvent(ctx, "nope"); !errors.Is(err, eventstore.ErrInvalidInput) {
		t.Errorf("ReadEvent of a malformed id: err = %v, want ErrInvalidInput", err)
	}
	v, err := s.StreamVersion(ctx, "acct-1")
	if err != nil || v != 3 {
		t.Errorf("StreamVersion = %d, %v; want 3", v, err)
	}
	res2 := mustAppend(t, s, "acct-1", 3, Ev("Deposited", 4))
	if res2.FirstVersion != 4 || res2.FirstPosition <= res.LastPosition {
		t.Errorf("second append = %+v, want version 4 after position %d", res2, res.LastPosition)
	}
}

func versions(evs []domain.RecordedEvent) []int64 {
	out := []int64{}
	for _, e := range evs {
		out = append(out, e.StreamVersion)
	}
	return out
}

func testExpectedVersion(t *testing.T, s eventstore.Store) {
	ctx := ctxFor(t)
	mustAppend(t, s, "s", domain.ExpectNoStream, Ev("A", 1), Ev("A", 2))
	cases := []struct {
		name     string
		stream   string
		expected domain.ExpectedVersion
		actual   int64 // -1: must succeed
	}{
		{"no stream on existing", "s", domain.ExpectNoStream, 2},
		{"exact too low", "s", 1, 2},
		{"exact too high", "s", 5, 2},
		{"stream exists on missing", "missing", domain.ExpectStreamExists, 0},
		{"exact on missing", "missing", 1, 0},
		{"exact", "s", 2, -1},
		{"stream exists", "s", domain.ExpectStreamExists, -1},
		{"any", "s", domain.ExpectAny, -1},
		{"any on missing", "other", domain.ExpectAny, -1},
	}
	for _, c := range cases {
		before, _ := s.StreamVersion(ctx, c.stream)
		_, err := s.Append(ctx, c.stream, c.expected, Ev("A", 9))
		after, _ := s.StreamVersion(ctx, c.stream)
		if c.actual < 0 {
			if err != nil || after != before+1 {
				t.Errorf("%s: err = %v, version %d -> %d; want success", c.name, err, before, after)
			}
			continue
		}
		var wev *eventstore.WrongExpectedVersionError
		if !errors.Is(err, eventstore.ErrWrongExpectedVersion) || !errors.As(err, &wev) {
			t.Errorf("%s: err = %v, want ErrWrongExpectedVersion", c.name, err)
			continue
		}
		if wev.Stream != c.stream || wev.Expected != c.expected || wev.Actual != c.actual {
			t.Errorf("%s: error = %+v, want stream %s expected %d actual %d", c.name, wev, c.stream, c.expected, c.actual)
		}
		if domain.CodeOf(err) != domain.Conflict {
			t.Errorf("%s: code = %s, want CONFLICT", c.name, domain.CodeOf(err))
		}
		if after != before {
			t.Errorf("%s: a refused append wrote events (version %d -> %d)", c.name, before, after)
		}
	}
}

func testConcurrentSameVersion(t *testing.T, s eventstore.Store) {
	ctx := ctxFor(t)
	mustAppend(t, s, "race", domain.ExpectNoStream, Ev("A", 0))
	for round := 0; round < 5; round++ {
		v, err := s.StreamVersion(ctx, "race")
		if err != nil {
			t.Fatal(err)
		}
		const n = 8
		var wg sync.WaitGroup
		errs := make([]error, n)
		start := make(chan struct{})
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, errs[i] = s.Append(ctx, "race", domain.ExpectedVersion(v), Ev("A", i), Ev("B", i))
			}()
		}
		close(start)
		wg.Wait()
		wins := 0
		for _, err := range errs {
			switch {
			case err == nil:
				wins++
			case errors.Is(err, eventstore.ErrWrongExpectedVersion):
			default:
				t.Fatalf("round %d: unexpected error %v", round, err)
			}
		}
		if wins != 1 {
			t.Fatalf("round %d: %d appends won at expected version %d, want exactly 1", round, wins, v)
		}
		if after, _ := s.StreamVersion(ctx, "race"); after != v+2 {
			t.Fatalf("round %d: version %d after the race, want %d (the winner's two events)", round, after, v+2)
		}
	}
}

func headOf(t *testing.T, s eventstore.Store) int64 {
	t.Helper()
	p, err := s.ReadAll(ctxFor(t), eventstore.AllQuery{After: 0, Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	return p.Head
}

func testIdempotency(t *testing.T, s eventstore.Store) {
	ctx := ctxFor(t)
	a, b := Ev("A", 1), Ev("B", 2)
	a.ID, b.ID = domain.NewID(), domain.NewID()[:32]+"abcd"
	orig := mustAppend(t, s, "idem", domain.ExpectNoStream, a, b)
	head := headOf(t, s)

	// An exact retry, even with the now stale expected version, returns the
	// original result and writes nothing.
	retry, err := s.Append(ctx, "idem", domain.ExpectNoStream, a, b)
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	if !retry.Duplicate || retry.FirstPosition != orig.FirstPosition || retry.LastPosition != orig.LastPosition || retry.LastVersion != 2 {
		t.Fatalf("retry = %+v, want duplicate with original positions %d..%d", retry, orig.FirstPosition, orig.LastPosition)
	}
	// Upper-case ids are the same ids, and so are ids in mixed case.
	upper := a
	upper.ID = strings.ToUpper(a.ID)
	mixed := b
	mixed.ID = b.ID[:32] + "ABcD" // upper case only after the first letters
	if r, err := s.Append(ctx, "idem", domain.ExpectAny, upper, mixed); err != nil || !r.Duplicate {
		t.Fatalf("retry with upper-case ids = %+v, %v; want duplicate", r, err)
	}
	if h := headOf(t, s); h != head {
		t.Fatalf("retries moved the head from %d to %d", head, h)
	}

	changed := a
	changed.Data = json.RawMessage(`{"n": 99}`)
	otherType := a
	otherType.Type = "Other"
	fresh := Ev("C", 3)
	fresh.ID = domain.NewID()
	for _, c := range []struct {
		name   string
		stream string
		evs    []domain.EventData
	}{
		{"same id, other data", "idem", []domain.EventData{changed, b}},
		{"same id, other type", "idem", []domain.EventData{otherType, b}},
		{"same id, other stream", "elsewhere", []domain.EventData{a, b}},
		{"stored and new ids mixed", "idem", []domain.EventData{a, b, fresh}},
		{"stored ids in another order", "idem", []domain.EventData{b, a}},
	} {
		_, err := s.Append(ctx, c.stream, domain.ExpectAny, c.evs...)
		if !errors.Is(err, eventstore.ErrDuplicateEventID) || domain.CodeOf(err) != domain.Conflict {
			t.Errorf("%s: err = %v, want ErrDuplicateEventID (CONFLICT)", c.name, err)
		}
	}
	if h := headOf(t, s); h != head {
		t.Fatalf("refused appends moved the head from %d to %d", head, h)
	}
	if v, _ := s.StreamVersion(ctx, "elsewhere"); v != 0 {
		t.Fatalf("refused append created stream elsewhere at version %d", v)
	}
}

// testExactNumbers: numbers are stored and compared exactly (as jsonb does),
// not as float64: 2^53+1 reads back as written, and an idempotent retry
// matches by value (1.10 is 1.1) but not by a float64's approximation.
func testExactNumbers(t *testing.T, s eventstore.Store) {
	ctx := ctxFor(t)
	e := domain.EventData{ID: domain.NewID(), Type: "Exact", SchemaVersion: 1, Data: json.RawMessage(`{"big": 9007199254740993, "dec": 1.10}`)}
	mustAppend(t, s, "exact", domain.ExpectNoStream, e)
	got, err := s.ReadStream(ctx, "exact", eventstore.StreamQuery{})
	if err != nil || len(got) != 1 {
		t.Fatalf("read = %v, %v", got, err)
	}
	if !strings.Contains(string(got[0].Data), "9007199254740993") {
		t.Fatalf("stored %s: the big number lost its last digit", got[0].Data)
	}
	same := e
	same.Data = json.RawMessage(`{"dec": 1.1, "big": 9007199254740993}`)
	if r, err := s.Append(ctx, "exact", domain.ExpectAny, same); err != nil || !r.Duplicate {
		t.Fatalf("retry with the same values written differently = %+v, %v; want duplicate", r, err)
	}
	other := e
	other.Data = json.RawMessage(`{"big": 9007199254740992, "dec": 1.10}`)
	if _, err := s.Append(ctx, "exact", domain.ExpectAny, other); !errors.Is(err, eventstore.ErrDuplicateEventID) {
		t.Fatalf("retry with another number (equal as float64s) = %v; want ErrDuplicateEventID", err)
	}
}

func testConcurrentRetries(t *testing.T, s eventstore.Store) {
	ctx := ctxFor(t)
	evs := []domain.EventData{Ev("A", 1), Ev("A", 2), Ev("A", 3)}
	for i := range evs {
		evs[i].ID = domain.NewID()
	}
	const n = 8
	results := make([]domain.AppendResult, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = s.Append(ctx, "retried", domain.ExpectNoStream, evs...)
		}()
	}
	wg.Wait()
	dups := 0
	for i := 0; i < n; i++ {
		if errs[i] != nil {
			t.Fatalf("retry %d: %v", i, errs[i])
		}
		if results[i].FirstPosition != results[0].FirstPosition || results[i].LastVersion != 3 {
			t.Fatalf("retry %d = %+v, differs from %+v", i, results[i], results[0])
		}
		if results[i].Duplicate {
			dups++
		}
	}
	if dups != n-1 {
		t.Fatalf("%d of %d concurrent retries were duplicates, want %d", dups, n, n-1)
	}
	if v, _ := s.StreamVersion(ctx, "retried"); v != 3 {
		t.Fatalf("stream version %d after concurrent retries, want 3", v)
	}
}

func testBadInput(t *testing.T, s eventstore.Store) {
	ctx := ctxFor(t)
	mustAppend(t, s, "ok", domain.ExpectNoStream, Ev("A", 1))
	head := headOf(t, s)
	with := func(f func(*domain.EventData)) []domain.EventData {
		e := Ev("A", 1)
		f(&e)
		return []domain.EventData{e}
	}
	dupID := domain.NewID()
	tooMany := make([]domain.EventData, eventstore.DefaultMaxEventsPerAppend+1)
	for i := range tooMany {
		tooMany[i] = Ev("A", i)
	}
	cases := []struct {
		name     string
		stream   string
		expected domain.ExpectedVersion
		events   []domain.EventData
		field    string
	}{
		{"empty stream id", "", domain.ExpectAny, with(func(*domain.EventData) {}), "stream"},
		{"control character in stream id", "a\nb", domain.ExpectAny, with(func(*domain.EventData) {}), "stream"},
		{"C1 control character in stream id", "a\u0085b", domain.ExpectAny, with(func(*domain.EventData) {}), "stream"},
		{"zero-width space in stream id", "a\u200bb", domain.ExpectAny, with(func(*domain.EventData) {}), "stream"},
		{"right-to-left override in stream id", "a\u202eb", domain.ExpectAny, with(func(*domain.EventData) {}), "stream"},
		{"no-break space in stream id", "a\u00a0b", domain.ExpectAny, with(func(*domain.EventData) {}), "stream"},
		{"stream id too long", strings.Repeat("s", eventstore.MaxStreamIDLength+1), domain.ExpectAny, with(func(*domain.EventData) {}), "stream"},
		{"stream id not UTF-8", "a\xffb", domain.ExpectAny, with(func(*domain.EventData) {}), "stream"},
		{"unknown expected version", "ok", -3, with(func(*domain.EventData) {}), "expectedVersion"},
		{"no events", "ok", domain.ExpectAny, nil, "events"},
		{"too many events", "ok", domain.ExpectAny, tooMany, "events"},
		{"id not a UUID", "ok", domain.ExpectAny, with(func(e *domain.EventData) { e.ID = "123" }), "events.0.id"},
		{"id twice in one append", "ok", domain.ExpectAny, []domain.EventData{{ID: dupID, Type: "A", SchemaVersion: 1, Data: json.RawMessage(`{}`)}, {ID: dupID, Type: "A", SchemaVersion: 1, Data: json.RawMessage(`{}`)}}, "events.1.id"},
		{"empty type", "ok", domain.ExpectAny, with(func(e *domain.EventData) { e.Type = "" }), "events.0.type"},
		{"type with spaces", "ok", domain.ExpectAny, with(func(e *domain.EventData) { e.Type = "Account Opened" }), "events.0.type"},
		{"type too long", "ok", domain.ExpectAny, with(func(e *domain.EventData) { e.Type = "A" + strings.Repeat("a", eventstore.MaxEventTypeLength) }), "events.0.type"},
		{"schema version 0", "ok", domain.ExpectAny, with(func(e *domain.EventData) { e.SchemaVersion = 0 }), "events.0.version"},
		{"schema version beyond 32 bits", "ok", domain.ExpectAny, with(func(e *domain.EventData) { e.SchemaVersion = math.MaxInt32 + 1 }), "events.0.version"},
		{"schema version 1 in its lower 32 bits", "ok", domain.ExpectAny, with(func(e *domain.EventData) { e.SchemaVersion = 1<<32 + 1 }), "events.0.version"},
		{"missing data", "ok", domain.ExpectAny, with(func(e *domain.EventData) { e.Data = nil }), "events.0.data"},
		{"data not JSON", "ok", domain.ExpectAny, with(func(e *domain.EventData) { e.Data = json.RawMessage(`{"a": `) }), "events.0.data"},
		{"data after a form feed", "ok", domain.ExpectAny, with(func(e *domain.EventData) { e.Data = json.RawMessage("\f{}") }), "events.0.data"},
		{"metadata before a no-break space", "ok", domain.ExpectAny, with(func(e *domain.EventData) { e.Metadata = json.RawMessage("{}\u00a0") }), "events.0.metadata"},
		{"data an array", "ok", domain.ExpectAny, with(func(e *domain.EventData) { e.Data = json.RawMessage(`[1, 2]`) }), "events.0.data"},
		{"data a string", "ok", domain.ExpectAny, with(func(e *domain.EventData) { e.Data = json.RawMessage(`"x"`) }), "events.0.data"},
		{"data with NUL", "ok", domain.ExpectAny, with(func(e *domain.EventData) { e.Data = json.RawMessage(`{"a": "x\u0000y"}`) }), "events.0.data"},
		{"data not UTF-8", "ok", domain.ExpectAny, with(func(e *domain.EventData) { e.Data = json.RawMessage("{\"a\": \"\xff\"}") }), "events.0.data"},
		{"data with a lone high surrogate", "ok", domain.ExpectAny, with(func(e *domain.EventData) { e.Data = json.RawMessage(`{"a": "\ud800"}`) }), "events.0.data"},
		{"data with a lone low surrogate", "ok", domain.ExpectAny, with(func(e *domain.EventData) { e.Data = json.RawMessage(`{"a": "\udc00x"}`) }), "events.0.data"},
		{"data with a high surrogate before another escape", "ok", domain.ExpectAny, with(func(e *domain.EventData) { e.Data = json.RawMessage(`{"\uD83D\u0041": 1}`) }), "events.0.data"},
		{"metadata with a lone surrogate", "ok", domain.ExpectAny, with(func(e *domain.EventData) { e.Metadata = json.RawMessage(`{"note": "\ud83d"}`) }), "events.0.metadata"},
		{"oversized data", "ok", domain.ExpectAny, with(func(e *domain.EventData) {
			e.Data = json.RawMessage(`{"a": "` + strings.Repeat("x", eventstore.DefaultMaxEventBytes) + `"}`)
		}), "events.0.data"},
		{"data with a number beyond PostgreSQL's numeric", "ok", domain.ExpectAny, with(func(e *domain.EventData) { e.Data = json.RawMessage(`{"a": [1, 1e131072]}`) }), "events.0.data"},
		{"data whose numbers' exponents stand for too many digits", "ok", domain.ExpectAny, with(func(e *domain.EventData) { e.Data = json.RawMessage(`{"a": [1e131071, 1e131071]}`) }), "events.0.data"},
		{"metadata with a number beyond PostgreSQL's numeric", "ok", domain.ExpectAny, with(func(e *domain.EventData) { e.Metadata = json.RawMessage(`{"a": 1e-16384}`) }), "events.0.metadata"},
		{"metadata not an object", "ok", domain.ExpectAny, with(func(e *domain.EventData) { e.Metadata = json.RawMessage(`[]`) }), "events.0.metadata"},
		{"bad second event", "ok", domain.ExpectAny, append(with(func(*domain.EventData) {}), domain.EventData{Type: "A", SchemaVersion: 1, Data: json.RawMessage(`nope`)}), "events.1.data"},
	}
	for _, c := range cases {
		_, err := s.Append(ctx, c.stream, c.expected, c.events...)
		var de *domain.Error
		if !errors.Is(err, eventstore.ErrInvalidInput) || !errors.As(err, &de) || de.Code != domain.Invalid {
			t.Errorf("%s: err = %v, want ErrInvalidInput with code VALIDATION", c.name, err)
			continue
		}
		if de.Field != c.field {
			t.Errorf("%s: field = %q, want %q (%v)", c.name, de.Field, c.field, err)
		}
	}
	if h := headOf(t, s); h != head {
		t.Fatalf("bad input moved the head from %d to %d", head, h)
	}
	// Reads refuse bad arguments too.
	if _, err := s.ReadAll(ctx, eventstore.AllQuery{Limit: eventstore.MaxLimit + 1}); !errors.Is(err, eventstore.ErrInvalidInput) {
		t.Errorf("ReadAll with limit above max: err = %v, want ErrInvalidInput", err)
	}
	if _, err := s.ReadAll(ctx, eventstore.AllQuery{After: -1}); !errors.Is(err, eventstore.ErrInvalidInput) {
		t.Errorf("ReadAll after -1: err = %v, want ErrInvalidInput", err)
	}
	var typeErr *domain.Error
	if _, err := s.ReadAll(ctx, eventstore.AllQuery{Types: []string{"Good", "bad type"}}); !errors.Is(err, eventstore.ErrInvalidInput) || !errors.As(err, &typeErr) || typeErr.Field != "types.1" {
		t.Errorf("ReadAll with a bad type: err = %v, want ErrInvalidInput naming types.1", err)
	}
	if _, err := s.ReadStream(ctx, "", eventstore.StreamQuery{}); !errors.Is(err, eventstore.ErrInvalidInput) {
		t.Errorf("ReadStream of empty id: err = %v, want ErrInvalidInput", err)
	}
	if _, err := s.ReadByCorrelation(ctx, "", nil, 0, 10); !errors.Is(err, eventstore.ErrInvalidInput) {
		t.Errorf("ReadByCorrelation with empty id: err = %v, want ErrInvalidInput", err)
	}
	// Stream ids that look like others are refused on append only: a
	// stream appended to before that check stays readable.
	if _, err := s.ReadStream(ctx, "a\u00a0b", eventstore.StreamQuery{}); err != nil {
		t.Errorf("ReadStream of an id with a no-break space: %v", err)
	}
	// So does appending to one that exists (expecting a version): here it
	// does not, which is a conflict, not a malformed id.
	if _, err := s.Append(ctx, "a\u00a0b", 1, with(func(*domain.EventData) {})...); !errors.Is(err, domain.ErrWrongExpectedVersion) {
		t.Errorf("an append expecting version 1 of a stream with a no-break space in its id: %v, want a conflict", err)
	}
	// Joiners are part of emoji sequences and of Persian and Indic words;
	// code points newer than Go's Unicode tables are fine too.
	for _, stream := range []string{"dev-👩\u200d💻", "می\u200cخواهم", "\U0001fae9-x"} {
		if _, err := s.Append(ctx, stream, domain.ExpectAny, with(func(*domain.EventData) {})...); err != nil {
			t.Errorf("append to %q: %v", stream, err)
		}
	}
}

func testReadAllFilters(t *testing.T, s eventstore.Store) {
	ctx := ctxFor(t)
	empty, err := s.ReadAll(ctx, eventstore.AllQuery{})
	if err != nil || len(empty.Events) != 0 || empty.Head != 0 || empty.Next != 0 {
		t.Fatalf("empty log read = %+v, %v; want nothing at 0", empty, err)
	}
	var all []domain.RecordedEvent
	for i := 0; i < 10; i++ {
		stream := fmt.Sprintf("order-%d", i%3)
		typ := "Placed"
		if i%2 == 1 {
			typ = "Shipped"
		}
		if i == 9 {
			stream = "account-1"
		}
		res := mustAppend(t, s, stream, domain.ExpectAny, Ev(typ, i))
		all = append(all, res.Events...)
	}
	last := all[len(all)-1].Position

	p, err := s.ReadAll(ctx, eventstore.AllQuery{Limit: 4})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Events) != 4 || p.Events[0].Position != all[0].Position || p.Next != all[3].Position || p.Head != last {
		t.Fatalf("first page = %d events, next %d, head %d; want 4, %d, %d", len(p.Events), p.Next, p.Head, all[3].Position, last)
	}
	p, _ = s.ReadAll(ctx, eventstore.AllQuery{After: p.Next, Limit: 100})
	if len(p.Events) != 6 || p.Next != last {
		t.Fatalf("second page = %d events, next %d; want 6, %d", len(p.Events), p.Next, last)
	}

	shipped, _ := s.ReadAll(ctx, eventstore.AllQuery{Types: []string{"Shipped"}})
	if len(shipped.Events) != 5 || shipped.Next != last {
		t.Fatalf("Shipped = %d events, next %d; want 5 and next = head %d", len(shipped.Events), shipped.Next, last)
	}
	for _, e := range shipped.Events {
		if e.Type != "Shipped" {
			t.Errorf("type filter returned %s", e.Type)
		}
	}
	orders, _ := s.ReadAll(ctx, eventstore.AllQuery{StreamPrefix: "order-"})
	if len(orders.Events) != 9 {
		t.Fatalf("prefix order- = %d events, want 9", len(orders.Events))
	}
	both, _ := s.ReadAll(ctx, eventstore.AllQuery{StreamPrefix: "order-1", Types: []string{"Placed"}})
	for _, e := range both.Events {
		if e.StreamID != "order-1" || e.Type != "Placed" {
			t.Errorf("combined filter returned %s %s", e.StreamID, e.Type)
		}
	}
	if len(both.Events) != 1 { // streams order-1 get i = 1, 4, 7; only 4 is even (Placed)
		t.Errorf("combined filter = %d events, want 1", len(both.Events))
	}
	one1, _ := s.ReadAll(ctx, eventstore.AllQuery{Stream: "order-1"})
	if len(one1.Events) != 3 {
		t.Fatalf("stream order-1 = %d events, want 3", len(one1.Events))
	}
	for _, e := range one1.Events {
		if e.StreamID != "order-1" {
			t.Errorf("stream filter returned %s", e.StreamID)
		}
	}
	// A filtered page that is full continues after its last event.
	one, _ := s.ReadAll(ctx, eventstore.AllQuery{Types: []string{"Shipped"}, Limit: 1})
	if len(one.Events) != 1 || one.Next != one.Events[0].Position {
		t.Fatalf("full filtered page next = %d, want its last position", one.Next)
	}
	past, _ := s.ReadAll(ctx, eventstore.AllQuery{After: last + 100})
	if len(past.Events) != 0 || past.Next < last {
		t.Fatalf("read after the end = %+v", past)
	}
}

// testReadAllSeveralTypes: a read of several types (one named twice) pages
// through exactly the events of those types, in position order, whatever
// the page size, alone and combined with the other filters.
func testReadAllSeveralTypes(t *testing.T, s eventstore.Store) {
	ctx := ctxFor(t)
	types := []string{"Placed", "Shipped", "Paid", "Noise"}
	for i := 0; i < 40; i++ {
		mustAppend(t, s, fmt.Sprintf("order-%d", i%4), domain.ExpectAny, Ev(types[(i*7)%len(types)], i))
	}
	all, err := s.ReadAll(ctx, eventstore.AllQuery{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []eventstore.AllQuery{
		{Types: []string{"Shipped", "Placed", "Shipped"}},
		{Types: []string{"Paid", "Placed", "Shipped"}, Stream: "order-2"},
		{Types: []string{"Paid", "Noise"}, StreamPrefix: "order-1"},
	} {
		var want []int64
		for _, e := range all.Events {
			if slices.Contains(q.Types, e.Type) && (q.Stream == "" || e.StreamID == q.Stream) && strings.HasPrefix(e.StreamID, q.StreamPrefix) {
				want = append(want, e.Position)
			}
		}
		for _, limit := range []int{1, 3, 100} {
			q.Limit, q.After = limit, 0
			var got []int64
			for range 100 {
				p, err := s.ReadAll(ctx, q)
				if err != nil {
					t.Fatalf("%+v: %v", q, err)
				}
				for _, e := range p.Events {
					got = append(got, e.Position)
				}
				if len(p.Events) < limit {
					break
				}
				q.After = p.Next
			}
			if !slices.Equal(got, want) {
				t.Errorf("types %v stream %q prefix %q, pages of %d: positions %v, want %v", q.Types, q.Stream, q.StreamPrefix, limit, got, want)
			}
		}
	}
}

// testReadAllByTenant: the Tenant filter keeps exactly one tenant's streams,
// the default tenant's being those without the separator.
func testReadAllByTenant(t *testing.T, s eventstore.Store) {
	ctx := ctxFor(t)
	streams := []string{"acme~account-1", "account-1", "acme~order-1", "globex~account-1", "acmex~account-1", "order-2"}
	for i, stream := range streams {
		mustAppend(t, s, stream, domain.ExpectAny, Ev("Opened", i))
	}
	for tenant, want := range map[string][]string{
		"acme":   {"acme~account-1", "acme~order-1"},
		"globex": {"globex~account-1"},
		"":       {"account-1", "order-2"},
		"nobody": nil,
	} {
		p, err := s.ReadAll(ctx, eventstore.AllQuery{Tenant: &tenant})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range p.Events {
			got = append(got, e.StreamID)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("tenant %q read %v, want %v", tenant, got, want)
		}
	}
	acme := "acme"
	p, _ := s.ReadAll(ctx, eventstore.AllQuery{Tenant: &acme, StreamPrefix: "acme~order-"})
	if len(p.Events) != 1 || p.Events[0].StreamID != "acme~order-1" {
		t.Errorf("tenant and prefix = %v", p.Events)
	}
	all, _ := s.ReadAll(ctx, eventstore.AllQuery{})
	if len(all.Events) != len(streams) {
		t.Errorf("no tenant filter read %d events, want %d", len(all.Events), len(streams))
	}
}

func testReadByCorrelation(t *testing.T, s eventstore.Store) {
	ctx := ctxFor(t)
	withCorr := func(n int, corr string) domain.EventData {
		e := Ev("A", n)
		e.Metadata = json.RawMessage(fmt.Sprintf(`{"correlationId": %q}`, corr))
		return e
	}
	mustAppend(t, s, "x", domain.ExpectAny, withCorr(1, "c-1"), withCorr(2, "c-2"))
	mustAppend(t, s, "y", domain.ExpectAny, withCorr(3, "c-1"), Ev("A", 4))
	got, err := s.ReadByCorrelation(ctx, "c-1", nil, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].StreamID != "x" || got[1].StreamID != "y" || got[0].Position >= got[1].Position {
		t.Fatalf("correlation c-1 = %+v, want x then y", got)
	}
	rest, _ := s.ReadByCorrelation(ctx, "c-1", nil, got[0].Position, 10)
	if len(rest) != 1 || rest[0].StreamID != "y" {
		t.Fatalf("correlation c-1 after first = %+v, want only y", rest)
	}
	// A tenant reads its own events of the correlation, counted against
	// the limit after the filter: another tenant's do not fill its page.
	mustAppend(t, s, "acme~z", domain.ExpectAny, withCorr(5, "c-1"))
	acme, none := "acme", ""
	if own, err := s.ReadByCorrelation(ctx, "c-1", &acme, 0, 1); err != nil || len(own) != 1 || own[0].StreamID != "acme~z" {
		t.Errorf("tenant acme, correlation c-1, limit 1 = %+v, %v; want acme~z", own, err)
	}
	if def, err := s.ReadByCorrelation(ctx, "c-1", &none, 0, 10); err != nil || len(def) != 2 || def[0].StreamID != "x" || def[1].StreamID != "y" {
		t.Errorf("the default tenant, correlation c-1 = %+v, %v; want x and y", def, err)
	}
}

func testSnapshots(t *testing.T, s eventstore.Store) {
	ctx := ctxFor(t)
	_, err := s.LoadSnapshot(ctx, "acct")
	if !errors.Is(err, eventstore.ErrSnapshotNotFound) || domain.CodeOf(err) != domain.NotFound {
		t.Fatalf("load before save: err = %v, want ErrSnapshotNotFound", err)
	}
	mustAppend(t, s, "acct", domain.ExpectNoStream, Ev("A", 1), Ev("A", 2), Ev("A", 3))
	save := func(v int64, state string) error {
		return s.SaveSnapshot(ctx, domain.Snapshot{StreamID: "acct", Version: v, SchemaVersion: 1, State: json.RawMessage(state)})
	}
	if err := save(2, `{"balance": 2}`); err != nil {
		t.Fatal(err)
	}
	if err := save(3, `{"balance": 3}`); err != nil {
		t.Fatal(err)
	}
	if err := save(1, `{"balance": 1}`); err != nil { // older: kept out, not an error
		t.Fatal(err)
	}
	snap, err := s.LoadSnapshot(ctx, "acct")
	if err != nil || snap.Version != 3 || snap.SchemaVersion != 1 || !jsonEq(t, snap.State, json.RawMessage(`{"balance": 3}`)) {
		t.Fatalf("load = %+v, %v; want version 3", snap, err)
	}
	for name, err := range map[string]error{
		"version beyond the stream": save(4, `{}`),
		"version 0":                 save(0, `{}`),
		"state not JSON":            save(3, `{`),
		"state missing":             save(3, " \n"),
		"state after a form feed":   save(3, "\f{}"),
		"state not UTF-8":           save(3, "{\"owner\": \"\xff\"}"),
		// What PostgreSQL's jsonb refuses is refused as the caller's
		// error (VALIDATION), not met as the database's (INTERNAL).
		"state with a NUL":                   save(3, `{"owner": "a\u0000b"}`),
		"state with half a surrogate pair":   save(3, `{"owner": "\ud800"}`),
		"state with a number beyond numeric": save(3, `{"balance": 1e1000000}`),
		"schema version 0":                   s.SaveSnapshot(ctx, domain.Snapshot{StreamID: "acct", Version: 3, State: json.RawMessage(`{}`)}),
		"empty stream":                       s.SaveSnapshot(ctx, domain.Snapshot{Version: 1, SchemaVersion: 1, State: json.RawMessage(`{}`)}),
	} {
		if !errors.Is(err, eventstore.ErrInvalidInput) || domain.CodeOf(err) != domain.Invalid {
			t.Errorf("%s: err = %v (%s), want ErrInvalidInput (VALIDATION)", name, err, domain.CodeOf(err))
		}
	}
	// The refused snapshots replaced nothing.
	snap, err = s.LoadSnapshot(ctx, "acct")
	if err != nil || snap.Version != 3 || !jsonEq(t, snap.State, json.RawMessage(`{"balance": 3}`)) {
		t.Fatalf("after the refusals, load = %+v, %v; want version 3 as saved", snap, err)
	}
	// A state need not be an object, and may hold any number jsonb holds
	// (numbers with exponents are not bounded as an event's are: nothing
	// validates a state against a schema).
	exponents := "[" + strings.TrimSuffix(strings.Repeat("1e21, ", 7000), ", ") + "]" // 154,000 digits written out
	for _, state := range []string{` [1, "two", null] `, `"a string"`, exponents} {
		if err := save(3, state); err != nil {
			t.Fatalf("state %.40s: %v", state, err)
		}
		snap, err := s.LoadSnapshot(ctx, "acct")
		if err != nil || !jsonEq(t, snap.State, json.RawMessage(state)) {
			t.Fatalf("state %.40s loaded back as %.40s, %v", state, snap.State, err)
		}
	}
}

func testChanged(t *testing.T, s eventstore.Store) {
	ch := s.Changed()
	select {
	case <-ch:
		// A store may signal spuriously (e.g. a listener connecting); take a fresh one.
		ch = s.Changed()
	default:
	}
	mustAppend(t, s, "w", domain.ExpectAny, Ev("A", 1))
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("Changed was not closed after an append")
	}
}

// testManyWriters appends from many goroutines while a follower reads the
// log by position: it must see every event exactly once, in increasing
// position order.
func testManyWriters(t *testing.T, s eventstore.Store) {
	ctx := ctxFor(t)
	const writers, appends = 16, 25
	const total = writers * appends * 2
	seen := map[string]int{}
	var order []int64
	errDone := errors.New("done")
	followed := make(chan error, 1)
	go func() {
		followed <- eventstore.Follow(ctx, s, eventstore.AllQuery{Limit: 50}, 20*time.Millisecond, func(p eventstore.Page) error {
			for _, e := range p.Events {
				seen[e.ID]++
				order = append(order, e.Position)
			}
			if len(order) >= total {
				return errDone
			}
			return nil
		})
	}()
	var wg sync.WaitGroup
	var mu sync.Mutex
	want := map[string]bool{}
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stream := fmt.Sprintf("writer-%d", w)
			for i := 0; i < appends; i++ {
				res, err := s.Append(ctx, stream, domain.ExpectedVersion(2*i), Ev("A", i), Ev("B", i))
				if err != nil {
					t.Errorf("writer %d append %d: %v", w, i, err)
					return
				}
				mu.Lock()
				for _, e := range res.Events {
					want[e.ID] = true
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if err := <-followed; !errors.Is(err, errDone) {
		t.Fatalf("follower stopped after %d of %d events: %v", len(order), total, err)
	}
	CheckExactlyOnce(t, want, seen, order)
}

// CheckExactlyOnce fails t unless seen holds every id of want exactly once,
// nothing else, and order is strictly increasing.
func CheckExactlyOnce(t *testing.T, want map[string]bool, seen map[string]int, order []int64) {
	t.Helper()
	missing, dup, extra := 0, 0, 0
	for id := range want {
		switch seen[id] {
		case 0:
			missing++
		case 1:
		default:
			dup++
		}
	}
	for id := range seen {
		if !want[id] {
			extra++
		}
	}
	for i := 1; i < len(order); i++ {
		if order[i] <= order[i-1] {
			t.Fatalf("position order went backwards or repeated: %d then %d (index %d)", order[i-1], order[i], i)
		}
	}
	if missing+dup+extra > 0 {
		t.Fatalf("follower saw %d events: %d missing, %d duplicated, %d unexpected (of %d written)", len(seen), missing, dup, extra, len(want))
	}
}
