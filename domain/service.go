package domain

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// EventStore is what the command service needs of the event log;
// eventstore.Postgres and eventstore.Memory implement it.
type EventStore interface {
	Append(ctx context.Context, stream string, expected ExpectedVersion, events ...EventData) (AppendResult, error)
	ReadStream(ctx context.Context, stream string, q StreamQuery) ([]RecordedEvent, error)
	ReadEvent(ctx context.Context, eventID string) (RecordedEvent, error)
	SaveSnapshot(ctx context.Context, s Snapshot) error
	LoadSnapshot(ctx context.Context, stream string) (Snapshot, error)
}

// ServiceOptions tune the command service. Zero values mean the defaults.
type ServiceOptions struct {
	// SnapshotEvery saves a snapshot each time a stream's version crosses a
	// multiple of it (default 100; negative disables snapshots).
	SnapshotEvery int
	// MaxRetries bounds how often a command is re-decided after losing a
	// concurrency race (default 10).
	MaxRetries int
	// Observe, when set, is told the outcome of every command (for metrics).
	Observe func(CommandOutcome)
	// CacheSize is how many aggregates' states the service keeps between
	// commands (default 10,000; negative disables the cache).
	CacheSize int
}

// CommandOutcome is what Execute reports to ServiceOptions.Observe.
type CommandOutcome struct {
	Command string
	// Code is "" for success, else the error's code (CodeOf).
	Code Code
	// Conflicts counts the concurrency races the command lost (and retried,
	// or gave up after).
	Conflicts int
	Duration  time.Duration
	// Err is the command's error (nil for success), for what its code does
	// not tell: a context's end (Code is then Internal) is the caller's
	// having gone, or its deadline.
	Err error
}

// Service executes commands: it loads the aggregate (latest snapshot plus
// newer events), lets it decide, and appends the new events expecting the
// version it loaded. When another writer got there first it reloads and
// decides again, a bounded number of times.
type Service struct {
	store EventStore
	log   *slog.Logger
	now   func() time.Time
	opts  ServiceOptions
	// streams serialises this process's commands per aggregate.
	streams keyLock
	// cache holds recently commanded aggregates (nil: disabled).
	cache *stateCache
}

// NewService returns a command service on store; now is the clock given to
// decisions.
func NewService(store EventStore, log *slog.Logger, now func() time.Time, opts ServiceOptions) *Service {
	if opts.SnapshotEvery == 0 {
		opts.SnapshotEvery = 100
	}
	if opts.MaxRetries <= 0 {
		opts.MaxRetries = 10
	}
	if opts.CacheSize == 0 {
		opts.CacheSize = 10_000
	}
	return &Service{store: store, log: log, now: now, opts: opts, cache: newStateCache(opts.CacheSize)}
}

// CommandMeta is what the caller knows about a command besides its content.
type CommandMeta struct {
	// CorrelationID ties together everything one request or process caused.
	CorrelationID string
	// CausationID is the id of the message that caused this command
	// (for a mutation, the request id).
	CausationID string
	// Actor is who asked (user or service id), when known.
	Actor string
	// ExpectedVersion, when set, is the version the client believes the
	// aggregate is at; a mismatch is a Conflict and the command is not retried.
	ExpectedVersion *int64
	// Tenant is the caller's tenant ("" for the default tenant): the
	// command addresses the aggregate in that tenant's namespace.
	Tenant string
	// IdempotencyKey, when set, makes the command exactly-once per
	// aggregate: a repeat with the same key returns the original result and
	// writes nothing, across restarts and concurrent retries. Keys are
	// scoped to the aggregate instance, 1 to 200 bytes. A repeat must be
	// the same command: the key used with another command (or the same one
	// with other arguments) is Invalid.
	IdempotencyKey string

	fingerprint string // of the command, set by Execute with IdempotencyKey
}

// Result reports what a command did.
type Result struct {
	AggregateID string
	StreamID    string
	// Version is the aggregate's version after the command.
	Version int64
	// Position is the global position of the last event written (or, for a
	// command that wrote nothing, 0): the consistency token for reads.
	Position int64
	// Events are the events written (or, for a repeated idempotency key,
	// the events the first execution wrote).
	Events []RecordedEvent
	// Duplicate is true when the idempotency key was seen before.
	Duplicate bool
}

