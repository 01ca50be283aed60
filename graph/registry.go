package graph

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"reflect"
	"strings"

	"cqrsgate/domain"
	"cqrsgate/eventstore"
	"cqrsgate/graph/model"
	"cqrsgate/internal/jsonvalue"
	"cqrsgate/schemaregistry"
)

// registry returns the schema registry, or UNAVAILABLE in a handler
// built without one.
func (r *Resolver) registry() (*schemaregistry.Registry, error) {
	if r.Schemas == nil {
		return nil, &domain.Error{Code: domain.Unavailable, Message: "this gateway has no schema registry"}
	}
	return r.Schemas, nil
}

// eventData returns an event's data as version asVersion (nil: the latest)
// and the version it is at.
func (r *Resolver) eventData(ctx context.Context, e *model.Event, asVersion *int) (json.RawMessage, int, error) {
	if r.Schemas == nil {
		if asVersion != nil && *asVersion != e.StoredSchemaVersion {
			return nil, 0, domain.InvalidField("asVersion", "this gateway has no schema registry to migrate events with")
		}
		return json.RawMessage(e.StoredData), e.StoredSchemaVersion, nil
	}
	target := 0
	if asVersion != nil {
		if *asVersion < 1 {
			return nil, 0, domain.InvalidField("asVersion", "asVersion must be 1 or more, got %d", *asVersion)
		}
		target = *asVersion
	}
	data, v, err := r.Schemas.Upcast(ctx, e.Type, e.StoredSchemaVersion, json.RawMessage(e.StoredData), target)
	if err != nil {
		var regErr *schemaregistry.Error
		if errors.As(err, &regErr) {
			return nil, 0, err
		}
		// A migration failed or its result does not match the target
		// schema: say which event and why (the failing operation, or the
		// paths that do not match), without internals.
		return nil, 0, &domain.Error{Code: domain.Internal, Err: err,
			Message: fmt.Sprintf("event %s (%s v%d) could not be migrated: %s", e.ID, e.Type, e.StoredSchemaVersion, migrationCause(err))}
	}
	return data, v, nil
}

// migrationCause is what an error of Registry.Upcast says after "event
// migration failed: " (its text is that sentinel's, then the cause).
func migrationCause(err error) string {
	return strings.TrimPrefix(err.Error(), schemaregistry.ErrMigration.Error()+": ")
}

// schemaVersion is the version of an event's data as returned by default.
func (r *Resolver) schemaVersion(e *model.Event) int {
	if r.Schemas == nil {
		return e.StoredSchemaVersion
	}
	if latest := r.Schemas.Latest(e.Type); latest > e.StoredSchemaVersion {
		return latest
	}
	return e.StoredSchemaVersion
}

func toOps(in []*model.MigrationOperationInput) ([]schemaregistry.Op, error) {
	if in == nil {
		return nil, nil
	}
	names := map[model.MigrationOp]string{
		model.MigrationOpRename: "rename", model.MigrationOpMove: "move", model.MigrationOpCopy: "copy", model.MigrationOpRemove: "remove",
		model.MigrationOpDefault: "default", model.MigrationOpSet: "set", model.MigrationOpMapValues: "mapValues", model.MigrationOpCompute: "compute",
	}
	ops := make([]schemaregistry.Op, len(in))
	for i, o := range in {
		op := schemaregistry.Op{Op: names[o.Op]}
		if v, set := o.Value.ValueOK(); set {
			op.Value = json.RawMessage(v)
			if v == nil { // an explicit null: the value JSON null
				op.Value = json.RawMessage("null")
			}
		}
		if o.Path != nil {
			op.Path = *o.Path
		}
		if o.From != nil {
			op.From = *o.From
		}
		if o.Expr != nil {
			op.Expr = *o.Expr
		}
		if o.Map != nil {
			if err := json.Unmarshal(o.Map, &op.Map); err != nil {
				return nil, domain.InvalidField(fmt.Sprintf("operations.%d.map", i), "map must be a JSON object (old value to new value)")
			}
		}
		ops[i] = op
	}
	return ops, nil
}

