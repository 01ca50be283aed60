package schemaregistry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
)

// Rules of refused changes (Error.Rule).
const (
	RuleIncompatible  = "INCOMPATIBLE_SCHEMA" // the structural compatibility check failed
	RuleStoredEvents  = "STORED_EVENTS_FAIL"  // stored events do not read as the new version
	RuleVersionGap    = "VERSION_GAP"         // a migration or schema skips a version
	RuleNothingToDo   = "NOTHING_TO_CHANGE"   // e.g. deprecating what is deprecated
	maxReplayFailures = 20
)

// Registration is a new schema version for an event type.
type Registration struct {
	Type   string
	Schema json.RawMessage
	// Compatibility sets the type's mode (and is the mode this registration
	// is checked under); empty keeps the type's mode, or the default for a
	// new type.
	Compatibility Mode
	// Migration turns data of the current latest version into the new one;
	// nil: data of earlier versions is read as it is.
	Migration []Op

	// seedVersion, set by Seed, is the version the schema must be: when the
	// type has it already, it must be this schema (and nothing is written);
	// otherwise it must be the next. 0: the next, whatever it is.
	seedVersion int
	// seedLatest, set by Seed, is the latest version the release ships of
	// the type: stored events of a later version refuse the registration,
	// as nothing in the release can check them, nor read them (the domain
	// decodes its types' events whatever their version).
	seedLatest int
}

// Verdict is the outcome of checking a change.
type Verdict struct {
	Type string `json:"type"`
	// Version is the version the schema gets (or would get).
	Version int `json:"version"`
	// Compatible is true when the change is accepted: no incompatibility
	// and no stored event failing.
	Compatible bool `json:"compatible"`
	Mode       Mode `json:"mode"`
	// Unchanged is true when the schema is the latest one already: nothing
	// is registered.
	Unchanged         bool              `json:"unchanged"`
	Incompatibilities []Incompatibility `json:"incompatibilities"`
	// Replayed lists, per stored version, how many events were replayed.
	Replayed []Replayed `json:"replayed"`
	// Failures are stored events that do not read as the new version (at
	// most 20; FailedEvents counts them all).
	Failures     []ReplayFailure `json:"failures"`
	FailedEvents int             `json:"failedEvents"`
}

// Replayed counts the stored events of one version that a check replayed.
type Replayed struct {
	Version int   `json:"version"`
	Stored  int64 `json:"stored"`
	Checked int   `json:"checked"`
}

// ReplayFailure is a stored event that does not read as the new version.
type ReplayFailure struct {
	EventID  string    `json:"eventId"`
	Position int64     `json:"position"`
	Version  int       `json:"version"`
	Problems []Problem `json:"problems"`
}

func (v *Verdict) refusal() *Error {
	if len(v.Incompatibilities) > 0 {
		msg := fmt.Sprintf("%s v%d is not %s compatible: ", v.Type, v.Version, v.Mode)
		for i, in := range v.Incompatibilities {
			if i == 3 {
				msg += fmt.Sprintf("; and %d more", len(v.Incompatibilities)-3)
				break
			}
			if i > 0 {
				msg += "; "
			}
			msg += fmt.Sprintf("%s against v%d at %q: %s", in.Direction, in.Version, in.Path, in.Reason)
		}
		return &Error{Code: CodeIncompatible, Rule: RuleIncompatible, Message: msg,
			Details: map[string]any{"incompatibilities": v.Incompatibilities}}
	}
	ids := make([]string, len(v.Failures))
	for i, f := range v.Failures {
		ids[i] = f.EventID
	}
	msg := fmt.Sprintf("%d stored %s events do not read as v%d", v.FailedEvents, v.Type, v.Version)
	if len(v.Failures) > 0 {
		f := v.Failures[0]
		msg += fmt.Sprintf(", e.g. event %s (stored as v%d): %s", f.EventID, f.Version, problemsText(f.Problems))
	}
	return &Error{Code: CodeIncompatible, Rule: RuleStoredEvents, Message: msg,
		Details: map[string]any{"failingEventIds": ids, "failures": v.Failures, "failedEvents": v.FailedEvents}}
}

