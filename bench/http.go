package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// duration is how long each load phase runs.
func (e *env) duration() time.Duration {
	if e.quick {
		return 2 * time.Second
	}
	return 10 * time.Second
}

// load runs clients goroutines, each calling op in a loop (i counts its
// calls) until d has passed; it returns the operations completed per
// second and their latencies. The first error stops it.
func load(ctx context.Context, clients int, d time.Duration, op func(ctx context.Context, client, i int) error) (float64, []time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		lat   []time.Duration
		first atomic.Value
	)
	start := time.Now()
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for i := 0; ctx.Err() == nil; i++ {
				t0 := time.Now()
				if err := op(ctx, c, i); err != nil {
					if ctx.Err() == nil {
						first.CompareAndSwap(nil, err)
						cancel()
					}
					break
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err, _ := first.Load().(error); err != nil {
		return 0, nil, err
	}
	slices.Sort(lat)
	return float64(len(lat)) / elapsed.Seconds(), lat, nil
}

func quantile(lat []time.Duration, q float64) time.Duration {
	if len(lat) == 0 {
		return 0
	}
	return lat[min(len(lat)-1, int(q*float64(len(lat))))]
}

// httpClient keeps one connection per load client.
func httpClient(clients int) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConns: clients * 2, MaxIdleConnsPerHost: clients * 2}}
}

// gql posts a GraphQL request and fails on transport errors, non-200
// statuses and GraphQL errors; it returns the response body.
func gql(ctx context.Context, c *http.Client, addr, query string, vars map[string]any) ([]byte, error) {
	return post(ctx, c, addr, requestBody(query, vars))
}

// requestBody encodes a GraphQL request, so that a load loop can encode
// its requests once rather than on every call (the load generator shares
// the machine with what it measures).
func requestBody(query string, vars map[string]any) []byte {
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	return body
}

// post sends an encoded GraphQL request, as gql does.
func post(ctx context.Context, c *http.Client, addr string, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/graphql", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK || bytes.Contains(out, []byte(`"errors"`)) {
		return nil, fmt.Errorf("%.80s: status %d: %.300s", body, resp.StatusCode, out)
	}
	return out, nil
}

// eventsTable is the baseline's events-shaped table: the event store's
// columns, keys and defaults, without its append protocol.
const eventsTable = `CREATE TABLE events (
	position       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	event_id       uuid        NOT NULL UNIQUE,
	stream_id      text        NOT NULL,
	stream_version bigint      NOT NULL,
	event_type     text        NOT NULL,
	schema_version integer     NOT NULL,
	data           jsonb       NOT NULL,
	metadata       jsonb       NOT NULL DEFAULT '{}',
	recorded_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
	UNIQUE (stream_id, stream_version))`

// rawInserter opens the write baseline: clients connections to a fresh
// database holding the events-shaped table. Each call of turn inserts rows
// of perTx events per transaction for d and returns events per second;
// stop closes the connections and drops the database.
func (e *env) rawInserter(ctx context.Context, clients, perTx int) (turn func(d time.Duration) (float64, error), stop func(), err error) {
	dbURL, drop, err := e.database(ctx, "raw")
	if err != nil {
		return nil, nil, err
	}
	conns := make([]*pgx.Conn, 0, clients)
	stop = func() {
		for _, c := range conns {
			_ = c.Close(context.Background())
		}
		drop()
	}
	defer func() {
		if err != nil {
			stop()
		}
	}()
	setup, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return nil, nil, err
	}
	_, err = setup.Exec(ctx, eventsTable)
	_ = setup.Close(ctx)
	if err != nil {
		return nil, nil, err
	}
	for range clients {
		c, err := pgx.Connect(ctx, dbURL)
		if err != nil {
			return nil, nil, err
		}
		conns = append(conns, c)
	}
	data := `{"owner": "b", "currency": "EUR", "openedAt": "2026-11-26T00:00:00Z", "overdraftLimit": 0, "dailyWithdrawalLimit": 0}`
	round := 0 // stream names stay new from turn to turn
	turn = func(d time.Duration) (float64, error) {
		round++
		// Each op runs on ctx, not on the turn's: one under way when the
		// turn ends finishes (and counts) rather than being cancelled,
		// which would close its connection.
		ops, _, err := load(ctx, clients, d, func(_ context.Context, c, i int) error {
			stream := fmt.Sprintf("bench-%d-%d-%d", round, c, i)
			if perTx == 1 {
				_, err := conns[c].Exec(ctx, `INSERT INTO events (event_id, stream_id, stream_version, event_type, schema_version, data, metadata)
					VALUES (gen_random_uuid(), $1, 1, 'AccountOpened', 1, $2, '{"correlationId": "x"}')`, stream, data)
				return err
			}
			_, err := conns[c].Exec(ctx, `INSERT INTO events (event_id, stream_id, stream_version, event_type, schema_version, data, metadata)
				SELECT gen_random_uuid(), $1, v, 'BenchTick', 1, jsonb_build_object('n', v), '{"correlationId": "x"}' FROM generate_series(1, $2::int) v`, stream, perTx)
			return err
		})
		return ops * float64(perTx), err
	}
	return turn, stop, nil
}

