package eventstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Readers held back. A reader of the log sees an event only once every
// transaction older than the event's own has ended, on the whole server
// (see ReadAll, and the package documentation on gap safety). So one
// transaction with an id held open anywhere on the server (a session left
// idle in transaction, a long migration or batch job, a forgotten prepared
// transaction) holds back every reader of the log, every subscriber and
// projection of every gateway, for as long as it runs, while appends go on
// succeeding. That is the price of gap safety; ReaderLag measures it and
// names the transaction, and a LagWatch looks at it periodically, logs it
// and keeps the latest look for the metrics.

// ReaderLag is how far the readers of the log are held back, as of one
// look (see Postgres.ReaderLag).
type ReaderLag struct {
	// Readable is the readable head: every event at or below it can be
	// read (ReadAll's Page.Head).
	Readable int64
	// Committed is the highest position committed.
	Committed int64
	// Waiting is how long the oldest committed event that cannot be read
	// yet (the first above Readable) has waited since it was written; 0
	// when there is none.
	Waiting time.Duration
	// Holder is the oldest transaction running on the server, the one that
	// holds the readers back, when Waiting is not 0 and it was found; nil
	// otherwise, with HolderErr saying why when looking for it failed.
	Holder    *LagHolder
	HolderErr error
}

// Behind is how many positions the readable head is behind the committed
// head. Positions have holes (rolled-back appends), so it bounds the
// events the readers cannot read yet.
func (l ReaderLag) Behind() int64 { return max(l.Committed-l.Readable, 0) }

// LagHolder is a transaction that holds back the readers of the log, as
// pg_stat_activity (or pg_prepared_xacts, for a prepared transaction) shows
// it. Text the gateway's role may not see is empty.
type LagHolder struct {
	PID int32 // of its server process; 0 for a prepared transaction
	// Prepared is the global id of a prepared transaction (PREPARE
	// TRANSACTION), which no session holds: COMMIT PREPARED or ROLLBACK
	// PREPARED ends it. Empty for a session's transaction.
	Prepared        string
	ApplicationName string
	User            string
	Database        string
	State           string // "idle in transaction", "active", ...; "prepared" for a prepared transaction
	// XactAge is how long its transaction has been running; -1 when the
	// gateway's role may not see it (another role's session, without
	// pg_read_all_stats).
	XactAge time.Duration
}

// readerLagSQL reads the readable head (headSQL), the committed head and
// how long the first event above the readable head has waited, by the
// server's clock.
const readerLagSQL = `WITH h(head) AS (` + headSQL + `)
SELECT h.head,
	coalesce((SELECT position FROM events ORDER BY position DESC LIMIT 1), 0),
	coalesce((SELECT greatest(extract(epoch FROM clock_timestamp() - recorded_at), 0)::float8
		FROM events WHERE position > h.head ORDER BY position LIMIT 1), 0)
FROM h`

// lagHolderSQL finds the oldest transaction with an id on the server: the
// snapshots' xmin, which holds back the readers. Every role may see the
// pid, user, database, application name and transaction id of every
// session; the state and the transaction's start only of its own
// sessions (or with pg_read_all_stats).
const lagHolderSQL = `SELECT pid, gid, application_name, usename, datname, state, xact_age FROM (
	SELECT pid, '' AS gid, coalesce(application_name, '') AS application_name, coalesce(usename::text, '') AS usename,
		coalesce(datname::text, '') AS datname, coalesce(state, '') AS state,
		coalesce(extract(epoch FROM clock_timestamp() - xact_start)::float8, -1) AS xact_age, age(backend_xid) AS xid_age
	FROM pg_stat_activity WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid()
	UNION ALL
	SELECT 0, gid, '', coalesce(owner::text, ''), coalesce(database::text, ''), 'prepared',
		greatest(extract(epoch FROM clock_timestamp() - prepared), 0)::float8, age(transaction)
	FROM pg_prepared_xacts
) t ORDER BY xid_age DESC LIMIT 1`

// ReaderLag looks at how far the readers of the log are held back and,
// when they are, for the transaction that holds them. It fails (an
// Unavailable error when the database cannot be reached) only when the
// heads cannot be read; a failure to find the holder is in HolderErr.
func (s *Postgres) ReaderLag(ctx context.Context) (ReaderLag, error) {
	var lag ReaderLag
	var waiting float64
	if err := s.pool.QueryRow(ctx, readerLagSQL).Scan(&lag.Readable, &lag.Committed, &waiting); err != nil {
		return ReaderLag{}, s.dbError("reader lag", err)
	}
	lag.Waiting = time.Duration(waiting * float64(time.Second))
	if lag.Waiting == 0 {
		return lag, nil
	}
	var h LagHolder
	var xactAge float64
	err := s.pool.QueryRow(ctx, lagHolderSQL).Scan(&h.PID, &h.Prepared, &h.ApplicationName, &h.User, &h.Database, &h.State, &xactAge)
	switch {
	case err == nil:
		h.XactAge = -1
		if xactAge >= 0 {
			h.XactAge = time.Duration(xactAge * float64(time.Second))
		}
		lag.Holder = &h
	case ctx.Err() != nil:
		return ReaderLag{}, s.dbError("reader lag", err)
	case errors.Is(err, pgx.ErrNoRows):
		// It has ended since: the readers move again.
	default:
		lag.HolderErr = fmt.Errorf("finding the transaction that holds the readers back: %w", err)
	}
	return lag, nil
}

