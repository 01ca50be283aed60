package eventstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"cqrsgate/domain"
	"cqrsgate/eventstore"
	"cqrsgate/internal/pgtest"
	"cqrsgate/schemaregistry"
)

// newSchematized is a store on pool whose appends are validated by a
// registry on the same database, the registry and the raw store under it.
func newSchematized(t *testing.T, pool *pgxpool.Pool) (*eventstore.Schematized, *schemaregistry.Registry, *eventstore.Postgres) {
	t.Helper()
	raw := newPostgres(t, pool)
	reg, err := schemaregistry.New(context.Background(), pool, raw, quietLogger(), schemaregistry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return eventstore.WithSchemas(raw, reg), reg, raw
}

func registerSchema(ctx context.Context, reg *schemaregistry.Registry, typ, schema, migration string) error {
	r := schemaregistry.Registration{Type: typ, Schema: json.RawMessage(schema)}
	if migration != "" {
		ops, err := schemaregistry.ParseOps([]byte(migration))
		if err != nil {
			return err
		}
		r.Migration = ops
	}
	_, err := reg.Register(ctx, r)
	return err
}

// The type of the races below: v1 {x}, and v2, which requires y and reads
// a v1 event's x as y. Every v1 event stored has x, so the registration of
// v2 accepts them all, and a v1 event without x does not read as v2.
const (
	taggedV1        = `{"type": "object", "properties": {"x": {"type": "integer"}}}`
	taggedV2        = `{"type": "object", "properties": {"y": {"type": "integer"}}, "required": ["y"]}`
	taggedMigration = `[{"op": "rename", "from": "/x", "path": "/y"}]`
)

// overtaken is a registry whose first Validate is followed, before the
// append goes on to write, by fn: where a change to the registry from
// another admin may commit.
type overtaken struct {
	*schemaregistry.Registry
	once sync.Once
	fn   func()
}

func (r *overtaken) Validate(ctx context.Context, eventType string, version int, data []byte) error {
	err := r.Registry.Validate(ctx, eventType, version, data)
	r.once.Do(r.fn)
	return err
}

// TestAppendOvertakenByARegistrationIsValidatedAgain: an append validated
// just before a registration of its type commits, and written after, is
// validated again against the new version: refused when it does not read
// as it (before, it was stored, and every read of the log failed on it),
// written when it does.
func TestAppendOvertakenByARegistrationIsValidatedAgain(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	_, reg, raw := newSchematized(t, pool)
	other := appendOvertaken(t, pool, reg, raw, raw)

	// One that reads as v2 is written, once validated again.
	if err := registerSchema(ctx, other, "Tagged", `{"title": "v3", "type": "object", "properties": {"y": {"type": "integer"}}, "required": ["y"]}`, ""); err != nil {
		t.Fatal(err)
	}
	r := &overtaken{Registry: reg, fn: func() {}}
	res, err := eventstore.WithSchemas(raw, r).Append(ctx, "tagged-3", domain.ExpectAny, domain.EventData{Type: "Tagged", SchemaVersion: 2, Data: json.RawMessage(`{"y": 3}`)})
	if err != nil || len(res.Events) != 1 {
		t.Fatalf("an append validated against a registry one version behind: %+v, %v; want it validated again and written", res, err)
	}
	if reg.Revision() != other.Revision() {
		t.Errorf("after the append, this registry is at revision %d, the database at %d", reg.Revision(), other.Revision())
	}
}

// TestRegistrationWaitsForAnAppendInFlight: a registration whose replay of
// the stored events starts while an append of its type is being written
// waits for that append, and so checks its events too (before, it did not
// see them, accepted v2, and the append then stored an event that no read
// of the log could get past).
func TestRegistrationWaitsForAnAppendInFlight(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pool := pgtest.NewPool(t)
	store, reg, raw := newSchematized(t, pool)
	if err := registerSchema(ctx, reg, "Tagged", taggedV1, ""); err != nil {
		t.Fatal(err)
	}
	inTx, release := make(chan struct{}), make(chan struct{})
	raw.SetBeforeCommit(func(ctx context.Context, stream string) error {
		if stream == "tagged-held" {
			close(inTx)
			<-release
		}
		return nil
	})
	appended := make(chan error, 1)
	go func() {
		_, err := store.Append(ctx, "tagged-held", domain.ExpectAny, domain.EventData{Type: "Tagged", SchemaVersion: 1, Data: json.RawMessage(`{}`)})
		appended <- err
	}()
	select {
	case <-inTx:
	case err := <-appended:
		t.Fatalf("the append ended (%v) before it was held open", err)
	}
	registered := make(chan error, 1)
	go func() { registered <- registerSchema(ctx, reg, "Tagged", taggedV2, taggedMigration) }()

	// The registration waits for the append's lock on the type.
	waiting := false
	for deadline := time.Now().Add(20 * time.Second); !waiting && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-registered:
			close(release)
			t.Fatalf("the registration finished (%v) while an append of its type was being written", err)
		default:
		}
	}
	close(release)
	if !waiting {
		t.Fatal("the registration did not wait for the append in flight")
	}
	if err := <-appended; err != nil {
		t.Fatalf("append: %v", err)
	}
	if err := <-registered; err == nil {
		t.Error("v2 was registered although a stored v1 event (the append's) does not read as it")
	}
	if _, err := store.ReadAll(ctx, eventstore.AllQuery{}); err != nil {
		t.Fatalf("the log does not read: %v", err)
	}
}