// Execute runs cmd against its aggregate of kind k. Errors: the decision's
// *Error (Invalid, NotFound, RuleViolation); Conflict when
// meta.ExpectedVersion does not match or the retries ran out; Invalid for a
// bad idempotency key; store errors (Unavailable, Internal) as they come.
func Execute[A Aggregate](ctx context.Context, s *Service, k *Kind[A], cmd Command, meta CommandMeta) (res Result, err error) {
	conflicts := 0
	if s.opts.Observe != nil {
		start := time.Now()
		defer func() {
			s.opts.Observe(CommandOutcome{Command: cmd.CommandName(), Code: CodeOf(err), Conflicts: conflicts, Duration: time.Since(start), Err: err})
		}()
	}
	id := cmd.AggregateID()
	stream, err := qualifiedStream(k, meta.Tenant, id)
	if err != nil {
		return Result{}, err
	}
	if len(meta.IdempotencyKey) > 200 {
		return Result{}, InvalidField("idempotencyKey", "idempotency key is %d bytes; at most 200 are allowed", len(meta.IdempotencyKey))
	}
	if meta.IdempotencyKey != "" {
		if meta.fingerprint, err = commandFingerprint(cmd); err != nil {
			return Result{}, err
		}
	}
	for attempt := 0; ; attempt++ {
		unlock := s.streams.lock(stream)
		res, err := executeOnce(ctx, s, k, cmd, meta, id, stream)
		unlock()
		retryable := errors.Is(err, ErrWrongExpectedVersion) && meta.ExpectedVersion == nil ||
			errors.Is(err, ErrDuplicateEventID) && meta.IdempotencyKey != ""
		if !retryable {
			return res, err
		}
		conflicts++
		if attempt >= s.opts.MaxRetries {
			return Result{}, &Error{Code: Conflict, Message: fmt.Sprintf("%s %s: gave up after %d concurrent modifications; retry later", k.Name, id, attempt+1), Err: err}
		}
		// Back off a little, more with each lost race, so that writers of a
		// hot aggregate take turns instead of colliding again.
		select {
		case <-ctx.Done():
			return Result{}, ctx.Err()
		case <-time.After(time.Duration(attempt+1) * time.Millisecond):
		}
	}
}

func executeOnce[A Aggregate](ctx context.Context, s *Service, k *Kind[A], cmd Command, meta CommandMeta, id, stream string) (Result, error) {
	agg, version, snapVersion, verified, err := loadForCommand(ctx, s, k, id, stream, meta.ExpectedVersion)
	if err != nil {
		return Result{}, err
	}
	if version == 0 {
		if err := checkNewID(k, id); err != nil {
			return Result{}, err
		}
	}
	current := true // as far as this process knows: false once the stream is known to have moved on
	// The state goes back to the cache at the version it reflects, whatever
	// the command's outcome (appended events are applied to it first), but
	// for instances that do not exist: commands against made-up ids would
	// push the states worth keeping out.
	defer func() {
		if version > 0 {
			s.cache.put(cacheEntry{stream: stream, agg: agg, version: version, snapVersion: snapVersion, current: current})
		}
	}()
	if meta.IdempotencyKey != "" {
		// Checked after loading: a first execution that commits after this
		// check is caught by the event store (same derived event ids); one
		// that committed before it is found here, even if the load missed it.
		res, found, err := s.previousResult(ctx, stream, id, cmd, meta)
		if err != nil || found {
			current = current && !found
			return res, err
		}
	}
	if meta.ExpectedVersion != nil && *meta.ExpectedVersion != version {
		return Result{}, versionConflict(k.Name, id, version, *meta.ExpectedVersion)
	}
	events, err := k.Decide(agg, cmd, s.now())
	if (err != nil || len(events) == 0) && !verified {
		// A refusal or a no-op is final only if decided on the current
		// state (an append would have checked that; these write nothing).
		if version, err = replay(ctx, s, k, id, stream, agg, version); err != nil {
			current = false
			return Result{}, err
		}
		if meta.IdempotencyKey != "" {
			// The first execution under this key may have committed since
			// the look-up above (a racing retry through another process):
			// the replay holds its effect, which would refuse its retry.
			res, found, err := s.previousResult(ctx, stream, id, cmd, meta)
			if err != nil || found {
				current = current && !found
				return res, err
			}
		}
		if meta.ExpectedVersion != nil && *meta.ExpectedVersion != version {
			return Result{}, versionConflict(k.Name, id, version, *meta.ExpectedVersion)
		}
		events, err = k.Decide(agg, cmd, s.now())
	}
	if err != nil {
		return Result{}, err
	}
	if len(events) == 0 {
		return Result{AggregateID: id, StreamID: stream, Version: version, Events: []RecordedEvent{}}, nil
	}
	data := make([]EventData, len(events))
	for i, e := range events {
		ed, err := EncodeEvent(e)
		if err != nil {
			return Result{}, fmt.Errorf("%s %s: %w", k.Name, id, err)
		}
		if ed.Metadata, err = eventMetadata(cmd, meta); err != nil {
			return Result{}, err
		}
		data[i] = ed
		if meta.IdempotencyKey != "" {
			data[i].ID = idempotentEventID(stream, meta.IdempotencyKey, i)
		}
	}
	expected := ExpectedVersion(version)
	if version == 0 {
		expected = ExpectNoStream
	}
	appended, err := s.store.Append(ctx, stream, expected, data...)
	if err != nil {
		current = false
		if meta.ExpectedVersion != nil && errors.Is(err, ErrWrongExpectedVersion) {
			// The state was stale (another process wrote): the conflict is
			// the client's, reported as one found on the current state is.
			if version, err = replay(ctx, s, k, id, stream, agg, version); err != nil {
				return Result{}, err
			}
			current = true
			return Result{}, versionConflict(k.Name, id, version, *meta.ExpectedVersion)
		}
		return Result{}, unshippedSchema(cmd, err)
	}
	if appended.Duplicate {
		// A concurrent retry with the same key won the race.
		current = false
		if err := sameCommand(appended.Events[0], cmd, meta); err != nil {
			return Result{}, err
		}
		return Result{AggregateID: id, StreamID: stream, Version: appended.LastVersion, Position: appended.LastPosition, Events: appended.Events, Duplicate: true}, nil
	}
	for _, e := range events {
		agg.Apply(e)
	}
	version = appended.LastVersion
	snapVersion = maybeSnapshot(ctx, s, k, agg, stream, snapVersion, appended.LastVersion)
	return Result{AggregateID: id, StreamID: stream, Version: appended.LastVersion, Position: appended.LastPosition, Events: appended.Events}, nil
}