// settleQuery waits (atLeast) until each read model has applied the log
// up to $p; the records it asks for need not exist.
const settleQuery = `query($p: Position) {
	account(id: "settle", atLeast: $p) { __typename }
	order(id: "settle", atLeast: $p) { __typename }
	product(sku: "settle", atLeast: $p) { __typename }
	fulfilment(orderId: "settle", atLeast: $p) { __typename }
}`

// gatewayWrites returns a turn of a write scenario against the gateway at
// addr (whose database is dbURL): clients goroutines call op for d, then
// the turn waits until the gateway's read models have applied everything
// they wrote, so that the work a turn causes is done within it and not in
// the baseline's turn. Its rate (per second, each op counting perOp) is
// over the whole turn, the wait included; lat collects the ops' latencies.
// op should run on ctx rather than on the turn's own context (see
// rawInserter).
func gatewayWrites(ctx context.Context, c *http.Client, addr, dbURL string, clients, perOp int, lat *[]time.Duration,
	op func(ctx context.Context, client, i int) error) (turn func(d time.Duration) (float64, error), stop func(), err error) {
	db, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return nil, nil, err
	}
	turn = func(d time.Duration) (float64, error) {
		start := time.Now()
		_, l, err := load(ctx, clients, d, op)
		if err != nil {
			return 0, err
		}
		*lat = append(*lat, l...)
		var head int64
		if err := db.QueryRow(ctx, "SELECT coalesce(max(position), 0) FROM events").Scan(&head); err != nil {
			return 0, err
		}
		if _, err := gql(ctx, c, addr, settleQuery, map[string]any{"p": head}); err != nil {
			return 0, fmt.Errorf("waiting for the read models: %w", err)
		}
		return float64(len(l)*perOp) / time.Since(start).Seconds(), nil
	}
	return turn, func() { _ = db.Close(context.Background()) }, nil
}

// mutations: single-event commands over HTTP, 32 clients, each on an
// aggregate of its own (a deposit into the client's account), against
// single-row inserts by 32 pgx clients, the two in alternate turns.
func (e *env) mutations(ctx context.Context) (measure, error) {
	const clients = 32
	g, dbURL, done, err := e.freshGateway(ctx, "mutations")
	if err != nil {
		return measure{}, err
	}
	defer done()
	c := httpClient(clients)
	for cl := 0; cl < clients; cl++ {
		if _, err := gql(ctx, c, g.addr, `mutation($id: ID!) { openAccount(input: {accountId: $id, owner: "b", currency: "EUR"}) { position } }`,
			map[string]any{"id": fmt.Sprintf("acc-%d", cl)}); err != nil {
			return measure{}, err
		}
	}
	const q = `mutation($id: ID!) { depositMoney(input: {accountId: $id, amount: 1}) { position } }`
	bodies := make([][]byte, clients)
	for cl := range bodies {
		bodies[cl] = requestBody(q, map[string]any{"id": fmt.Sprintf("acc-%d", cl)})
	}
	var lat []time.Duration
	gw, closeGW, err := gatewayWrites(ctx, c, g.addr, dbURL, clients, 1, &lat, func(_ context.Context, cl, _ int) error {
		_, err := post(ctx, c, g.addr, bodies[cl])
		return err
	})
	if err != nil {
		return measure{}, err
	}
	defer closeGW()
	raw, closeRaw, err := e.rawInserter(ctx, clients, 1)
	if err != nil {
		return measure{}, err
	}
	defer closeRaw()
	ops, base, err := alternate(e.duration(), gw, raw)
	if err != nil {
		return measure{}, err
	}
	slices.Sort(lat)
	return measure{Value: ops, Baseline: base, Notes: fmt.Sprintf("p50 %s p99 %s", quantile(lat, .5).Round(10*time.Microsecond), quantile(lat, .99).Round(10*time.Microsecond))}, nil
}

