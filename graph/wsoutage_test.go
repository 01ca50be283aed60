package graph_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"cqrsgate/domain"
	"cqrsgate/eventstore"
	"cqrsgate/graph"
	"cqrsgate/internal/logbuf"
	"cqrsgate/internal/pgtest"
	"cqrsgate/projections"
	"cqrsgate/schemaregistry"
)

// outageGateway is a gateway wired as server.go wires it (the store under
// a Tail, a Listener for other processes' commits, the hub, the
// projections), on a database of its own, and a second process (another
// pool and store, no hub) that appends to the same database.
type outageGateway struct {
	*client         // the gateway's GraphQL endpoint
	ws      string  // its websocket URL
	other   *client // the second process's GraphQL endpoint
	otherS  *eventstore.Postgres
	name    string // the database's name
	dbURL   string
	logs    *logbuf.Buffer
}

func newOutageGateway(t *testing.T) *outageGateway {
	t.Helper()
	url := pgtest.NewDatabase(t)
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	err = projections.Migrate(ctx, conn.Conn())
	conn.Release()
	if err != nil {
		t.Fatal(err)
	}
	logs := &logbuf.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the gateway's log:\n%s", logs)
		}
	})
	wake := eventstore.NewBroadcaster()
	raw := eventstore.NewPostgres(pool, log, eventstore.Limits{}, wake)
	registry, err := schemaregistry.New(ctx, pool, raw, log, schemaregistry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := registry.Seed(ctx, domain.EventSchemas()); err != nil {
		t.Fatal(err)
	}
	tail := eventstore.NewTail(raw, eventstore.TailOptions{})
	store := eventstore.WithSchemas(tail, registry)
	commands := domain.NewService(store, log, time.Now, domain.ServiceOptions{})
	// Back at work as soon as the database is (by default within 2s).
	runner, err := projections.NewRunner(pool, store, log, projections.Options{Poll: 50 * time.Millisecond, LeaderRetry: 50 * time.Millisecond}, projections.Shipped()...)
	if err != nil {
		t.Fatal(err)
	}
	hub := eventstore.NewHub(tail, log)
	runCtx, stop := context.WithCancel(ctx)
	var bg sync.WaitGroup
	for _, run := range []func(context.Context) error{
		eventstore.NewListener(cfg.ConnConfig.Copy(), wake, log).Run, hub.Run, runner.Run, registry.Run,
	} {
		bg.Go(func() { _ = run(runCtx) })
	}
	t.Cleanup(func() { stop(); bg.Wait() })
	awaitServing(t, pool, shippedNames()...)
	ws := &graph.Websocket{}
	srv := httptest.NewServer(graph.NewHandler(graph.Config{
		Store: store, Schemas: registry, Commands: commands, Log: log, Hub: hub, Websocket: ws,
		AccountReads: projections.NewAccountQueries(pool), OrderReads: projections.NewOrderQueries(pool),
		ProductReads: projections.NewProductQueries(pool), FulfilmentReads: projections.NewFulfilmentQueries(pool),
		Admin: projections.NewAdmin(pool), Positions: projections.NewPositions(pool, runner),
	}))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = ws.Shutdown(ctx)
		srv.Close()
	})

	// The other process.
	otherPool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(otherPool.Close)
	otherStore := eventstore.NewPostgres(otherPool, log, eventstore.Limits{}, eventstore.NewBroadcaster())
	other := newServerWith(t, otherStore, domain.NewService(otherStore, log, time.Now, domain.ServiceOptions{}), log)
	return &outageGateway{client: &client{t: t, url: srv.URL}, ws: "ws" + strings.TrimPrefix(srv.URL, "http"), other: other, otherS: otherStore, name: cfg.ConnConfig.Database, dbURL: url, logs: logs}
}

// admin runs sql on the server's maintenance database (not the gateway's).
func (g *outageGateway) admin(sql string) {
	g.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, pgtest.URLFor("postgres"))
	if err != nil {
		g.t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		g.t.Fatalf("%s: %v", sql, err)
	}
}

// killListener ends the connection the gateway LISTENs on.
func (g *outageGateway) killListener() {
	g.t.Helper()
	g.admin(fmt.Sprintf(`DO $$ BEGIN
		IF (SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '%s' AND query = 'LISTEN %s') = 0 THEN
			RAISE 'no listener';
		END IF; END $$`, g.name, eventstore.NotifyChannel))
}

