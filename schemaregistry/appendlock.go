package schemaregistry

import "context"

// Appends and registry changes are kept apart so that no event escapes the
// checks of both: an append validated against one revision of the registry
// and written after a change to its type committed (or while the change's
// replay of the stored events ran) would be stored without matching what
// the change checked, and every read of it would fail. The event store
// therefore, inside each append's transaction and before its INSERT,
//
//   - takes the event types' locks shared (TypeLockKeySQL; a change holds
//     its type's exclusively from before its replay until it commits), so
//     that a change either sees the append among the stored events it
//     replays or commits before the append's INSERT; and
//   - compares Revision, as it was when the append was validated, with the
//     database's (RevisionSQL) in the INSERT's own snapshot, and writes
//     nothing when they differ: the append is validated again after
//     Refresh.

// TypeLockKeySQL is the SQL expression of an event type's advisory lock key,
// with %s standing for the type's name.
const TypeLockKeySQL = "hashtextextended('cqrsgate_schema:' || %s, 0)"

// RevisionSQL reads the registry's revision, which every change to it
// raises.
const RevisionSQL = "SELECT revision FROM schema_registry_revision"

// Revision is the revision of the registry as this process holds it: what
// Validate checks against (or newer, when a lookup reloads it).
func (r *Registry) Revision() int64 { return r.state.Load().revision }

// Refresh reloads the registry from the database now, rather than when the
// notification of a change arrives.
func (r *Registry) Refresh(ctx context.Context) error { return r.reload(ctx) }
