package projections

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"cqrsgate/domain"
	"cqrsgate/eventstore"
	"cqrsgate/internal/outage"
)

// Options tune the Runner. Zero values mean the defaults.
type Options struct {
	// BatchSize is the most events applied in one transaction while a
	// projection keeps up with the log (default 2000).
	BatchSize int
	// CatchUpBatchSize is the most events applied in one transaction while
	// a projection is behind by more than a batch: a rebuild, or a restart
	// after a while. It is at least BatchSize and at most
	// eventstore.MaxLimit (default: eventstore.MaxLimit when BatchSize is
	// not set either, else BatchSize).
	CatchUpBatchSize int
	// MaxFailures is how often an event is retried before the projection
	// stops in the FAILED state (default 5).
	MaxFailures int
	// RetryBackoff is the first wait after a failure; it doubles up to 10s
	// (default 200ms).
	RetryBackoff time.Duration
	// Poll is how often a caught-up projection re-reads the log even without
	// a wake-up, a safety net for lost notifications (default 2s).
	Poll time.Duration
	// LeaderRetry is how often a process that does not run a projection
	// checks whether it can take over (default 2s).
	LeaderRetry time.Duration
	// LeaderCheckTimeout is how long the leader connection, which holds a
	// projection's lock, may take to take it and to answer the pings it
	// gets while it leads (several a second) before it is taken for lost:
	// the projection stops here, and runs again once its lock is free
	// (default DefaultLeaderCheckTimeout).
	LeaderCheckTimeout time.Duration
	// RollbackGrace is how long no process must have run a projection's
	// newer version before an older version takes queries back (a deploy
	// rolled back; default 30s): a newer version's process that restarts,
	// or loses its connection for a moment, leaves it unled for less.
	RollbackGrace time.Duration
	// Trace, when set, is called before a batch is applied and returns the
	// context to apply it in and the function to call with the outcome
	// (tracing).
	Trace func(ctx context.Context, projection string, events []domain.RecordedEvent) (context.Context, func(error))
}

func (o Options) withDefaults() Options {
	if o.CatchUpBatchSize <= 0 {
		o.CatchUpBatchSize = o.BatchSize
		if o.BatchSize <= 0 {
			o.CatchUpBatchSize = eventstore.MaxLimit
		}
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 2000
	}
	o.BatchSize = min(o.BatchSize, eventstore.MaxLimit)
	o.CatchUpBatchSize = min(max(o.CatchUpBatchSize, o.BatchSize), eventstore.MaxLimit)
	if o.MaxFailures <= 0 {
		o.MaxFailures = 5
	}
	if o.RetryBackoff <= 0 {
		o.RetryBackoff = 200 * time.Millisecond
	}
	if o.Poll <= 0 {
		o.Poll = 2 * time.Second
	}
	if o.LeaderRetry <= 0 {
		o.LeaderRetry = 2 * time.Second
	}
	if o.RollbackGrace <= 0 {
		o.RollbackGrace = 30 * time.Second
	}
	if o.LeaderCheckTimeout <= 0 {
		o.LeaderCheckTimeout = DefaultLeaderCheckTimeout
	}
	return o
}

// DefaultLeaderCheckTimeout is Options.LeaderCheckTimeout by default. A
// leader connection that dies without the network saying so (a NAT or
// firewall dropping its state, a failover address moving) hung its
// projection on its next ping until TCP gave up on it.
const DefaultLeaderCheckTimeout = 5 * time.Second

// Runner runs projections: each in its own goroutine, each in one process
// at a time across all processes sharing the database.
type Runner struct {
	pool        *pgxpool.Pool
	store       eventstore.Store
	log         *slog.Logger
	opts        Options
	projections []Projection
	progress    *eventstore.Broadcaster

	// passed holds, by projection name, the position up to which the
	// serving generation led here reflects the log, its checkpoint or
	// further: a stretch with none of its events moves the checkpoint
	// lazily (see checkpointEvery).
	passedMu sync.Mutex
	passed   map[string]passedAt

	// unled holds, by projection name and version, since when this process
	// has found no process running that version (see newerServing).
	unledMu sync.Mutex
	unled   map[string]unledSince
}

// unledSince is how long a version's lock has been seen free: since the
// first of a run of observations, each at most unledGap after the one
// before (last).
type unledSince struct{ since, last time.Time }

// passedAt is how far a generation of a projection version led here has
// read the log.
type passedAt struct {
	version, generation int
	position            int64
}

// NewRunner returns a Runner for projections over the events of store,
// keeping read models and checkpoints in pool's database (which must have
// been migrated with Migrate). It fails on an invalid or duplicate
// projection name.
func NewRunner(pool *pgxpool.Pool, store eventstore.Store, log *slog.Logger, opts Options, projections ...Projection) (*Runner, error) {
	seen := map[string]bool{}
	for _, p := range projections {
		if err := checkProjection(p); err != nil {
			return nil, err
		}
		if seen[p.Name()] {
			return nil, fmt.Errorf("projection %s is registered twice", p.Name())
		}
		seen[p.Name()] = true
	}
	return &Runner{pool: pool, store: store, log: log, opts: opts.withDefaults(), projections: projections, progress: eventstore.NewBroadcaster(), passed: map[string]passedAt{}, unled: map[string]unledSince{}}, nil
}

