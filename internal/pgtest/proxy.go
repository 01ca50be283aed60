package pgtest

import (
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
)

// Proxy forwards TCP connections to a PostgreSQL server until told to
// blackhole them: from then on it reads what either side sends and
// forwards nothing, closing nothing, as a NAT or firewall that has dropped
// a connection's state does (neither end hears of it: no reset, no close).
// Connections accepted after that are forwarded as before. Its own
// kernel still acknowledges what the client sends, so TCP keepalive and
// TCP_USER_TIMEOUT on the client see nothing wrong, as through a proxy
// (PgBouncer, a cloud SQL proxy) whose server has gone: only a round trip
// to the server notices.
type Proxy struct {
	t        testing.TB
	ln       net.Listener
	network  string // of the server
	address  string
	accepted atomic.Int32

	mu    sync.Mutex
	conns []*proxied
	wg    sync.WaitGroup
}

type proxied struct {
	client, server net.Conn
	dropped        atomic.Bool
}

// NewProxy starts a proxy to the server cfg connects to (over TCP or a
// Unix socket); it stops when the test ends, closing every connection.
func NewProxy(t testing.TB, cfg *pgx.ConnConfig) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{t: t, ln: ln, network: "tcp", address: net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port)))}
	if strings.HasPrefix(cfg.Host, "/") {
		p.network, p.address = "unix", filepath.Join(cfg.Host, ".s.PGSQL."+strconv.Itoa(int(cfg.Port)))
	}
	p.wg.Go(p.serve)
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.client.Close()
			c.server.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

// Addr is the proxy's address, host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// ConnConfig is a copy of cfg that connects through the proxy.
func (p *Proxy) ConnConfig(cfg *pgx.ConnConfig) *pgx.ConnConfig {
	c := cfg.Copy()
	addr := p.ln.Addr().(*net.TCPAddr)
	c.Host, c.Port, c.Fallbacks = addr.IP.String(), uint16(addr.Port), nil
	return c
}

// Accepted is how many connections the proxy has accepted.
func (p *Proxy) Accepted() int { return int(p.accepted.Load()) }

func (p *Proxy) serve() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		server, err := net.Dial(p.network, p.address)
		if err != nil {
			p.t.Errorf("proxy: dialling the server: %v", err)
			client.Close()
			continue
		}
		c := &proxied{client: client, server: server}
		p.mu.Lock()
		p.conns = append(p.conns, c)
		p.mu.Unlock()
		p.accepted.Add(1)
		p.wg.Go(func() { c.forward(client, server) })
		p.wg.Go(func() { c.forward(server, client) })
	}
}

// forward copies from src to dst until either fails, or only reads from
// src once the connection is dropped.
func (c *proxied) forward(src, dst net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !c.dropped.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if !c.dropped.Load() {
				// A real end (not a blackholed one) is passed on.
				c.client.Close()
				c.server.Close()
			}
			return
		}
	}
}

// Blackhole stops forwarding on every connection accepted so far.
func (p *Proxy) Blackhole() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.dropped.Store(true)
	}
}

// EndServerSides closes the server's side of every blackholed connection,
// as the server does once its own keepalive gives up on it: the server
// ends those sessions (releasing their locks); the clients still hear
// nothing.
func (p *Proxy) EndServerSides() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		if c.dropped.Load() {
			c.server.Close()
		}
	}
}