// batches: 100-event appendEvents over HTTP, 8 clients, against 100-row
// inserts by 8 pgx clients, the two in alternate turns.
func (e *env) batches(ctx context.Context) (measure, error) {
	const clients, size = 8, 100
	g, dbURL, done, err := e.freshGateway(ctx, "batches")
	if err != nil {
		return measure{}, err
	}
	defer done()
	c := httpClient(clients)
	if _, err := gql(ctx, c, g.addr, `mutation { registerEventSchema(type: "BenchTick", schema: {type: "object", properties: {n: {type: "integer"}}, required: ["n"]}) { version } }`, nil); err != nil {
		return measure{}, err
	}
	events := make([]map[string]any, size)
	for i := range events {
		events[i] = map[string]any{"type": "BenchTick", "data": map[string]any{"n": i}}
	}
	const q = `mutation($s: String!, $e: [EventInput!]!) { appendEvents(stream: $s, events: $e) { position } }`
	// The events are the same in every request: encoded once, with the
	// stream's name spliced in per request.
	template := requestBody(q, map[string]any{"s": "\x00", "e": events})
	before, after, found := bytes.Cut(template, []byte(`"\u0000"`))
	if !found {
		return measure{}, fmt.Errorf("no stream placeholder in %.100s", template)
	}
	var lat []time.Duration
	round := 0 // stream names stay new from turn to turn
	gw, closeGW, err := gatewayWrites(ctx, c, g.addr, dbURL, clients, size, &lat, func(_ context.Context, cl, i int) error {
		body := make([]byte, 0, len(template)+32)
		body = fmt.Appendf(append(body, before...), `"bench-%d-%d-%d"`, round, cl, i)
		_, err := post(ctx, c, g.addr, append(body, after...))
		return err
	})
	if err != nil {
		return measure{}, err
	}
	defer closeGW()
	gwTurn := func(d time.Duration) (float64, error) { round++; return gw(d) }
	raw, closeRaw, err := e.rawInserter(ctx, clients, size)
	if err != nil {
		return measure{}, err
	}
	defer closeRaw()
	ops, base, err := alternate(e.duration(), gwTurn, raw)
	if err != nil {
		return measure{}, err
	}
	slices.Sort(lat)
	return measure{Value: ops, Baseline: base, Notes: fmt.Sprintf("p50 %s per append", quantile(lat, .5).Round(10*time.Microsecond))}, nil
}

// queries: a GraphQL query over HTTP, 32 clients, against a plain
// net/http handler returning the same JSON, the two in alternate turns.
func (e *env) queries(ctx context.Context, query string) (measure, error) {
	const clients = 32
	g, _, done, err := e.freshGateway(ctx, "queries")
	if err != nil {
		return measure{}, err
	}
	defer done()
	c := httpClient(clients)
	out, err := gql(ctx, c, g.addr, `mutation { openAccount(input: {accountId: "acc-1", owner: "b", currency: "EUR", initialDeposit: 1000}) { position } }`, nil)
	if err != nil {
		return measure{}, err
	}
	var opened struct {
		Data struct{ OpenAccount struct{ Position int64 } }
	}
	_ = json.Unmarshal(out, &opened)
	if _, err := gql(ctx, c, g.addr, `query($at: Position) { account(id: "acc-1", atLeast: $at) { id } }`, map[string]any{"at": opened.Data.OpenAccount.Position}); err != nil {
		return measure{}, err
	}
	want, err := gql(ctx, c, g.addr, query, nil)
	if err != nil {
		return measure{}, err
	}
	body := requestBody(query, nil)
	run := func(addr string, d time.Duration) (float64, error) {
		ops, _, err := load(ctx, clients, d, func(context.Context, int, int) error {
			got, err := post(ctx, c, addr, body)
			if err == nil && !bytes.Equal(got, want) {
				err = fmt.Errorf("response %s, want %s", got, want)
			}
			return err
		})
		return ops, err
	}
	b, err := e.startBaseline(ctx, "serve-http")
	if err != nil {
		return measure{}, err
	}
	defer b.stop()
	ops, base, err := alternate(e.duration(), func(d time.Duration) (float64, error) { return run(g.addr, d) },
		func(d time.Duration) (float64, error) { return run(b.addr, d) })
	return measure{Value: ops, Baseline: base}, err
}

// turns is how many turns alternate gives each side.
const turns = 10

// alternate measures a and b in turns of d/turns each, a first, and
// returns the mean of each one's rates: both are measured across the same
// stretch of the machine's time, whose speed, shared with other machines,
// moves within seconds. Neither side may leave work behind for the other's
// turn: a write turn against the gateway waits for its read models within
// the turn (gatewayWrites).
func alternate(d time.Duration, a, b func(d time.Duration) (float64, error)) (float64, float64, error) {
	var sumA, sumB float64
	for range turns {
		ra, err := a(d / turns)
		if err != nil {
			return 0, 0, err
		}
		rb, err := b(d / turns)
		if err != nil {
			return 0, 0, err
		}
		sumA, sumB = sumA+ra, sumB+rb
	}
	return sumA / turns, sumB / turns, nil
}

// baselineResponses are what the plain handler answers, by query: the
// gateway's own answers to the queries the bench sends.
var baselineResponses = map[string][]byte{
	typenameQuery: []byte(`{"data":{"__typename":"Query"}}`),
	accountQuery:  []byte(`{"data":{"account":{"id":"acc-1","owner":"b","balance":1000,"status":"OPEN"}}}`),
}

const (
	typenameQuery = `{ __typename }`
	accountQuery  = `{ account(id: "acc-1") { id owner balance status } }`
)

// serveBaselineHTTP is the plain net/http baseline: it decodes the request
// as the gateway must, and answers with the gateway's JSON for it.
func serveBaselineHTTP(addr string) error {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("POST /graphql", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Query     string         `json:"query"`
			Variables map[string]any `json:"variables"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		out, ok := baselineResponses[req.Query]
		if !ok {
			http.Error(w, "unknown query", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(out)
	})
	return http.ListenAndServe(addr, mux)
}