// Progress returns a channel closed the next time a projection in this
// process advances its checkpoint.
func (r *Runner) Progress() <-chan struct{} { return r.progress.Changed() }

// Passed returns the position up to which the serving read model of
// projection name reflects the log, when this process runs it: at least
// its checkpoint, more when the events since are none of its types (its
// checkpoint then moves at most checkpointEvery later). ok is false when
// the projection does not serve from here.
func (r *Runner) Passed(name string) (position int64, ok bool) {
	r.passedMu.Lock()
	defer r.passedMu.Unlock()
	at, ok := r.passed[name]
	return at.position, ok
}

// passedBy is Passed for the given generation of the given version only:
// the one the caller saw serving.
func (r *Runner) passedBy(name string, version, generation int) (int64, bool) {
	r.passedMu.Lock()
	defer r.passedMu.Unlock()
	at, ok := r.passed[name]
	if !ok || at.version != version || at.generation != generation {
		return 0, false
	}
	return at.position, true
}

// setPassed records how far the serving instance of projection name has
// read; an instance that does not serve (a rebuild catching up) records
// nothing.
func (r *Runner) setPassed(in *instance, position int64, serving bool) {
	if !serving {
		return
	}
	r.passedMu.Lock()
	defer r.passedMu.Unlock()
	r.passed[in.p.Name()] = passedAt{in.p.Version(), in.generation, position}
}

// forgetPassed drops what setPassed recorded for name: this process no
// longer leads it.
func (r *Runner) forgetPassed(name string) {
	r.passedMu.Lock()
	defer r.passedMu.Unlock()
	delete(r.passed, name)
}

// Run runs every projection until ctx ends, then returns nil once all of
// them have stopped (no goroutine outlives Run).
func (r *Runner) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, p := range r.projections {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.runOne(ctx, p)
		}()
	}
	wg.Wait()
	return nil
}

// runOne keeps trying to lead projection p until ctx ends. A run of
// failed attempts (a database outage) is logged at WARN once, then at
// DEBUG, and at INFO once it is over: when the projection runs again, or
// this process finds it led elsewhere or retired (see outage.Outage).
func (r *Runner) runOne(ctx context.Context, p Projection) {
	o := &outage.Outage{Log: r.log}
	for {
		err := r.lead(ctx, p, o)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			o.Failed(ctx, "projection stopped; retrying", "projection", p.Name(), "version", p.Version(), "err", err, "retryIn", r.opts.LeaderRetry)
		} else {
			o.Over(ctx, "projection no longer failing; another process runs it", "projection", p.Name(), "version", p.Version())
		}
		if !sleep(ctx, r.opts.LeaderRetry) {
			return
		}
	}
}

// lockKey is the advisory lock that elects the process running p.
func lockKey(p Projection) int64 { return versionLockKey(p.Name(), p.Version()) }

// versionLockKey is the advisory lock held by the process running version
// of projection name.
func versionLockKey(name string, version int) int64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "cqrsgate/projection/%s/%d", name, version)
	return int64(h.Sum64())
}

// lead takes the projection's lock on a dedicated connection and, while it
// holds it, sets the projection up and follows the log, ending o once it
// runs. It returns nil when another process leads (or ctx ends), an error
// when leading failed.
func (r *Runner) lead(ctx context.Context, p Projection, o *outage.Outage) error {
	return leadWhileLocked(ctx, r.pool, lockKey(p), r.opts.LeaderCheckTimeout, func(conn *pgx.Conn) error {
		return r.runLeader(ctx, p, conn, o)
	})
}

// leaderSessionKeepalive has the server watch a leader's session as the
// gateway watches its end (internal/pgdial's defaults: keepalive after 15 s
// idle, every 5 s, dropped after 3 unanswered; 30 s for data to be
// acknowledged). A session whose gateway vanished without the network
// saying so holds its advisory lock until the server ends it: with the
// server's defaults (the system's keepalive, 2 hours and more) the
// projection ran nowhere all that time; now within about 30 s. The server
// ignores these on a Unix socket.
const leaderSessionKeepalive = `SELECT set_config('tcp_keepalives_idle', '15', false), set_config('tcp_keepalives_interval', '5', false),
	set_config('tcp_keepalives_count', '3', false), set_config('tcp_user_timeout', '30000', false)`

