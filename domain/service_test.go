package domain_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cqrsgate/domain"
	"cqrsgate/eventstore"
	"cqrsgate/schemaregistry"
)

func newService(opts domain.ServiceOptions) (*domain.Service, *countingStore) {
	store := &countingStore{Memory: eventstore.NewMemory(eventstore.Limits{}, time.Now)}
	return domain.NewService(store, slog.New(slog.DiscardHandler), time.Now, opts), store
}

// countingStore counts the events the service reads and the appends it makes.
type countingStore struct {
	*eventstore.Memory
	read, appends atomic.Int64
}

func (c *countingStore) ReadStream(ctx context.Context, stream string, q domain.StreamQuery) ([]domain.RecordedEvent, error) {
	evs, err := c.Memory.ReadStream(ctx, stream, q)
	c.read.Add(int64(len(evs)))
	return evs, err
}

func (c *countingStore) Append(ctx context.Context, stream string, exp domain.ExpectedVersion, evs ...domain.EventData) (domain.AppendResult, error) {
	c.appends.Add(1)
	return c.Memory.Append(ctx, stream, exp, evs...)
}

func exec(t *testing.T, s *domain.Service, cmd domain.Command, meta domain.CommandMeta) domain.Result {
	t.Helper()
	res, err := domain.Execute(context.Background(), s, domain.Accounts, cmd, meta)
	if err != nil {
		t.Fatalf("%s: %v", cmd.CommandName(), err)
	}
	return res
}

func TestServiceExecutesAndRecordsMetadata(t *testing.T) {
	s, store := newService(domain.ServiceOptions{})
	meta := domain.CommandMeta{CorrelationID: "corr-1", CausationID: "req-1", Actor: "alice"}
	res := exec(t, s, domain.OpenAccount{AccountID: "a1", Owner: "ada", Currency: "EUR", InitialDeposit: 100}, meta)
	if res.StreamID != "account-a1" || res.Version != 2 || len(res.Events) != 2 || res.Position != res.Events[1].Position {
		t.Fatalf("open = %+v", res)
	}
	res = exec(t, s, domain.DepositMoney{AccountID: "a1", Amount: 50}, meta)
	if res.Version != 3 {
		t.Fatalf("deposit = %+v", res)
	}
	evs, _ := store.ReadStream(context.Background(), "account-a1", domain.StreamQuery{})
	for _, e := range evs {
		for _, want := range []string{`"correlationId":"corr-1"`, `"causationId":"req-1"`, `"actor":"alice"`} {
			if !strings.Contains(string(e.Metadata), want) {
				t.Errorf("event %d metadata %s lacks %s", e.StreamVersion, e.Metadata, want)
			}
		}
	}
	acct, v, err := domain.Load(context.Background(), s, domain.Accounts, "a1")
	if err != nil || v != 3 || acct.Balance() != 150 || acct.Status() != "OPEN" {
		t.Fatalf("load = balance %d version %d %v", acct.Balance(), v, err)
	}
}

func TestServiceRefusalsWriteNothing(t *testing.T) {
	s, store := newService(domain.ServiceOptions{})
	exec(t, s, domain.OpenAccount{AccountID: "a1", Owner: "ada", Currency: "EUR", InitialDeposit: 100}, domain.CommandMeta{})
	before := store.appends.Load()
	for _, cmd := range []domain.Command{
		domain.WithdrawMoney{AccountID: "a1", Amount: 101},
		domain.CloseAccount{AccountID: "a1"},
		domain.DepositMoney{AccountID: "a1", Amount: -1},
		domain.DepositMoney{AccountID: "nobody", Amount: 1},
		domain.DepositMoney{AccountID: "", Amount: 1},
		domain.DepositMoney{AccountID: "has space", Amount: 1},
		domain.OpenAccount{AccountID: "\u200b", Owner: "ada", Currency: "EUR"},
		domain.OpenAccount{AccountID: "a\u0085b", Owner: "ada", Currency: "EUR"},
		domain.OpenAccount{AccountID: "a\u3000b", Owner: "ada", Currency: "EUR"},
		domain.OpenAccount{AccountID: "a\u202eb", Owner: "ada", Currency: "EUR"},
		domain.OpenAccount{AccountID: "a2", Owner: "ada\u2029", Currency: "EUR"},
		domain.OpenAccount{AccountID: "a2", Owner: "ada\u202eevil", Currency: "EUR"},
	} {
		if _, err := domain.Execute(context.Background(), s, domain.Accounts, cmd, domain.CommandMeta{}); err == nil {
			t.Errorf("%+v succeeded", cmd)
		}
	}
	if store.appends.Load() != before {
		t.Fatal("a refused command appended events")
	}
	// Reads take the ids commands took before these rules: instances
	// created then stay readable.
	if _, v, err := domain.Load(context.Background(), s, domain.Accounts, "a\u00a0b"); err != nil || v != 0 {
		t.Errorf("loading an id with a no-break space: version %d, %v", v, err)
	}
	// Letters of any script, the joiners of emoji sequences and of Persian
	// words, and code points newer than Go's Unicode tables are fine.
	for i, id := range []string{"kontó-ö", "dev-👩\u200d💻", "می\u200cخواهم", "\U0001fae9-x"} {
		exec(t, s, domain.OpenAccount{AccountID: id, Owner: fmt.Sprint("Zoë 👩‍👩‍👧 Åsa ", i), Currency: "EUR"}, domain.CommandMeta{})
	}
}