// TestCheckedAppendsInEveryQueryMode: appends checked against the registry
// (the type locks, the revision in the INSERT) work in each of pgx's query
// modes, as unchecked ones do.
func TestCheckedAppendsInEveryQueryMode(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	for i, pool := range poolPerQueryMode(t, url) {
		store, reg, _ := newSchematized(t, pool)
		if err := registerSchema(ctx, reg, "Tagged", taggedV1, ""); err != nil {
			t.Fatal(err)
		}
		stream := "tagged-mode-" + everyQueryMode[i].String()
		if _, err := store.Append(ctx, stream, domain.ExpectNoStream, domain.EventData{Type: "Tagged", SchemaVersion: 1, Data: json.RawMessage(`{"x": 1}`)},
			domain.EventData{Type: "Tagged", SchemaVersion: 1, Data: json.RawMessage(`{"x": 2}`)}); err != nil {
			t.Fatalf("%v: %v", everyQueryMode[i], err)
		}
		evs, err := store.ReadStream(ctx, stream, eventstore.StreamQuery{})
		if err != nil || len(evs) != 2 {
			t.Fatalf("%v: read %d events, %v", everyQueryMode[i], len(evs), err)
		}
	}
}

// TestOvertakenAppendThroughTheTail is
// TestAppendOvertakenByARegistrationIsValidatedAgain with the store wired
// as server.go wires it, WithSchemas(NewTail(postgres), registry): the
// check must not be lost to the Tail in between (it was: the append was
// written unchecked).
func TestOvertakenAppendThroughTheTail(t *testing.T) {
	pool := pgtest.NewPool(t)
	_, reg, raw := newSchematized(t, pool)
	appendOvertaken(t, pool, reg, raw, eventstore.NewTail(raw, eventstore.TailOptions{}))
}

// appendOvertaken registers Tagged v1 on reg, appends a v1 event through
// store (raw, or a wrapping of it) and the schemas, then appends a v1 event
// without x while another gateway's registry, which it returns, registers
// v2 between the append's validation and its write: the append must be
// refused, and the log must read as both registries see it.
func appendOvertaken(t *testing.T, pool *pgxpool.Pool, reg *schemaregistry.Registry, raw *eventstore.Postgres, store eventstore.Store) *schemaregistry.Registry {
	t.Helper()
	ctx := context.Background()
	if err := registerSchema(ctx, reg, "Tagged", taggedV1, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := eventstore.WithSchemas(store, reg).Append(ctx, "tagged-1", domain.ExpectAny, domain.EventData{Type: "Tagged", SchemaVersion: 1, Data: json.RawMessage(`{"x": 1}`)}); err != nil {
		t.Fatal(err)
	}
	// Another gateway's registry: reg learns of v2 only by the append's check.
	other, err := schemaregistry.New(ctx, pool, raw, quietLogger(), schemaregistry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := &overtaken{Registry: reg, fn: func() {
		if err := registerSchema(ctx, other, "Tagged", taggedV2, taggedMigration); err != nil {
			t.Errorf("register v2: %v", err)
		}
	}}
	_, err = eventstore.WithSchemas(store, r).Append(ctx, "tagged-2", domain.ExpectAny, domain.EventData{Type: "Tagged", SchemaVersion: 1, Data: json.RawMessage(`{}`)})
	if domain.CodeOf(err) != domain.Invalid {
		t.Errorf("a v1 event without x, appended as v2 was registered: %v, want it refused (Invalid): it does not read as v2", err)
	}
	for _, rg := range []*schemaregistry.Registry{reg, other} {
		if _, err := eventstore.WithSchemas(raw, rg).ReadAll(ctx, eventstore.AllQuery{}); err != nil {
			t.Fatalf("the log does not read: %v", err)
		}
	}
	return other
}

// TestARegistrationHoldsOnlyItsTypesAppends: while a registry change of one
// type replays the stored events (holding the type's lock), appends of that
// type wait for it, and appends of every other type are written (before,
// four waiting appends held every batch writer, and nothing else was
// written until the change was done); once it is done the waiting appends
// are written.
func TestARegistrationHoldsOnlyItsTypesAppends(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pool := pgtest.NewPool(t)
	store, reg, _ := newSchematized(t, pool)
	for _, typ := range []string{"Slow", "Fast"} {
		if err := registerSchema(ctx, reg, typ, taggedV1, ""); err != nil {
			t.Fatal(err)
		}
	}
	// A change to Slow, replaying: it holds Slow's lock as inTypeTx does.
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock("+fmt.Sprintf(schemaregistry.TypeLockKeySQL, "$1")+")", "Slow"); err != nil {
		t.Fatal(err)
	}
	slow := make(chan error, 6)
	for i := range cap(slow) {
		go func() {
			_, err := store.Append(ctx, fmt.Sprintf("slow-%d", i), domain.ExpectAny, domain.EventData{Type: "Slow", SchemaVersion: 1, Data: json.RawMessage(`{"x": 1}`)})
			slow <- err
		}()
	}
	for i := range 3 {
		fctx, fcancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := store.Append(fctx, fmt.Sprintf("fast-%d", i), domain.ExpectAny, domain.EventData{Type: "Fast", SchemaVersion: 1, Data: json.RawMessage(`{"x": 1}`)})
		fcancel()
		if err != nil {
			t.Fatalf("an append of Fast, which no change holds, while Slow's change replays: %v", err)
		}
	}
	select {
	case err := <-slow:
		t.Fatalf("an append of Slow ended (%v) while a change held the type", err)
	default:
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	for range cap(slow) {
		if err := <-slow; err != nil {
			t.Errorf("an append of Slow, once the change was done: %v", err)
		}
	}
}