// leadWhileLocked takes advisory lock key on a dedicated connection, which
// must answer within timeout, and, if it gets it, runs lead with that
// connection (whose session holds the lock until it is closed). It returns
// nil when another session holds the lock.
func leadWhileLocked(ctx context.Context, pool *pgxpool.Pool, key int64, timeout time.Duration, lead func(conn *pgx.Conn) error) error {
	conn, err := pgx.ConnectConfig(ctx, pool.Config().ConnConfig.Copy())
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_ = conn.Close(closeCtx) // ends the session, releasing the lock
	}()
	var leader bool
	lockCtx, cancel := context.WithTimeout(ctx, timeout)
	// Best effort (tcp_user_timeout is PostgreSQL 12's): a server without
	// a setting keeps its own, and the lock is taken all the same.
	_, _ = conn.Exec(lockCtx, leaderSessionKeepalive)
	err = conn.QueryRow(lockCtx, "SELECT pg_try_advisory_lock($1)", key).Scan(&leader)
	cancel()
	if err != nil {
		return fmt.Errorf("leader lock: %w", err)
	}
	if !leader {
		return nil
	}
	return lead(conn)
}

// runLeader sets the projection up and follows the log while conn holds
// its lock.
// A version that a newer one has retired keeps its lock and looks again
// every LeaderRetry, on the same connection, whether it is to be built
// again (see register).
func (r *Runner) runLeader(ctx context.Context, p Projection, conn *pgx.Conn, o *outage.Outage) error {
	for {
		live, err := r.register(ctx, p)
		if err != nil {
			return fmt.Errorf("register %s: %w", p.Name(), err)
		}
		if live {
			if o.Failing() {
				// follow says "running projection again" once it does.
				r.log.DebugContext(ctx, "running projection", "projection", p.Name(), "version", p.Version())
			} else {
				r.log.InfoContext(ctx, "running projection", "projection", p.Name(), "version", p.Version())
			}
			if err := r.follow(ctx, p, conn, o); err != nil || ctx.Err() != nil {
				return err
			}
			continue // retired meanwhile
		}
		o.Over(ctx, "projection no longer failing; a newer version serves", "projection", p.Name(), "version", p.Version())
		if !sleep(ctx, r.opts.LeaderRetry) {
			return nil
		}
		if err := r.pingLeader(ctx, conn); err != nil {
			return err
		}
	}
}

// pingLeader makes a round trip on the leader connection, which must
// answer within LeaderCheckTimeout: one that died silently would hang the
// projection until TCP gave up on it.
func (r *Runner) pingLeader(ctx context.Context, conn *pgx.Conn) error {
	pingCtx, cancel := context.WithTimeout(ctx, r.opts.LeaderCheckTimeout)
	defer cancel()
	if err := conn.Ping(pingCtx); err != nil {
		if ctx.Err() == nil && pingCtx.Err() != nil {
			return fmt.Errorf("leader connection did not answer within %v: %w", r.opts.LeaderCheckTimeout, err)
		}
		return fmt.Errorf("leader connection: %w", err)
	}
	return nil
}