// down makes the database unreachable: every connection to it ends, and
// new ones are refused until up.
func (g *outageGateway) down() {
	g.t.Helper()
	g.admin(fmt.Sprintf(`ALTER DATABASE %s ALLOW_CONNECTIONS false`, pgx.Identifier{g.name}.Sanitize()))
	g.admin(fmt.Sprintf(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '%s'`, g.name))
	g.t.Cleanup(g.up) // for the database to be dropped
}

// up lets connections to the database again.
func (g *outageGateway) up() {
	g.t.Helper()
	g.admin(fmt.Sprintf(`ALTER DATABASE %s ALLOW_CONNECTIONS true`, pgx.Identifier{g.name}.Sanitize()))
}

// holdProjections holds up the projections' next batches (they wait to
// move their checkpoints) until down ends the hold. A table lock, which
// takes no transaction id: one that did (a row lock) would hold back every
// reader of the log too (see eventstore's gap safety).
func (g *outageGateway) holdProjections() {
	g.t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, g.dbURL)
	if err != nil {
		g.t.Fatal(err)
	}
	g.t.Cleanup(func() { _ = conn.Close(ctx) })
	tx, err := conn.Begin(ctx)
	if err != nil {
		g.t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `LOCK TABLE projections IN SHARE MODE`); err != nil {
		g.t.Fatal(err)
	}
}

// tick appends n events in the other process and returns their positions.
func (g *outageGateway) tick(n int) []int64 {
	g.t.Helper()
	return appendN(g.t, g.otherS, "ticks-1", n)
}

// dial connects a graphql-transport-ws client and acknowledges it.
func (g *outageGateway) dial() *wsClient {
	g.t.Helper()
	c := (&wsServer{url: g.ws}).dial(g.t, graph.ProtocolTransportWS)
	c.init()
	return c
}

// positions reads the next messages of c until it has n events, and
// returns their positions; it fails on anything else than a "next" (and
// ka/ping).
func (c *wsClient) positions(n int, within time.Duration) []int64 {
	c.t.Helper()
	got, err := c.readPositions(n, within)
	if err != nil {
		c.t.Fatal(err)
	}
	return got
}

// readPositions is positions returning what fails, for another goroutine.
func (c *wsClient) readPositions(n int, within time.Duration) ([]int64, error) {
	deadline := time.Now().Add(within)
	var got []int64
	for len(got) < n {
		_ = c.conn.SetReadDeadline(deadline)
		var m wsMsg
		if err := c.conn.ReadJSON(&m); err != nil {
			return got, fmt.Errorf("after %d events: %w", len(got), err)
		}
		switch m.Type {
		case "next":
			var p struct {
				Data   struct{ Events struct{ Position int64 } }
				Errors []any
			}
			if err := json.Unmarshal(m.Payload, &p); err != nil || len(p.Errors) > 0 {
				return got, fmt.Errorf("after %d events: %s (%v)", len(got), m.Payload, err)
			}
			got = append(got, p.Data.Events.Position)
		case "ping", "pong", "ka":
		default:
			return got, fmt.Errorf("after %d events: %s %s", len(got), m.Type, m.Payload)
		}
	}
	return got, nil
}

// quiet fails when c receives a message within d.
func (c *wsClient) quiet(d time.Duration) {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(d))
	var m wsMsg
	if err := c.conn.ReadJSON(&m); err == nil {
		c.t.Fatalf("unexpected %s %s", m.Type, m.Payload)
	}
}

// TestLostListenerLosesNoEvent: while the gateway's LISTEN connection is
// down, another process's commits are not announced to it; a subscriber
// still receives each of them, once, in order, without waiting for a
// later commit.
func TestLostListenerLosesNoEvent(t *testing.T) {
	g := newOutageGateway(t)
	c := g.dial()
	c.send(subscribeMsg("s", eventsSubscription, map[string]any{"after": 0}))
	want := g.tick(3)
	got := c.positions(3, 5*time.Second)
	for round := range 3 {
		g.killListener()
		more := g.tick(5)
		want = append(want, more...)
		start := time.Now()
		got = append(got, c.positions(len(more), 5*time.Second)...)
		t.Logf("round %d: the events committed with the listener down came in %v", round, time.Since(start))
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	c.quiet(1500 * time.Millisecond)
}

// TestDatabaseOutageKeepsSubscriptions: every connection to the database
// ends, and it refuses new ones for a while. Subscriptions stay open: a
// live log subscriber, one still catching up from the store and a row
// subscriber receive, once the database is back, what was committed
// before and after, in order, once. The row subscriber, whose change was
// not applied yet when the database went, sends it as soon as the
// database is back; it tried again after 1, 3, 7, 15... seconds, each
// failing while the database was away, and sent it up to 30 seconds late.
func TestDatabaseOutageKeepsSubscriptions(t *testing.T) {
	g := newOutageGateway(t)
	g.other.mustPost(`mutation { openAccount(input: {accountId: "a1", owner: "ada", currency: "EUR", initialDeposit: 100}) { position } }`, nil, &struct{}{})
	// A backlog the catching-up subscriber is still reading when the
	// database goes: more than the server buffers for it (its socket's
	// 4 MB at most, and 256 messages), and than the gateway's Tail holds
	// (4,096 events to 8,192), which would serve it without the database.
	var backlog []int64
	data := json.RawMessage(`{"blob": "` + strings.Repeat("x", 1000) + `"}`)
	for range 10 {
		events := make([]domain.EventData, 1000)
		for i := range events {
			events[i] = domain.EventData{Type: "Tick", SchemaVersion: 1, Data: data}
		}
		res, err := g.otherS.Append(context.Background(), "ticks-1", domain.ExpectAny, events...)
		if err != nil {
			t.Fatal(err)
		}
		for p := res.LastPosition - 999; p <= res.LastPosition; p++ {
			backlog = append(backlog, p)
		}
	}
	live := g.dial()
	live.send(subscribeMsg("s", eventsSubscription, map[string]any{"after": backlog[len(backlog)-1], "prefix": "ticks-"}))
	rows := g.dial()
	rows.send(subscribeMsg("a", `subscription { accountChanged(id: "a1") { balance } }`, nil))
	behind := tinyBufferClient(t, &wsServer{url: g.ws})
	behind.send(subscribeMsg("s", `subscription { events(after: 0, streamPrefix: "ticks-") { position data } }`, nil))
	caughtUp := behind.positions(10, 10*time.Second) // and then it reads nothing for a while
	time.Sleep(200 * time.Millisecond)               // for the live ones to join the feed
	want := g.tick(3)
	got := live.positions(3, 5*time.Second)
	// The row subscriber's change waits for the projection, held up
	// until the database goes (which ends the hold).
	rowsAt := make(chan time.Time, 1)
	var states []string
	statesErr := make(chan error, 1)
	go func() {
		_ = rows.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		for !slices.Contains(states, `{"balance":111}`) {
			var m wsMsg
			if err := rows.conn.ReadJSON(&m); err != nil {
				statesErr <- fmt.Errorf("accountChanged sent %v, then %w", states, err)
				return
			}
			if len(states) == 0 {
				rowsAt <- time.Now()
			}
			var p struct {
				Data struct{ AccountChanged json.RawMessage }
			}
			_ = json.Unmarshal(m.Payload, &p)
			states = append(states, m.Type+" "+string(p.Data.AccountChanged))
			if m.Type == "next" {
				states[len(states)-1] = string(p.Data.AccountChanged)
			}
		}
		statesErr <- nil
	}()
	g.holdProjections()
	g.deposit("a1", 1)
	want = append(want, g.tick(2)...)  // right before: their notifications may be lost
	time.Sleep(100 * time.Millisecond) // for the row subscriber to wait for the deposit
	g.down()
	// The subscriber catching up reads on: what was sent to it, then
	// nothing until its next read of the log succeeds.
	var rest []int64
	restErr := make(chan error, 1)
	restN := len(backlog) + len(want) + 4 - len(caughtUp) // the 4: ticks after the outage
	go func() {
		var err error
		rest, err = behind.readPositions(restN, 30*time.Second)
		restErr <- err
	}()
	// Long enough for the row subscriber's tries to be 4 seconds apart.
	time.Sleep(3500 * time.Millisecond)
	g.up()
	up := time.Now()
	more := g.tick(4)
	want = append(want, more...)
	g.deposit("a1", 10)
	got = append(got, live.positions(len(want)-len(got), 15*time.Second)...)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("the live subscriber got %v, want %v", got, want)
	}
	live.quiet(300 * time.Millisecond)
	if err := <-restErr; err != nil {
		t.Fatalf("the subscriber catching up, after %d events: %v", len(caughtUp), err)
	}
	backlog = append(backlog, want...)
	if caughtUp = append(caughtUp, rest...); fmt.Sprint(caughtUp) != fmt.Sprint(backlog) {
		t.Fatalf("the subscriber catching up got %d events, want %d in order", len(caughtUp), len(backlog))
	}
	behind.quiet(300 * time.Millisecond)
	if !strings.Contains(g.logs.String(), "hub subscriber: catching up from the store failed") {
		t.Error("the subscriber catching up read nothing during the outage: the test did not test it")
	}
	// The row as of the deposit made before the outage (or, coalesced, the
	// one after), once the database is back (its hub reads again within a
	// second), then as of the last, each state once.
	if err := <-statesErr; err != nil {
		t.Fatal(err)
	}
	if at := <-rowsAt; at.Sub(up) > 2500*time.Millisecond {
		t.Errorf("the row subscriber sent the change %v after the database was back", at.Sub(up))
	}
	if !strings.Contains(g.logs.String(), "row subscription: the row is not readable yet") {
		t.Error("the row subscriber's change was read before the outage: the test did not test it")
	}
	if s := fmt.Sprint(states); s != `[{"balance":101} {"balance":111}]` && s != `[{"balance":111}]` {
		t.Fatalf("accountChanged sent %v", states)
	}
	rows.quiet(300 * time.Millisecond)
}

// deposit deposits amount on account id in the other process and returns
// its position.
func (g *outageGateway) deposit(id string, amount int) int64 {
	g.t.Helper()
	var out struct{ DepositMoney struct{ Position int64 } }
	g.other.mustPost(`mutation($id: ID!, $amount: Long!) { depositMoney(input: {accountId: $id, amount: $amount}) { position } }`,
		map[string]any{"id": id, "amount": amount}, &out)
	return out.DepositMoney.Position
}

// TestSubscribeDuringOutage: while the database is away, an operation
// that cannot start (a subscription's first read, a query of a read model)
// fails at once with UNAVAILABLE; a subscription gets it as graphql-ws's
// servers send an error of its start (next, then complete) and the client
// subscribes again, with after, once the database is back. Reads of the
// read models and of the projections' status failed as INTERNAL, each
// logged as an internal error.
func TestSubscribeDuringOutage(t *testing.T) {
	g := newOutageGateway(t)
	g.other.mustPost(`mutation { openAccount(input: {accountId: "a1", owner: "ada", currency: "EUR", initialDeposit: 100}) { position } }`, nil, &struct{}{})
	want := g.tick(3)
	g.down()
	// Past the Tail's MaxAge (a second): until then it answers reads of
	// the newest part of the log from memory, database or not.
	time.Sleep(1100 * time.Millisecond)
	c := g.dial()
	subs := map[string]string{
		"events":   `subscription { events(after: 0, streamPrefix: "ticks-") { position } }`,
		"account":  `subscription { accountChanged(id: "a1", after: 0) { balance } }`,
		"status":   `subscription { projectionStatus { name } }`,
		"fromNow":  `subscription { accountChanged(id: "a1") { balance } }`,
		"orders":   `subscription { orderChanged(customerId: "c1") { id } }`,
		"products": `subscription { productChanged(sku: "w") { available } }`,
	}
	for id, q := range subs {
		c.send(subscribeMsg(id, q, nil))
	}
	got := map[string][]string{} // by id: each message's type, and a next's error code
	for done := 0; done < len(subs); {
		m := c.read()
		if subs[m.ID] == "" {
			t.Fatalf("%s %s %s", m.ID, m.Type, m.Payload)
		}
		var p gqlResponse
		_ = json.Unmarshal(m.Payload, &p)
		for _, e := range p.Errors {
			m.Type += fmt.Sprintf(" %v", e.Extensions["code"])
		}
		got[m.ID] = append(got[m.ID], m.Type)
		if m.Type == "complete" {
			done++
		}
	}
	for id := range subs {
		if fmt.Sprint(got[id]) != "[next UNAVAILABLE complete]" {
			t.Errorf("%s while the database is away: %v, want [next UNAVAILABLE complete]", id, got[id])
		}
	}
	for _, q := range []string{`{ account(id: "a1") { balance } }`, `{ projections { name } }`, `{ accounts { totalCount } }`} {
		out, _ := g.post(q, nil)
		if len(out.Errors) != 1 || out.Errors[0].Extensions["code"] != "UNAVAILABLE" {
			t.Errorf("%s while the database is away: %+v, want UNAVAILABLE", q, out.Errors)
		}
	}
	g.up()
	c.send(subscribeMsg("again", `subscription { events(after: 0, streamPrefix: "ticks-") { position } }`, nil))
	c.send(subscribeMsg("account", `subscription { accountChanged(id: "a1", after: 0) { balance } }`, nil))
	var positions []int64
	account := false
	deadline := time.Now().Add(15 * time.Second)
	for len(positions) < len(want) || !account {
		_ = c.conn.SetReadDeadline(deadline)
		var m wsMsg
		if err := c.conn.ReadJSON(&m); err != nil {
			t.Fatalf("once the database is back, %v of %v and the account (%v): %v", positions, want, account, err)
		}
		switch {
		case m.ID == "again" && m.Type == "next":
			var p struct {
				Data struct{ Events struct{ Position int64 } }
			}
			_ = json.Unmarshal(m.Payload, &p)
			positions = append(positions, p.Data.Events.Position)
		case m.ID == "account" && m.Type == "next" && string(m.Payload) == `{"data":{"accountChanged":{"balance":100}}}`:
			account = true
		default:
			t.Fatalf("once the database is back: %s %s %s", m.ID, m.Type, m.Payload)
		}
	}
	if fmt.Sprint(positions) != fmt.Sprint(want) {
		t.Fatalf("resubscribed, got %v, want %v", positions, want)
	}
}
