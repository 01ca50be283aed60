package schemaregistry

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"cqrsgate/internal/pglisten"
	"cqrsgate/internal/sqlmigrate"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// VersionTable records which of the registry's migrations ran.
const VersionTable = "schemaregistry_schema_version"

func migrations() fs.FS { return sqlmigrate.Dir(migrationFiles, "migrations") }

// Migrate creates or updates the registry's tables. Safe to run from
// several processes at once.
func Migrate(ctx context.Context, conn *pgx.Conn) error {
	return sqlmigrate.Run(ctx, conn, migrations(), VersionTable)
}

// MigrationsApplied reports whether every migration has been applied.
func MigrationsApplied(ctx context.Context, q sqlmigrate.Querier) (bool, error) {
	return sqlmigrate.Applied(ctx, q, migrations(), VersionTable)
}

// Run keeps this process's copy of the registry current: it listens for
// changes made through any process and reloads, and checks the registry's
// revision after Options.ListenCheckAfter without a notification (10
// seconds) in case one was missed. A listening connection that fails, or
// whose check does not answer within Options.ListenCheckTimeout (5 s: one
// that died without a word), is made again, after 1 s and then at growing
// intervals up to 30 s while it cannot be, from 1 s again once it listens.
// It returns when ctx ends.
func (r *Registry) Run(ctx context.Context) error {
	const firstBackoff = time.Second
	backoff := firstBackoff
	for {
		listened, err := r.listen(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if listened {
			// A connection lost, not one that could not be had: each loss
			// over the process's life is retried as promptly as the first.
			backoff = firstBackoff
		}
		r.log.WarnContext(ctx, "schema registry: listening for changes failed; retrying", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// errNoAnswer is the error of a listening connection that did not answer
// its check.
var errNoAnswer = errors.New("the schema registry's listening connection did not answer")

// listen connects, listens and reloads on each change until the
// connection fails; listened reports whether it got as far as listening.
func (r *Registry) listen(ctx context.Context) (listened bool, err error) {
	checkAfter, checkTimeout := r.opts.ListenCheckAfter, r.opts.ListenCheckTimeout
	conn, closeConn, err := pglisten.Open(ctx, r.pool.Config().ConnConfig.Copy(), Channel, checkTimeout)
	if err != nil {
		return false, err
	}
	defer closeConn()
	if err := r.reload(ctx); err != nil { // catch up on what happened while not listening
		return false, err
	}
	for {
		wctx, cancel := context.WithTimeout(ctx, checkAfter)
		_, err := conn.WaitForNotification(wctx)
		cancel()
		if ctx.Err() != nil {
			return true, nil
		}
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return true, err
		}
		if err != nil { // a quiet period: has the revision moved anyway?
			var rev int64
			checkCtx, cancel := context.WithTimeout(ctx, checkTimeout)
			err := conn.QueryRow(checkCtx, `SELECT revision FROM schema_registry_revision`).Scan(&rev)
			unanswered := checkCtx.Err() != nil
			cancel()
			if ctx.Err() != nil {
				return true, nil
			}
			if err != nil && unanswered {
				return true, fmt.Errorf("%w within %v after %v without a notification: %w", errNoAnswer, checkTimeout, checkAfter, err)
			}
			if err != nil {
				return true, fmt.Errorf("checking the registry's revision: %w", err)
			}
			if rev == r.state.Load().revision {
				continue
			}
		}
		if err := r.reload(ctx); err != nil {
			return true, err
		}
	}
}

var seedName = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9_.-]*)\.v([1-9][0-9]*)(\.migration)?\.json$`)

// Seed registers the schemas shipped with the code: files named
// <Type>.v<N>.json (the schema of version N) and, optionally,
// <Type>.v<N>.migration.json (the operations that turn version N-1 into
// N). A version already registered must be identical to its file (a
// shipped schema never changes: ship a new version instead); a missing one
// is registered like any other, checked against the stored events. So
// must a shipped migration be identical to the one registered for its
// step; when none is registered (the version was registered without it),
// it is registered as RegisterMigration does, checked against the stored
// events. Errors name the file.
func (r *Registry) Seed(ctx context.Context, files fs.FS) error {
	type seedVersion struct {
		schema    []byte
		migration []Op
	}
	types := map[string]map[int]*seedVersion{}
	entries, err := fs.ReadDir(files, ".")
	if err != nil {
		return fmt.Errorf("schema seeds: %w", err)
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		m := seedName.FindStringSubmatch(e.Name())
		if m == nil {
			return fmt.Errorf("schema seed %s: the name must be <Type>.v<N>.json or <Type>.v<N>.migration.json", e.Name())
		}
		n, _ := strconv.Atoi(m[2])
		if types[m[1]] == nil {
			types[m[1]] = map[int]*seedVersion{}
		}
		sv := types[m[1]][n]
		if sv == nil {
			sv = &seedVersion{}
			types[m[1]][n] = sv
		}
		b, err := fs.ReadFile(files, e.Name())
		if err != nil {
			return fmt.Errorf("schema seed %s: %w", e.Name(), err)
		}
		if m[3] != "" {
			if sv.migration, err = ParseOps(b); err != nil {
				return fmt.Errorf("schema seed %s: %w", e.Name(), err)
			}
		} else {
			sv.schema = b
		}
	}
	names := make([]string, 0, len(types))
	for name := range types {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		versions := types[name]
		for n := 1; n <= len(versions); n++ {
			sv := versions[n]
			if sv == nil || sv.schema == nil {
				return fmt.Errorf("schema seed %s.v%d.json is missing (versions must run 1, 2, 3... with no gap)", name, n)
			}
			if sv.migration != nil && n == 1 {
				return fmt.Errorf("schema seed %s.v1.migration.json: version 1 has nothing to migrate from", name)
			}
			c, err := compileSchema(sv.schema)
			if err != nil {
				return fmt.Errorf("schema seed %s.v%d.json: %w", name, n, err)
			}
			t, err := r.lookup(ctx, name, n)
			if err != nil {
				return err
			}
			if t != nil && n <= t.latest() && t.versions[n-1].schema.fingerprint == c.fingerprint {
				// Registered: the usual start. Its shipped migration too?
				if sv.migration != nil && !sameMigration(t.steps[n-1], sv.migration) {
					if err := r.seedMigration(ctx, name, n, sv.migration); err != nil {
						return fmt.Errorf("schema seed %s.v%d.migration.json: %w", name, n, err)
					}
				}
				continue
			}
			// Checked again, and registered, under the type's lock: other
			// processes may be seeding the same files at the same time.
			if _, err := r.register(ctx, Registration{Type: name, Schema: sv.schema, Migration: sv.migration, seedVersion: n, seedLatest: len(versions)}, false); err != nil {
				return fmt.Errorf("schema seed %s.v%d.json: %w", name, n, err)
			}
		}
	}
	return nil
}

// sameMigration reports whether s (nil: none) is the migration ops.
func sameMigration(s *step, ops []Op) bool {
	if s == nil {
		return false
	}
	shipped, err := compileOps(ops)
	return err == nil && bytes.Equal(s.raw, shipped.raw)
}

// seedMigration registers the shipped migration ops of version n (from
// n-1), which is registered without one; under the type's lock, where it
// is checked again: another process may have registered it meanwhile. A
// different migration registered for the step stays, with a warning in
// the log: migrations may be replaced (registerEventMigration), and an
// administrator's replacement outlives the release that shipped the first.
func (r *Registry) seedMigration(ctx context.Context, eventType string, n int, ops []Op) error {
	mig, err := compileOps(ops)
	if err != nil {
		return err
	}
	return r.inTypeTx(ctx, eventType, func(tx pgx.Tx, t *typeState) error {
		if t == nil || n > t.latest() {
			return fmt.Errorf("%s v%d is not registered", eventType, n)
		}
		if s := t.steps[n-1]; s != nil {
			if !bytes.Equal(s.raw, mig.raw) { // else registered by another process meanwhile
				r.log.WarnContext(ctx, "schema registry: the shipped migration differs from the one registered, which stays (replaced with registerEventMigration?); ship the registered one to silence this",
					"eventType", eventType, "fromVersion", n-1, "registered", string(s.raw), "shipped", string(mig.raw))
			}
			return errNothingWritten
		}
		return r.checkAndStoreMigration(ctx, tx, t, n-1, mig, &Verdict{})
	}, true)
}

// TypeInfo describes an event type.
type TypeInfo struct {
	Type          string
	Compatibility Mode
	// Latest is the latest version.
	Latest    int
	CreatedAt time.Time
	UpdatedAt time.Time
}

// VersionInfo describes one schema version.
type VersionInfo struct {
	Type        string
	Version     int
	Schema      json.RawMessage
	Fingerprint string
	Deprecated  bool
	CreatedAt   time.Time
	// Migration is the declarative migration from the previous version
	// (nil: none); GoUpcaster is true when a Go upcaster performs that step.
	Migration  []Op
	GoUpcaster bool
}

// Types lists the registered event types by name.
func (r *Registry) Types() []TypeInfo {
	var out []TypeInfo
	for _, t := range r.state.Load().sortedTypes() {
		out = append(out, TypeInfo{Type: t.name, Compatibility: t.mode, Latest: t.latest(), CreatedAt: t.createdAt, UpdatedAt: t.updatedAt})
	}
	return out
}

// Schema returns one version of a type's schema (version 0: the latest).
// Errors: *Error with CodeNotFound.
func (r *Registry) Schema(ctx context.Context, eventType string, version int) (VersionInfo, error) {
	t, err := r.lookup(ctx, eventType, version)
	if err != nil {
		return VersionInfo{}, err
	}
	if t == nil {
		return VersionInfo{}, notFound("event type %q has no schema", eventType)
	}
	if version == 0 {
		version = t.latest()
	}
	if version < 1 || version > t.latest() {
		return VersionInfo{}, notFound("%s has no schema version %d (the latest is %d)", eventType, version, t.latest())
	}
	return r.versionInfo(t, version), nil
}

// History returns every version of a type's schema, oldest first.
// Errors: *Error with CodeNotFound.
func (r *Registry) History(ctx context.Context, eventType string) ([]VersionInfo, error) {
	t, err := r.lookup(ctx, eventType, 0)
	if err != nil {
		return nil, err
	}
	if t == nil {
		return nil, notFound("event type %q has no schema", eventType)
	}
	out := make([]VersionInfo, t.latest())
	for i := range out {
		out[i] = r.versionInfo(t, i+1)
	}
	return out, nil
}

func (r *Registry) versionInfo(t *typeState, version int) VersionInfo {
	v := t.versions[version-1]
	info := VersionInfo{Type: t.name, Version: version, Schema: v.schema.raw, Fingerprint: v.schema.fingerprint, Deprecated: v.deprecated, CreatedAt: v.createdAt}
	if version > 1 {
		if s := t.steps[version-1]; s != nil {
			info.Migration = s.ops
		}
		_, info.GoUpcaster = r.opts.Upcasters[UpcasterKey{Type: t.name, From: version - 1}]
	}
	return info
}

// Compatibility returns a type's mode (the default for a type without schema).
func (r *Registry) Compatibility(eventType string) Mode {
	if t := r.state.Load().types[eventType]; t != nil {
		return t.mode
	}
	return r.opts.DefaultCompatibility
}