// LagWatchOptions configure a LagWatch; zero fields take the defaults.
type LagWatchOptions struct {
	// Every is the time between two looks (5s).
	Every time.Duration
	// WarnAfter is how long the readers may be held back before the
	// watch logs it at WARN (10s); it logs it again each minute while it
	// lasts, and at INFO when it ends (no event has waited that long).
	WarnAfter time.Duration
}

// lagRound is the precision of the durations a LagWatch logs.
const lagRound = 100 * time.Millisecond

// lagWarnRepeat is how often a LagWatch repeats its warning while the
// readers stay held back.
const lagWarnRepeat = time.Minute

// LagWatch looks periodically at how far the readers of the log are held
// back (Postgres.ReaderLag), keeps the latest look (Latest, for the
// metrics) and logs at WARN, naming the transaction that holds them, when
// they have been held back longer than WarnAfter.
type LagWatch struct {
	store *Postgres
	log   *slog.Logger
	opts  LagWatchOptions

	mu     sync.Mutex
	latest ReaderLag
	ok     bool // the latest look succeeded
}

// NewLagWatch returns a LagWatch of store's readers that logs to log; Run
// makes it look.
func NewLagWatch(store *Postgres, log *slog.Logger, opts LagWatchOptions) *LagWatch {
	if opts.Every <= 0 {
		opts.Every = 5 * time.Second
	}
	if opts.WarnAfter <= 0 {
		opts.WarnAfter = 10 * time.Second
	}
	return &LagWatch{store: store, log: log, opts: opts}
}

// Latest returns the latest look, and false when there is none or it
// failed (the database could not be reached).
func (w *LagWatch) Latest() (ReaderLag, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.latest, w.ok
}

// Run looks every Every until ctx ends, then returns nil. A look that
// fails is logged at DEBUG (the hub and the runners say the database is
// away) and leaves Latest without a look until one succeeds.
func (w *LagWatch) Run(ctx context.Context) error {
	var warned time.Time    // when the watch last warned of this stretch; zero when not
	var worst time.Duration // the longest wait seen in this stretch
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		lookCtx, cancel := context.WithTimeout(ctx, max(w.opts.Every, 5*time.Second))
		lag, err := w.store.ReaderLag(lookCtx)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		w.mu.Lock()
		w.latest, w.ok = lag, err == nil
		w.mu.Unlock()
		switch {
		case err != nil:
			w.log.DebugContext(ctx, "eventstore: looking at how far the readers of the log are held back failed", "err", err)
		case lag.Waiting >= w.opts.WarnAfter:
			worst = max(worst, lag.Waiting)
			if warned.IsZero() || time.Since(warned) >= lagWarnRepeat {
				warned = time.Now()
				w.log.WarnContext(ctx, "eventstore: an open transaction holds back every reader of the log (projections, subscriptions, every gateway) until it ends",
					lagAttrs(lag)...)
			}
		case !warned.IsZero():
			// The oldest event waiting is not old any more: the
			// transaction that held it back has ended.
			w.log.InfoContext(ctx, "eventstore: readers of the log no longer held back", "heldBack", worst.Round(lagRound).String(), "readable", lag.Readable)
			warned, worst = time.Time{}, 0
		}
		timer.Reset(w.opts.Every)
	}
}

// lagAttrs are the log attributes of a look at the readers held back.
func lagAttrs(lag ReaderLag) []any {
	attrs := []any{"heldBack", lag.Waiting.Round(lagRound).String(), "behind", lag.Behind(), "readable", lag.Readable, "committed", lag.Committed}
	switch h := lag.Holder; {
	case h != nil && h.Prepared != "":
		attrs = append(attrs, "holderPrepared", h.Prepared, "holderUser", h.User, "holderDatabase", h.Database, "holderXactAge", h.XactAge.Round(lagRound).String(),
			"hint", "a prepared transaction: end it with COMMIT PREPARED or ROLLBACK PREPARED")
	case h != nil:
		state, age := h.State, "unknown (another role's session: grant the gateway's role pg_read_all_stats to see it)"
		if state == "" {
			state = "unknown"
		}
		if h.XactAge >= 0 {
			age = h.XactAge.Round(lagRound).String()
		}
		attrs = append(attrs, "holderPid", h.PID, "holderApplication", h.ApplicationName, "holderUser", h.User, "holderDatabase", h.Database,
			"holderState", state, "holderXactAge", age)
	case lag.HolderErr != nil:
		attrs = append(attrs, "holderErr", lag.HolderErr.Error())
	}
	return attrs
}
