package eventstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"cqrsgate/internal/pglisten"
)

// A connection that dies without the network saying so (a NAT, proxy or
// firewall that drops its state, a failover address that moves) fails no
// read: the Listener would wait for notifications that never come, with
// other processes' commits reaching its followers only at their polls,
// until TCP keepalive gave up on it (minutes). So when no notification has
// come for CheckAfter, the Listener makes a round trip on its connection,
// which must answer within CheckTimeout; when it does not, the connection
// is dropped and made again. A lost connection is noticed within
// CheckAfter+CheckTimeout, and a quiet one costs a round trip each
// CheckAfter.
const (
	// DefaultListenerCheckAfter is the Listener's CheckAfter by default.
	DefaultListenerCheckAfter = 10 * time.Second
	// DefaultListenerCheckTimeout is the Listener's CheckTimeout by default.
	DefaultListenerCheckTimeout = 5 * time.Second
)

// Listener wakes a Broadcaster when any process commits events to the
// database: it LISTENs on NotifyChannel over a dedicated connection (not one
// of the pool's) and reconnects with backoff when that connection fails,
// waking everyone after a reconnect since notifications may have been missed.
// It checks a quiet connection with a round trip (see CheckAfter), so that
// one that died without a word is made again within seconds.
type Listener struct {
	// CheckAfter is how long the Listener waits for a notification before
	// it checks its connection with a round trip, and CheckTimeout how long
	// that round trip (and the LISTEN itself) may take before the
	// connection is taken for lost and made again. Zero is
	// DefaultListenerCheckAfter and DefaultListenerCheckTimeout. Set them
	// before Run.
	CheckAfter, CheckTimeout time.Duration

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
// Connection failures (a connection that does not answer its check among
// them) are logged and retried (backoff up to 5s, from 100ms again once it
// listens again); they never end Run.
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

// errNoAnswer is the error of a connection that did not answer its check.
var errNoAnswer = errors.New("the listener's connection did not answer")

// listen connects, listens and passes notifications on until the
// connection fails; listened reports whether it got as far as listening.
func (l *Listener) listen(ctx context.Context) (listened bool, err error) {
	checkAfter, checkTimeout := l.CheckAfter, l.CheckTimeout
	if checkAfter <= 0 {
		checkAfter = DefaultListenerCheckAfter
	}
	if checkTimeout <= 0 {
		checkTimeout = DefaultListenerCheckTimeout
	}
	conn, closeConn, err := pglisten.Open(ctx, l.cfg, NotifyChannel, checkTimeout)
	if err != nil {
		return false, err
	}
	defer closeConn()
	l.readyOnce.Do(func() { close(l.ready) })
	// Commits may have happened while we were not listening.
	l.wake.Notify(0)
	for {
		waitCtx, cancel := context.WithTimeout(ctx, checkAfter)
		n, err := conn.WaitForNotification(waitCtx)
		cancel()
		if ctx.Err() != nil {
			return true, ctx.Err()
		}
		if errors.Is(err, context.DeadlineExceeded) {
			// Quiet for checkAfter: is anyone there? (A notification
			// that arrives meanwhile is kept for the next wait.)
			pingCtx, cancel := context.WithTimeout(ctx, checkTimeout)
			err := conn.Ping(pingCtx)
			cancel()
			if ctx.Err() != nil {
				return true, ctx.Err()
			}
			if err != nil {
				return true, fmt.Errorf("%w within %v after %v without a notification: %w", errNoAnswer, checkTimeout, checkAfter, err)
			}
			continue
		}
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
