package projections_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"cqrsgate/domain"
	"cqrsgate/eventstore"
	"cqrsgate/projections"
)

// named is a projection under another name: builds of the same projection
// side by side, each in its own schema.
type named struct {
	projections.Projection
	name string
}

func (n named) Name() string { return n.name }

// payload is an event as the store takes it.
func payload(t testing.TB, e domain.Event) domain.EventData {
	t.Helper()
	d, err := domain.EncodeEvent(e)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// history appends a random but coherent history of accounts and orders in
// two tenants and the default one, events > 0 of them in all, interleaved,
// in stretches between which noise events of another type are appended.
// It returns the last position.
func history(t testing.TB, e *env, seed uint64, events, noise int) int64 {
	t.Helper()
	ctx := context.Background()
	rnd := rand.New(rand.NewPCG(seed, 7))
	day := time.Date(2026, 5, 1, 22, 0, 0, 0, time.UTC)
	at := func() time.Time { return day.Add(time.Duration(rnd.IntN(72)) * time.Hour) } // three UTC days
	type account struct {
		stream          string
		opened, closed  bool
		frozen          bool
		balance, events int
	}
	type order struct {
		stream string
		status string // "" until placed
		lines  map[string]int64
		total  int64
	}
	accounts, orders := make([]*account, 45), make([]*order, 45)
	tenants := []string{"acme", "globex", ""}
	streams := 0
	fresh := func(i int) { // a new account and order in slot i, in tenant i%3
		streams++
		id := domain.Qualify(tenants[i%3], fmt.Sprintf("x%03d", streams))
		accounts[i] = &account{stream: domain.Accounts.StreamID(id)}
		orders[i] = &order{stream: domain.Orders.StreamID(id), lines: map[string]int64{}}
	}
	for i := range accounts {
		fresh(i)
	}
	accountEvents := func(a *account) []domain.Event {
		var out []domain.Event
		for n := 1 + rnd.IntN(4); n > 0 && !a.closed; n-- {
			a.events++
			switch r := rnd.IntN(20); {
			case !a.opened:
				a.opened = true
				out = append(out, domain.AccountOpened{Owner: fmt.Sprintf("owner %d", rnd.IntN(3)), Currency: []string{"EUR", "USD"}[rnd.IntN(2)],
					OverdraftLimit: 100, DailyWithdrawalLimit: 10000, OpenedAt: at()})
			case a.frozen:
				if r < 8 {
					a.frozen = false
					out = append(out, domain.AccountUnfrozen{})
				} else {
					a.balance += 10
					out = append(out, domain.MoneyDeposited{Amount: 10, BalanceAfter: int64(a.balance)})
				}
			case r < 8:
				amount := 1 + rnd.IntN(500)
				a.balance += amount
				out = append(out, domain.MoneyDeposited{Amount: int64(amount), BalanceAfter: int64(a.balance)})
			case r < 12:
				amount := 1 + rnd.IntN(max(a.balance+100, 1))
				before := a.balance
				a.balance -= amount
				out = append(out, domain.MoneyWithdrawn{Amount: int64(amount), BalanceAfter: int64(a.balance), At: at()})
				if before >= 0 && a.balance < 0 {
					out = append(out, domain.OverdraftOccurred{Balance: int64(a.balance), OverdraftLimit: 100})
				}
			case r < 14:
				a.balance -= 3
				out = append(out, domain.FeeCharged{Amount: 3, Reason: "card", BalanceAfter: int64(a.balance)})
			case r < 16:
				a.balance += 7
				out = append(out, domain.InterestApplied{RateBasisPoints: 125, Amount: 7, BalanceAfter: int64(a.balance)})
			case r < 18:
				a.frozen = true
				out = append(out, domain.AccountFrozen{Reason: "audit"})
			case a.events > 12:
				switch {
				case a.balance > 0:
					out = append(out, domain.MoneyWithdrawn{Amount: int64(a.balance), BalanceAfter: 0, At: at()})
				case a.balance < 0:
					out = append(out, domain.MoneyDeposited{Amount: int64(-a.balance), BalanceAfter: 0})
				}
				a.balance = 0
				a.closed = true
				out = append(out, domain.AccountClosed{})
			}
		}
		return out
	}
	orderEvents := func(o *order) []domain.Event {
		var out []domain.Event
		for n := 1 + rnd.IntN(4); n > 0; n-- {
			r := rnd.IntN(10)
			switch o.status {
			case "":
				o.status = domain.StatusOpen
				out = append(out, domain.OrderPlaced{CustomerID: fmt.Sprintf("c%d", rnd.IntN(4)), Currency: "EUR", PlacedAt: at()})
			case domain.StatusOpen:
				sku := fmt.Sprintf("sku-%d", rnd.IntN(5))
				switch {
				case r < 6 || len(o.lines) == 0:
					q := int64(1 + rnd.IntN(3))
					o.lines[sku] += q
					o.total += q * 100
					out = append(out, domain.OrderItemAdded{Sku: sku, Quantity: q, UnitPrice: 100, LineTotal: o.lines[sku] * 100, OrderTotal: o.total})
				case r < 8 && o.lines[sku] > 0:
					o.total -= o.lines[sku] * 100
					out = append(out, domain.OrderItemRemoved{Sku: sku, Quantity: o.lines[sku], OrderTotal: o.total})
					delete(o.lines, sku)
				case r < 9:
					o.status = domain.StatusSubmitted
					tax := o.total / 10
					out = append(out, domain.OrderSubmitted{Subtotal: o.total, Tax: tax, Total: o.total + tax, Currency: "EUR", SubmittedAt: at()})
					o.total += tax
				default:
					o.status = domain.StatusCancelled
					out = append(out, domain.OrderCancelled{Reason: "changed", PreviousStatus: domain.StatusOpen, CancelledAt: at()})
				}
			case domain.StatusSubmitted:
				if r < 8 {
					o.status = domain.StatusConfirmed
					out = append(out, domain.OrderConfirmed{ConfirmedAt: at()})
				} else {
					o.status = domain.StatusCancelled
					out = append(out, domain.OrderCancelled{Reason: "late", PreviousStatus: domain.StatusSubmitted, CancelledAt: at()})
				}
			case domain.StatusConfirmed:
				o.status = domain.StatusShipped
				out = append(out, domain.OrderShipped{TrackingNumber: fmt.Sprintf("T%d", rnd.IntN(1000)), ShippedAt: at()})
			}
		}
		return out
	}
	var last int64
	write := func(stream string, evs []domain.Event) {
		if len(evs) == 0 {
			return
		}
		data := make([]domain.EventData, len(evs))
		for i, ev := range evs {
			data[i] = payload(t, ev)
		}
		res, err := e.store.Append(ctx, stream, domain.ExpectAny, data...)
		if err != nil {
			t.Fatal(err)
		}
		last = res.LastPosition
	}
	writeNoise := func(n int) {
		for n > 0 {
			k := min(n, 200)
			data := make([]domain.EventData, k)
			for i := range data {
				data[i] = domain.EventData{Type: "Noise", SchemaVersion: 1, Data: json.RawMessage(`{"n": 1}`)}
			}
			res, err := e.store.Append(ctx, fmt.Sprintf("noise-%d", rnd.IntN(10)), domain.ExpectAny, data...)
			if err != nil {
				t.Fatal(err)
			}
			last = res.LastPosition
			n -= k
		}
	}
	for written, stretch := 0, 0; written < events; stretch++ {
		// A stretch of account and order events, then one of noise.
		for end := written + events/3 + 1; written < end && written < events; {
			var evs []domain.Event
			var stream string
			i := rnd.IntN(len(accounts))
			if accounts[i].closed && (orders[i].status == domain.StatusShipped || orders[i].status == domain.StatusCancelled) {
				fresh(i)
			}
			if rnd.IntN(2) == 0 {
				stream, evs = accounts[i].stream, accountEvents(accounts[i])
			} else {
				stream, evs = orders[i].stream, orderEvents(orders[i])
			}
			write(stream, evs)
			written += len(evs)
		}
		writeNoise(noise / 3)
	}
	return last
}

// build runs projections under a name suffix with opts until each has
// reached position; it returns each table's rows.
func (e *env) build(t *testing.T, suffix string, opts projections.Options, position int64, ps ...projections.Projection) map[string][]string {
	t.Helper()
	var builds []projections.Projection
	for _, p := range ps {
		builds = append(builds, named{p, p.Name() + suffix})
	}
	r, err := projections.NewRunner(e.pool, e.store, quiet, opts, builds...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() { cancel(); <-done }()
	rows := map[string][]string{}
	for _, p := range builds {
		waitFor(t, p.Name()+" to catch up", caughtUp(t, e, p.Name(), p.Version(), position))
		for _, table := range p.Tables() {
			rows[table] = tableRows(t, e.pool, pgx.Identifier{projections.SchemaName(p.Name(), p.Version()), table}.Sanitize())
		}
	}
	return rows
}

// checkTotals checks that the per-tenant totals of the accounts and orders
// read models (in the schemas named) agree with their rows, and that their
// rows carry the positions, versions and times of the log.
func checkTotals(t *testing.T, pool *pgxpool.Pool, accounts, orders string) {
	t.Helper()
	for what, sql := range map[string]string{
		"bank totals": `SELECT count(*) FROM (
				(SELECT tenant, currency, accounts, total_balance FROM ` + accounts + `.bank_totals WHERE accounts <> 0 OR total_balance <> 0
				EXCEPT
				SELECT tenant, currency, count(*) FILTER (WHERE status <> 'CLOSED'), sum(balance) FROM ` + accounts + `.account_summary GROUP BY 1, 2)
				UNION ALL
				(SELECT tenant, currency, count(*) FILTER (WHERE status <> 'CLOSED'), sum(balance) FROM ` + accounts + `.account_summary GROUP BY 1, 2
					HAVING count(*) FILTER (WHERE status <> 'CLOSED') <> 0 OR sum(balance) <> 0
				EXCEPT
				SELECT tenant, currency, accounts, total_balance FROM ` + accounts + `.bank_totals)) d`,
		"order stats": `SELECT count(*) FROM (
				(SELECT tenant, day, status, orders, revenue FROM ` + orders + `.order_stats
				EXCEPT
				SELECT tenant, (placed_at AT TIME ZONE 'UTC')::date, status, count(*), sum(total) FROM ` + orders + `.order_list GROUP BY 1, 2, 3)
				UNION ALL
				(SELECT tenant, (placed_at AT TIME ZONE 'UTC')::date, status, count(*), sum(total) FROM ` + orders + `.order_list GROUP BY 1, 2, 3
				EXCEPT
				SELECT tenant, day, status, orders, revenue FROM ` + orders + `.order_stats)) d`,
		"statement lines": `SELECT count(*) FROM ` + accounts + `.account_statement s
				WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.position = s.position AND e.stream_version = s.version AND e.recorded_at = s.recorded_at)`,
		"status history": `SELECT count(*) FROM ` + orders + `.order_status_history h
				WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.stream_version = h.version AND e.recorded_at = h.at AND e.stream_id LIKE '%order-%')`,
		"orders as placed": `SELECT count(*) FROM ` + orders + `.order_list o WHERE NOT EXISTS (SELECT 1 FROM events e
				WHERE e.stream_id = ` + streamOf("o.id", "order") + ` AND e.event_type = 'OrderPlaced' AND e.data->>'customerId' = o.customer_id
				AND e.data->>'currency' = o.currency AND (e.data->>'placedAt')::timestamptz = o.placed_at)`,
		"accounts as opened": `SELECT count(*) FROM ` + accounts + `.account_summary a WHERE NOT EXISTS (SELECT 1 FROM events e
				WHERE e.stream_id = ` + streamOf("a.id", "account") + ` AND e.event_type = 'AccountOpened' AND e.data->>'owner' = a.owner
				AND e.data->>'currency' = a.currency AND (e.data->>'overdraftLimit')::bigint = a.overdraft_limit
				AND (e.data->>'dailyWithdrawalLimit')::bigint = a.daily_withdrawal_limit AND (e.data->>'openedAt')::timestamptz = a.opened_at)`,
		"order times": `SELECT count(*) FROM ` + orders + `.order_list o
				WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.position = o.position AND e.stream_version = o.version AND e.recorded_at = o.updated_at)`,
	} {
		var n int
		if err := pool.QueryRow(context.Background(), sql).Scan(&n); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if n != 0 {
			t.Errorf("%s: %d rows disagree with the read model", what, n)
		}
	}
}

// TestCatchUpBatchesBuildTheSameRows: the accounts and orders read models
// built one event per transaction (every row already there is updated),
// in batches of 37 and in catch-up batches of the default size (rows of
// accounts and orders created in the batch are written with COPY, the log
// is read ahead and, where dense, read whole) are equal row for row, and
// the per-tenant totals agree with the rows.
func TestCatchUpBatchesBuildTheSameRows(t *testing.T) {
	e := newEnv(t)
	last := history(t, e, 1, 1200, 3000)
	ps := []projections.Projection{projections.Accounts{}, projections.Orders{}}
	single := e.build(t, "_single", projections.Options{BatchSize: 1, Poll: 20 * time.Millisecond}, last, ps...)
	mixed := e.build(t, "_mixed", projections.Options{BatchSize: 1, CatchUpBatchSize: 37, Poll: 20 * time.Millisecond}, last, ps...)
	bulk := e.build(t, "_bulk", projections.Options{Poll: 20 * time.Millisecond}, last, ps...)
	for _, p := range ps {
		for _, table := range p.Tables() {
			if len(single[table]) == 0 {
				t.Errorf("%s is empty", table)
			}
			if !slices.Equal(single[table], mixed[table]) || !slices.Equal(single[table], bulk[table]) {
				t.Errorf("%s differs:\none at a time %v\nbatches of 37 %v\ncatch-up %v", table, single[table], mixed[table], bulk[table])
			}
		}
	}
	for _, suffix := range []string{"_single", "_bulk"} {
		checkTotals(t, e.pool, projections.SchemaName("accounts"+suffix, projections.Accounts{}.Version()), projections.SchemaName("orders"+suffix, projections.Orders{}.Version()))
	}
}

// streamOf is the SQL for the stream of the aggregate whose qualified id is
// in column col (domain.Kind.StreamID).
func streamOf(col, kind string) string {
	return `CASE WHEN strpos(` + col + `, '~') > 0 THEN split_part(` + col + `, '~', 1) || '~` + kind + `-' || split_part(` + col + `, '~', 2) ELSE '` + kind + `-' || ` + col + ` END`
}

// recording records the position of every Rec event it applies; a second
// application of an event fails on the primary key.
type recording struct{}

func (recording) Name() string         { return "recording" }
func (recording) Version() int         { return 1 }
func (recording) EventTypes() []string { return []string{"Rec"} }
func (recording) Tables() []string     { return []string{"rec_positions"} }
func (recording) Setup(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS rec_positions (position bigint PRIMARY KEY)`)
	return err
}
func (recording) Apply(ctx context.Context, tx pgx.Tx, events []domain.RecordedEvent) error {
	rows := make([][]any, len(events))
	for i, e := range events {
		if e.Type != "Rec" {
			return fmt.Errorf("applied a %s event", e.Type)
		}
		rows[i] = []any{e.Position}
	}
	_, err := tx.CopyFrom(ctx, pgx.Identifier{"rec_positions"}, []string{"position"}, pgx.CopyFromRows(rows))
	return err
}

// unreadable is a store on which reading the whole log fails at one event
// (as it would if that event's schema migration were broken), while
// reading by type steps over it.
type unreadable struct {
	eventstore.Store
	at int64
}

func (s unreadable) ReadAll(ctx context.Context, q eventstore.AllQuery) (eventstore.Page, error) {
	page, err := s.Store.ReadAll(ctx, q)
	if err == nil && len(q.Types) == 0 {
		for _, e := range page.Events {
			if e.Position == s.at {
				return eventstore.Page{}, errors.New("event cannot be read as its latest version")
			}
		}
	}
	return page, err
}

// TestCatchUpThroughDenseAndSparseStretches: a projection catching up
// through stretches where its events are dense, sparse and absent, past an
// event of another type that cannot be read, applies each of its events
// exactly once and ends at the head.
func TestCatchUpThroughDenseAndSparseStretches(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	var want []int64
	var broken int64
	appendEvents := func(n, every int, other string) {
		for n > 0 {
			k := min(n, 250)
			data := make([]domain.EventData, k)
			for i := range data {
				data[i] = domain.EventData{Type: other, SchemaVersion: 1, Data: json.RawMessage(`{}`)}
				if every > 0 && (n-i)%every == 0 {
					data[i].Type = "Rec"
				}
			}
			res, err := e.store.Append(ctx, "log-1", domain.ExpectAny, data...)
			if err != nil {
				t.Fatal(err)
			}
			for _, ev := range res.Events {
				if ev.Type == "Rec" {
					want = append(want, ev.Position)
				}
				if ev.Type == "Broken" && broken == 0 {
					broken = ev.Position
				}
			}
			n -= k
		}
	}
	appendEvents(2500, 1, "Noise") // dense: all Rec
	appendEvents(3000, 0, "Noise") // none
	appendEvents(4000, 25, "Noise")
	appendEvents(1000, 2, "Noise")
	appendEvents(300, 0, "Broken")
	appendEvents(1500, 1, "Noise")
	appendEvents(2000, 0, "Noise")
	head := e.head(t)
	store := unreadable{e.store, broken + 10}
	r, err := projections.NewRunner(e.pool, store, quiet, projections.Options{BatchSize: 100, CatchUpBatchSize: 700, Poll: 20 * time.Millisecond}, recording{})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(runCtx) }()
	defer func() { stop(); <-done }()
	waitFor(t, "the projection to catch up", caughtUp(t, e, "recording", 1, head))
	if s := status(t, e.pool, "recording", 1); s.Status != "RUNNING" || s.LastError != "" {
		t.Fatalf("status %+v", s)
	}
	var got []int64
	rows, _ := e.pool.Query(ctx, `SELECT position FROM readmodel.rec_positions ORDER BY position`)
	got, err = pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("applied %d events (%v), want %d", len(got), err, len(want))
	}
}

// TestFailureMidCatchUpIsNarrowedDown: an event that cannot be applied in
// the middle of a catch-up batch, while the next batch is being read
// ahead, stops the projection exactly before it; skipping it goes on with
// the rest, each event applied once.
func TestFailureMidCatchUpIsNarrowedDown(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	var bad int64
	for i := 0; i < 12; i++ {
		data := make([]domain.EventData, 250)
		for j := range data {
			data[j] = domain.EventData{Type: "Misc", SchemaVersion: 1, Data: json.RawMessage(`{"n": 1}`)}
			if i == 5 && j == 123 {
				data[j].Data = json.RawMessage(`{"poison": true}`)
			}
		}
		res, err := e.store.Append(ctx, "misc-1", domain.ExpectAny, data...)
		if err != nil {
			t.Fatal(err)
		}
		if i == 5 {
			bad = res.Events[123].Position
		}
	}
	head := e.head(t)
	e.start(t, projections.Options{BatchSize: 100, CatchUpBatchSize: 600, MaxFailures: 2, RetryBackoff: 10 * time.Millisecond}, poison{})
	waitFor(t, "the projection to fail", func() bool { return status(t, e.pool, "poison", 1).Status == "FAILED" })
	s := status(t, e.pool, "poison", 1)
	var n int64
	_ = e.pool.QueryRow(ctx, `SELECT count(*) FROM readmodel.seen_events`).Scan(&n)
	if s.FailedPosition != bad || s.Position != bad-1 || n != bad-1 {
		t.Fatalf("failed at %d with the checkpoint at %d and %d events applied; want it stopped at %d", s.FailedPosition, s.Position, n, bad)
	}
	if _, err := projections.Skip(ctx, e.pool, "poison", bad); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the projection to finish", caughtUp(t, e, "poison", 1, head))
	var distinct int64
	_ = e.pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT position) FROM readmodel.seen_events`).Scan(&n, &distinct)
	if n != 3000-1 || distinct != n {
		t.Fatalf("%d events applied (%d distinct), want 2999", n, distinct)
	}
}

const rebuildChildEnv = "CQRSGATE_REBUILD_CHILD_DB"

// catchUpOptions are those of the process the kill test kills: small
// catch-up batches, so that kills land mid-batch, between batches and
// mid-read-ahead.
var catchUpOptions = projections.Options{BatchSize: 50, CatchUpBatchSize: 200, Poll: 50 * time.Millisecond, LeaderRetry: 50 * time.Millisecond}

// slowApply widens the window for a kill to land mid-transaction.
type slowApply struct{ projections.Projection }

func (s slowApply) Apply(ctx context.Context, tx pgx.Tx, events []domain.RecordedEvent) error {
	time.Sleep(25 * time.Millisecond)
	return s.Projection.Apply(ctx, tx, events)
}

// slowReads widens the window for a kill to land mid-read-ahead.
type slowReads struct{ eventstore.Store }

func (s slowReads) ReadAll(ctx context.Context, q eventstore.AllQuery) (eventstore.Page, error) {
	time.Sleep(2 * time.Millisecond)
	return s.Store.ReadAll(ctx, q)
}

// runRebuildChild is the killed process: it builds the accounts and orders
// read models on url, slowly, until it is killed.
func runRebuildChild(url string) {
	runRunnerChild(url, func(s eventstore.Store) eventstore.Store { return slowReads{s} },
		catchUpOptions, slowApply{projections.Accounts{}}, slowApply{projections.Orders{}})
}

// TestKillMidCatchUpResumes kills the process building the accounts and
// orders read models with SIGKILL at random moments, restarting it each
// time; the read models it ends with equal, row for row, those built in
// one go.
func TestKillMidCatchUpResumes(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	last := history(t, e, 2, 6000, 6000)
	url := e.pool.Config().ConnString()
	var progress []int64
	for round := 0; round < 6; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), rebuildChildEnv+"="+url)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(150+rand.IntN(250)) * time.Millisecond)
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
		waitFor(t, "the killed process's session to end", func() bool {
			var n int
			_ = e.pool.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted`).Scan(&n)
			return n == 0
		})
		progress = append(progress, status(t, e.pool, "accounts", projections.Accounts{}.Version()).Position, status(t, e.pool, "orders", projections.Orders{}.Version()).Position)
	}
	t.Logf("after each kill, accounts and orders had reached positions %v of %d", progress, last)
	if progress[len(progress)-1] >= last {
		t.Log("the read models were built before the last kill: the kills landed early or late, not mid-catch-up only")
	}
	// A last process finishes the job.
	e.start(t, catchUpOptions, projections.Accounts{}, projections.Orders{})
	ps := []projections.Projection{projections.Accounts{}, projections.Orders{}}
	for _, p := range ps {
		waitFor(t, p.Name()+" to finish", caughtUp(t, e, p.Name(), p.Version(), last))
	}
	want := e.build(t, "_once", projections.Options{Poll: 20 * time.Millisecond}, last, ps...)
	for _, p := range ps {
		for _, table := range p.Tables() {
			got := tableRows(t, e.pool, pgx.Identifier{projections.SchemaName(p.Name(), p.Version()), table}.Sanitize())
			if len(got) == 0 || !slices.Equal(got, want[table]) {
				t.Errorf("%s after the kills differs from one build:\nkilled %v\nonce   %v", table, got, want[table])
			}
		}
	}
	checkTotals(t, e.pool, projections.SchemaName("accounts", projections.Accounts{}.Version()), projections.SchemaName("orders", projections.Orders{}.Version()))
}
