package schemaregistry_test

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"cqrsgate/schemaregistry"
)

// TestChangesRefuseTypeNamesNoTypeHas: Deprecate, SetCompatibility and
// RegisterMigration sent a type name with a NUL or bytes that are not
// UTF-8 to PostgreSQL, which refused it (INTERNAL at the edge). They
// refuse it as Register does (VALIDATION on field "type"), and nothing
// changes.
func TestChangesRefuseTypeNamesNoTypeHas(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, schemaregistry.Options{})
	e.mustRegister("Type", placedV1, "")
	e.mustRegister("Type", placedV2, placedV1toV2)
	revision := func() int64 {
		var r int64
		if err := e.pool.QueryRow(ctx, `SELECT revision FROM schema_registry_revision`).Scan(&r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	before, types := revision(), e.reg.Types()
	ops := []schemaregistry.Op{{Op: "default", Path: "/tax", Value: json.RawMessage(`0`)}}
	for _, name := range []string{"Type\x00", "\xff", "Type\xff"} {
		for what, err := range map[string]error{
			"Deprecate":        e.reg.Deprecate(ctx, name, 1, true),
			"SetCompatibility": e.reg.SetCompatibility(ctx, name, schemaregistry.Full),
			"RegisterMigration": func() error {
				_, err := e.reg.RegisterMigration(ctx, name, 1, ops)
				return err
			}(),
		} {
			var re *schemaregistry.Error
			if !errors.As(err, &re) || re.Code != schemaregistry.CodeInvalid || re.Details["field"] != "type" {
				t.Errorf("%s(%q): %v (code %q), want VALIDATION on field type", what, name, err, code(err))
			}
		}
	}
	if after := revision(); after != before {
		t.Errorf("refused changes moved the revision from %d to %d", before, after)
	}
	if after := e.reg.Types(); !reflect.DeepEqual(after, types) {
		t.Errorf("types changed:\n%+v\nwant\n%+v", after, types)
	}
}