// unshippedSchema turns a schema registry's refusal of an event type or
// version it does not know, met by a command's append, into an Internal
// error: the client sent no events, the domain did, and the gateway ships
// no schema for one of them (a developer's omission, which an admin must
// not mend with registerEventSchema: a schema registered by hand differs
// from the one shipped later, and start-up then fails). Other errors are
// returned as they are.
func unshippedSchema(cmd Command, err error) error {
	var e *Error
	if !errors.As(err, &e) || e.Code != Invalid || e.Rule != "UNKNOWN_EVENT_TYPE" && e.Rule != "UNKNOWN_SCHEMA_VERSION" {
		return err
	}
	typ, _ := e.Details["eventType"].(string)
	v, _ := e.Details["schemaVersion"].(int)
	return &Error{Code: Internal, Err: err, Details: map[string]any{"eventType": typ, "schemaVersion": v},
		Message: fmt.Sprintf("%s writes the event %s v%d, for which this gateway ships no schema (domain/schemas/%s.v%d.json is missing from its build); nothing was written",
			cmd.CommandName(), typ, v, typ, v)}
}

// versionConflict is the Conflict of a command whose expected version is
// not the aggregate's.
func versionConflict(kind, id string, actual, expected int64) error {
	return &Error{
		Code:    Conflict,
		Message: fmt.Sprintf("%s %s is at version %d, not the expected %d", kind, id, actual, expected),
		Details: map[string]any{"expectedVersion": expected, "actualVersion": actual},
		Err:     ErrWrongExpectedVersion,
	}
}

// Load returns the current state of instance id of kind k and its version
// (0 when it has no events); id may be qualified with a tenant (see
// Qualify). Errors: Invalid for a malformed id; errors from the store or
// from events that cannot be decoded.
func Load[A Aggregate](ctx context.Context, s *Service, k *Kind[A], id string) (A, int64, error) {
	_, plain := SplitTenant(id)
	if err := validateQualifiedID(id); err != nil {
		return k.New(plain), 0, err
	}
	agg, version, _, err := load(ctx, s, k, plain, k.StreamID(id))
	return agg, version, err
}

