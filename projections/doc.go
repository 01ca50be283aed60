// Package projections folds the global event log into read models in
// PostgreSQL, which GraphQL queries read.
//
// A Projection names itself and a version, creates its tables, and applies
// batches of events. The Runner drives every projection: it follows the log
// with the event store's gap-safe read, wakes on commit notifications, and
// writes each batch's read-model changes and the projection's new checkpoint
// in one transaction, so a crash never applies an event twice or skips one.
//
// A projection that keeps up applies batches of up to Options.BatchSize
// events. One that is behind (a rebuild, a restart after a while) catches
// up in batches of up to Options.CatchUpBatchSize, reading the next batch
// while it applies the current one; where its events are dense it reads the
// whole log in small pages and keeps its own (see catchup.go for why). The
// accounts and orders read models write the rows of accounts and orders
// created in a batch with COPY, and decode the frequent payloads with a
// small scanner that leaves anything unusual to the domain's decoder.
//
// Each projection version keeps its tables in a schema of its own,
// rm_<name>_v<version>; queries read views in schema readmodel that point
// at the serving version. A new version builds into fresh tables while the
// old one keeps serving; once it has caught up, the views are switched in
// one transaction and the old schema is dropped. An older version never
// takes queries back from a newer one that a process runs (during a rolling
// deploy it retires); once no process has run the newer version for
// Options.RollbackGrace (a rollback), the older one is built anew and
// serves again. Rebuild builds a new generation of the serving version the
// same way, one at a time (it replaces one that FAILED); CancelRebuild
// abandons it and drops its tables. What changes a projection's
// generations (a rebuild asked for or cancelled, a generation set up, a
// switch to serving) takes one transaction-scoped advisory lock per
// projection name, so that a cancel and a switch never interleave.
//
// With several gateway processes on one database, each projection runs in
// exactly one of them at a time: the one holding its session-level advisory
// lock. When that process dies, its session ends, the lock is released and
// another process takes over. The checkpoint is advanced only from the
// value the batch was read at, so even two processes that both believe they
// lead cannot apply a batch twice: the second commit finds the checkpoint
// moved and rolls back.
//
// A projection that fails on an event retries with backoff; after
// MaxFailures it stops in the FAILED state naming the event, the error and
// the position, until an admin retries it or skips the event (Retry and
// Skip act on every FAILED generation of the name and return them), or,
// for a rebuild, cancels or replaces it. Other projections keep running.
package projections