func TestServiceExpectedVersion(t *testing.T) {
	s, _ := newService(domain.ServiceOptions{})
	exec(t, s, domain.OpenAccount{AccountID: "a1", Owner: "ada", Currency: "EUR"}, domain.CommandMeta{})
	stale := int64(0)
	_, err := domain.Execute(context.Background(), s, domain.Accounts, domain.DepositMoney{AccountID: "a1", Amount: 1}, domain.CommandMeta{ExpectedVersion: &stale})
	var de *domain.Error
	if !errors.As(err, &de) || de.Code != domain.Conflict || de.Details["actualVersion"] != int64(1) || de.Details["expectedVersion"] != int64(0) {
		t.Fatalf("stale expected version: %v (%+v)", err, de)
	}
	current := int64(1)
	if res := exec(t, s, domain.DepositMoney{AccountID: "a1", Amount: 1}, domain.CommandMeta{ExpectedVersion: &current}); res.Version != 2 {
		t.Fatalf("deposit at the right version = %+v", res)
	}
}

// A process whose cached state is stale (another process wrote since)
// reports a client's stale expected version as one found on the current
// state is: with the actual version, the expected one as a number, and no
// internal stream name.
func TestServiceExpectedVersionOnAStaleCache(t *testing.T) {
	s1, store := newService(domain.ServiceOptions{})
	s2 := domain.NewService(store, slog.New(slog.DiscardHandler), time.Now, domain.ServiceOptions{})
	meta := domain.CommandMeta{Tenant: "acme"}
	exec(t, s1, domain.OpenAccount{AccountID: "a1", Owner: "ada", Currency: "EUR", InitialDeposit: 100}, meta) // s1 caches version 2
	exec(t, s2, domain.DepositMoney{AccountID: "a1", Amount: 1}, meta)                                         // version 3
	two := int64(2)
	meta.ExpectedVersion = &two
	_, err := domain.Execute(context.Background(), s1, domain.Accounts, domain.DepositMoney{AccountID: "a1", Amount: 1}, meta)
	var de *domain.Error
	if !errors.As(err, &de) || de.Code != domain.Conflict || de.Message != "account a1 is at version 3, not the expected 2" ||
		de.Details["actualVersion"] != int64(3) || de.Details["expectedVersion"] != int64(2) || de.Details["stream"] != nil {
		t.Fatalf("stale expected version on a stale cache: %v (%+v)", err, de)
	}
	// The conflict brought the cache up to date.
	three := int64(3)
	meta.ExpectedVersion = &three
	if res := exec(t, s1, domain.DepositMoney{AccountID: "a1", Amount: 1}, meta); res.Version != 4 {
		t.Fatalf("deposit at the current version = %+v", res)
	}
}

