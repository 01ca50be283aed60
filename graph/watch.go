package graph

import (
	"context"
	"log/slog"
	"time"

	"cqrsgate/domain"
	"cqrsgate/eventstore"
	"cqrsgate/graph/model"
)

// watchRows streams a read-model row each time an event matching q is
// applied by the projection: it waits until the projection has reached
// the event, then reads the row. Events that pile up while the client reads
// are coalesced: only the latest state is sent.
func watchRows[T any](ctx context.Context, r *Resolver, q eventstore.AllQuery, projection string, read func(context.Context) (*T, bool, error)) (<-chan *T, error) {
	return watchRowsOf(ctx, r, q, projection, func(domain.RecordedEvent) {}, read, true)
}

// watchRowsOf is watchRows with a hook that sees each event before the row
// is read; coalesce is false when events of several rows share the feed.
func watchRowsOf[T any](ctx context.Context, r *Resolver, q eventstore.AllQuery, projection string, seen func(domain.RecordedEvent),
	read func(context.Context) (*T, bool, error), coalesce bool) (<-chan *T, error) {
	if err := r.readSide(); err != nil {
		return nil, err
	}
	if r.Hub == nil {
		return nil, domain.Errorf(domain.Unavailable, "subscriptions are not configured")
	}
	if q.After < 0 {
		// No starting point: from now on.
		head, err := r.head(ctx)
		if err != nil {
			return nil, err
		}
		q.After = head
	}
	events, err := r.Hub.Subscribe(ctx, q)
	if err != nil {
		return nil, err
	}
	// settle waits until the projection has applied e (in a coalesced feed,
	// the newest event waiting) and reads the row. While it cannot (the read
	// model is behind by more than the read timeout, or the database fails),
	// it waits and tries again rather than skip the change, which may be the
	// row's last for a long time: after a second, then twice as long each
	// time, and at once when the hub reads the log again after failing to
	// (the database is back). false: the feed or the subscriber is gone.
	settle := func(e domain.RecordedEvent) (row *T, found, open bool) {
		pause := time.Second
		for attempt := 0; ; attempt++ {
			back := r.Hub.Back()
			if coalesce {
				if e, open = latestOf(events, e); !open {
					return nil, false, false
				}
			}
			seen(e)
			pos := model.Position(e.Position)
			err := r.waitFor(ctx, &pos, projection)
			if err == nil {
				row, found, err = read(ctx)
			}
			switch {
			case ctx.Err() != nil:
				return nil, false, false
			case err == nil:
				return row, found, true
			}
			level := slog.LevelWarn
			if attempt > 0 {
				level = slog.LevelDebug // said once per change
			}
			r.Log.Log(ctx, level, "row subscription: the row is not readable yet; trying again", "projection", projection, "position", e.Position, "err", err, "in", pause)
			t := time.NewTimer(pause)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, false, false
			case <-back:
				t.Stop()
				pause = time.Second // a failure now is another outage's
			case <-t.C:
				pause = min(2*pause, maxSubscriptionRetry)
			}
		}
	}
	ch := make(chan *T, 1)
	go func() {
		defer close(ch)
		// The position of the last state sent, per row: a row read late
		// already shows later changes, and their own events would send the
		// same state again.
		sent := map[string]int64{}
		for e := range events {
			row, found, open := settle(e)
			if !open {
				return
			}
			if !found {
				continue
			}
			if p, ok := any(row).(interface {
				RowID() string
				RowPosition() int64
			}); ok {
				if p.RowPosition() <= sent[p.RowID()] {
					continue
				}
				sent[p.RowID()] = p.RowPosition()
			}
			select {
			case ch <- row:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch, nil
}

// maxSubscriptionRetry is the longest a subscription waits before trying
// again a read that failed.
const maxSubscriptionRetry = 30 * time.Second

// latestOf returns the newest of e and the events already waiting in
// events; false when events is closed.
func latestOf(events <-chan domain.RecordedEvent, e domain.RecordedEvent) (domain.RecordedEvent, bool) {
	for {
		select {
		case more, ok := <-events:
			if !ok {
				return e, false
			}
			e = more
		default:
			return e, true
		}
	}
}

// posArg reads a subscription's `after`; -1 when absent, meaning "from now".
func posArg(p *model.Position) int64 {
	if p == nil {
		return -1
	}
	return int64(*p)
}

// pollInterval reads a subscription's intervalMs argument (default 1s).
func pollInterval(intervalMs *int) (time.Duration, error) {
	if intervalMs == nil {
		return time.Second, nil
	}
	if *intervalMs < 250 || *intervalMs > 60000 {
		return 0, domain.InvalidField("intervalMs", "intervalMs must be 250 to 60000, got %d", *intervalMs)
	}
	return time.Duration(*intervalMs) * time.Millisecond, nil
}

// poll streams first, then next's value every interval, until ctx ends. A
// poll that fails is logged (as the subscription named name's) and tried
// again at the next interval.
func poll[T any](ctx context.Context, log *slog.Logger, name string, interval time.Duration, first T, next func(context.Context) (T, error)) <-chan T {
	ch := make(chan T, 1)
	go func() {
		defer close(ch)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		v := first
		for {
			select {
			case ch <- v:
			case <-ctx.Done():
				return
			}
			select {
			case <-tick.C:
			case <-ctx.Done():
				return
			}
			// A failed poll (the database away for a moment) skips a
			// beat: the client keeps its last value until a poll succeeds.
			for attempt := 0; ; attempt++ {
				var err error
				if v, err = next(ctx); err == nil {
					break
				}
				if ctx.Err() != nil {
					return
				}
				level := slog.LevelWarn
				if attempt > 0 {
					level = slog.LevelDebug
				}
				log.Log(ctx, level, name+" subscription: a poll failed; trying again at the next interval", "err", err)
				select {
				case <-tick.C:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return ch
}