// register gives p's version a generation to build, unless it has a live
// one: a version that is new, and a version that was retired once a newer
// one took over but that no process has run for RollbackGrace (a deploy
// rolled back), which is built again from the start of the log. It reports
// whether p's version has a live generation now; it has none while a newer
// version serves from a running process.
func (r *Runner) register(ctx context.Context, p Projection) (live bool, err error) {
	err = pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
		var generations int32
		if err := tx.QueryRow(ctx, `SELECT count(*) FILTER (WHERE status <> 'RETIRED') > 0, coalesce(max(generation), 0)
			FROM projections WHERE name = $1 AND version = $2`, p.Name(), p.Version()).Scan(&live, &generations); err != nil {
			return err
		}
		if live {
			return nil
		}
		// A newer version that serves from a running process keeps this
		// one idle (retired, or never built).
		if newer, err := r.newerServing(ctx, tx, p.Name(), p.Version(), int(generations)); err != nil || newer != noNewer {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO projections (name, version, generation) VALUES ($1, $2, $3)`, p.Name(), p.Version(), generations+1)
		live = err == nil
		return err
	})
	return live, err
}

func (in *instance) schema() string {
	return GenerationSchema(in.p.Name(), in.p.Version(), in.generation)
}

// setup creates the instance's schema and tables; the first generation of
// the first version of a projection serves queries at once. It creates
// nothing for a generation retired meanwhile (a rebuild cancelled before
// this process set it up), and says so with errRetired: it holds the lock
// CancelRebuild takes, so the schema is either made before a cancel, which
// drops it, or not at all.
func (r *Runner) setup(ctx context.Context, in *instance) error {
	p := in.p
	return pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
		if err := lockGenerations(ctx, tx, p.Name()); err != nil {
			return err
		}
		var live bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM public.projections WHERE name = $1 AND version = $2 AND generation = $3 AND status <> 'RETIRED')`,
			p.Name(), p.Version(), in.generation).Scan(&live); err != nil {
			return err
		}
		if !live {
			return errRetired
		}
		schema := pgx.Identifier{in.schema()}.Sanitize()
		if _, err := tx.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+schema); err != nil {
			return fmt.Errorf("setup %s: %w", p.Name(), err)
		}
		if _, err := tx.Exec(ctx, "SET LOCAL search_path TO "+schema+", public"); err != nil {
			return err
		}
		if err := p.Setup(ctx, tx); err != nil {
			return fmt.Errorf("setup %s v%d: %w", p.Name(), p.Version(), err)
		}
		var serving bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM public.projections WHERE name = $1 AND serving)`, p.Name()).Scan(&serving); err != nil {
			return err
		}
		if !serving {
			_, err := r.switchServing(ctx, tx, in) // nothing serves: it switches
			return err
		}
		return nil
	})
}

// newer says whether an instance newer than a given one serves queries.
type newer int

const (
	noNewer newer = iota
	// newerRuns: a newer instance serves from a running process.
	newerRuns
	// newerUnled: a newer version serves, but its lock has been seen free,
	// for less than RollbackGrace so far.
	newerUnled
	// servingAhead: an older instance serves and has applied more of the
	// log than this one: switching now would take applied events back.
	servingAhead
)

// newerServing says whether a newer instance than generation of version
// serves projection name, in tx, which locks its row. A newer generation
// of the same version is led by this process. A newer version runs
// elsewhere while its advisory lock is held; tx takes the lock when it is
// free, so that no process starts running that version before tx ends. It
// counts as running until this process has seen its lock free for
// RollbackGrace, in observations no more than unledGap apart (a process
// that looked long ago knows nothing of the time between).
func (r *Runner) newerServing(ctx context.Context, tx pgx.Tx, name string, version, generation int) (newer, error) {
	var sv, sg int32
	err := tx.QueryRow(ctx, `SELECT version, generation FROM public.projections WHERE name = $1 AND serving FOR UPDATE`, name).Scan(&sv, &sg)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return noNewer, nil
	case err != nil:
		return noNewer, err
	case int(sv) < version || int(sv) == version && int(sg) <= generation:
		return noNewer, nil
	case int(sv) == version:
		return newerRuns, nil
	}
	var free bool
	if err := tx.QueryRow(ctx, "SELECT pg_try_advisory_xact_lock($1)", versionLockKey(name, int(sv))).Scan(&free); err != nil {
		return noNewer, err
	}
	key := fmt.Sprintf("%s/%d", name, sv)
	r.unledMu.Lock()
	defer r.unledMu.Unlock()
	if !free {
		delete(r.unled, key)
		return newerRuns, nil
	}
	now := time.Now()
	u, seen := r.unled[key]
	if !seen || now.Sub(u.last) > r.unledGap() {
		u.since = now
	}
	u.last = now
	r.unled[key] = u
	if now.Sub(u.since) < r.opts.RollbackGrace {
		return newerUnled, nil
	}
	r.log.WarnContext(ctx, "no process has run the newer projection version serving queries for the rollback grace: this version takes over",
		"projection", name, "version", version, "newer", sv, "grace", r.opts.RollbackGrace)
	return noNewer, nil
}

// unledGap is the longest time between two sightings of a free lock that
// still count as one run of them (see newerServing): processes look every
// LeaderRetry (a retired version) or so (a caught-up instance waiting to
// serve, which follow wakes at least every Poll).
func (r *Runner) unledGap() time.Duration { return 3 * max(r.opts.LeaderRetry, r.opts.Poll) }

// switchServing makes the instance the one queries read, in tx: the views
// in schema readmodel are replaced, atomically for readers. It switches
// nothing when a newer instance serves (see newerServing), and says so. It
// takes the lock that CancelRebuild takes, so that a cancel and a switch
// of the same generation come one after the other: a generation retired
// meanwhile (its rebuild cancelled) does not switch (errRetired).
func (r *Runner) switchServing(ctx context.Context, tx pgx.Tx, in *instance) (newer, error) {
	p := in.p
	if err := lockGenerations(ctx, tx, p.Name()); err != nil {
		return noNewer, err
	}
	if n, err := r.newerServing(ctx, tx, p.Name(), p.Version(), in.generation); err != nil || n != noNewer {
		return n, err
	}
	// The serving row is locked (newerServing): its checkpoint stays put
	// until this transaction ends.
	var servingAt int64
	err := tx.QueryRow(ctx, `SELECT position FROM public.projections WHERE name = $1 AND serving`, p.Name()).Scan(&servingAt)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return noNewer, err
	}
	if servingAt > in.at {
		return servingAhead, nil
	}
	if _, err := tx.Exec(ctx, `UPDATE public.projections SET serving = false WHERE name = $1 AND serving`, p.Name()); err != nil {
		return noNewer, err
	}
	tag, err := tx.Exec(ctx, `UPDATE public.projections SET serving = true, updated_at = clock_timestamp()
		WHERE name = $1 AND version = $2 AND generation = $3 AND status <> 'RETIRED'`, p.Name(), p.Version(), in.generation)
	if err != nil {
		return noNewer, err
	}
	if tag.RowsAffected() == 0 {
		return noNewer, errRetired // the transaction rolls back: what served serves on
	}
	for _, t := range p.Tables() {
		view := pgx.Identifier{"readmodel", t}.Sanitize()
		if _, err := tx.Exec(ctx, "DROP VIEW IF EXISTS "+view); err != nil {
			return noNewer, err
		}
		if _, err := tx.Exec(ctx, "CREATE VIEW "+view+" AS SELECT * FROM "+pgx.Identifier{in.schema(), t}.Sanitize()); err != nil {
			return noNewer, fmt.Errorf("expose %s: %w", t, err)
		}
	}
	return noNewer, nil
}

// retireOlder drops the schemas of everything older than the serving
// instance: earlier versions, and earlier generations of its version.
func (r *Runner) retireOlder(ctx context.Context, in *instance) error {
	p := in.p
	rows, err := r.pool.Query(ctx, `SELECT version, generation FROM projections
		WHERE name = $1 AND status <> 'RETIRED' AND (version < $2 OR version = $2 AND generation < $3)`, p.Name(), p.Version(), in.generation)
	if err != nil {
		return err
	}
	type vg struct{ version, generation int32 }
	old, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (vg, error) {
		var o vg
		err := row.Scan(&o.version, &o.generation)
		return o, err
	})
	if err != nil {
		return err
	}
	for _, o := range old {
		if err := r.retire(ctx, p.Name(), int(o.version), int(o.generation)); err != nil {
			return err
		}
	}
	return nil
}

// retire drops the schema of a generation of a projection version and
// marks it RETIRED (see retireGeneration).
func (r *Runner) retire(ctx context.Context, name string, version, generation int) error {
	if err := retireGeneration(ctx, r.pool, name, version, generation); err != nil {
		return err
	}
	r.log.InfoContext(ctx, "retired projection", "projection", name, "version", version, "generation", generation)
	return nil
}

// execer runs a statement: a pool (each statement in a transaction of its
// own) or a transaction.
type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// retireGeneration drops the schema of a generation of a projection
// version (its tables) and marks it RETIRED and not serving, through q:
// the runner's pool once queries read a newer generation, CancelRebuild's
// transaction to abandon a rebuild. The schema goes first: a runner's
// transaction applying a batch to the generation holds its tables and
// moves its checkpoint (its row) last, so the drop waits for that batch
// to end, where marking the row first would have each wait for the other.
// The runner then finds the generation gone (see retiredMeanwhile).
func retireGeneration(ctx context.Context, q execer, name string, version, generation int) error {
	schema := GenerationSchema(name, version, generation)
	if _, err := q.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
		return err
	}
	_, err := q.Exec(ctx, `UPDATE public.projections SET status = 'RETIRED', serving = false, updated_at = clock_timestamp()
		WHERE name = $1 AND version = $2 AND generation = $3`, name, version, generation)
	return err
}

var errLostLead = errors.New("checkpoint moved under us: another process runs this projection")

// errRetired: the generation was retired while this process ran it (its
// rebuild was cancelled, or a newer version took over).
var errRetired = errors.New("the generation was retired while it ran")

// retiredMeanwhile tells an error of setting up or applying the log to an
// instance that comes of its generation having been retired while this
// process ran it from any other: CancelRebuild (or a newer version's
// process) dropped its tables and marked its row, so its next batch found
// no tables, or no RUNNING row to move. The caller forgets the instance
// and reads the rows again, and the serving generation goes on; any other
// error stops follow, which holds the serving generation up for
// LeaderRetry (as this one did too, before 2026-11-27).
func (r *Runner) retiredMeanwhile(ctx context.Context, in *instance, err error) bool {
	switch {
	case errors.Is(err, errRetired):
		return true
	case !errors.Is(err, errLostLead):
		return false
	}
	var live bool
	if qerr := r.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM projections WHERE name = $1 AND version = $2 AND generation = $3 AND status <> 'RETIRED')`,
		in.p.Name(), in.p.Version(), in.generation).Scan(&live); qerr != nil {
		return false
	}
	return !live
}

