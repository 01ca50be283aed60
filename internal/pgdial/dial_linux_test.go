package pgdial_test

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"cqrsgate/internal/pgdial"
	"cqrsgate/internal/pgtest"
)

// sockopts reads a TCP connection's keepalive and TCP_USER_TIMEOUT
// options: SO_KEEPALIVE, TCP_KEEPIDLE and TCP_KEEPINTVL (seconds),
// TCP_KEEPCNT, TCP_USER_TIMEOUT (milliseconds).
func sockopts(t *testing.T, c net.Conn) [5]int {
	t.Helper()
	tc, ok := c.(*net.TCPConn)
	if !ok {
		t.Fatalf("%T is not a TCP connection", c)
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var got [5]int
	var gerr error
	err = raw.Control(func(fd uintptr) {
		for i, o := range [][2]int{{syscall.SOL_SOCKET, syscall.SO_KEEPALIVE}, {syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE},
			{syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL}, {syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT}, {syscall.IPPROTO_TCP, 0x12 /* TCP_USER_TIMEOUT */}} {
			v, err := syscall.GetsockoptInt(int(fd), o[0], o[1])
			if err != nil && gerr == nil {
				gerr = fmt.Errorf("getsockopt %v: %w", o, err)
			}
			got[i] = v
		}
	})
	if err != nil || gerr != nil {
		t.Fatal(err, gerr)
	}
	return got
}

// TestDialerSetsTheSocketOptions: the settings are the TCP socket's
// options; 0 leaves the system's; keepalives off leaves keepalive off;
// a Unix socket is dialled as it was.
func TestDialerSetsTheSocketOptions(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	dial := func(s pgdial.Settings) [5]int {
		t.Helper()
		c, err := s.Dialer().DialContext(context.Background(), "tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return sockopts(t, c)
	}
	plain, err := (&net.Dialer{KeepAlive: -1}).Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	system := sockopts(t, plain) // a socket's options as the system sets them
	plain.Close()

	if got, want := dial(pgdial.Defaults()), [5]int{1, 15, 5, 3, 30000}; got != want {
		t.Errorf("defaults: SO_KEEPALIVE, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT, TCP_USER_TIMEOUT = %v, want %v", got, want)
	}
	custom := pgdial.Settings{Keepalives: true, KeepalivesIdle: 60 * time.Second, KeepalivesInterval: 7 * time.Second, KeepalivesCount: 4, UserTimeout: 12500 * time.Millisecond}
	if got, want := dial(custom), [5]int{1, 60, 7, 4, 12500}; got != want {
		t.Errorf("%+v: %v, want %v", custom, got, want)
	}
	if got, want := dial(pgdial.Settings{Keepalives: true}), [5]int{1, system[1], system[2], system[3], system[4]}; got != want {
		t.Errorf("zeros (the system's): %v, want %v", got, want)
	}
	if got := dial(pgdial.Settings{UserTimeout: time.Second}); got[0] != 0 || got[4] != 1000 {
		t.Errorf("keepalives off: %v, want SO_KEEPALIVE 0 and TCP_USER_TIMEOUT 1000", got)
	}

	sock := filepath.Join(t.TempDir(), "s")
	uln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer uln.Close()
	c, err := pgdial.Defaults().Dialer().DialContext(context.Background(), "unix", sock)
	if err != nil {
		t.Fatalf("dialling a Unix socket: %v", err)
	}
	c.Close()
}

// TestURLParametersAreTheClients: a connection string with libpq's TCP
// parameters connects, over TCP, with them on its socket. pgx does not
// know them and sent them to the server as run-time parameters, which it
// refused: a DATABASE_URL written for libpq could not be used.
func TestURLParametersAreTheClients(t *testing.T) {
	ctx := context.Background()
	base, err := pgx.ParseConfig(pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	proxy := pgtest.NewProxy(t, base) // TCP to the server, which may listen on a Unix socket only
	url := fmt.Sprintf("postgres://%s@%s/%s?sslmode=disable&keepalives=1&keepalives_idle=20&keepalives_interval=4&keepalives_count=5&tcp_user_timeout=25000",
		base.User, proxy.Addr(), base.Database)

	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	if conn, err := pgx.ConnectConfig(ctx, cfg.Copy()); err == nil {
		conn.Close(ctx)
		t.Log("the server took the parameters as pgx passes them on (it no longer refuses them?)")
	} else {
		t.Logf("as pgx passes them on: %v", err)
	}

	s, err := pgdial.Configure(&cfg.Config)
	if err != nil {
		t.Fatal(err)
	}
	if want := (pgdial.Settings{Keepalives: true, KeepalivesIdle: 20 * time.Second, KeepalivesInterval: 4 * time.Second, KeepalivesCount: 5, UserTimeout: 25 * time.Second}); s != want {
		t.Errorf("settings %+v, want %+v", s, want)
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("connecting with libpq's TCP parameters: %v", err)
	}
	defer conn.Close(ctx)
	if got, want := sockopts(t, conn.PgConn().Conn()), [5]int{1, 20, 4, 5, 25000}; got != want {
		t.Errorf("the connection's socket: %v, want %v", got, want)
	}
	if err := conn.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}