// TestServiceRetriesConcurrentCommands: 16 concurrent deposits to one account
// all succeed through retries and the balance is exact.
func TestServiceRetriesConcurrentCommands(t *testing.T) {
	s, _ := newService(domain.ServiceOptions{MaxRetries: 50})
	exec(t, s, domain.OpenAccount{AccountID: "a1", Owner: "ada", Currency: "EUR"}, domain.CommandMeta{})
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := domain.Execute(context.Background(), s, domain.Accounts, domain.DepositMoney{AccountID: "a1", Amount: int64(i + 1)}, domain.CommandMeta{}); err != nil {
				t.Errorf("deposit %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	acct, v, _ := domain.Load(context.Background(), s, domain.Accounts, "a1")
	if acct.Balance() != 136 || v != 17 {
		t.Fatalf("balance %d at version %d, want 136 at 17", acct.Balance(), v)
	}
}

func TestServiceIdempotencyKey(t *testing.T) {
	s, store := newService(domain.ServiceOptions{})
	meta := domain.CommandMeta{IdempotencyKey: "open-a1"}
	first := exec(t, s, domain.OpenAccount{AccountID: "a1", Owner: "ada", Currency: "EUR", InitialDeposit: 10}, meta)
	appends := store.appends.Load()
	// A retry returns the original result, although deciding again would
	// now be refused (the account exists).
	again := exec(t, s, domain.OpenAccount{AccountID: "a1", Owner: "ada", Currency: "EUR", InitialDeposit: 10}, meta)
	if !again.Duplicate || again.Position != first.Position || again.Version != first.Version || len(again.Events) != 2 || store.appends.Load() != appends {
		t.Fatalf("retry = %+v, want the original %+v and no append", again, first)
	}

	// Concurrent retries of one deposit write it once.
	var wg sync.WaitGroup
	results := make([]domain.Result, 8)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = exec(t, s, domain.DepositMoney{AccountID: "a1", Amount: 5}, domain.CommandMeta{IdempotencyKey: "dep-1"})
		}()
	}
	wg.Wait()
	for _, r := range results {
		if r.Position != results[0].Position || r.Version != 3 {
			t.Fatalf("concurrent retries disagree: %+v vs %+v", r, results[0])
		}
	}
	acct, _, _ := domain.Load(context.Background(), s, domain.Accounts, "a1")
	if acct.Balance() != 15 {
		t.Fatalf("balance %d after 8 retries of one deposit of 5, want 15", acct.Balance())
	}
	// The same key on another aggregate is another command.
	exec(t, s, domain.OpenAccount{AccountID: "a2", Owner: "bob", Currency: "EUR"}, domain.CommandMeta{})
	if r := exec(t, s, domain.DepositMoney{AccountID: "a2", Amount: 5}, domain.CommandMeta{IdempotencyKey: "dep-1"}); r.Duplicate {
		t.Fatal("a key was shared across aggregates")
	}
	// A key stands for one command: repeated with other arguments or for
	// another command, it is refused, and nothing is written.
	appends = store.appends.Load()
	for _, cmd := range []domain.Command{domain.DepositMoney{AccountID: "a1", Amount: 50}, domain.WithdrawMoney{AccountID: "a1", Amount: 5}} {
		_, err := domain.Execute(context.Background(), s, domain.Accounts, cmd, domain.CommandMeta{IdempotencyKey: "dep-1"})
		if de := (*domain.Error)(nil); !errors.As(err, &de) || de.Code != domain.Invalid || de.Field != "idempotencyKey" {
			t.Fatalf("%+v under the key of a deposit of 5: %v", cmd, err)
		}
	}
	if store.appends.Load() != appends {
		t.Fatal("a reused key appended events")
	}
	// Events written before fingerprints were recorded are compared by the
	// command's name.
	old := domain.EventData{ID: domain.IdempotentEventID("account-a1", "old-key", 0), Type: "MoneyDeposited", SchemaVersion: 1,
		Data: []byte(`{"amount":5,"balanceAfter":20}`), Metadata: []byte(`{"command":"DepositMoney","idempotencyKey":"old-key"}`)}
	if _, err := store.Append(context.Background(), "account-a1", domain.ExpectAny, old); err != nil {
		t.Fatal(err)
	}
	if r := exec(t, s, domain.DepositMoney{AccountID: "a1", Amount: 5}, domain.CommandMeta{IdempotencyKey: "old-key"}); !r.Duplicate {
		t.Fatalf("a retry of a command written without a fingerprint = %+v", r)
	}
	if _, err := domain.Execute(context.Background(), s, domain.Accounts, domain.WithdrawMoney{AccountID: "a1", Amount: 5}, domain.CommandMeta{IdempotencyKey: "old-key"}); domain.CodeOf(err) != domain.Invalid {
		t.Fatalf("another command under a key written without a fingerprint: %v", err)
	}
	long := make([]byte, 201)
	if _, err := domain.Execute(context.Background(), s, domain.Accounts, domain.DepositMoney{AccountID: "a1", Amount: 1}, domain.CommandMeta{IdempotencyKey: string(long)}); domain.CodeOf(err) != domain.Invalid {
		t.Fatalf("oversized key: %v", err)
	}
}

