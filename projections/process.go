package projections

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"cqrsgate/domain"
	"cqrsgate/eventstore"
	"cqrsgate/internal/outage"
)

// Process reacts to events of the log with side effects, such as the
// commands of a saga (domain.FulfilmentProcess). Unlike a Projection it
// writes no read model: its effects must be idempotent, because an event is
// handled again when the process stops between handling it and saving its
// checkpoint.
type Process interface {
	// Name identifies the process and its checkpoint.
	Name() string
	// EventTypes are the types Handle is given.
	EventTypes() []string
	// Handle reacts to one event; an error means "try this event again".
	Handle(ctx context.Context, e domain.RecordedEvent) error
	// Tick is called every TickEvery, for deadlines and retries.
	Tick(ctx context.Context) error
	TickEvery() time.Duration
}

// ProcessOptions tune a ProcessRunner. Zero values mean the defaults.
type ProcessOptions struct {
	// BatchSize is the most events read at once (default 100).
	BatchSize int
	// RetryBackoff is the first wait after Handle fails; it doubles up to
	// 10s (default 200ms).
	RetryBackoff time.Duration
	// Poll is how often a caught-up process re-reads the log without a
	// wake-up (default 2s).
	Poll time.Duration
	// LeaderRetry is how often a process that does not lead checks whether
	// it can take over (default 2s).
	LeaderRetry time.Duration
}

// ProcessRunner runs a Process: in one gateway process at a time across all
// those sharing the database (an advisory lock elects it), over the log in
// position order and gap-safe, with its checkpoint saved after each event.
//
// A leader that loses its lock (its connection dropped or was ended) stops
// within leaderCheckEvery+leaderCheckTimeout: the context it gives Handle
// and Tick ends, and it handles no further event and saves no checkpoint.
// A new leader waits takeoverGrace before it handles anything, so that the
// two do not handle events at once as long as Handle returns soon after its
// context ends; the checkpoint only ever moves forward. That cannot be
// proven of every moment (a leader stalled longer than the grace), so the
// process's effects must still be idempotent.
type ProcessRunner struct {
	pool     *pgxpool.Pool
	store    eventstore.Store
	log      *slog.Logger
	opts     ProcessOptions
	p        Process
	position atomic.Int64
}

// NewProcessRunner returns the runner of p over store's log, keeping its
// checkpoint in pool's database (migrated with Migrate). It fails on an
// invalid name.
func NewProcessRunner(pool *pgxpool.Pool, store eventstore.Store, log *slog.Logger, opts ProcessOptions, p Process) (*ProcessRunner, error) {
	if !validName.MatchString(p.Name()) {
		return nil, fmt.Errorf("process name %q: use 1 to 41 lower case letters, digits and '_'", p.Name())
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 100
	}
	if opts.RetryBackoff <= 0 {
		opts.RetryBackoff = 200 * time.Millisecond
	}
	if opts.Poll <= 0 {
		opts.Poll = 2 * time.Second
	}
	if opts.LeaderRetry <= 0 {
		opts.LeaderRetry = 2 * time.Second
	}
	return &ProcessRunner{pool: pool, store: store, log: log, opts: opts, p: p}, nil
}

// Position returns the position this runner has read the log up to (0
// before it led); its saved checkpoint follows within checkpointEvery
// over events the process does not handle.
func (r *ProcessRunner) Position() int64 { return r.position.Load() }

// Run leads the process whenever it can, until ctx ends. A run of failed
// attempts (a database outage) is logged at WARN once, then at DEBUG, and
// at INFO once it is over: when the process runs again, or this runner
// finds it led elsewhere.
func (r *ProcessRunner) Run(ctx context.Context) error {
	o := &outage.Outage{Log: r.log}
	for {
		err := r.lead(ctx, o)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			o.Failed(ctx, "process stopped; retrying", "process", r.p.Name(), "err", err, "retryIn", r.opts.LeaderRetry)
		} else {
			o.Over(ctx, "process no longer failing; another process runs it", "process", r.p.Name())
		}
		if !sleep(ctx, r.opts.LeaderRetry) {
			return nil
		}
	}
}