func toSchemaInfo(v schemaregistry.VersionInfo) *model.EventSchema {
	s := &model.EventSchema{
		Type: v.Type, Version: v.Version, Schema: model.JSON(v.Schema), Fingerprint: v.Fingerprint,
		Deprecated: v.Deprecated, CreatedAt: v.CreatedAt, GoUpcaster: v.GoUpcaster,
	}
	if v.Migration != nil {
		raw, _ := json.Marshal(v.Migration)
		s.Migration = model.JSON(raw)
	}
	return s
}

func toVerdict(v schemaregistry.Verdict) *model.SchemaVerdict {
	out := &model.SchemaVerdict{
		Type: v.Type, Version: v.Version, Compatible: v.Compatible, Compatibility: model.Compatibility(v.Mode), Unchanged: v.Unchanged,
		FailedEvents:      v.FailedEvents,
		Incompatibilities: []*model.SchemaIncompatibility{}, Replayed: []*model.ReplayedVersion{}, Failures: []*model.ReplayFailure{},
	}
	for _, in := range v.Incompatibilities {
		out.Incompatibilities = append(out.Incompatibilities, &model.SchemaIncompatibility{Version: in.Version, Direction: in.Direction, Path: in.Path, Reason: in.Reason})
	}
	for _, rp := range v.Replayed {
		out.Replayed = append(out.Replayed, &model.ReplayedVersion{Version: rp.Version, Stored: model.Long(rp.Stored), Checked: rp.Checked})
	}
	for _, f := range v.Failures {
		rf := &model.ReplayFailure{EventID: f.EventID, Position: model.Position(f.Position), Version: f.Version, Problems: []*model.SchemaProblem{}}
		for _, p := range f.Problems {
			rf.Problems = append(rf.Problems, &model.SchemaProblem{Path: p.Path, Message: p.Message})
		}
		out.Failures = append(out.Failures, rf)
	}
	return out
}

func (r *Resolver) eventType(ctx context.Context, reg *schemaregistry.Registry, name string) (*model.EventType, error) {
	for _, t := range reg.Types() {
		if t.Type != name {
			continue
		}
		history, err := reg.History(ctx, name)
		if err != nil {
			return nil, err
		}
		et := &model.EventType{Name: t.Type, Compatibility: model.Compatibility(t.Compatibility), LatestVersion: t.Latest,
			CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt, Versions: make([]*model.EventSchema, len(history))}
		for i, v := range history {
			et.Versions[i] = toSchemaInfo(v)
		}
		return et, nil
	}
	return nil, domain.Errorf(domain.NotFound, "event type %q has no schema", name)
}

// reads returns the store to read events from as stored (the Event
// resolvers migrate their data to the version asked for).
func (r *Resolver) reads() eventstore.Store {
	if s, ok := r.Store.(interface{ Raw() eventstore.Store }); ok {
		return s.Raw()
	}
	return r.Store
}

// registerSchema registers (or, with dry, checks) a schema version.
func (r *Resolver) registerSchema(ctx context.Context, typ string, schema model.JSON, compatibility *model.Compatibility, migration []*model.MigrationOperationInput, dry bool) (*model.SchemaVerdict, error) {
	reg, err := r.registry()
	if err != nil {
		return nil, err
	}
	ops, err := toOps(migration)
	if err != nil {
		return nil, err
	}
	latest := reg.Latest(typ)
	text, version, err := shippedSchema(typ, latest, schema)
	if err != nil {
		return nil, err
	}
	switch {
	case version == 0: // not one of the domain's types
	case version > latest: // the domain's next version: its shipped migration
		if ops, err = shippedMigration(typ, version, ops, false); err != nil {
			return nil, err
		}
	case ops != nil: // its latest again, which would take another migration
		return nil, domainEventType(typ, version, "migrations", fmt.Sprintf("version %d is registered, with the migration the code ships", version))
	}
	in := schemaregistry.Registration{Type: typ, Schema: text, Migration: ops}
	if compatibility != nil {
		in.Compatibility = schemaregistry.Mode(*compatibility)
	}
	if dry {
		v, err := reg.Check(ctx, in)
		if err != nil {
			return nil, err
		}
		return toVerdict(v), nil
	}
	v, err := reg.Register(ctx, in)
	if err != nil {
		return nil, err
	}
	out := toVerdict(v)
	info, err := reg.Schema(ctx, typ, v.Version)
	if err != nil {
		return nil, err
	}
	out.Schema = toSchemaInfo(info)
	return out, nil
}