// keyLookupHook runs onKeyCheck once, right after the command service has
// looked up the event of an idempotency key (ReadEvent) with id, or with
// any id when id is "": another gateway's first execution of the command
// commits just then.
type keyLookupHook struct {
	*eventstore.Memory
	id         string
	onKeyCheck atomic.Pointer[func()]
}

func (k *keyLookupHook) ReadEvent(ctx context.Context, id string) (domain.RecordedEvent, error) {
	e, err := k.Memory.ReadEvent(ctx, id)
	if k.id == "" || id == k.id {
		if f := k.onKeyCheck.Swap(nil); f != nil {
			(*f)()
		}
	}
	return e, err
}

// Two gateways share one database. Gateway B holds the account in its state
// cache from an earlier command (balance 0). A deposit of 500 is made
// through gateway A. A client withdraws 500 under an idempotency key through
// A and, its reply slow, retries through B: the retries race, and the first
// execution commits (through A) just after B looked the key up. B's
// decision on its cached state is a refusal, and so is the decision on the
// state it catches up to (A's withdrawal took the money): the retry is
// answered with the first execution's result, not refused by its effect.
func TestServiceIdempotentRetryIsNotRefusedByTheFirstExecutionsEffect(t *testing.T) {
	ctx := context.Background()
	mem := eventstore.NewMemory(eventstore.Limits{}, time.Now)
	log := slog.New(slog.DiscardHandler)
	hookB := &keyLookupHook{Memory: mem}
	gwA := domain.NewService(mem, log, time.Now, domain.ServiceOptions{})
	gwB := domain.NewService(hookB, log, time.Now, domain.ServiceOptions{})

	if _, err := domain.Execute(ctx, gwB, domain.Accounts, domain.OpenAccount{AccountID: "acc", Owner: "Ann", Currency: "EUR"}, domain.CommandMeta{}); err != nil {
		t.Fatal(err)
	}
	if _, err := domain.Execute(ctx, gwA, domain.Accounts, domain.DepositMoney{AccountID: "acc", Amount: 500}, domain.CommandMeta{}); err != nil {
		t.Fatal(err)
	}
	withdraw := domain.WithdrawMoney{AccountID: "acc", Amount: 500}
	meta := domain.CommandMeta{IdempotencyKey: "pay-42"}
	var first domain.Result
	var firstErr error
	f := func() { first, firstErr = domain.Execute(ctx, gwA, domain.Accounts, withdraw, meta) }
	hookB.onKeyCheck.Store(&f)

	retry, err := domain.Execute(ctx, gwB, domain.Accounts, withdraw, meta)
	if firstErr != nil {
		t.Fatalf("first execution: %v", firstErr)
	}
	if err != nil {
		t.Fatalf("the retry of a withdrawal made under key pay-42 (version %d) was answered: %v", first.Version, err)
	}
	if !retry.Duplicate || retry.Position != first.Position {
		t.Fatalf("retry = %+v, want the first execution's result %+v", retry, first)
	}
	acct, _, _ := domain.Load(ctx, gwA, domain.Accounts, "acc")
	if acct.Balance() != 0 {
		t.Fatalf("balance %d, want 0: one withdrawal of 500", acct.Balance())
	}
}

func TestServiceSnapshotsBoundLoading(t *testing.T) {
	s, store := newService(domain.ServiceOptions{SnapshotEvery: 10})
	exec(t, s, domain.OpenAccount{AccountID: "a1", Owner: "ada", Currency: "EUR"}, domain.CommandMeta{})
	for i := 0; i < 95; i++ {
		exec(t, s, domain.DepositMoney{AccountID: "a1", Amount: 1}, domain.CommandMeta{})
	}
	snap, err := store.LoadSnapshot(context.Background(), "account-a1")
	if err != nil || snap.Version < 86 {
		t.Fatalf("snapshot = version %d, %v; want one within 10 of 96", snap.Version, err)
	}
	store.read.Store(0)
	acct, v, err := domain.Load(context.Background(), s, domain.Accounts, "a1")
	if err != nil || v != 96 || acct.Balance() != 95 {
		t.Fatalf("load = %d at %d, %v", acct.Balance(), v, err)
	}
	if n := store.read.Load(); n > 10 {
		t.Fatalf("loading read %d events past the snapshot, want at most 10", n)
	}
	// A snapshot of another state shape is ignored: loading replays everything.
	if err := store.SaveSnapshot(context.Background(), domain.Snapshot{StreamID: "account-a1", Version: 96, SchemaVersion: 99, State: []byte(`{"x":1}`)}); err != nil {
		t.Fatal(err)
	}
	store.read.Store(0)
	acct, _, _ = domain.Load(context.Background(), s, domain.Accounts, "a1")
	if acct.Balance() != 95 || store.read.Load() != 96 {
		t.Fatalf("with a foreign snapshot: balance %d after reading %d events", acct.Balance(), store.read.Load())
	}
}