func (r *ProcessRunner) lockKey() int64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "cqrsgate/process/%s", r.p.Name())
	return int64(h.Sum64())
}

// lead takes the process's lock on a dedicated connection and, while it
// holds it, follows the log, ending o once it runs.
func (r *ProcessRunner) lead(ctx context.Context, o *outage.Outage) error {
	return leadWhileLocked(ctx, r.pool, r.lockKey(), DefaultLeaderCheckTimeout, func(conn *pgx.Conn) error { return r.runLeader(ctx, conn, o) })
}

// runLeader follows the log from the checkpoint while conn holds the lock:
// everything it does runs under a context that ends when the lock is lost.
func (r *ProcessRunner) runLeader(ctx context.Context, conn *pgx.Conn, o *outage.Outage) error {
	leading, stop := watchLeader(ctx, conn)
	defer stop()
	err := r.followFromCheckpoint(leading, o)
	if ctx.Err() == nil && leading.Err() != nil {
		return context.Cause(leading)
	}
	return err
}

// followFromCheckpoint waits takeoverGrace, then follows the log from the
// saved checkpoint until ctx ends.
func (r *ProcessRunner) followFromCheckpoint(ctx context.Context, o *outage.Outage) error {
	// A leader that lost the lock may be handling an event still: give it
	// the time to find out and stop.
	if !sleep(ctx, takeoverGrace) {
		return nil
	}
	if o.Failing() {
		// follow says "running process again" once it does.
		r.log.DebugContext(ctx, "running process", "process", r.p.Name())
	} else {
		r.log.InfoContext(ctx, "running process", "process", r.p.Name())
	}
	var pos int64
	err := r.pool.QueryRow(ctx, `INSERT INTO process_checkpoints (name) VALUES ($1)
		ON CONFLICT (name) DO UPDATE SET name = excluded.name RETURNING position`, r.p.Name()).Scan(&pos)
	if err != nil {
		return fmt.Errorf("checkpoint of %s: %w", r.p.Name(), err)
	}
	r.position.Store(pos)
	return r.follow(ctx, pos, o)
}

// How a leader watches its lock: it pings the lock's connection every
// leaderCheckEvery, giving up on a ping after leaderCheckTimeout, and a new
// leader waits takeoverGrace, more than both, before it handles events.
const (
	leaderCheckEvery   = 250 * time.Millisecond
	leaderCheckTimeout = 500 * time.Millisecond
	takeoverGrace      = leaderCheckEvery + leaderCheckTimeout + 250*time.Millisecond
)

// errLeadershipLost is the cause of a leader's context ending because its
// lock connection stopped answering (the lock is then released, or soon
// will be).
var errLeadershipLost = errors.New("process leader lock lost")

// watchLeader returns a context that ends with ctx, or as soon as conn,
// which holds the leader lock, fails a ping (cause errLeadershipLost); and
// a function that stops watching and returns once conn is no longer in use.
// conn must not be used by anything else meanwhile.
func watchLeader(ctx context.Context, conn *pgx.Conn) (context.Context, func()) {
	leading, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(leaderCheckEvery)
		defer tick.Stop()
		for {
			select {
			case <-leading.Done():
				return
			case <-tick.C:
			}
			pingCtx, cancelPing := context.WithTimeout(leading, leaderCheckTimeout)
			err := conn.Ping(pingCtx)
			cancelPing()
			if err != nil {
				cancel(fmt.Errorf("%w: %w", errLeadershipLost, err))
				return
			}
		}
	}()
	return leading, func() { cancel(nil); <-done }
}

