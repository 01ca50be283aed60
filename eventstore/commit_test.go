package eventstore_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"cqrsgate/domain"
	"cqrsgate/eventstore"
	"cqrsgate/eventstore/eventstoretest"
	"cqrsgate/internal/pgtest"
)

// lostCommitReply passes PostgreSQL's replies on, except that, once armed,
// it breaks the connection in place of the COMMIT's reply of a transaction
// that returned several rows (a batch of several appends): the commit
// happened on the server, and the client cannot know.
type lostCommitReply struct {
	net.Conn
	armed      *atomic.Bool
	raw, ready []byte
	rows       bool
}

func (c *lostCommitReply) Read(p []byte) (int, error) {
	for len(c.ready) == 0 {
		buf := make([]byte, 32<<10)
		n, err := c.Conn.Read(buf)
		c.raw = append(c.raw, buf[:n]...)
		for len(c.raw) >= 5 {
			size := int(binary.BigEndian.Uint32(c.raw[1:5]))
			if len(c.raw) < 1+size {
				break
			}
			msg := c.raw[:1+size]
			if msg[0] == 'C' { // CommandComplete
				tag := strings.TrimRight(string(msg[5:]), "\x00")
				if rest, ok := strings.CutPrefix(tag, "SELECT "); ok {
					if k, _ := strconv.Atoi(rest); k >= 2 {
						c.rows = true
					}
				}
				if tag == "COMMIT" || tag == "ROLLBACK" {
					if tag == "COMMIT" && c.rows && c.armed.CompareAndSwap(true, false) {
						c.Conn.Close()
						return 0, errors.New("test: connection lost before the COMMIT's reply")
					}
					c.rows = false
				}
			}
			c.ready = append(c.ready, msg...)
			c.raw = c.raw[1+size:]
		}
		if err != nil && len(c.ready) == 0 {
			return 0, err
		}
	}
	n := copy(p, c.ready)
	c.ready = c.ready[n:]
	return n, nil
}

// A batch of appends whose COMMIT reached PostgreSQL but whose reply was
// lost answers each of its appends that the outcome is unknown
// (UNAVAILABLE); none is tried again alone, which would find its own
// events and answer a conflict (or, with ExpectAny, write them twice).
func TestAppendsOfABatchWhoseCommitReplyIsLostAreNotRetried(t *testing.T) {
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.TLSConfig, cfg.ConnConfig.Fallbacks = nil, nil
	var armed atomic.Bool
	dial := cfg.ConnConfig.DialFunc
	cfg.ConnConfig.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &lostCommitReply{Conn: c, armed: &armed}, nil
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	s := newPostgres(t, pool)
	for round := range 20 {
		armed.Store(true)
		const n = 60
		errs := make([]error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				expected := domain.ExpectNoStream
				if i%2 == 1 {
					expected = domain.ExpectAny
				}
				_, errs[i] = s.Append(ctx, fmt.Sprintf("r%d-s%d", round, i), expected, eventstoretest.Ev("Created", i))
			}()
		}
		close(start)
		wg.Wait()
		if armed.Load() {
			continue // no batch of several appends this round
		}
		unknown := 0
		for i, err := range errs {
			stream := fmt.Sprintf("r%d-s%d", round, i)
			events, rerr := s.ReadStream(ctx, stream, eventstore.StreamQuery{})
			if rerr != nil {
				t.Fatal(rerr)
			}
			switch {
			case len(events) > 1:
				t.Errorf("%s holds %d events after one append (err %v)", stream, len(events), err)
			case err == nil && len(events) != 1:
				t.Errorf("%s: the append succeeded, but the stream holds %d events", stream, len(events))
			case err != nil && domain.CodeOf(err) != domain.Unavailable:
				t.Errorf("%s: the append was answered %v (stream holds %d events); want UNAVAILABLE or success", stream, err, len(events))
			case err != nil:
				unknown++
			}
		}
		if unknown < 2 {
			t.Fatalf("%d appends were answered as of unknown outcome; want the batch's (two or more)", unknown)
		}
		return
	}
	t.Skip("no batch of several appends formed in 20 rounds")
}