// TestLoadAtStartsFromTheSnapshot: time travel to a point at or after the
// stream's snapshot folds only the events after it, and every point, before
// the snapshot or after it, by version or by time, gives what folding the
// whole stream gives.
func TestLoadAtStartsFromTheSnapshot(t *testing.T) {
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	store := &countingStore{Memory: eventstore.NewMemory(eventstore.Limits{}, func() time.Time { clock = clock.Add(time.Hour); return clock })}
	snapshotting := domain.NewService(store, slog.New(slog.DiscardHandler), time.Now, domain.ServiceOptions{SnapshotEvery: 10})
	folding := domain.NewService(store, slog.New(slog.DiscardHandler), time.Now, domain.ServiceOptions{SnapshotEvery: -1})
	ctx := context.Background()
	exec(t, snapshotting, domain.OpenAccount{AccountID: "a1", Owner: "ada", Currency: "EUR"}, domain.CommandMeta{})
	for i := 1; i <= 95; i++ {
		exec(t, snapshotting, domain.DepositMoney{AccountID: "a1", Amount: int64(i)}, domain.CommandMeta{})
	}
	snap, err := store.LoadSnapshot(ctx, "account-a1")
	if err != nil || snap.Version < 86 || snap.Version == 96 {
		t.Fatalf("snapshot = version %d, %v; want one between 86 and 95", snap.Version, err)
	}
	atVersion := func(v int64) time.Time {
		return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(v) * time.Hour)
	}
	type point struct {
		version int64
		at      *time.Time
	}
	points := []point{
		{0, nil}, {96, nil}, {200, nil}, {snap.Version, nil}, {snap.Version + 1, nil},
		{snap.Version - 1, nil}, {5, nil},
		{0, ptr(atVersion(snap.Version))}, {0, ptr(atVersion(snap.Version).Add(-time.Minute))}, {0, ptr(atVersion(snap.Version).Add(time.Minute))},
		{0, ptr(atVersion(3))}, {0, ptr(atVersion(200))}, {snap.Version + 2, ptr(atVersion(snap.Version))}, {snap.Version, ptr(atVersion(snap.Version - 2))},
	}
	for _, p := range points {
		want, wantV, wantAt, err := domain.LoadAt(ctx, folding, domain.Accounts, "a1", p.version, p.at)
		if err != nil {
			t.Fatalf("%+v folded: %v", p, err)
		}
		got, gotV, gotAt, err := domain.LoadAt(ctx, snapshotting, domain.Accounts, "a1", p.version, p.at)
		if err != nil || gotV != wantV || !gotAt.Equal(wantAt) || got.Balance() != want.Balance() {
			t.Errorf("version %d at %v: balance %d, version %d as of %v (%v); folding the stream gives %d, %d as of %v",
				p.version, p.at, got.Balance(), gotV, gotAt, err, want.Balance(), wantV, wantAt)
		}
	}
	store.read.Store(0)
	a, v, _, err := domain.LoadAt(ctx, snapshotting, domain.Accounts, "a1", 0, nil)
	if err != nil || v != 96 || a.Balance() != 95*96/2 {
		t.Fatalf("latest: balance %d version %d (%v)", a.Balance(), v, err)
	}
	if n := store.read.Load(); n > 11 {
		t.Errorf("time travel to the latest version read %d events, want the snapshot's and at most 10 after it", n)
	}
}