// follow applies the log to every live generation of p's version from its
// checkpoint until ctx ends or the leader connection fails. A generation
// that a rebuild added is built beside the serving one and takes over once
// it has caught up. The first round that fails nothing ends o (a batch
// whose connection was lost is a failure until it is applied).
func (r *Runner) follow(ctx context.Context, p Projection, leaderConn *pgx.Conn, o *outage.Outage) error {
	instances := map[int]*instance{}
	defer func() { // no read ahead outlives follow
		for _, in := range instances {
			in.dropReadAhead()
		}
		r.forgetPassed(p.Name()) // another process may lead it now
	}()
	timer := time.NewTimer(r.opts.Poll)
	defer timer.Stop()
	var (
		states   []state
		loadedAt time.Time
		reload   = true
	)
	for {
		changed := r.store.Changed()
		// The projection's rows are re-read when they may have changed
		// other than by this loop's own checkpoint moves (an administrator's
		// rebuild or reset, a failure recorded), and at least every
		// statesMaxAge otherwise; between, the loop keeps its own copy, so
		// that a busy projection does not read its row on every batch.
		if reload || time.Since(loadedAt) >= statesMaxAge {
			var err error
			if states, err = r.loadStates(ctx, p); err != nil {
				return err
			}
			if len(states) == 0 {
				// A newer version took over and retired this one:
				// runLeader looks again every LeaderRetry.
				r.log.InfoContext(ctx, "projection version retired", "projection", p.Name(), "version", p.Version())
				return nil
			}
			r.forgetRetired(instances, states)
			if err := r.pingLeader(ctx, leaderConn); err != nil {
				return err
			}
			loadedAt, reload = time.Now(), false
		}
		busy := false // some instance has more to read right away
		wait := r.opts.Poll
		for i := range states {
			st := &states[i]
			in := instances[st.generation]
			if in == nil {
				in = newInstance(p, st.generation, r.opts.RetryBackoff)
				instances[st.generation] = in
			}
			if !in.ready {
				if err := r.setup(ctx, in); err != nil {
					if !r.retiredMeanwhile(ctx, in, err) {
						return err
					}
					r.dropRetired(ctx, instances, in)
					busy, reload = true, true
					continue
				}
				in.ready = true
				if st.serving {
					if err := r.retireOlder(ctx, in); err != nil {
						return err
					}
				}
				busy, reload = true, true // re-read its state and start next round
				continue
			}
			if st.status == "FAILED" {
				in.dropReadAhead()
				wait = min(wait, r.opts.LeaderRetry/4+50*time.Millisecond)
				continue
			}
			if d := time.Until(in.retryAt); d > 0 {
				wait = min(wait, d)
				continue
			}
			more, err := r.step(ctx, in, st, o)
			if err != nil {
				if !r.retiredMeanwhile(ctx, in, err) {
					return err
				}
				r.dropRetired(ctx, instances, in)
				busy, reload = true, true
				continue
			}
			busy = busy || more
			reload = reload || st.stale
			if in.at > st.position { // a checkpoint to move later
				wait = min(wait, max(checkpointEvery-time.Since(in.savedAt), time.Millisecond))
			}
			if !st.serving && !in.switchAt.IsZero() { // waiting to serve: look again then
				wait = min(wait, max(time.Until(in.switchAt), time.Millisecond))
			}
		}
		if o.Failing() && !connLost(instances) {
			o.Over(ctx, "running projection again", "projection", p.Name(), "version", p.Version())
		}
		if busy {
			continue
		}
		if !reload {
			// A wake-up may have been an administrator's: look at the rows
			// again once they are statesMaxAge old, even if the log is quiet.
			wait = min(wait, max(statesMaxAge-time.Since(loadedAt), time.Millisecond))
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-timer.C:
			reload = true
		}
	}
}

