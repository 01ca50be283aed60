package eventstore

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Listener wakes a Broadcaster when any process commits events to the
// database: it LISTENs on NotifyChannel over a dedicated connection (not one
// of the pool's) and reconnects with backoff when that connection fails,
// waking everyone after a reconnect since notifications may have been missed.
type Listener struct {
	cfg       *pgx.ConnConfig
	wake      *Broadcaster
	log       *slog.Logger
	readyOnce sync.Once
	ready     chan struct{}
}

// NewListener returns a Listener that connects with cfg and notifies wake.
func NewListener(cfg *pgx.ConnConfig, wake *Broadcaster, log *slog.Logger) *Listener {
	return &Listener{cfg: cfg, wake: wake, log: log, ready: make(chan struct{})}
}

// Ready is closed once the Listener is listening for the first time.
func (l *Listener) Ready() <-chan struct{} { return l.ready }

// Run listens until ctx ends, then closes its connection and returns nil.
// Connection failures are logged and retried (backoff up to 5s, from
// 100ms again once it listens again); they never end Run.
func (l *Listener) Run(ctx context.Context) error {
	const firstBackoff = 100 * time.Millisecond
	backoff := firstBackoff
	for {
		listened, err := l.listen(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if listened {
			// A connection that was lost, not one that could not be
			// had: each loss over the process's life (a proxy recycling
			// connections) is retried as promptly as the first.
			backoff = firstBackoff
		}
		l.log.WarnContext(ctx, "eventstore: listener connection lost; reconnecting", "err", err, "backoff", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// listen connects, listens and passes notifications on until the
// connection fails; listened reports whether it got as far as listening.
func (l *Listener) listen(ctx context.Context) (listened bool, err error) {
	conn, err := pgx.ConnectConfig(ctx, l.cfg)
	if err != nil {
		return false, err
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = conn.Close(closeCtx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+NotifyChannel); err != nil {
		return false, err
	}
	l.readyOnce.Do(func() { close(l.ready) })
	// Commits may have happened while we were not listening.
	l.wake.Notify(0)
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return true, err
		}
		payload, origin, _ := strings.Cut(n.Payload, " ")
		if origin == l.wake.Origin() {
			continue // this process's commit: the store woke its followers already
		}
		pos, perr := strconv.ParseInt(payload, 10, 64)
		if perr != nil {
			pos = 0
		}
		l.wake.Notify(pos)
	}
}

// Follow reads the log after q.After and calls handle with each non-empty
// page, in position order, until ctx ends (returning ctx.Err()) or handle or
// a read fails (returning that error). When caught up it waits for s.Changed
// and, as a safety net against lost notifications, re-reads every poll.
func Follow(ctx context.Context, s Store, q AllQuery, poll time.Duration, handle func(Page) error) error {
	if poll <= 0 {
		return errors.New("follow: poll interval must be positive")
	}
	timer := time.NewTimer(poll)
	defer timer.Stop()
	for {
		changed := s.Changed()
		page, err := s.ReadAll(ctx, q)
		if err != nil {
			return err
		}
		if len(page.Events) > 0 {
			if err := handle(page); err != nil {
				return err
			}
		}
		q.After = page.Next
		if len(page.Events) == q.Limit && q.Limit > 0 || len(page.Events) == DefaultLimit && q.Limit == 0 {
			continue // more is waiting
		}
		timer.Reset(poll)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		case <-timer.C:
		}
	}
}