func TestLoadAtVersionAndTime(t *testing.T) {
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	store := eventstore.NewMemory(eventstore.Limits{}, func() time.Time { clock = clock.Add(time.Hour); return clock })
	s := domain.NewService(store, slog.New(slog.DiscardHandler), time.Now, domain.ServiceOptions{})
	ctx := context.Background()
	for _, cmd := range []domain.Command{
		domain.OpenAccount{AccountID: "a1", Owner: "ada", Currency: "EUR"}, // v1 at 01:00
		domain.DepositMoney{AccountID: "a1", Amount: 10},                   // v2 at 02:00
		domain.DepositMoney{AccountID: "a1", Amount: 20},                   // v3 at 03:00
		domain.FreezeAccount{AccountID: "a1", Reason: "audit"},             // v4 at 04:00
	} {
		if _, err := domain.Execute(ctx, s, domain.Accounts, cmd, domain.CommandMeta{}); err != nil {
			t.Fatal(err)
		}
	}
	a, v, at, err := domain.LoadAt(ctx, s, domain.Accounts, "a1", 2, nil)
	if err != nil || v != 2 || a.Balance() != 10 || a.Status() != "OPEN" || at.Hour() != 2 {
		t.Fatalf("at version 2: balance %d status %s version %d at %v (%v)", a.Balance(), a.Status(), v, at, err)
	}
	a, v, _, _ = domain.LoadAt(ctx, s, domain.Accounts, "a1", 0, ptr(time.Date(2026, 1, 1, 3, 30, 0, 0, time.UTC)))
	if v != 3 || a.Balance() != 30 {
		t.Fatalf("at 03:30: balance %d version %d", a.Balance(), v)
	}
	a, v, _, _ = domain.LoadAt(ctx, s, domain.Accounts, "a1", 0, nil)
	if v != 4 || a.Status() != "FROZEN" {
		t.Fatalf("latest: status %s version %d", a.Status(), v)
	}
	_, v, _, err = domain.LoadAt(ctx, s, domain.Accounts, "a1", 0, ptr(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)))
	if err != nil || v != 0 {
		t.Fatalf("before the account existed: version %d, %v", v, err)
	}
	if _, _, _, err := domain.LoadAt(ctx, s, domain.Accounts, "nobody", 0, nil); domain.CodeOf(err) != domain.NotFound {
		t.Fatalf("unknown account: %v", err)
	}
	if _, _, _, err := domain.LoadAt(ctx, s, domain.Accounts, "a1", -1, nil); domain.CodeOf(err) != domain.Invalid {
		t.Fatalf("negative version: %v", err)
	}
}

// unknownTypes is a schema registry that knows every event type but those
// in it.
type unknownTypes map[string]bool

func (u unknownTypes) Validate(_ context.Context, eventType string, version int, _ []byte) error {
	if u[eventType] {
		return &schemaregistry.Error{Code: schemaregistry.CodeInvalid, Err: schemaregistry.ErrUnknownType,
			Message: fmt.Sprintf("unknown event type %q: register its schema (registerEventSchema) before appending it", eventType)}
	}
	return nil
}

func (unknownTypes) Upcast(_ context.Context, _ string, version int, data json.RawMessage, _ int) (json.RawMessage, int, error) {
	return data, version, nil
}

// TestACommandsEventWithoutASchemaIsInternal: an event a command writes
// whose type the registry does not know (its schema was not shipped) is an
// Internal error naming the missing file, not a VALIDATION error that
// blames the client's input and tells it to register a schema; nothing is
// written.
func TestACommandsEventWithoutASchemaIsInternal(t *testing.T) {
	mem := eventstore.NewMemory(eventstore.Limits{}, time.Now)
	s := domain.NewService(eventstore.WithSchemas(mem, unknownTypes{"MoneyDeposited": true}), slog.New(slog.DiscardHandler), time.Now, domain.ServiceOptions{})
	exec(t, s, domain.OpenAccount{AccountID: "a", Owner: "Ann", Currency: "EUR"}, domain.CommandMeta{})
	_, err := domain.Execute(context.Background(), s, domain.Accounts, domain.DepositMoney{AccountID: "a", Amount: 5}, domain.CommandMeta{})
	var de *domain.Error
	if !errors.As(err, &de) || de.Code != domain.Internal || !strings.Contains(de.Message, "MoneyDeposited v1") ||
		!strings.Contains(de.Message, "domain/schemas/MoneyDeposited.v1.json") || strings.Contains(de.Message, "registerEventSchema") {
		t.Fatalf("deposit with no schema for MoneyDeposited: %v, want INTERNAL naming the missing schema file", err)
	}
	if v, _ := mem.StreamVersion(context.Background(), "account-a"); v != 1 {
		t.Fatalf("the stream is at version %d after the refused deposit, want 1", v)
	}
}

func ptr[T any](v T) *T { return &v }
