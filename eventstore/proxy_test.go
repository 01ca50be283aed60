package eventstore_test

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

// blackholeProxy forwards TCP connections to a PostgreSQL server until
// told to blackhole them: from then on it reads what either side sends and
// forwards nothing, closing nothing, as a NAT or firewall that has dropped
// a connection's state does (neither end hears of it: no reset, no close).
// Connections accepted after that are forwarded as before.
type blackholeProxy struct {
	t        *testing.T
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

// newBlackholeProxy starts a proxy to the server cfg connects to; it
// stops when the test ends.
func newBlackholeProxy(t *testing.T, cfg *pgx.ConnConfig) *blackholeProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &blackholeProxy{t: t, ln: ln, network: "tcp", address: net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port)))}
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

// connConfig is a copy of cfg that connects through the proxy.
func (p *blackholeProxy) connConfig(cfg *pgx.ConnConfig) *pgx.ConnConfig {
	c := cfg.Copy()
	addr := p.ln.Addr().(*net.TCPAddr)
	c.Host, c.Port, c.Fallbacks = addr.IP.String(), uint16(addr.Port), nil
	return c
}

func (p *blackholeProxy) serve() {
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

// blackhole stops forwarding on every connection accepted so far.
func (p *blackholeProxy) blackhole() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.dropped.Store(true)
	}
}