// load rebuilds the aggregate from its latest usable snapshot plus the
// events after it, in pages. It also returns the snapshot's version.
func load[A Aggregate](ctx context.Context, s *Service, k *Kind[A], id, stream string) (A, int64, int64, error) {
	agg, snapVersion, err := restoreSnapshot(ctx, s, k, id, stream)
	if err != nil {
		return agg, 0, 0, err
	}
	version, err := replay(ctx, s, k, id, stream, agg, snapVersion)
	if err != nil {
		return agg, 0, 0, err
	}
	return agg, version, snapVersion, nil
}

// restoreSnapshot returns the state of the stream's latest usable
// snapshot and its version, or a new instance and 0 when snapshots are off
// for the kind, none is stored, or the stored one has another state shape
// or does not load.
func restoreSnapshot[A Aggregate](ctx context.Context, s *Service, k *Kind[A], id, stream string) (A, int64, error) {
	if k.LoadState == nil || s.opts.SnapshotEvery <= 0 {
		return k.New(id), 0, nil
	}
	snap, err := s.store.LoadSnapshot(ctx, stream)
	switch {
	case err == nil && snap.SchemaVersion == k.StateVersion:
		restored, lerr := k.LoadState(id, snap.State)
		if lerr == nil {
			return restored, snap.Version, nil
		}
		s.log.WarnContext(ctx, "domain: ignoring a snapshot that does not load", "stream", stream, "err", lerr)
	case err == nil:
		// Written by code with another state shape: rebuild from events.
	case CodeOf(err) == NotFound:
	default:
		return k.New(id), 0, err
	}
	return k.New(id), 0, nil
}

// maybeSnapshot saves the state when at least SnapshotEvery events have
// been written since the snapshot the state was loaded from, so that loading
// never replays more than about that many events. A failure is logged, not
// returned: the events are stored, and the next command tries again. It
// returns the version of the latest snapshot.
func maybeSnapshot[A Aggregate](ctx context.Context, s *Service, k *Kind[A], agg A, stream string, snapVersion, version int64) int64 {
	if k.SaveState == nil || s.opts.SnapshotEvery <= 0 || version-snapVersion < int64(s.opts.SnapshotEvery) {
		return snapVersion
	}
	state, err := k.SaveState(agg)
	if err == nil {
		err = s.store.SaveSnapshot(ctx, Snapshot{StreamID: stream, Version: version, SchemaVersion: k.StateVersion, State: state})
	}
	if err != nil {
		s.log.WarnContext(ctx, "domain: saving a snapshot failed", "stream", stream, "version", version, "err", err)
		return snapVersion
	}
	return version
}

// validateAggregateID checks an aggregate id that a client gave as field
// for a command: no character that would make two ids look alike (IDRune).
func validateAggregateID(field, id string) error {
	return checkAggregateID(field, id, IDRune)
}

// ValidateReadID checks an aggregate id to read by (or follow), as the
// reads of the domain's aggregates check it: 1 to 100 bytes, no spaces nor
// control characters (what commands took before IDRune, so that instances
// created then stay readable).
func ValidateReadID(field, id string) error { return validateReadID(field, id) }

// validateReadID checks an aggregate id to read by: what commands took
// before IDRune, so that instances created then stay readable.
func validateReadID(field, id string) error {
	return checkAggregateID(field, id, func(r rune) bool { return r > 0x20 && r != 0x7f })
}

func checkAggregateID(field, id string, allowed func(rune) bool) error {
	switch {
	case id == "":
		return InvalidField(field, "%s is empty", field)
	case len(id) > 100:
		return InvalidField(field, "%s is %d bytes; at most 100 are allowed", field, len(id))
	}
	for _, r := range id {
		if !allowed(r) {
			return InvalidField(field, "%s contains white space, a control character or an invisible character (%U)", field, r)
		}
	}
	return CheckUnqualified(field, id)
}

func eventMetadata(cmd Command, meta CommandMeta) (json.RawMessage, error) {
	m := map[string]string{"command": cmd.CommandName()}
	if meta.CorrelationID != "" {
		m[MetaCorrelationID] = meta.CorrelationID
	}
	if meta.CausationID != "" {
		m[MetaCausationID] = meta.CausationID
	}
	if meta.Actor != "" {
		m[MetaActor] = meta.Actor
	}
	if meta.IdempotencyKey != "" {
		m["idempotencyKey"] = meta.IdempotencyKey
		m[metaCommandFingerprint] = meta.fingerprint
	}
	return json.Marshal(m)
}

// metaCommandFingerprint is the metadata key of an idempotent command's
// fingerprint (see commandFingerprint).
const metaCommandFingerprint = "commandFingerprint"