func problemsText(ps []Problem) string {
	s := ""
	for i, p := range ps {
		if i > 0 {
			s += "; "
		}
		if p.Path != "" {
			s += p.Path + ": "
		}
		s += p.Message
	}
	return s
}

// Register adds a schema version to an event type (creating the type).
// It is checked first, as Check does, and refused with an *Error of code
// CodeIncompatible (Rule INCOMPATIBLE_SCHEMA or STORED_EVENTS_FAIL, details
// listing the reasons or the failing event ids) when it is not compatible;
// bad input is CodeInvalid, and so is a schema with a $ref loop that
// consumes no data, or with $id (see checkNoIDs). Registering the
// latest schema again registers no version and returns a Verdict with
// Unchanged set; a Compatibility given is set all the same. Stored events
// of a version above the one registered (stored while the type had no
// schema) are not checked, and are listed in the verdict's Replayed with
// Checked 0: the registration of their own version checks them.
func (r *Registry) Register(ctx context.Context, reg Registration) (Verdict, error) {
	return r.register(ctx, reg, false)
}

// Check is Register as a dry run: it returns the verdict (compatibility
// reasons and replay results) and writes nothing. Only bad input is an
// error.
func (r *Registry) Check(ctx context.Context, reg Registration) (Verdict, error) {
	return r.register(ctx, reg, true)
}

