// Package pgdial dials the gateway's PostgreSQL connections with TCP
// keepalive and TCP_USER_TIMEOUT, so that a connection that dies without
// the network saying so (a NAT or firewall that drops its state, a
// failover address that moves, a partition: no reset, no close) fails
// whatever waits on it within a bounded time, where it hung for as long as
// the kernel retransmits (tcp_retries2: about 15 minutes on Linux) or, idle,
// until the operating system's keepalive gave up.
//
// The settings are libpq's connection parameters, so a DATABASE_URL
// written for libpq means the same here: keepalives, keepalives_idle,
// keepalives_interval, keepalives_count and tcp_user_timeout. pgx does not
// know them: it leaves them among the run-time parameters it sends the
// server, which refuses the connection ("unrecognized configuration
// parameter"). Configure takes them out and applies them.
//
// They act on TCP connections only (a Unix socket has no network to lose),
// and only on the first hop: through a TCP proxy (PgBouncer, a cloud SQL
// proxy, a sidecar) they watch the connection to the proxy, not the
// server behind it.
package pgdial

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Settings are the TCP settings of a connection's socket.
type Settings struct {
	// Keepalives turns TCP keepalive on (libpq's keepalives=1).
	Keepalives bool
	// KeepalivesIdle is how long a connection is idle before the first
	// keepalive probe, KeepalivesInterval the time between probes and
	// KeepalivesCount how many may go unanswered before the connection is
	// dropped (keepalives_idle and keepalives_interval in seconds,
	// keepalives_count). Zero is the operating system's setting, as with
	// libpq (on Linux net.ipv4.tcp_keepalive_time, 2 hours;
	// tcp_keepalive_intvl, 75 s; tcp_keepalive_probes, 9).
	KeepalivesIdle, KeepalivesInterval time.Duration
	KeepalivesCount                    int
	// UserTimeout is how long data sent may go unacknowledged before the
	// connection is dropped (TCP_USER_TIMEOUT; tcp_user_timeout, in
	// milliseconds); on Linux it also bounds the keepalive probes, taking
	// the place of their count. Zero is the operating system's setting:
	// none, the kernel retransmits for about 15 minutes. Linux only: it
	// does nothing elsewhere, as with libpq.
	UserTimeout time.Duration
}

// Defaults are the settings of a parameter the connection string leaves
// out: keepalive after 15 s idle, a probe every 5 s, dropped after 3
// unanswered, and 30 s for data to be acknowledged. A connection that
// dies silently is noticed within about 30 s whatever it was doing: idle
// or waiting for an answer the server had acknowledged the question of
// (15 s + 3 × 5 s), or sending (30 s).
func Defaults() Settings {
	return Settings{
		Keepalives:         true,
		KeepalivesIdle:     15 * time.Second,
		KeepalivesInterval: 5 * time.Second,
		KeepalivesCount:    3,
		UserTimeout:        30 * time.Second,
	}
}

// Bounds of the parameters: Linux's limits of TCP_KEEPIDLE and
// TCP_KEEPINTVL (MAX_TCP_KEEPIDLE, MAX_TCP_KEEPINTVL) and TCP_KEEPCNT
// (MAX_TCP_KEEPCNT), and TCP_USER_TIMEOUT's int of milliseconds. A value
// beyond them would be refused by setsockopt, which Go's dialer ignores for
// keepalive: the connection would keep the system's setting without a word.
const (
	maxKeepaliveSeconds = 32767
	maxKeepaliveCount   = 127
	maxUserTimeoutMs    = 1<<31 - 1
)

// tcpParams are the connection parameters Settings are read from.
var tcpParams = []string{"keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count", "tcp_user_timeout"}

