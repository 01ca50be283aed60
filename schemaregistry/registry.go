package schemaregistry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"log/slog"
	"path"
	"regexp"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"cqrsgate/internal/jsonvalue"
)

// Channel is the PostgreSQL notification channel of registry changes.
const Channel = "cqrsgate_schemas"

// UpcasterKey names the step a Go upcaster performs: Type from version
// From to From+1.
type UpcasterKey struct {
	Type string
	From int
}

// Options configure a Registry.
type Options struct {
	// PermissiveTypes are patterns (path.Match syntax, e.g. "Audit*") of
	// event types that are accepted without a schema. Any other type
	// without a schema is refused on append.
	PermissiveTypes []string
	// DefaultCompatibility is the mode of a new event type (default BACKWARD).
	DefaultCompatibility Mode
	// ReplaySample is how many stored events of each schema version a
	// registration replays through the migrations (the oldest ones); 0
	// replays them all.
	ReplaySample int
	// Upcasters are migrations written in Go; each runs instead of a
	// declarative migration for its step.
	Upcasters map[UpcasterKey]Upcaster
	// MaxEventBytes caps the data a migration may make of an event, as
	// JSON (default DefaultMaxEventBytes, the event store's default limit
	// on one event): a migration that copies a value into itself again and
	// again would otherwise exhaust memory on every read.
	MaxEventBytes int
	// ListenCheckAfter is how long Run waits for a change notification
	// before it asks the database for the registry's revision, on its
	// listening connection, and ListenCheckTimeout how long that question
	// (and the LISTEN itself) may take before the connection is taken for
	// lost and made again (defaults DefaultListenCheckAfter and
	// DefaultListenCheckTimeout).
	ListenCheckAfter, ListenCheckTimeout time.Duration
}

// A listening connection that dies without the network saying so (a NAT
// or firewall that drops its state, a failover address that moves) fails
// no read: Run would wait on it for notifications that never come, and
// hang on its next check of the revision, until TCP gave up on it, with
// other processes' changes unseen meanwhile. Its check must answer within
// ListenCheckTimeout: a lost connection is noticed within
// ListenCheckAfter+ListenCheckTimeout, and a quiet one costs a round trip
// each ListenCheckAfter.
const (
	// DefaultListenCheckAfter is Options.ListenCheckAfter by default.
	DefaultListenCheckAfter = 10 * time.Second
	// DefaultListenCheckTimeout is Options.ListenCheckTimeout by default.
	DefaultListenCheckTimeout = 5 * time.Second
)

// DefaultMaxEventBytes is the default of Options.MaxEventBytes: 1 MiB,
// the event store's default limit on an event's data and metadata.
const DefaultMaxEventBytes = 1 << 20

// StoredEvent is a stored event as the registry replays it.
type StoredEvent struct {
	ID       string
	Position int64
	Version  int
	Data     json.RawMessage
}

// StoredEvents gives the registry the stored events it replays before it
// accepts a change. The event store implements it.
type StoredEvents interface {
	// VersionsInUse counts the stored events of eventType by schema version.
	VersionsInUse(ctx context.Context, eventType string) (map[int]int64, error)
	// EventsOfType returns up to limit stored events of eventType at schema
	// version, after position after, in position order.
	EventsOfType(ctx context.Context, eventType string, version int, after int64, limit int) ([]StoredEvent, error)
}

// Registry holds the JSON schemas of event types, their migrations and
// compatibility modes, persisted in PostgreSQL. Every process keeps a
// compiled copy that it reloads when another process changes the registry
// (see Run). It is safe for concurrent use.
type Registry struct {
	pool   *pgxpool.Pool
	stored StoredEvents
	log    *slog.Logger
	opts   Options

	state    atomic.Pointer[state]
	changeMu sync.Mutex // one change at a time in this process (see inTypeTx)
	reloadMu sync.Mutex
	lastMiss time.Time
	// compiled caches the compiled stored schemas (sha-256 of the stored
	// text -> *compiled); it holds nothing else, so it grows only with the
	// registry (schemas being checked or registered are compiled afresh).
	compiled sync.Map
}

type state struct {
	revision int64
	types    map[string]*typeState
	// readFrom is when the reload that read the state began (its snapshot
	// is later), installedAt when it was installed (see install).
	readFrom, installedAt time.Time
}

type typeState struct {
	name                 string
	mode                 Mode
	createdAt, updatedAt time.Time
	versions             []*versionState // [i] is version i+1
	steps                map[int]*step   // declarative migrations by from-version
}

type versionState struct {
	version    int
	schema     *compiled
	deprecated bool
	createdAt  time.Time
}

