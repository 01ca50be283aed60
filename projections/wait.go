package projections

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"cqrsgate/domain"
)

// Positions reads how far the serving versions of projections have
// applied the log.
//
// Every waiter of a process shares reads of the checkpoints: a waiter
// that wants a newer one than it last saw takes the read another waiter
// began since, or joins the one under way (and its outcome, a failure
// too), or begins one. However many requests wait (and one operation may
// wait once per field), PostgreSQL is asked about once per poll interval,
// not once per waiter.
type Positions struct {
	pool   *pgxpool.Pool
	runner *Runner // this process's; nil: checkpoints only, polled

	mu   sync.Mutex
	last checkpoints // the latest read that succeeded
	call *readCall   // the latest read begun, while under way
}

// checkpoints is one read of the serving checkpoints: position by
// projection name, and when the read began (everything committed before
// then is in it).
type checkpoints struct {
	at    map[string]servingAt
	begun time.Time
}

// servingAt is the serving generation of a projection and its checkpoint.
type servingAt struct {
	version, generation int
	position            int64
}

// readCall is a read of the checkpoints under way; cp and err are set
// when done is closed.
type readCall struct {
	begun time.Time
	done  chan struct{}
	cp    checkpoints
	err   error
}

// pollEvery is how often a waiter reads the checkpoints again, whether or
// not this process's runner woke it meanwhile; firstReadMaxAge is how old
// a read a waiter takes for its first look.
const (
	pollEvery       = 25 * time.Millisecond
	firstReadMaxAge = 5 * time.Millisecond
)

// NewPositions returns a reader of projection positions: their
// checkpoints and, for each projection that runner (when not nil) serves
// from this process, how far past its checkpoint it has read over events
// it does not read (see Runner.Passed). The runner's progress wakes
// waiters as soon as it moves; progress made by other processes is seen by
// polling.
func NewPositions(pool *pgxpool.Pool, runner *Runner) *Positions {
	return &Positions{pool: pool, runner: runner}
}

// WaitFor waits until the serving versions of every projection in names
// have applied the log up to position, or timeout passes. Errors: a
// *domain.Error with code Stale saying how far behind the projections are
// (a projection not set up yet counts as at 0); ctx's error.
func (p *Positions) WaitFor(ctx context.Context, names []string, position int64, timeout time.Duration) error {
	if position <= 0 {
		return nil
	}
	deadline := time.Now().Add(timeout)
	since := time.Now().Add(-firstReadMaxAge) // the oldest read to take
	// Reads wait at most until shortly after the deadline (the last fresh
	// read gets that grace): a database that cannot answer (its pool
	// exhausted, a failover) does not hold the waiter past its timeout.
	rctx, cancel := context.WithDeadline(ctx, deadline.Add(lastReadGrace))
	defer cancel()
	// The poll runs on its own clock: the runner's wake-ups (after every
	// batch of any projection it runs) must not put off reading the
	// checkpoints of projections that other processes run.
	poll := time.NewTimer(pollEvery)
	defer poll.Stop()
	var expired <-chan time.Time
	for {
		var wake <-chan struct{}
		if p.runner != nil {
			wake = p.runner.Progress()
		}
		cp, err := p.read(rctx, since)
		if err != nil && ctx.Err() == nil && rctx.Err() != nil {
			// Out of time reading: judge by the latest read there is.
			cp, err = p.latest(), nil
			deadline = time.Now()
		}
		if err != nil {
			return err
		}
		reached := p.reached(cp, names)
		if reached >= position {
			return nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			return domain.StaleError("read models have reached", reached, position, timeout)
		}
		if expired == nil && left < pollEvery {
			t := time.NewTimer(left)
			defer t.Stop()
			expired = t.C
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wake:
			// This process's runner moved: Runner.Passed has it, and the
			// read of the checkpoints just used still holds for the others.
		case <-poll.C:
			since = cp.begun.Add(time.Nanosecond) // a newer read
			poll.Reset(pollEvery)
		case <-expired:
			since = cp.begun.Add(time.Nanosecond) // the last word is a fresh read
		}
	}
}

// read returns a read of the checkpoints that began at since or later:
// the latest one, the one under way (whatever its outcome), or a new one,
// begun once no other is under way.
func (p *Positions) read(ctx context.Context, since time.Time) (checkpoints, error) {
	p.mu.Lock()
	for {
		if p.last.at != nil && !p.last.begun.Before(since) {
			cp := p.last
			p.mu.Unlock()
			return cp, nil
		}
		c := p.call
		if c == nil {
			break
		}
		// One read at a time: a slow database must not collect a read per
		// poll. One that began too early is waited for, then another begun.
		p.mu.Unlock()
		select {
		case <-ctx.Done():
			return checkpoints{}, ctx.Err()
		case <-c.done:
		}
		if !c.begun.Before(since) {
			return c.cp, c.err
		}
		p.mu.Lock()
	}
	c := &readCall{begun: time.Now(), done: make(chan struct{})}
	p.call = c
	p.mu.Unlock()

	// The read is every joiner's, not only this waiter's: it runs on
	// none of their contexts (this one's may end while others wait on it),
	// bounded by readTimeout.
	go func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), readTimeout)
		defer cancel()
		at, err := p.query(rctx)
		c.cp, c.err = checkpoints{at: at, begun: c.begun}, err
		p.mu.Lock()
		if p.call == c {
			p.call = nil
		}
		if err == nil && !c.begun.Before(p.last.begun) {
			p.last = c.cp
		}
		p.mu.Unlock()
		close(c.done)
	}()
	select {
	case <-ctx.Done():
		return checkpoints{}, ctx.Err()
	case <-c.done:
		return c.cp, c.err
	}
}

// readTimeout bounds a read of the checkpoints, which no waiter's context
// does; lastReadGrace is how long past its deadline a waiter waits for a
// read.
const (
	readTimeout   = 10 * time.Second
	lastReadGrace = 250 * time.Millisecond
)

// latest returns the latest read of the checkpoints that succeeded (none:
// nothing known, every projection at 0).
func (p *Positions) latest() checkpoints {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last
}

// query reads the checkpoint of every serving projection version.
func (p *Positions) query(ctx context.Context) (map[string]servingAt, error) {
	rows, err := p.pool.Query(ctx, `SELECT name, version, generation, position FROM projections WHERE serving`)
	if err != nil {
		return nil, fmt.Errorf("projection positions: %w", err)
	}
	at := map[string]servingAt{}
	var name string
	var s servingAt
	_, err = pgx.ForEachRow(rows, []any{&name, &s.version, &s.generation, &s.position}, func() error {
		at[name] = s
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("projection positions: %w", err)
	}
	return at, nil
}

// reached returns the lowest position among the serving versions of
// names: their checkpoints in cp or, for those this process runs, how far
// they have read.
func (p *Positions) reached(cp checkpoints, names []string) int64 {
	var reached int64
	for i, n := range names {
		s, ok := cp.at[n]
		if !ok {
			return 0 // not set up yet: nothing reached
		}
		pos := s.position
		if p.runner != nil {
			if passed, ok := p.runner.passedBy(n, s.version, s.generation); ok {
				pos = max(pos, passed)
			}
		}
		if i == 0 || pos < reached {
			reached = pos
		}
	}
	return reached
}