func (r *Registry) register(ctx context.Context, reg Registration, dry bool) (Verdict, error) {
	if err := checkTypeName(reg.Type); err != nil {
		return Verdict{}, err
	}
	// Compiled as a stored schema is: the one registered already may be
	// submitted again (unchanged); a new version must pass checkNoIDs too.
	c, err := compileSchema(reg.Schema)
	if err != nil {
		return Verdict{}, err
	}
	var mig *step
	if reg.Migration != nil {
		if mig, err = compileOps(reg.Migration); err != nil {
			return Verdict{}, err
		}
	}
	if reg.Compatibility != "" {
		if _, err := ParseMode(string(reg.Compatibility)); err != nil {
			return Verdict{}, invalid("%v", err)
		}
	}
	var verdict Verdict
	err = r.inTypeTx(ctx, reg.Type, func(tx pgx.Tx, t *typeState) error {
		mode := reg.Compatibility
		if mode == "" {
			mode = r.opts.DefaultCompatibility
			if t != nil {
				mode = t.mode
			}
		}
		latest := 0
		if t != nil {
			latest = t.latest()
		}
		if n := reg.seedVersion; n > 0 && n <= latest {
			if t.versions[n-1].schema.fingerprint != c.fingerprint {
				return invalid("differs from the registered %s v%d: a shipped schema must not change; ship version %d instead", reg.Type, n, latest+1)
			}
			verdict = Verdict{Type: reg.Type, Version: n, Mode: mode, Unchanged: true, Compatible: true}
			return errNothingWritten
		}
		if n := reg.seedVersion; n > latest+1 {
			return &Error{Code: CodeInvalid, Rule: RuleVersionGap, Message: fmt.Sprintf("%s has versions 1 to %d: version %d would leave a gap", reg.Type, latest, n)}
		}
		if mig != nil && latest == 0 {
			return &Error{Code: CodeInvalid, Rule: RuleVersionGap, Message: fmt.Sprintf("%s has no schema yet: the first version takes no migration", reg.Type)}
		}
		verdict = Verdict{Type: reg.Type, Version: latest + 1, Mode: mode}
		if latest > 0 && mig == nil && t.versions[latest-1].schema.fingerprint == c.fingerprint {
			// No new version; a mode asked for is set, as it would be with one.
			verdict.Version, verdict.Unchanged, verdict.Compatible = latest, true, true
			if dry || mode == t.mode {
				return errNothingWritten
			}
			_, err := tx.Exec(ctx, `UPDATE schema_types SET compatibility = $2, updated_at = now() WHERE event_type = $1`, reg.Type, string(mode))
			return err
		}
		if err := checkNoIDs(c.doc); err != nil {
			return err
		}
		o := &override{stepFrom: latest, step: mig, version: latest + 1, schema: c}
		if latest > 0 {
			previous := make([]any, latest)
			skip := map[int]bool{}
			for i, v := range t.versions {
				previous[i] = v.schema.doc
				skip[v.version] = r.hasStep(t, v.version, latest+1, o)
			}
			verdict.Incompatibilities = CheckCompatibility(mode, previous, c.doc, skip)
		}
		if err := r.replay(ctx, reg.Type, t, o, []int{latest + 1}, reg.seedLatest, &verdict); err != nil {
			return err
		}
		verdict.Compatible = len(verdict.Incompatibilities) == 0 && verdict.FailedEvents == 0
		if dry {
			return nil
		}
		if !verdict.Compatible {
			return verdict.refusal()
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_types (event_type, compatibility) VALUES ($1, $2)
			ON CONFLICT (event_type) DO UPDATE SET compatibility = EXCLUDED.compatibility, updated_at = now()`, reg.Type, string(mode)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_versions (event_type, version, schema, fingerprint) VALUES ($1, $2, $3, $4)`,
			reg.Type, latest+1, string(c.raw), c.fingerprint); err != nil {
			return err
		}
		if mig != nil {
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (event_type, from_version, operations) VALUES ($1, $2, $3)`,
				reg.Type, latest, string(mig.raw)); err != nil {
				return err
			}
		}
		return nil
	}, !dry)
	if err != nil {
		return Verdict{}, err
	}
	if !dry && !verdict.Unchanged {
		r.log.InfoContext(ctx, "schema registered", "eventType", reg.Type, "version", verdict.Version, "compatibility", verdict.Mode)
	} else if !dry && reg.Compatibility != "" {
		r.log.InfoContext(ctx, "schema unchanged; compatibility set", "eventType", reg.Type, "version", verdict.Version, "compatibility", verdict.Mode)
	}
	return verdict, nil
}

// RegisterMigration adds or replaces the declarative migration of an event
// type from version from to from+1 (which must exist: CodeInvalid with
// Rule VERSION_GAP otherwise). Stored events of version from and earlier
// are replayed through the new chain and must validate against version
// from+1 and the latest version, or the migration is refused
// (CodeIncompatible, Rule STORED_EVENTS_FAIL). A type name that is not
// valid (see Register) is CodeInvalid, naming field "type".
func (r *Registry) RegisterMigration(ctx context.Context, eventType string, from int, ops []Op) (Verdict, error) {
	if err := checkTypeName(eventType); err != nil {
		return Verdict{}, err
	}
	mig, err := compileOps(ops)
	if err != nil {
		return Verdict{}, err
	}
	var verdict Verdict
	err = r.inTypeTx(ctx, eventType, func(tx pgx.Tx, t *typeState) error {
		if t == nil {
			return notFound("event type %q has no schema", eventType)
		}
		if from < 1 || from+1 > t.latest() {
			return &Error{Code: CodeInvalid, Rule: RuleVersionGap, Details: map[string]any{"field": "fromVersion", "latestVersion": t.latest()},
				Message: fmt.Sprintf("%s has versions 1 to %d: a migration from version %d would lead to a version that does not exist (register the schema with its migration instead)", eventType, t.latest(), from)}
		}
		return r.checkAndStoreMigration(ctx, tx, t, from, mig, &verdict)
	}, true)
	return verdict, err
}

// checkAndStoreMigration replays the stored events of t through the chain
// with mig as the step from version from (see RegisterMigration), records
// the outcome in verdict, and stores mig unless an event fails.
func (r *Registry) checkAndStoreMigration(ctx context.Context, tx pgx.Tx, t *typeState, from int, mig *step, verdict *Verdict) error {
	*verdict = Verdict{Type: t.name, Version: from + 1, Mode: t.mode}
	o := &override{stepFrom: from, step: mig}
	targets := []int{from + 1}
	if t.latest() > from+1 {
		targets = append(targets, t.latest())
	}
	if err := r.replay(ctx, t.name, t, o, targets, 0, verdict); err != nil {
		return err
	}
	verdict.Compatible = verdict.FailedEvents == 0
	if !verdict.Compatible {
		return verdict.refusal()
	}
	_, err := tx.Exec(ctx, `INSERT INTO schema_migrations (event_type, from_version, operations) VALUES ($1, $2, $3)
		ON CONFLICT (event_type, from_version) DO UPDATE SET operations = EXCLUDED.operations, created_at = now()`, t.name, from, string(mig.raw))
	return err
}

// SetCompatibility sets an event type's compatibility mode, which later
// registrations are checked under. Errors: CodeInvalid for a type name
// that is not valid (naming field "type") or an unknown mode, CodeNotFound
// for a type without a schema.
func (r *Registry) SetCompatibility(ctx context.Context, eventType string, mode Mode) error {
	if err := checkTypeName(eventType); err != nil {
		return err
	}
	if _, err := ParseMode(string(mode)); err != nil {
		return invalid("%v", err)
	}
	return r.inTypeTx(ctx, eventType, func(tx pgx.Tx, t *typeState) error {
		if t == nil {
			return notFound("event type %q has no schema", eventType)
		}
		_, err := tx.Exec(ctx, `UPDATE schema_types SET compatibility = $2, updated_at = now() WHERE event_type = $1`, eventType, string(mode))
		return err
	}, true)
}

// Deprecate marks a schema version deprecated (or, with deprecated false,
// not any more). Events of a deprecated version are still read (and
// migrated), but new ones are refused on append. The latest version
// cannot be deprecated (CodeInvalid): nothing of the type could be
// appended any more; register a newer one first. A type name that is not
// valid is CodeInvalid too, naming field "type"; an unknown type or
// version is CodeNotFound.
func (r *Registry) Deprecate(ctx context.Context, eventType string, version int, deprecated bool) error {
	if err := checkTypeName(eventType); err != nil {
		return err
	}
	return r.inTypeTx(ctx, eventType, func(tx pgx.Tx, t *typeState) error {
		if t == nil {
			return notFound("event type %q has no schema", eventType)
		}
		if version < 1 || version > t.latest() {
			return notFound("%s has no schema version %d (the latest is %d)", eventType, version, t.latest())
		}
		if deprecated && version == t.latest() {
			return &Error{Code: CodeInvalid, Details: map[string]any{"field": "version", "latestVersion": t.latest()},
				Message: fmt.Sprintf("%s v%d is the latest version: deprecated, no %s event could be appended at all; register a new version first, then deprecate this one", eventType, version, eventType)}
		}
		_, err := tx.Exec(ctx, `UPDATE schema_versions SET deprecated = $3 WHERE event_type = $1 AND version = $2`, eventType, version, deprecated)
		return err
	}, true)
}

// errNothingWritten, returned by an inTypeTx function, says that it found
// nothing to change (a shipped schema registered already, say): the
// registry's revision is not raised and no process is told of a change
// (each start of a gateway seeds every shipped type, and a raised revision
// makes every append in flight on every gateway validate again).
var errNothingWritten = errors.New("nothing written")

// inTypeTx runs fn in a transaction that holds the type's lock (changes of
// one type are serialised across processes) with the type's state as the
// database has it (nil for a new type). When write is set and fn succeeds
// the registry revision is bumped, other processes are notified, and this
// one reloads. Changes in one process run one at a time: each holds a
// connection while it waits for the type's lock and, holding it, reads the
// stored events on another, so several at once could take every
// connection of the pool and wait for each other.
func (r *Registry) inTypeTx(ctx context.Context, eventType string, fn func(pgx.Tx, *typeState) error, write bool) error {
	if err := checkTypeName(eventType); err != nil {
		return err // no type of that name can be stored, and the database would refuse a NUL
	}
	r.changeMu.Lock()
	defer r.changeMu.Unlock()
	tx, err := r.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("schema registry: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock("+fmt.Sprintf(TypeLockKeySQL, "$1")+")", eventType); err != nil {
		return fmt.Errorf("schema registry: %w", err)
	}
	st, err := r.load(ctx, tx, eventType)
	if err != nil {
		return err
	}
	if err := fn(tx, st.types[eventType]); errors.Is(err, errNothingWritten) {
		// No revision raised: other processes are not told. This one
		// reloads, in case what it found is newer than what it holds.
		if !write {
			return nil
		}
		return r.reload(ctx)
	} else if err != nil {
		var regErr *Error
		if errors.As(err, &regErr) {
			return err
		}
		return fmt.Errorf("schema registry: %w", err)
	}
	if !write {
		return nil
	}
	if _, err := tx.Exec(ctx, `UPDATE schema_registry_revision SET revision = revision + 1`); err != nil {
		return fmt.Errorf("schema registry: %w", err)
	}
	if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, Channel, eventType); err != nil {
		return fmt.Errorf("schema registry: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("schema registry: %w", err)
	}
	return r.reload(ctx)
}

// replay reads the stored events of the type (all, or Options.ReplaySample
// per version) and checks that each reads as every version in targets
// (ascending) with the change o applied, recording the results in v.
// Events of a version above the targets are left to their own version's
// registration (reported with Checked 0), unless they are above shipped
// (when seeding: the latest version the release ships; 0 otherwise).
func (r *Registry) replay(ctx context.Context, eventType string, t *typeState, o *override, targets []int, shipped int, v *Verdict) error {
	if r.stored == nil {
		return nil
	}
	inUse, err := r.stored.VersionsInUse(ctx, eventType)
	if err != nil {
		return fmt.Errorf("replay %s: %w", eventType, err)
	}
	versions := make([]int, 0, len(inUse))
	for ver := range inUse {
		versions = append(versions, ver)
	}
	slices.Sort(versions)
	last := targets[len(targets)-1]
	for _, ver := range versions {
		rep := Replayed{Version: ver, Stored: inUse[ver]}
		if ver > last && (shipped == 0 || ver <= shipped) {
			// Newer than what is being checked: not affected. Such a
			// version has no schema yet: its events were stored while the
			// type had none (before version 1 became the only version a
			// type without a schema takes). They are checked (Checked 0
			// until then) when their version is registered, in turn; when
			// seeding, only up to the latest version the release ships,
			// and events of a later one fail below (this release could
			// never check them).
			v.Replayed = append(v.Replayed, rep)
			continue
		}
		var after int64
		for {
			limit := 1000
			if r.opts.ReplaySample > 0 {
				limit = min(limit, r.opts.ReplaySample-rep.Checked)
				if limit <= 0 {
					break
				}
			}
			events, err := r.stored.EventsOfType(ctx, eventType, ver, after, limit)
			if err != nil {
				return fmt.Errorf("replay %s v%d: %w", eventType, ver, err)
			}
			for _, e := range events {
				rep.Checked++
				after = e.Position
				if problems := r.replayOne(t, e, targets, o); problems != nil {
					v.FailedEvents++
					if len(v.Failures) < maxReplayFailures {
						v.Failures = append(v.Failures, ReplayFailure{EventID: e.ID, Position: e.Position, Version: ver, Problems: problems})
					}
				}
			}
			if len(events) < limit {
				break
			}
		}
		v.Replayed = append(v.Replayed, rep)
	}
	return nil
}

// replayOne migrates one stored event through each target version in turn
// and returns the first problems found.
func (r *Registry) replayOne(t *typeState, e StoredEvent, targets []int, o *override) []Problem {
	data, version := []byte(e.Data), e.Version
	if version > targets[len(targets)-1] {
		return []Problem{{Message: fmt.Sprintf("stored as version %d, which has no schema", version)}}
	}
	for _, target := range targets {
		if target < version {
			continue
		}
		if target == version {
			// Stored at the target: it was validated on append, but the
			// schema under evaluation may be new.
			s := o.schemaOf(t, target)
			if s == nil {
				return []Problem{{Message: fmt.Sprintf("stored as version %d, which has no schema", version)}}
			}
			problems, err := s.validate(data)
			if err != nil {
				return []Problem{{Message: err.Error()}}
			}
			if problems != nil {
				return problems
			}
			continue
		}
		out, problems, err := r.upcast(t, version, data, target, o)
		if err != nil {
			return []Problem{{Message: err.Error()}}
		}
		if problems != nil {
			for i := range problems {
				problems[i].Message = fmt.Sprintf("as v%d: %s", target, problems[i].Message)
			}
			return problems
		}
		data, version = out, target
	}
	return nil
}