// shippedSchema returns the text of schema to register for typ, whose
// latest version is latest. One of the domain's own event types
// (domain.OwnedEventType) takes only the schema its code ships: that of the
// next version (registered ahead of the deploy that brings it), or that of
// the latest (registered again: unchanged), and the shipped file's text is
// what is registered, so that start-up finds it as it ships it. Any other
// schema is refused: the domain decodes its events strictly into Go
// structs, so a version the code does not know (a field it has no place
// for) would stop its read models and, after a restart, every command on an
// aggregate holding such an event. Other types' schemas are returned as
// they are.
func shippedSchema(typ string, latest int, schema model.JSON) (json.RawMessage, int, error) {
	if !domain.OwnedEventType(typ) {
		return json.RawMessage(schema), 0, nil
	}
	got, err := jsonvalue.DecodeAll(schema)
	if err != nil {
		return nil, 0, domain.InvalidField("schema", "the schema is not JSON: %v", err)
	}
	why := fmt.Sprintf("this gateway ships no version %d", latest+1)
	for _, version := range []int{latest + 1, latest} {
		shipped, err := fs.ReadFile(domain.EventSchemas(), fmt.Sprintf("%s.v%d.json", typ, version))
		if err != nil {
			continue
		}
		if want, err := jsonvalue.DecodeAll(shipped); err == nil && reflect.DeepEqual(want, got) {
			return shipped, version, nil
		}
		if version == latest+1 {
			why = fmt.Sprintf("the schema differs from the version %d it ships", version)
		}
	}
	return nil, 0, domainEventType(typ, latest+1, "versions", why)
}

// domainEventType refuses a change to one of the domain's own event types
// that its code does not ship.
func domainEventType(typ string, version int, what, why string) error {
	return &domain.Error{Code: domain.RuleViolation, Rule: "DOMAIN_EVENT_TYPE", Field: "type",
		Message: fmt.Sprintf("%s is an event of the domain's aggregates, whose %s ship with the gateway's code (domain/schemas/): %s", typ, what, why),
		Details: map[string]any{"eventType": typ, "schemaVersion": version}}
}

// shippedMigration returns the migration to register into version of typ,
// one of the domain's own event types: the one its code ships
// (<Type>.v<N>.migration.json), none when it ships none. ops, the
// migration asked for, must be that one (or, unless required, absent):
// the domain decodes its events strictly into Go structs, so a migration
// whose results fit the schema but not the code (a 1.0 where the code
// reads an integer) failed every read of an aggregate holding an event it
// migrated, as INTERNAL. required is for a migration registered on its
// own, which must ship.
func shippedMigration(typ string, version int, ops []schemaregistry.Op, required bool) ([]schemaregistry.Op, error) {
	raw, err := fs.ReadFile(domain.EventSchemas(), fmt.Sprintf("%s.v%d.migration.json", typ, version))
	if err != nil {
		if ops != nil || required {
			return nil, domainEventType(typ, version, "migrations", fmt.Sprintf("this gateway ships no migration to version %d", version))
		}
		return nil, nil
	}
	var shipped []schemaregistry.Op
	if err := json.Unmarshal(raw, &shipped); err != nil {
		return nil, fmt.Errorf("the shipped migration of %s to version %d: %w", typ, version, err)
	}
	if ops != nil {
		given, _ := json.Marshal(ops)
		want, _ := json.Marshal(shipped)
		g, gerr := jsonvalue.DecodeAll(given)
		w, werr := jsonvalue.DecodeAll(want)
		if gerr != nil || werr != nil || !reflect.DeepEqual(g, w) {
			return nil, domainEventType(typ, version, "migrations", fmt.Sprintf("the migration differs from the one it ships to version %d", version))
		}
	}
	return shipped, nil
}