func (t *typeState) latest() int { return len(t.versions) }

// New loads the registry from pool (whose schemaregistry migrations must
// have run; see Migrate). stored may be nil, in which case registrations
// replay nothing.
func New(ctx context.Context, pool *pgxpool.Pool, stored StoredEvents, log *slog.Logger, opts Options) (*Registry, error) {
	if opts.DefaultCompatibility == "" {
		opts.DefaultCompatibility = Backward
	}
	if opts.MaxEventBytes <= 0 {
		opts.MaxEventBytes = DefaultMaxEventBytes
	}
	if opts.ListenCheckAfter <= 0 {
		opts.ListenCheckAfter = DefaultListenCheckAfter
	}
	if opts.ListenCheckTimeout <= 0 {
		opts.ListenCheckTimeout = DefaultListenCheckTimeout
	}
	if _, err := ParseMode(string(opts.DefaultCompatibility)); err != nil {
		return nil, err
	}
	for _, p := range opts.PermissiveTypes {
		if _, err := path.Match(p, ""); err != nil {
			return nil, fmt.Errorf("permissive event type pattern %q: %w", p, err)
		}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Registry{pool: pool, stored: stored, log: log, opts: opts}
	if err := r.reload(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

// querier is what loading needs of a pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// reloadTimeout bounds a reload of the registry (a few queries of small
// tables), rollbackTimeout the end of its transaction.
const (
	reloadTimeout   = 30 * time.Second
	rollbackTimeout = 5 * time.Second
)

// reload replaces the in-memory registry with the database's, read in one
// snapshot: read statement by statement, a registration another process
// commits in between would show a version without its type. Reloads run
// concurrently (Run, lookups that miss, changes): a snapshot older than the
// one installed meanwhile is dropped (see install).
//
// It has reloadTimeout, and its rollback rollbackTimeout: on a connection
// that died without the network saying so (behind a proxy that answers
// for it) a statement with no deadline waits for ever, and Run with it.
func (r *Registry) reload(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, reloadTimeout)
	defer cancel()
	readFrom := time.Now()
	tx, err := r.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("schema registry: %w", err)
	}
	defer func() {
		rbCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
		defer cancel()
		_ = tx.Rollback(rbCtx)
	}()
	st, err := r.load(ctx, tx, "")
	if err != nil {
		return err
	}
	st.readFrom = readFrom
	r.install(st)
	return nil
}

// install makes st the registry's state unless a newer one is installed
// already: a reload that read its snapshot before a change committed may
// finish after the reload that saw the change, and its lower revision is
// dropped. A lower revision read by a reload that began after the
// installed state was installed is the database's own (restored from a
// backup, a failover to a replica behind): it is installed.
func (r *Registry) install(st *state) {
	st.installedAt = time.Now()
	for {
		cur := r.state.Load()
		if cur != nil && cur.revision > st.revision && !st.readFrom.After(cur.installedAt) {
			return
		}
		if r.state.CompareAndSwap(cur, st) {
			return
		}
	}
}

// load reads every type, or only eventType when it is not empty.
func (r *Registry) load(ctx context.Context, q querier, eventType string) (*state, error) {
	st := &state{types: map[string]*typeState{}}
	if err := q.QueryRow(ctx, `SELECT revision FROM schema_registry_revision`).Scan(&st.revision); err != nil {
		return nil, fmt.Errorf("schema registry: %w", err)
	}
	filter, args := "", []any{}
	if eventType != "" {
		filter, args = " WHERE event_type = $1", []any{eventType}
	}
	rows, err := q.Query(ctx, `SELECT event_type, compatibility, created_at, updated_at FROM schema_types`+filter, args...)
	if err != nil {
		return nil, fmt.Errorf("schema registry: %w", err)
	}
	for rows.Next() {
		t := &typeState{steps: map[int]*step{}}
		if err := rows.Scan(&t.name, &t.mode, &t.createdAt, &t.updatedAt); err != nil {
			rows.Close()
			return nil, fmt.Errorf("schema registry: %w", err)
		}
		st.types[t.name] = t
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("schema registry: %w", err)
	}
	rows, err = q.Query(ctx, `SELECT event_type, version, schema::text, deprecated, created_at FROM schema_versions`+filter+` ORDER BY event_type, version`, args...)
	if err != nil {
		return nil, fmt.Errorf("schema registry: %w", err)
	}
	for rows.Next() {
		var name, raw string
		v := &versionState{}
		if err := rows.Scan(&name, &v.version, &raw, &v.deprecated, &v.createdAt); err != nil {
			rows.Close()
			return nil, fmt.Errorf("schema registry: %w", err)
		}
		t := st.types[name]
		if t == nil || v.version != len(t.versions)+1 {
			rows.Close()
			return nil, fmt.Errorf("schema registry: %s v%d is out of sequence", name, v.version)
		}
		v.schema = r.compileStored(ctx, name, v.version, []byte(raw))
		t.versions = append(t.versions, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("schema registry: %w", err)
	}
	rows, err = q.Query(ctx, `SELECT event_type, from_version, operations::text FROM schema_migrations`+filter, args...)
	if err != nil {
		return nil, fmt.Errorf("schema registry: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var name, raw string
		var from int
		if err := rows.Scan(&name, &from, &raw); err != nil {
			return nil, fmt.Errorf("schema registry: %w", err)
		}
		var ops []Op
		if err := json.Unmarshal([]byte(raw), &ops); err != nil {
			return nil, fmt.Errorf("schema registry: stored migration %s v%d: %w", name, from, err)
		}
		s, err := compileStoredOps(ops)
		if err != nil {
			return nil, fmt.Errorf("schema registry: stored migration %s v%d: %w", name, from, err)
		}
		if t := st.types[name]; t != nil {
			t.steps[from] = s
		}
	}
	return st, rows.Err()
}

// compileStored compiles a stored schema once per distinct document. One
// that does not compile (registered before a check that now refuses it,
// such as a $ref loop that would crash the process on the first event) is
// logged, once, and kept as unusable: nothing validates against it, and
// the rest of the registry works.
func (r *Registry) compileStored(ctx context.Context, eventType string, version int, raw []byte) *compiled {
	key := sha256.Sum256(raw)
	if c, ok := r.compiled.Load(key); ok {
		return c.(*compiled)
	}
	c, err := compileSchema(raw)
	if err != nil {
		r.log.ErrorContext(ctx, "schema registry: a stored schema cannot be used: events of its version are refused and cannot be read as it; register a new version",
			"eventType", eventType, "version", version, "err", err)
		c = unusableSchema(raw, err)
	}
	r.compiled.Store(key, c)
	return c
}

// lookup returns the type's state; on a miss (or when it lacks version,
// if version > 0) it reloads from the database, at most every 200ms, so a
// registration made through another process is seen at once.
func (r *Registry) lookup(ctx context.Context, eventType string, version int) (*typeState, error) {
	if t := r.state.Load().types[eventType]; t != nil && version <= t.latest() {
		return t, nil
	}
	r.reloadMu.Lock()
	defer r.reloadMu.Unlock()
	if t := r.state.Load().types[eventType]; t != nil && version <= t.latest() {
		return t, nil // another caller reloaded
	}
	if time.Since(r.lastMiss) >= 200*time.Millisecond {
		r.lastMiss = time.Now()
		if err := r.reload(ctx); err != nil {
			return nil, err
		}
	}
	return r.state.Load().types[eventType], nil
}

func (r *Registry) permissive(eventType string) bool {
	for _, p := range r.opts.PermissiveTypes {
		if ok, _ := path.Match(p, eventType); ok {
			return true
		}
	}
	return false
}

// Validate checks an event about to be appended: its type must have a
// schema (unless it matches Options.PermissiveTypes, and then its version
// must be 1, the version of the type's first schema), its version must
// exist and not be deprecated, and data must match that version's schema.
// Data of an older version than the latest (still appended while a new
// version rolls out) must also read as every later version: migrated step
// by step up to the latest, it must match each version's schema on the
// way, or reads of it as that version (Upcast's target, every read when
// it is the latest) would fail. That check migrates the data as reads do,
// with its numbers as PostgreSQL's jsonb gives them back
// (jsonvalue.StoredNumbers: 1e16 reads as 10000000000000000). Errors:
// *Error (CodeInvalid) wrapping ErrUnknownType or ErrUnknownVersion, or a
// *ValidationError naming each failing path (with ReadAs set to the first
// version the data would not read as, when it matches its own).
func (r *Registry) Validate(ctx context.Context, eventType string, version int, data []byte) error {
	t, err := r.lookup(ctx, eventType, version)
	if err != nil {
		return err
	}
	if t == nil || t.latest() == 0 {
		if r.permissive(eventType) {
			// Versions exist only by registration, and the first one
			// registered is 1: an event stored at another version would
			// keep the type from ever getting a schema.
			if version != 1 {
				return &Error{Code: CodeInvalid, Err: ErrUnknownVersion, Details: map[string]any{"eventType": eventType, "schemaVersion": version, "latestVersion": 0},
					Message: fmt.Sprintf("%s has no schema, so no version %d: append it at schema version 1 (the version its first registered schema will be)", eventType, version)}
			}
			return nil
		}
		return &Error{Code: CodeInvalid, Err: ErrUnknownType, Details: map[string]any{"eventType": eventType},
			Message: fmt.Sprintf("unknown event type %q: register its schema (registerEventSchema) before appending it", eventType)}
	}
	if version < 1 || version > t.latest() {
		return &Error{Code: CodeInvalid, Err: ErrUnknownVersion, Details: map[string]any{"eventType": eventType, "schemaVersion": version, "latestVersion": t.latest()},
			Message: fmt.Sprintf("%s has no schema version %d (the latest is %d)", eventType, version, t.latest())}
	}
	v := t.versions[version-1]
	if v.deprecated {
		return &Error{Code: CodeInvalid, Err: ErrUnknownVersion, Details: map[string]any{"eventType": eventType, "schemaVersion": version, "latestVersion": t.latest()},
			Message: fmt.Sprintf("%s v%d is deprecated: append version %d", eventType, version, t.latest())}
	}
	problems, err := v.schema.validate(data)
	if err != nil {
		return err
	}
	if problems != nil {
		return &ValidationError{Type: eventType, Version: version, Problems: problems}
	}
	if latest := t.latest(); version < latest {
		if readAs, problems := r.readsAsLater(t, version, data); problems != nil {
			return &ValidationError{Type: eventType, Version: version, ReadAs: readAs, Latest: latest, Problems: problems}
		}
	}
	return nil
}

// readsAsLater checks that data, an event of t at version, reads as each
// later version of t: it runs the migrations one step at a time, as a read
// as the latest does, and validates the result of each against its
// version's schema, as a read as that version does. The data is first
// spelled as it will be stored (see Validate). It returns the first
// version the data does not read as, and why; no problems when it reads as
// them all.
func (r *Registry) readsAsLater(t *typeState, version int, data []byte) (int, []Problem) {
	fail := func(v int, err error) (int, []Problem) { return v, []Problem{{Message: err.Error()}} }
	stored, err := jsonvalue.StoredNumbers(data)
	if err != nil {
		return fail(version+1, err)
	}
	obj, err := decodeObject(stored)
	if err != nil {
		return fail(version+1, err)
	}
	budget := &sizeBudget{limit: r.opts.MaxEventBytes, size: len(stored)}
	for v := version + 1; v <= t.latest(); v++ {
		if err := r.migrate(t, obj, v-1, v, nil, budget); err != nil {
			return fail(v, err)
		}
		out, err := marshalUnescaped(obj)
		if err != nil {
			return fail(v, err)
		}
		if len(out) > budget.limit {
			return fail(v, budget.exceeded())
		}
		schema := t.versions[v-1].schema
		if schema.unusable != nil && v < t.latest() {
			continue // no event reads as it: nothing to keep readable
		}
		problems, err := schema.validate(out)
		if err != nil {
			return fail(v, err)
		}
		if problems != nil {
			return v, problems
		}
	}
	return 0, nil
}

// Latest returns the latest schema version of eventType, 0 when it has none.
func (r *Registry) Latest(eventType string) int {
	if t := r.state.Load().types[eventType]; t != nil {
		return t.latest()
	}
	return 0
}

// Upcast returns an event's data as schema version target (0: the latest),
// running the migrations from its stored version up and validating the
// result against the target schema. Data already at the target, and events
// of types without a schema, are returned as they are. Errors wrap
// ErrMigration (a migration failed or its result does not validate) or
// ErrUnknownVersion (target does not exist, or is older than version:
// migrations only go forward).
func (r *Registry) Upcast(ctx context.Context, eventType string, version int, data json.RawMessage, target int) (json.RawMessage, int, error) {
	t := r.state.Load().types[eventType]
	if target > 0 && (t == nil || target > t.latest()) {
		var err error
		if t, err = r.lookup(ctx, eventType, target); err != nil {
			return nil, 0, err
		}
	}
	if t == nil || t.latest() == 0 {
		if target > 0 && target != version {
			return nil, 0, &Error{Code: CodeNotFound, Err: ErrUnknownVersion, Message: fmt.Sprintf("%s has no schema, so it cannot be read as version %d", eventType, target)}
		}
		return data, version, nil
	}
	if target == 0 {
		target = t.latest()
		if version >= target {
			return data, version, nil // as new as it gets (or newer than this process knows)
		}
	}
	switch {
	case target > t.latest():
		return nil, 0, &Error{Code: CodeNotFound, Err: ErrUnknownVersion, Message: fmt.Sprintf("%s has no schema version %d (the latest is %d)", eventType, target, t.latest())}
	case target == version:
		return data, version, nil
	case target < version:
		return nil, 0, &Error{Code: CodeInvalid, Err: ErrUnknownVersion,
			Message: fmt.Sprintf("a %s event stored as version %d cannot be read as the older version %d: migrations only go forward", eventType, version, target)}
	}
	out, problems, err := r.upcast(t, version, data, target, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %s v%d to v%d: %v", ErrMigration, eventType, version, target, err)
	}
	if problems != nil {
		return nil, 0, fmt.Errorf("%w: %w", ErrMigration, &ValidationError{Type: eventType, Version: target, Problems: problems})
	}
	return out, target, nil
}

// upcast runs the migrations of t from version to target (override
// replacing the registered step of a from-version) and validates the result
// against target's schema (or the override's, when target is past t).
func (r *Registry) upcast(t *typeState, version int, data []byte, target int, o *override) (json.RawMessage, []Problem, error) {
	obj, err := decodeObject(data)
	if err != nil {
		return nil, nil, err
	}
	budget := &sizeBudget{limit: r.opts.MaxEventBytes, size: len(data)}
	if err := r.migrate(t, obj, version, target, o, budget); err != nil {
		return nil, nil, err
	}
	out, err := marshalUnescaped(obj)
	if err != nil {
		return nil, nil, err
	}
	if len(out) > budget.limit {
		return nil, nil, budget.exceeded()
	}
	schema := o.schemaOf(t, target)
	if schema == nil {
		return nil, []Problem{{Message: fmt.Sprintf("no schema version %d", target)}}, nil
	}
	problems, err := schema.validate(out)
	return out, problems, err
}

// override describes a change under evaluation: a step that replaces (or
// adds) the migration from a version, and a schema for a version past the
// registered ones.
type override struct {
	stepFrom int
	step     *step
	version  int
	schema   *compiled
}

func (o *override) stepOf(t *typeState, from int) *step {
	if o != nil && o.step != nil && o.stepFrom == from {
		return o.step
	}
	if t == nil {
		return nil
	}
	return t.steps[from]
}

func (o *override) schemaOf(t *typeState, version int) *compiled {
	if o != nil && o.schema != nil && o.version == version {
		return o.schema
	}
	if t == nil || version < 1 || version > t.latest() {
		return nil
	}
	return t.versions[version-1].schema
}

// migrate runs the steps from version from to version to on obj, within
// budget.
func (r *Registry) migrate(t *typeState, obj map[string]any, from, to int, o *override, budget *sizeBudget) error {
	name := ""
	if t != nil {
		name = t.name
	}
	for v := from; v < to; v++ {
		if up, ok := r.opts.Upcasters[UpcasterKey{Type: name, From: v}]; ok {
			if err := up(obj); err != nil {
				return fmt.Errorf("Go upcaster v%d to v%d: %w", v, v+1, err)
			}
			if err := budget.measure(obj); err != nil {
				return fmt.Errorf("Go upcaster v%d to v%d: %w", v, v+1, err)
			}
			continue
		}
		if s := o.stepOf(t, v); s != nil {
			if err := s.apply(obj, budget); err != nil {
				return fmt.Errorf("migration v%d to v%d: %w", v, v+1, err)
			}
		}
	}
	return nil
}

// hasStep reports whether data of version from is transformed (by a Go
// upcaster or a declarative migration) on its way to version to.
func (r *Registry) hasStep(t *typeState, from, to int, o *override) bool {
	for v := from; v < to; v++ {
		if _, ok := r.opts.Upcasters[UpcasterKey{Type: o.typeName(t), From: v}]; ok {
			return true
		}
		if o.stepOf(t, v) != nil {
			return true
		}
	}
	return false
}

func (o *override) typeName(t *typeState) string {
	if t != nil {
		return t.name
	}
	return ""
}

var typeNamePattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_.-]{0,127}$`)

func checkTypeName(name string) error {
	if !typeNamePattern.MatchString(name) {
		return &Error{Code: CodeInvalid, Details: map[string]any{"field": "type"},
			Message: fmt.Sprintf("event type %q is not a valid name: a letter, then up to 127 letters, digits, _ . or -", name)}
	}
	return nil
}

// sortedTypes returns the state's types by name.
func (s *state) sortedTypes() []*typeState {
	out := make([]*typeState, 0, len(s.types))
	for _, t := range s.types {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// marshalUnescaped encodes v as JSON as the event store keeps it: without
// json.Marshal's escapes of <, > and &, which would make a migrated event
// six times the size of the stored one for each of them (and refuse it
// against the size limit).
func marshalUnescaped(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}