// dropRetired forgets an instance whose generation was retired while this
// process ran it (see retiredMeanwhile).
func (r *Runner) dropRetired(ctx context.Context, instances map[int]*instance, in *instance) {
	r.log.InfoContext(ctx, "projection generation retired while it ran", "projection", in.p.Name(),
		"version", in.p.Version(), "generation", in.generation)
	in.dropReadAhead()
	delete(instances, in.generation)
}

// connLost reports whether an instance waits to apply again a batch whose
// connection was lost.
func connLost(instances map[int]*instance) bool {
	for _, in := range instances {
		if in.connLost {
			return true
		}
	}
	return false
}

// forgetRetired forgets the instances of generations no longer live (a
// rebuild cancelled, a generation retired once a newer one served).
func (r *Runner) forgetRetired(instances map[int]*instance, states []state) {
	for g, in := range instances {
		if !slices.ContainsFunc(states, func(st state) bool { return st.generation == g }) {
			in.dropReadAhead()
			delete(instances, g)
		}
	}
}

// statesMaxAge is how long follow trusts its copy of the projection's rows.
const statesMaxAge = 250 * time.Millisecond

// checkpointEvery is how often, at most, a serving projection that is
// keeping up moves its checkpoint over a stretch of the log with none of
// its events: such a move changes no row of the read model, only the
// checkpoint, so it can wait and be made once for many (a crash before it
// only has the projection read those events again). Within the process,
// Passed reports the position at once.
const checkpointEvery = 100 * time.Millisecond