// Take removes the parameters of Settings from params (a pgconn.Config's
// RuntimeParams, where pgx leaves the connection parameters it does not
// know) and returns the settings they give, Defaults for those left out.
// A parameter that is not a whole number in its range is an error naming
// the parameter, its value and what it must be; the connection string and
// its password are not in it.
func Take(params map[string]string) (Settings, error) {
	s := Defaults()
	if v, ok := params["keepalives"]; ok {
		n, err := whole(v, 0, 1)
		if err != nil {
			return s, fmt.Errorf("keepalives must be 1 (on) or 0 (off), got %q", v)
		}
		s.Keepalives = n == 1
	}
	seconds := func(name string, into *time.Duration) error {
		v, ok := params[name]
		if !ok {
			return nil
		}
		n, err := whole(v, 0, maxKeepaliveSeconds)
		if err != nil {
			return fmt.Errorf("%s must be a whole number of seconds from 0 (the system's setting) to %d, got %q", name, maxKeepaliveSeconds, v)
		}
		*into = time.Duration(n) * time.Second
		return nil
	}
	if err := seconds("keepalives_idle", &s.KeepalivesIdle); err != nil {
		return s, err
	}
	if err := seconds("keepalives_interval", &s.KeepalivesInterval); err != nil {
		return s, err
	}
	if v, ok := params["keepalives_count"]; ok {
		n, err := whole(v, 0, maxKeepaliveCount)
		if err != nil {
			return s, fmt.Errorf("keepalives_count must be a whole number from 0 (the system's setting) to %d, got %q", maxKeepaliveCount, v)
		}
		s.KeepalivesCount = n
	}
	if v, ok := params["tcp_user_timeout"]; ok {
		n, err := whole(v, 0, maxUserTimeoutMs)
		if err != nil {
			return s, fmt.Errorf("tcp_user_timeout must be a whole number of milliseconds from 0 (the system's setting) to %d, got %q", maxUserTimeoutMs, v)
		}
		s.UserTimeout = time.Duration(n) * time.Millisecond
	}
	for _, p := range tcpParams {
		delete(params, p)
	}
	return s, nil
}

// whole parses v (spaces around it allowed, as libpq allows them) as a
// whole number from lo to hi.
func whole(v string, lo, hi int) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return 0, err
	}
	if n < lo || n > hi {
		return 0, strconv.ErrRange
	}
	return n, nil
}

// Configure takes the settings out of cfg's run-time parameters (see
// Take) and has cfg dial with them (its DialFunc; its fallbacks share
// them). It returns the settings, or Take's error, leaving cfg as it was.
func Configure(cfg *pgconn.Config) (Settings, error) {
	s, err := Take(cfg.RuntimeParams)
	if err != nil {
		return s, err
	}
	cfg.DialFunc = s.Dialer().DialContext
	return s, nil
}

// Dialer returns a dialer that applies s to the TCP connections it makes;
// other connections (Unix sockets) are made as they are.
func (s Settings) Dialer() *net.Dialer {
	d := &net.Dialer{KeepAlive: -1} // off, unless s says otherwise
	if s.Keepalives {
		// Zero is the system's setting here, where Go would take its own
		// defaults for it; negative leaves the socket's option alone.
		orSystem := func(d time.Duration) time.Duration {
			if d <= 0 {
				return -1
			}
			return d
		}
		count := s.KeepalivesCount
		if count <= 0 {
			count = -1
		}
		d.KeepAliveConfig = net.KeepAliveConfig{Enable: true, Idle: orSystem(s.KeepalivesIdle), Interval: orSystem(s.KeepalivesInterval), Count: count}
	}
	if s.UserTimeout > 0 {
		d.Control = userTimeoutControl(s.UserTimeout)
	}
	return d
}

// String describes s for the log.
func (s Settings) String() string {
	if !s.Keepalives {
		return fmt.Sprintf("keepalives off, tcp_user_timeout %s", orSystemString(s.UserTimeout))
	}
	count := "the system's"
	if s.KeepalivesCount > 0 {
		count = strconv.Itoa(s.KeepalivesCount)
	}
	return fmt.Sprintf("keepalives after %s idle, every %s, dropped after %s unanswered; tcp_user_timeout %s",
		orSystemString(s.KeepalivesIdle), orSystemString(s.KeepalivesInterval), count, orSystemString(s.UserTimeout))
}

func orSystemString(d time.Duration) string {
	if d <= 0 {
		return "the system's"
	}
	return d.String()
}
