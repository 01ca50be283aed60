// Package eventstore is cqrsgate's append-only event log: streams of events
// with 1-based versions, one global order of positions, optimistic
// concurrency, idempotent appends, snapshots and commit wake-ups.
//
// Two implementations pass the conformance suite in eventstoretest:
// Postgres, the production store (pgx/v5), and Memory, for fast unit tests.
//
// # Tables
//
// Migrate creates the tables with embedded, versioned SQL migrations
// (jackc/tern, version table eventstore_schema_version): events (position,
// tx_id, event_id, stream_id, stream_version, event_type, schema_version,
// data, metadata, recorded_at) and snapshots (the latest per stream).
//
// # Appending
//
// An append runs in one transaction, in one round trip (the statements are
// pipelined):
//
//  1. BEGIN; take a transaction-level advisory lock keyed by the stream id
//     (serialising writers of that stream, and only them).
//  2. Take the allocation lock (a session-level advisory lock); assign the
//     transaction its id and reserve as many positions as there are
//     events (one nextval and one setval of the position sequence);
//     release the allocation lock.
//  3. INSERT all events in one statement, which reads the stream's version
//     (in a snapshot taken after the stream lock), checks the expected
//     version against it, and places the events at the reserved
//     positions with their versions; COMMIT; then NOTIFY.
//
// Of two concurrent appends at the same expected version exactly one wins,
// and the loser gets ErrWrongExpectedVersion; the unique (stream_id,
// stream_version) index backs this up. An append that brings its own event
// ids takes one more round trip first, after the stream lock: the look-up
// of those ids (idempotency) and of the stream's version.
//
// Concurrent appends in one process are grouped (group commit): appends
// that queue while a batch is being written go into the next batch, which
// takes the same round trips for all of them: it locks every stream of the
// batch (in key order), checks each append's expected version (and event
// ids) on its own, and inserts the events of those that pass in one INSERT
// and one commit. An append's outcome (success, ErrWrongExpectedVersion, an
// idempotent duplicate) is its own; a batch never holds two appends to one
// stream, nor more than 32 MiB of data and metadata (a larger append goes
// alone), and a batch that fails as a whole before committing is retried
// one append at a time, each with a timeout of its own. Grouping needs no
// timer: a lone append is written at once, and up to four batches are in
// flight together. An append whose context ends while it waits for a batch
// is taken out of the queue and never written (the context's error); one
// whose batch is being written is answered as of unknown outcome
// (UNAVAILABLE).
//
// # Gap safety
//
// Positions come from a sequence, and sequences are not transactional: a
// transaction can take position 10, stay open, and commit after another
// transaction took 11 and committed. A reader that saw 11 and then asked for
// "after 11" would skip 10 for ever. The store rules this out as follows.
//
// An append's transaction is assigned its id (recorded in tx_id as
// pg_current_xact_id()) and reserves its positions while it holds the
// allocation lock, before its first write, so across appends tx_id order
// equals position order, whenever each one's INSERT then runs. (Step 2
// asserts that no transaction id was assigned before the lock.) ReadAll
// returns only events whose tx_id is below
// pg_snapshot_xmin(pg_current_snapshot()), the oldest transaction still
// running on the server: every transaction below it has ended, and every
// transaction still running or yet to start has a higher tx_id and
// therefore only higher positions. So when ReadAll returns
// position P, no event below P can commit later, and continuing "after P"
// skips nothing, with any number of writers in any number of processes.
//
// The cost:
//   - Appends serialise on the allocation lock only while they reserve
//     their positions (two statements, pipelined: no round trip to the
//     gateway while it is held), not for their INSERT or their commit:
//     inserts run side by side, and commits, and so WAL flushes, overlap
//     and PostgreSQL groups them.
//   - Readers of the global log lag behind by the longest transaction with
//     an assigned id running anywhere on the server (xmin is cluster-wide):
//     a write transaction held open for a second holds every follower back
//     for that second. Keep write transactions short. Reads of a single
//     stream are not affected. Postgres.ReaderLag measures how far the
//     readers are held back and names the transaction that holds them; a
//     LagWatch logs it.
//   - Rolled-back appends leave holes in the positions, and so does an
//     append of a batch refused for its expected version (the end of the
//     batch's reservation goes unused): readers must not expect positions
//     to be dense.
//   - Anything that appends in a transaction of its own must take the
//     allocation lock before that transaction's first write and allocate
//     its positions (the INSERT's default, or a reservation) before
//     releasing it.
//
// # Idempotency
//
// An event id identifies an event for ever. Re-appending ids that are stored
// in the same stream, in the same order and with the same type, schema
// version and data (compared as jsonb; metadata may differ) returns the
// original positions and writes nothing, whatever the expected version. Any
// other reuse of a stored id fails with ErrDuplicateEventID.
//
// # Wake-ups
//
// After each commit the store wakes its own Broadcaster and sends
// NOTIFY cqrsgate_events with the new last position and the Broadcaster's
// origin (see NotifyChannel).
// The NOTIFY runs after the COMMIT, in its own tiny transaction, because
// PostgreSQL holds a database-wide lock from a notifying transaction's
// pre-commit to its end, which would otherwise serialise every append's WAL
// flush. A Listener in each process turns these notifications into
// Broadcaster wake-ups (except its own process's commits, whose followers
// were woken already), so followers never busy-poll; Follow still re-reads
// on a slow timer in case a notification is lost (a process that crashes
// between COMMIT and NOTIFY). A Listener whose connection has been quiet
// for CheckAfter checks it with a round trip, so that a connection that
// died without the network saying so is made again within seconds rather
// than when TCP keepalive gives up on it.
package eventstore