// follow handles the log's events after pos until ctx ends (the process
// stops, or its leader lock is lost). Its first read of the log ends o.
func (r *ProcessRunner) follow(ctx context.Context, pos int64, o *outage.Outage) error {
	poll := time.NewTimer(r.opts.Poll)
	defer poll.Stop()
	tick := time.NewTicker(r.p.TickEvery())
	defer tick.Stop()
	var savedAt time.Time
	saved := pos
	for {
		changed := r.store.Changed()
		page, err := r.store.ReadAll(ctx, eventstore.AllQuery{After: pos, Limit: r.opts.BatchSize, Types: r.p.EventTypes()})
		if err != nil {
			return err
		}
		o.Over(ctx, "running process again", "process", r.p.Name())
		for _, e := range page.Events {
			if err := r.handle(ctx, e, o); err != nil {
				return err
			}
			if err := r.save(ctx, e.Position); err != nil {
				return err
			}
			pos, saved, savedAt = e.Position, e.Position, time.Now()
		}
		if page.Next > pos {
			// Over events the process does not handle: its checkpoint moves
			// at most every checkpointEvery (a crash before only has it read
			// them again).
			pos = page.Next
			r.position.Store(pos)
		}
		if pos > saved && time.Since(savedAt) >= checkpointEvery {
			if err := r.save(ctx, pos); err != nil {
				return err
			}
			saved, savedAt = pos, time.Now()
		}
		select {
		case <-tick.C:
			r.tick(ctx, o)
		default:
		}
		if len(page.Events) == r.opts.BatchSize {
			continue
		}
		wait := r.opts.Poll
		if pos > saved {
			wait = min(wait, max(checkpointEvery-time.Since(savedAt), time.Millisecond))
		}
		poll.Reset(wait)
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-poll.C:
		case <-tick.C:
			r.tick(ctx, o)
		}
	}
}

// tick runs the process's Tick, logging a failure (the next tick retries):
// one for want of the database as a failure of o.
func (r *ProcessRunner) tick(ctx context.Context, o *outage.Outage) {
	err := r.p.Tick(ctx)
	switch {
	case err == nil || ctx.Err() != nil:
	case eventstore.IsConnectionError(err):
		o.Failed(ctx, "process tick failed", "process", r.p.Name(), "err", err)
	default:
		r.log.WarnContext(ctx, "process tick failed", "process", r.p.Name(), "err", err)
	}
}

// handle gives e to the process until it is handled (or ctx ends: the
// process stops, or its leader lock is lost), backing off between attempts.
// An attempt that failed for want of the database is a failure of o; any
// other is logged at WARN (the event, or what it asks of the process, may
// be at fault).
func (r *ProcessRunner) handle(ctx context.Context, e domain.RecordedEvent, o *outage.Outage) error {
	backoff := r.opts.RetryBackoff
	for {
		if err := ctx.Err(); err != nil {
			return err // no attempt after leadership is lost
		}
		err := r.p.Handle(ctx, e)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		args := []any{"process", r.p.Name(), "position", e.Position, "type", e.Type, "stream", e.StreamID, "err", err, "retryIn", backoff}
		if eventstore.IsConnectionError(err) {
			o.Failed(ctx, "process could not handle an event; retrying", args...)
		} else {
			r.log.WarnContext(ctx, "process could not handle an event; retrying", args...)
		}
		if !sleep(ctx, backoff) {
			return ctx.Err()
		}
		backoff = min(backoff*2, 10*time.Second)
	}
}

// save moves the checkpoint forward to pos, while this runner leads (ctx
// has not ended). A checkpoint found at or past pos was moved by another
// leader: this one steps down with an error.
func (r *ProcessRunner) save(ctx context.Context, pos int64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	tag, err := r.pool.Exec(ctx, `UPDATE process_checkpoints SET position = $2, updated_at = clock_timestamp()
		WHERE name = $1 AND position < $2`, r.p.Name(), pos)
	if err != nil {
		return fmt.Errorf("save checkpoint of %s: %w", r.p.Name(), err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("save checkpoint of %s at %d: another runner has moved it as far or further; stepping down", r.p.Name(), pos)
	}
	r.position.Store(pos)
	return nil
}