// step applies one batch of the log to an instance. It reports whether
// more is waiting right away. While the instance is behind, the next batch
// is read while this one is applied. A batch whose connection was lost is
// a failure of o.
func (r *Runner) step(ctx context.Context, in *instance, st *state, o *outage.Outage) (bool, error) {
	p := in.p
	in.at = max(in.at, st.position)
	plan := r.plan(in, in.at)
	b, err := r.read(ctx, in, plan)
	if err != nil {
		return false, err
	}
	if !in.narrowing {
		in.behind = b.full
		if b.full {
			in.sparse = !b.dense()
			r.startReadAhead(ctx, in, r.plan(in, b.next))
		}
	}
	switch {
	case len(b.events) > 0:
		err := r.applyBatch(ctx, in, st.position, b.next, b.events)
		if errors.Is(err, errLostLead) || ctx.Err() != nil {
			return false, err
		}
		in.connLost = err != nil && eventstore.IsConnectionError(err)
		if in.connLost {
			// Not the events' fault: try again, with backoff, without
			// counting it towards MaxFailures or narrowing down.
			o.Failed(ctx, "projection lost its database connection; retrying", "projection", p.Name(), "version", p.Version(),
				"generation", in.generation, "position", b.events[0].Position, "err", err, "retryIn", in.backoff)
			in.retryAt = time.Now().Add(in.backoff)
			in.backoff = min(in.backoff*2, 10*time.Second)
			return false, nil
		}
		if err != nil {
			single := plan.limit == 1
			failures, ferr := r.recordFailure(ctx, in, b.events, err, single)
			if ferr != nil {
				return false, ferr
			}
			st.stale = true // failures, maybe the status
			if !single {
				// Find the event that fails: one event at a time up to the
				// end of this batch.
				in.narrowing = true
				in.stuckAt = b.events[len(b.events)-1].Position
				return true, nil
			}
			if failures >= r.opts.MaxFailures {
				r.log.ErrorContext(ctx, "projection failed", "projection", p.Name(), "generation", in.generation,
					"position", b.events[0].Position, "eventId", b.events[0].ID, "err", err)
				in.backoff = r.opts.RetryBackoff
				return false, nil
			}
			in.stuckAt = b.events[0].Position
			in.retryAt = time.Now().Add(in.backoff)
			in.backoff = min(in.backoff*2, 10*time.Second)
			return false, nil
		}
		st.position, in.at, in.savedAt = b.next, b.next, time.Now()
		r.setPassed(in, in.at, st.serving)
		in.backoff = r.opts.RetryBackoff
		if in.narrowing && b.events[0].Position >= in.stuckAt {
			in.narrowing = false
		}
		r.progress.Notify(b.next)
		if b.full {
			return true, nil
		}
	case b.next > in.at:
		// Nothing this projection reads, but the log moved on.
		in.at = b.next
		r.setPassed(in, in.at, st.serving)
		r.progress.Notify(b.next)
		if b.full {
			if err := r.saveCheckpoint(ctx, in, st); err != nil {
				return false, err
			}
			return true, nil
		}
	}
	if in.at > st.position && (!st.serving || time.Since(in.savedAt) >= checkpointEvery) {
		if err := r.saveCheckpoint(ctx, in, st); err != nil {
			return false, err
		}
	}
	if !st.serving && !time.Now().Before(in.switchAt) {
		// A rebuild has caught up: switch queries to it, unless a newer
		// instance serves from a running process (a rolling deploy): then
		// this one is superseded and retires (it comes back once no process
		// has run the newer version for RollbackGrace; see register). While
		// the newer version's lock has been free for less than that, it
		// keeps up and looks again every LeaderRetry.
		var n newer
		if err := pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) (err error) {
			n, err = r.switchServing(ctx, tx, in)
			return err
		}); err != nil {
			return false, fmt.Errorf("switch %s to v%d generation %d: %w", p.Name(), p.Version(), in.generation, err)
		}
		switch n {
		case servingAhead: // read on and look again
			in.switchAt = time.Now().Add(10 * time.Millisecond)
			return false, nil
		case newerUnled:
			in.switchAt = time.Now().Add(r.opts.LeaderRetry)
			return false, nil
		case newerRuns:
			r.log.InfoContext(ctx, "a newer projection version serves from a running process: retiring this one",
				"projection", p.Name(), "version", p.Version(), "generation", in.generation)
			in.dropReadAhead()
			st.stale = true
			return false, r.retire(ctx, p.Name(), p.Version(), in.generation)
		}
		st.serving, st.stale = true, true // and older generations retire
		r.setPassed(in, in.at, true)
		r.log.InfoContext(ctx, "projection now serving", "projection", p.Name(), "version", p.Version(), "generation", in.generation)
		if err := r.retireOlder(ctx, in); err != nil {
			return false, err
		}
	}
	return false, nil
}

type state struct {
	generation int
	position   int64
	status     string
	serving    bool
	// stale is set by step when the row changed other than by moving the
	// checkpoint to position.
	stale bool
}

// loadStates returns the live (not retired) generations of p's version.
func (r *Runner) loadStates(ctx context.Context, p Projection) ([]state, error) {
	rows, err := r.pool.Query(ctx, `SELECT generation, position, status, serving FROM projections
		WHERE name = $1 AND version = $2 AND status <> 'RETIRED' ORDER BY generation`, p.Name(), p.Version())
	if err != nil {
		return nil, fmt.Errorf("projection %s state: %w", p.Name(), err)
	}
	states, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (state, error) {
		var st state
		err := row.Scan(&st.generation, &st.position, &st.status, &st.serving)
		return st, err
	})
	if err != nil {
		return nil, fmt.Errorf("projection %s state: %w", p.Name(), err)
	}
	return states, nil
}