// commandFingerprint identifies a command with its arguments: a hash of its
// name and its JSON form.
func commandFingerprint(cmd Command) (string, error) {
	body, err := json.Marshal(cmd)
	if err != nil {
		return "", fmt.Errorf("fingerprint of %s: %w", cmd.CommandName(), err)
	}
	h := sha256.New()
	h.Write([]byte(cmd.CommandName()))
	h.Write([]byte{0})
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil)[:16]), nil
}

// sameCommand checks that e, the first event written under an idempotency
// key, was written by the command retried now: by its fingerprint, or, for
// events written before fingerprints were recorded, by the command's name.
func sameCommand(e RecordedEvent, cmd Command, meta CommandMeta) error {
	var m map[string]string
	_ = json.Unmarshal(e.Metadata, &m) // metadata of another shape: nothing to compare
	fp, name := m[metaCommandFingerprint], m["command"]
	if fp != "" && fp != meta.fingerprint || fp == "" && name != "" && name != cmd.CommandName() {
		what := "another command"
		if name == cmd.CommandName() {
			what = "this command with other arguments"
		} else if name != "" {
			what = name
		}
		return InvalidField("idempotencyKey", "idempotency key %q was used before, for %s: a key can only be repeated with the same command", CutText(meta.IdempotencyKey, maxQuoted), what)
	}
	return nil
}

// executed reports whether cmd, under meta.IdempotencyKey, was executed:
// whether the first event it would write under that key is in its
// aggregate's stream, written by the same command. An event with that id
// elsewhere, or written by another command, is no proof; nor is there any
// for an id no instance can have.
func executed[A Aggregate](ctx context.Context, s *Service, k *Kind[A], cmd Command, meta CommandMeta) (bool, error) {
	stream, err := qualifiedStream(k, meta.Tenant, cmd.AggregateID())
	if err != nil {
		return false, nil // no instance has this id: cmd was not executed
	}
	if meta.fingerprint, err = commandFingerprint(cmd); err != nil {
		return false, err
	}
	_, found, err := s.keyedEvent(ctx, stream, cmd, meta)
	switch CodeOf(err) {
	case Conflict, Invalid: // the id, or the key, was another command's
		return false, nil
	}
	return found, err
}

// reservedKeyPrefixes begin the idempotency keys of the gateway's own
// processes, which clients cannot use (a client's command under such a key
// would stand for a step of the process).
var reservedKeyPrefixes = []string{"fulfilment/"}

// CheckClientIdempotencyKey refuses an idempotency key that a client may not
// use: an empty one, and one in a namespace reserved for the gateway's own
// processes.
func CheckClientIdempotencyKey(key string) error {
	if key == "" {
		return InvalidField("idempotencyKey", "idempotencyKey must not be empty")
	}
	for _, p := range reservedKeyPrefixes {
		if strings.HasPrefix(key, p) {
			return InvalidField("idempotencyKey", "idempotency keys starting with %q are reserved for the gateway's own processes", p)
		}
	}
	for _, r := range key {
		if !TextRune(r) { // NUL cannot be stored in the events' metadata at all
			return InvalidField("idempotencyKey", "idempotencyKey contains a control or invisible character (%U)", r)
		}
	}
	return nil
}

// idempotentEventID derives the id of the i-th event a command with
// idempotency key key writes to stream: the same command retried derives the
// same ids, and the event store's unique ids make it exactly-once.
func idempotentEventID(stream, key string, i int) string {
	h := sha256.Sum256([]byte(fmt.Sprintf("cqrsgate/idempotency\x00%s\x00%s\x00%d", stream, key, i)))
	u := h[:16]
	u[6] = (u[6] & 0x0f) | 0x80 // version 8: application-defined
	u[8] = (u[8] & 0x3f) | 0x80 // RFC 4122 variant
	s := hex.EncodeToString(u)
	return s[0:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:32]
}

