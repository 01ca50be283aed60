package projections

import (
	"context"
	"time"

	"cqrsgate/domain"
	"cqrsgate/eventstore"
)

// How the runner reads the log.
//
// A projection that keeps up reads the events of its types in batches of
// Options.BatchSize. One that is behind (a rebuild, a restart after a
// while) reads in batches of Options.CatchUpBatchSize and reads the next
// batch while the current one is applied, so that reading the log and
// folding it overlap.
//
// While behind, a projection whose types make up a good share of the log
// (dense) reads every event in pages of at most scanPage and keeps its own:
// asking PostgreSQL for the events of some types after a position, in
// position order, is planned as "every remaining event of those types,
// converted and sorted" whenever the planner believes few rows match (as it
// does right after the log grew, before statistics catch up), and a
// catch-up of N events then costs N²/batch. Small pages of the whole log
// are read along the position index whatever the statistics say. A
// projection whose types are rare there (sparse) asks for its types, which
// skips the rest of the log. Where reading the whole log fails (an event
// of another type that cannot be read), the projection asks for its types.

const (
	// scanPage is the size of the pages of the whole log read while dense:
	// small enough to be read along the position index even when the
	// planner underestimates the log.
	scanPage = 2000
	// denseShare: a projection is dense while at least 1/denseShare of
	// the events it goes through are of its types.
	denseShare = 4
)

// instance is one generation of a projection version being built or served.
type instance struct {
	p          Projection
	generation int
	types      map[string]bool // the projection's event types (nil: all)
	ready      bool            // schema and tables exist
	narrowing  bool            // reading one event at a time to find the one that fails
	behind     bool            // the last batch was full: read in catch-up batches
	sparse     bool            // while behind, ask for the projection's types
	stuckAt    int64
	backoff    time.Duration
	retryAt    time.Time
	connLost   bool       // the last batch's connection was lost: retried at retryAt
	switchAt   time.Time  // when a caught-up instance that may not serve yet looks again
	next       *readAhead // the batch after the one being applied, being read
	// at is where the instance has read the log up to: its checkpoint, or
	// further over events it does not read (saved at most checkpointEvery
	// later); savedAt is when the checkpoint last moved.
	at      int64
	savedAt time.Time
}

func newInstance(p Projection, generation int, backoff time.Duration) *instance {
	in := &instance{p: p, generation: generation, behind: true, backoff: backoff}
	if types := p.EventTypes(); len(types) > 0 {
		in.types = map[string]bool{}
		for _, t := range types {
			in.types[t] = true
		}
	}
	return in
}

// readPlan says which batch to read.
type readPlan struct {
	after int64 // the position to read after
	limit int   // the most events of the projection's types
	scan  bool  // read the whole log in pages and keep the projection's types
}

// batch is what a readPlan read.
type batch struct {
	events  []domain.RecordedEvent // of the projection's types, in position order
	next    int64                  // the position the checkpoint moves to
	full    bool                   // more is waiting right away
	scanned int64                  // the stretch of the log the batch covers (positions)
}

// plan returns what the instance reads next after position after.
func (r *Runner) plan(in *instance, after int64) readPlan {
	switch {
	case in.narrowing:
		return readPlan{after: after, limit: 1}
	case in.behind:
		return readPlan{after: after, limit: r.opts.CatchUpBatchSize, scan: !in.sparse || in.types == nil}
	}
	return readPlan{after: after, limit: r.opts.BatchSize}
}

// readAhead is a batch being read while the one before it is applied.
type readAhead struct {
	plan readPlan
	done chan struct{} // closed once b and err are set
	b    batch
	err  error
}

// read returns the batch plan names: the one read ahead when it is that
// one, else one read now. A batch read ahead for another plan (the
// checkpoint moved, or a failure is being narrowed down) is dropped.
func (r *Runner) read(ctx context.Context, in *instance, plan readPlan) (batch, error) {
	if f := in.next; f != nil {
		in.next = nil
		<-f.done
		if f.plan == plan && f.err == nil {
			return f.b, nil
		}
	}
	return r.readBatch(ctx, in, plan)
}

// startReadAhead starts reading the batch of plan.
func (r *Runner) startReadAhead(ctx context.Context, in *instance, plan readPlan) {
	f := &readAhead{plan: plan, done: make(chan struct{})}
	in.next = f
	go func() {
		defer close(f.done)
		f.b, f.err = r.readBatch(ctx, in, plan)
	}()
}

// dropReadAhead waits for the instance's read ahead, if any, and drops it.
func (in *instance) dropReadAhead() {
	if f := in.next; f != nil {
		in.next = nil
		<-f.done
	}
}

// readBatch reads the batch of plan from the log.
func (r *Runner) readBatch(ctx context.Context, in *instance, plan readPlan) (batch, error) {
	if !plan.scan {
		return r.readTypes(ctx, in, plan)
	}
	b := batch{next: plan.after}
	page := min(scanPage, plan.limit)
	for {
		p, err := r.store.ReadAll(ctx, eventstore.AllQuery{After: b.next, Limit: page})
		if err != nil {
			switch {
			case b.next > plan.after:
				// What was read is a batch; the next one runs into this.
				b.full = true
				return b, nil
			case in.types == nil || ctx.Err() != nil:
				return batch{}, err
			}
			// An event of a type the projection does not read may fail to
			// be read (say, a broken migration of its schema): reading only
			// the projection's types steps over it.
			return r.readTypes(ctx, in, plan)
		}
		for _, e := range p.Events {
			if in.types == nil || in.types[e.Type] {
				b.events = append(b.events, e)
			}
		}
		b.scanned += p.Next - b.next
		b.next = p.Next
		switch {
		case len(p.Events) < page:
			return b, nil
		case len(b.events)+page > plan.limit:
			b.full = true
			return b, nil
		case b.scanned >= 2*int64(page) && int64(len(b.events))*2*denseShare < b.scanned:
			// Sparse here: the next batch asks for the projection's types.
			b.full = true
			return b, nil
		}
	}
}

// readTypes reads up to plan.limit events of the projection's types.
func (r *Runner) readTypes(ctx context.Context, in *instance, plan readPlan) (batch, error) {
	p, err := r.store.ReadAll(ctx, eventstore.AllQuery{After: plan.after, Limit: plan.limit, Types: in.p.EventTypes()})
	if err != nil {
		return batch{}, err
	}
	b := batch{events: p.Events, next: p.Next, full: len(p.Events) == plan.limit, scanned: p.Next - plan.after}
	if len(p.Events) > 0 {
		// How dense the log is ahead: from the first event found.
		b.scanned = p.Next - p.Events[0].Position + 1
	}
	return b, nil
}

// dense reports whether at least 1/denseShare of the log that b went
// through is of the projection's types. (A batch reading the whole log
// stops early, as sparse, only under half that share, so that a share near
// the limit does not make a projection switch back and forth.)
func (b batch) dense() bool {
	return int64(len(b.events))*denseShare >= b.scanned
}