// applyBatch applies events and moves the checkpoint from `from` to `to` in
// one transaction.
func (r *Runner) applyBatch(ctx context.Context, in *instance, from, to int64, events []domain.RecordedEvent) (err error) {
	if r.opts.Trace != nil {
		var end func(error)
		ctx, end = r.opts.Trace(ctx, in.p.Name(), events)
		defer func() { end(err) }()
	}
	// The transaction's settings go with its BEGIN, in one round trip.
	searchPath := pgx.Identifier{in.schema()}.Sanitize() + ", public"
	begin := "BEGIN; SELECT set_config('search_path', '" + strings.ReplaceAll(searchPath, "'", "''") + "', true), set_config('synchronous_commit', 'off', true)"
	return pgx.BeginTxFunc(ctx, r.pool, pgx.TxOptions{BeginQuery: begin}, func(tx pgx.Tx) error {
		if err := in.p.Apply(ctx, tx, events); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, moveCheckpointSQL, in.p.Name(), in.p.Version(), in.generation, to, from)
		return checkpointMoved(tag, err)
	})
}

// Projection transactions commit asynchronously (synchronous_commit off):
// they do not wait for their WAL to reach the disk. A database crash may
// then lose the last moments of a projection's progress, never an event,
// and never rows without their checkpoint (they commit together): the
// projection applies those events again from the log. Read models are
// derived data; the events they come from are committed durably.
const asyncCommitIn = `SELECT set_config('search_path', $1, true), set_config('synchronous_commit', 'off', true)`

const moveCheckpointSQL = `UPDATE public.projections SET position = $4, failures = 0, last_error = NULL, failed_position = NULL, failed_event_id = NULL, updated_at = clock_timestamp()
	WHERE name = $1 AND version = $2 AND generation = $3 AND position = $5 AND status = 'RUNNING'`

// saveCheckpoint moves the checkpoint to where the instance has read up to
// (over events it does not read).
func (r *Runner) saveCheckpoint(ctx context.Context, in *instance, st *state) error {
	if err := r.advance(ctx, in, st.position, in.at); err != nil {
		return err
	}
	st.position, in.savedAt = in.at, time.Now()
	return nil
}

// advance moves the checkpoint over events the projection does not read,
// in one round trip (and asynchronously committed, as applyBatch is).
func (r *Runner) advance(ctx context.Context, in *instance, from, to int64) error {
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(asyncCommitIn, "public")
	b.Queue(moveCheckpointSQL, in.p.Name(), in.p.Version(), in.generation, to, from)
	b.Queue("COMMIT")
	br := r.pool.SendBatch(ctx, b)
	defer br.Close()
	for i := 0; i < 2; i++ {
		if _, err := br.Exec(); err != nil {
			return err
		}
	}
	moved := checkpointMoved(br.Exec())
	if _, err := br.Exec(); err != nil { // COMMIT (of nothing, when the checkpoint did not move)
		return err
	}
	return moved
}

// checkpointMoved checks moveCheckpointSQL's outcome: it moved exactly one
// checkpoint, or another process leads the projection now.
func checkpointMoved(tag pgconn.CommandTag, err error) error {
	if err != nil {
		return err
	}
	if tag.RowsAffected() != 1 {
		return errLostLead
	}
	return nil
}

// recordFailure counts a failed attempt; when single is true the batch was
// one event, which is named, and the instance is marked FAILED once the
// failures reach MaxFailures.
func (r *Runner) recordFailure(ctx context.Context, in *instance, events []domain.RecordedEvent, cause error, single bool) (int, error) {
	var failures int
	e := events[0]
	err := r.pool.QueryRow(ctx, `UPDATE projections SET failures = failures + 1, last_error = $4, failed_position = $5, failed_event_id = $6,
			status = CASE WHEN $7 AND failures + 1 >= $8 THEN 'FAILED' ELSE status END, updated_at = clock_timestamp()
		WHERE name = $1 AND version = $2 AND generation = $3 AND status <> 'RETIRED' RETURNING failures`,
		in.p.Name(), in.p.Version(), in.generation, truncateError(cause), e.Position, e.ID, single, r.opts.MaxFailures).Scan(&failures)
	if errors.Is(err, pgx.ErrNoRows) {
		// What failed is likely the missing tables of a cancelled rebuild.
		return 0, fmt.Errorf("projection %s v%d generation %d: %w", in.p.Name(), in.p.Version(), in.generation, errRetired)
	}
	if err != nil {
		return 0, fmt.Errorf("record failure of %s: %w", in.p.Name(), err)
	}
	return failures, nil
}

func truncateError(err error) string { return domain.CutText(err.Error(), 2000) }

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