// keyedEvent reads the first event a command with meta.IdempotencyKey
// wrote to stream, if any (found is false when there is none), and checks
// that cmd wrote it there: an event with its id in another stream (a
// collision of derived ids) is a Conflict, one another command wrote is
// sameCommand's error.
func (s *Service) keyedEvent(ctx context.Context, stream string, cmd Command, meta CommandMeta) (RecordedEvent, bool, error) {
	first, err := s.store.ReadEvent(ctx, idempotentEventID(stream, meta.IdempotencyKey, 0))
	switch {
	case CodeOf(err) == NotFound:
		return RecordedEvent{}, false, nil
	case err != nil:
		return RecordedEvent{}, false, err
	case first.StreamID != stream:
		return RecordedEvent{}, false, &Error{Code: Conflict, Message: "idempotency key was used for another aggregate", Err: ErrDuplicateEventID}
	}
	if err := sameCommand(first, cmd, meta); err != nil {
		return RecordedEvent{}, false, err
	}
	return first, true, nil
}

// previousResult finds the events a command with this idempotency key
// wrote before, if any, and rebuilds that command's result from them.
func (s *Service) previousResult(ctx context.Context, stream, id string, cmd Command, meta CommandMeta) (Result, bool, error) {
	key := meta.IdempotencyKey
	first, found, err := s.keyedEvent(ctx, stream, cmd, meta)
	if err != nil || !found {
		return Result{}, false, err
	}
	evs, err := s.store.ReadStream(ctx, stream, StreamQuery{From: first.StreamVersion, Limit: 1000})
	if err != nil {
		return Result{}, false, err
	}
	res := Result{AggregateID: id, StreamID: stream, Duplicate: true}
	for i, e := range evs {
		if e.ID != idempotentEventID(stream, key, i) {
			break
		}
		res.Events = append(res.Events, e)
		res.Version, res.Position = e.StreamVersion, e.Position
	}
	return res, true, nil
}

// LoadAt rebuilds instance id of kind k from its events as of a point in
// its history: up to version (0: no limit) and recorded no later than at
// (nil: no limit; any instant, the zero time.Time included), whichever
// comes first. It starts from the stream's
// snapshot when that is no later than the point asked for, so that the
// recent past of a long stream costs what loading it for a command does;
// an earlier point is folded from the stream's first event. It returns the
// state, the version it reflects (0 when no event qualifies) and when that
// version was recorded. Errors: NotFound when the instance has no events
// at all; Invalid for a malformed id (which may be qualified with a
// tenant); store and decoding errors.
func LoadAt[A Aggregate](ctx context.Context, s *Service, k *Kind[A], qualifiedID string, version int64, at *time.Time) (A, int64, time.Time, error) {
	_, id := SplitTenant(qualifiedID)
	agg := k.New(id)
	if err := validateQualifiedID(qualifiedID); err != nil {
		return agg, 0, time.Time{}, err
	}
	if version < 0 {
		return agg, 0, time.Time{}, InvalidField("version", "version must not be negative, got %d", version)
	}
	stream := k.StreamID(qualifiedID)
	after := func(re RecordedEvent) bool {
		return version > 0 && re.StreamVersion > version || at != nil && re.RecordedAt.After(*at)
	}
	var reached int64
	var reachedAt time.Time
	restored, snapVersion, err := restoreSnapshot(ctx, s, k, id, stream)
	if err != nil {
		return agg, 0, time.Time{}, err
	}
	if snapVersion > 0 && (version == 0 || snapVersion <= version) {
		// The snapshot's own event says whether it is early enough for at,
		// and when the state it holds was recorded.
		evs, err := s.store.ReadStream(ctx, stream, StreamQuery{From: snapVersion, Limit: 1})
		if err != nil {
			return agg, 0, time.Time{}, err
		}
		if len(evs) == 1 && evs[0].StreamVersion == snapVersion && !after(evs[0]) {
			agg, reached, reachedAt = restored, snapVersion, evs[0].RecordedAt
		}
	}
	const page = 1000
	for from := reached + 1; ; from += page {
		evs, err := s.store.ReadStream(ctx, stream, StreamQuery{From: from, Limit: page})
		if err != nil {
			return agg, 0, time.Time{}, err
		}
		if from == 1 && len(evs) == 0 {
			return agg, 0, time.Time{}, Errorf(NotFound, "%s %s does not exist", k.Name, id)
		}
		for _, re := range evs {
			if after(re) {
				return agg, reached, reachedAt, nil
			}
			e, err := k.Decode(re.Type, re.SchemaVersion, re.Data)
			if err != nil {
				return agg, 0, time.Time{}, fmt.Errorf("%s %s: event %d: %w", k.Name, id, re.StreamVersion, err)
			}
			agg.Apply(e)
			reached, reachedAt = re.StreamVersion, re.RecordedAt
		}
		if len(evs) < page {
			return agg, reached, reachedAt, nil
		}
	}
}
