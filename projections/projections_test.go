package projections_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"cqrsgate/domain"
	"cqrsgate/eventstore"
	"cqrsgate/internal/pgtest"
	"cqrsgate/projections"
)

func TestMain(m *testing.M) {
	if url := os.Getenv(childEnv); url != "" {
		runChild(url) // a projection process that the crash test kills
		return
	}
	if url := os.Getenv(rebuildChildEnv); url != "" {
		runRebuildChild(url) // a rebuilding process that the catch-up kill test kills
		return
	}
	if url := os.Getenv(sagaChildEnv); url != "" {
		killAt, _ := strconv.Atoi(os.Getenv(sagaKillAtEnv))
		runSagaChild(url, killAt) // a saga process that the saga crash test kills
		return
	}
	pgtest.Main(m, pgtest.Options{Migrate: pgtest.OnConn(func(ctx context.Context, conn *pgx.Conn) error {
		if err := eventstore.Migrate(ctx, conn); err != nil {
			return err
		}
		return projections.Migrate(ctx, conn)
	})})
}

var quiet = slog.New(slog.DiscardHandler)

type env struct {
	pool     *pgxpool.Pool
	store    *eventstore.Postgres
	commands *domain.Service
}

func newEnv(t *testing.T) *env { return newEnvB(t) }

func newEnvB(t testing.TB) *env {
	pool := pgtest.NewPool(t)
	store := eventstore.NewPostgres(pool, quiet, eventstore.Limits{}, eventstore.NewBroadcaster())
	return &env{pool: pool, store: store, commands: domain.NewService(store, quiet, time.Now, domain.ServiceOptions{MaxRetries: 100})}
}

// start runs a Runner with ps until the test ends; it checks that Run
// returns once cancelled.
func (e *env) start(t *testing.T, opts projections.Options, ps ...projections.Projection) *projections.Runner {
	t.Helper()
	if opts.Poll == 0 {
		opts.Poll = 100 * time.Millisecond
	}
	if opts.LeaderRetry == 0 {
		opts.LeaderRetry = 100 * time.Millisecond
	}
	r, err := projections.NewRunner(e.pool, e.store, quiet, opts, ps...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("Runner.Run did not return after cancel")
		}
	})
	return r
}

func (e *env) exec(t *testing.T, cmd domain.Command) domain.Result {
	t.Helper()
	res, err := e.try(cmd)
	if err != nil {
		t.Fatalf("%s: %v", cmd.CommandName(), err)
	}
	return res
}

// appendEvents encodes evs and appends them to stream as they are (no
// aggregate decides them), returning the position of the last.
func (e *env) appendEvents(t *testing.T, stream string, evs ...domain.Event) int64 {
	t.Helper()
	data := make([]domain.EventData, len(evs))
	for i, ev := range evs {
		d, err := domain.EncodeEvent(ev)
		if err != nil {
			t.Fatal(err)
		}
		data[i] = d
	}
	res, err := e.store.Append(context.Background(), stream, domain.ExpectAny, data...)
	if err != nil {
		t.Fatalf("append to %s: %v", stream, err)
	}
	return res.LastPosition
}

// try runs an account command; safe to call from any goroutine.
func (e *env) try(cmd domain.Command) (domain.Result, error) {
	return domain.Execute(context.Background(), e.commands, domain.Accounts, cmd, domain.CommandMeta{})
}

// burst runs clients goroutines of account commands and fails t on errors.
func (e *env) burst(t *testing.T, clients, rounds int, prefix string) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("%s-%02d", prefix, c)
			cmds := []domain.Command{domain.OpenAccount{AccountID: id, Owner: "owner", Currency: "EUR", OverdraftLimit: 1000}}
			for i := 0; i < rounds; i++ {
				cmds = append(cmds, domain.DepositMoney{AccountID: id, Amount: int64(i + 2)}, domain.WithdrawMoney{AccountID: id, Amount: int64(i + 1)})
			}
			for _, cmd := range cmds {
				if _, err := e.try(cmd); err != nil {
					errs <- fmt.Errorf("%s %s: %w", cmd.CommandName(), id, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func (e *env) head(t testing.TB) int64 {
	t.Helper()
	p, err := e.store.ReadAll(context.Background(), eventstore.AllQuery{Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	return p.Head
}

// waitFor polls until cond holds or fails the test after 20s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func status(t testing.TB, pool *pgxpool.Pool, name string, version int) projections.Status {
	t.Helper()
	list, err := projections.List(context.Background(), pool)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range list {
		if s.Name == name && s.Version == version {
			return s
		}
	}
	return projections.Status{}
}

func caughtUp(t *testing.T, e *env, name string, version int, position int64) func() bool {
	return func() bool { return status(t, e.pool, name, version).Position >= position }
}

type summaryRow struct {
	ID, Owner, Currency, Status string
	Balance, Version, Position  int64
}

func summaries(t *testing.T, pool *pgxpool.Pool, table string) []summaryRow {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT id, owner, currency, status, balance, version, position FROM `+table+` ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[summaryRow])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestAccountsReadModel(t *testing.T) {
	e := newEnv(t)
	e.start(t, projections.Options{}, projections.Accounts{})
	e.exec(t, domain.OpenAccount{AccountID: "a1", Owner: "ada", Currency: "EUR", InitialDeposit: 1000, OverdraftLimit: 500})
	e.exec(t, domain.OpenAccount{AccountID: "a2", Owner: "bob", Currency: "EUR"})
	e.exec(t, domain.OpenAccount{AccountID: "a3", Owner: "cy", Currency: "USD", InitialDeposit: 70})
	e.exec(t, domain.WithdrawMoney{AccountID: "a1", Amount: 1200})
	e.exec(t, domain.ChargeFee{AccountID: "a1", Amount: 30, Reason: "card"})
	e.exec(t, domain.FreezeAccount{AccountID: "a1", Reason: "audit"})
	last := e.exec(t, domain.CloseAccount{AccountID: "a2"})
	waitFor(t, "the projection to catch up", caughtUp(t, e, "accounts", accountsV, last.Position))

	got := summaries(t, e.pool, "readmodel.account_summary")
	want := []summaryRow{
		{ID: "a1", Owner: "ada", Currency: "EUR", Status: "FROZEN", Balance: -230, Version: 6},
		{ID: "a2", Owner: "bob", Currency: "EUR", Status: "CLOSED", Balance: 0, Version: 2},
		{ID: "a3", Owner: "cy", Currency: "USD", Status: "OPEN", Balance: 70, Version: 2},
	}
	if len(got) != len(want) {
		t.Fatalf("summaries = %+v", got)
	}
	for i := range want {
		want[i].Position = got[i].Position
		if got[i] != want[i] || got[i].Position == 0 {
			t.Errorf("summary %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	var statement []struct {
		Kind           string
		Amount, Action int64
	}
	rows, _ := e.pool.Query(context.Background(), `SELECT kind, amount, balance_after FROM readmodel.account_statement WHERE account_id = 'a1' ORDER BY version`)
	statement, err := pgx.CollectRows(rows, pgx.RowToStructByPos[struct {
		Kind           string
		Amount, Action int64
	}])
	if err != nil || fmt.Sprint(statement) != "[{DEPOSIT 1000 1000} {WITHDRAWAL -1200 -200} {FEE -30 -230}]" {
		t.Fatalf("statement = %v, %v", statement, err)
	}
	totals := map[string][2]int64{}
	rows, _ = e.pool.Query(context.Background(), `SELECT currency, accounts, total_balance FROM readmodel.bank_totals`)
	for rows.Next() {
		var c string
		var n, sum int64
		_ = rows.Scan(&c, &n, &sum)
		totals[c] = [2]int64{n, sum}
	}
	if totals["EUR"] != [2]int64{1, -230} || totals["USD"] != [2]int64{1, 70} {
		t.Fatalf("bank totals = %v", totals)
	}
}

// TestRebuiltReadModelsEqualLiveOnes: after a burst of commands from 32
// concurrent clients (accounts, orders, products), every read model built
// live equals, row for row, the same model rebuilt from scratch by a new
// version, which then serves while the old version's tables are dropped.
func TestRebuiltReadModelsEqualLiveOnes(t *testing.T) {
	e := newEnv(t)
	live := []projections.Projection{projections.Accounts{}, projections.Orders{}, projections.Products{}}
	ctx, stopV1 := context.WithCancel(context.Background())
	v1, err := projections.NewRunner(e.pool, e.store, quiet, projections.Options{BatchSize: 50, Poll: 50 * time.Millisecond}, live...)
	if err != nil {
		t.Fatal(err)
	}
	v1Done := make(chan error, 1)
	go func() { v1Done <- v1.Run(ctx) }()
	e.mixedBurst(t, 32)
	// Every event the burst wrote (the log's readable head may lag behind
	// while any transaction of the cluster is open).
	var head int64
	if err := e.pool.QueryRow(context.Background(), `SELECT max(position) FROM events`).Scan(&head); err != nil {
		t.Fatal(err)
	}
	for _, p := range live {
		waitFor(t, p.Name()+" to catch up", caughtUp(t, e, p.Name(), p.Version(), head))
	}
	before := map[string][]string{}
	for _, p := range live {
		for _, table := range p.Tables() {
			before[table] = tableRows(t, e.pool, "readmodel."+table)
		}
	}
	stopV1() // as a deploy of the new versions would
	<-v1Done

	e.start(t, projections.Options{BatchSize: 7}, nextVersion{projections.Accounts{}}, nextVersion{projections.Orders{}}, nextVersion{projections.Products{}})
	for _, p := range live {
		waitFor(t, p.Name()+" next version to serve at the same position", func() bool {
			s := status(t, e.pool, p.Name(), p.Version()+1)
			return s.Serving && s.Position >= head
		})
		for _, table := range p.Tables() {
			after := tableRows(t, e.pool, "readmodel."+table)
			if len(before[table]) == 0 || fmt.Sprint(before[table]) != fmt.Sprint(after) {
				t.Errorf("%s: rebuilt read model differs:\nlive    %v\nrebuilt %v", table, before[table], after)
			}
		}
		waitFor(t, p.Name()+" old version to be retired", func() bool { return status(t, e.pool, p.Name(), p.Version()).Name == "" })
		var exists bool
		_ = e.pool.QueryRow(context.Background(), `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, projections.SchemaName(p.Name(), p.Version())).Scan(&exists)
		if exists {
			t.Errorf("the schema of %s v%d was not dropped", p.Name(), p.Version())
		}
	}
}

// nextVersion is a projection under its next version: a rebuild.
type nextVersion struct{ projections.Projection }

func (n nextVersion) Version() int { return n.Projection.Version() + 1 }

// tableRows returns every row of table as text, sorted.
func tableRows(t *testing.T, pool *pgxpool.Pool, table string) []string {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT r::text FROM `+table+` r ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// mixedBurst runs clients goroutines that each drive an account, a product
// and an order through their lifecycles.
func (e *env) mixedBurst(t *testing.T, clients int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			acct, sku, order := fmt.Sprintf("acct-%02d", c), fmt.Sprintf("sku-%02d", c%8), fmt.Sprintf("order-%02d", c)
			steps := []struct {
				kind string
				cmd  domain.Command
			}{
				{"a", domain.OpenAccount{AccountID: acct, Owner: "owner", Currency: "EUR", InitialDeposit: 1000, OverdraftLimit: 100}},
				{"p", domain.AddProduct{Sku: sku, Name: "Thing", Price: 100, Currency: "EUR"}},
				{"p", domain.RestockProduct{Sku: sku, Quantity: 10}},
				{"o", domain.PlaceOrder{OrderID: order, CustomerID: fmt.Sprintf("cust-%d", c%5), Currency: "EUR"}},
				{"o", domain.AddOrderItem{OrderID: order, Sku: sku, Quantity: int64(c%3 + 1), UnitPrice: 100}},
				{"p", domain.ReserveStock{Sku: sku, OrderID: order, Quantity: int64(c%3 + 1)}},
				{"a", domain.WithdrawMoney{AccountID: acct, Amount: int64(100 * (c%3 + 1))}},
				{"o", domain.SubmitOrder{OrderID: order}},
				{"o", domain.ConfirmOrder{OrderID: order}},
				{"a", domain.ChargeFee{AccountID: acct, Amount: 5, Reason: "fee"}},
			}
			if c%4 == 0 {
				steps = append(steps, struct {
					kind string
					cmd  domain.Command
				}{"o", domain.CancelOrder{OrderID: order, Reason: "changed"}}, struct {
					kind string
					cmd  domain.Command
				}{"p", domain.ReleaseStock{Sku: sku, OrderID: order}})
			} else {
				steps = append(steps, struct {
					kind string
					cmd  domain.Command
				}{"o", domain.ShipOrder{OrderID: order, TrackingNumber: "T"}})
			}
			for _, s := range steps {
				var err error
				switch s.kind {
				case "a":
					_, err = domain.Execute(context.Background(), e.commands, domain.Accounts, s.cmd, domain.CommandMeta{})
				case "o":
					_, err = domain.Execute(context.Background(), e.commands, domain.Orders, s.cmd, domain.CommandMeta{})
				case "p":
					_, err = domain.Execute(context.Background(), e.commands, domain.Products, s.cmd, domain.CommandMeta{})
				}
				if domain.CodeOf(err) == domain.RuleViolation && s.kind == "p" {
					continue // the product exists already (shared by 4 clients)
				}
				if err != nil {
					errs <- fmt.Errorf("%s: %w", s.cmd.CommandName(), err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestRebuildUnderLoad: a new version rebuilds while writes and queries go
// on; it ends up serving, no query fails during the switch, and the read
// model matches the aggregates.
func TestRebuildUnderLoad(t *testing.T) {
	e := newEnv(t)
	e.start(t, projections.Options{BatchSize: 50}, projections.Accounts{})
	e.burst(t, 8, 10, "pre")
	// The first version serves once it has caught up; queries before that
	// have nothing to read.
	pre := e.head(t)
	waitFor(t, "the first version to serve", func() bool {
		s := status(t, e.pool, "accounts", accountsV)
		return s.Serving && s.Position >= pre
	})

	stop := make(chan struct{})
	queryErrs := make(chan error, 1)
	queries := 0
	go func() {
		defer close(queryErrs)
		for {
			select {
			case <-stop:
				return
			default:
			}
			var n int
			if err := e.pool.QueryRow(context.Background(), `SELECT count(*) FROM readmodel.account_summary`).Scan(&n); err != nil {
				queryErrs <- err
				return
			}
			queries++
		}
	}()
	e.start(t, projections.Options{BatchSize: 5}, nextVersion{projections.Accounts{}})
	e.burst(t, 8, 10, "during")
	head := e.head(t)
	waitFor(t, "v2 to serve and catch up", func() bool {
		s := status(t, e.pool, "accounts", accountsV+1)
		return s.Serving && s.Position >= head
	})
	close(stop)
	if err := <-queryErrs; err != nil {
		t.Fatalf("a query failed during the rebuild: %v", err)
	}
	rows := summaries(t, e.pool, "readmodel.account_summary")
	if len(rows) != 16 {
		t.Fatalf("%d accounts in the read model, want 16", len(rows))
	}
	for _, r := range rows {
		a, v, err := domain.Load(context.Background(), e.commands, domain.Accounts, r.ID)
		if err != nil || a.Balance() != r.Balance || v != r.Version || a.Status() != r.Status {
			t.Errorf("read model %+v, aggregate balance %d version %d status %s", r, a.Balance(), v, a.Status())
		}
	}
	t.Logf("%d queries ran during the rebuild", queries)
}

// poison fails on events whose data says {"poison": true}.
type poison struct{}

func (poison) Name() string         { return "poison" }
func (poison) Version() int         { return 1 }
func (poison) EventTypes() []string { return nil }
func (poison) Tables() []string     { return []string{"seen_events"} }
func (poison) Setup(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS seen_events (position bigint PRIMARY KEY)`)
	return err
}
func (poison) Apply(ctx context.Context, tx pgx.Tx, events []domain.RecordedEvent) error {
	for _, e := range events {
		var d struct {
			Poison bool
			Why    string
		}
		_ = json.Unmarshal(e.Data, &d)
		if d.Poison && d.Why != "" {
			return errors.New(d.Why)
		}
		if d.Poison {
			return errors.New("cannot digest this event")
		}
		if _, err := tx.Exec(ctx, `INSERT INTO seen_events VALUES ($1)`, e.Position); err != nil {
			return err
		}
	}
	return nil
}

func TestPoisonedEventStopsOnlyItsProjection(t *testing.T) {
	e := newEnv(t)
	e.start(t, projections.Options{MaxFailures: 3, RetryBackoff: 10 * time.Millisecond}, poison{}, projections.Accounts{})
	ctx := context.Background()
	appendData := func(data string) domain.AppendResult {
		res, err := e.store.Append(ctx, "misc-1", domain.ExpectAny, domain.EventData{Type: "Misc", SchemaVersion: 1, Data: json.RawMessage(data)})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	appendData(`{"n": 1}`)
	bad := appendData(`{"poison": true}`)
	appendData(`{"n": 3}`)
	waitFor(t, "the poison projection to fail", func() bool { return status(t, e.pool, "poison", 1).Status == "FAILED" })
	s := status(t, e.pool, "poison", 1)
	if s.FailedPosition != bad.LastPosition || s.FailedEventID != bad.Events[0].ID || s.LastError != "cannot digest this event" || s.Position != bad.LastPosition-1 {
		t.Fatalf("failed status = %+v, want it stopped at position %d", s, bad.LastPosition)
	}
	// The other projection keeps running.
	open := e.exec(t, domain.OpenAccount{AccountID: "a1", Owner: "ada", Currency: "EUR"})
	waitFor(t, "accounts to continue", caughtUp(t, e, "accounts", accountsV, open.Position))

	// Retrying does not help (the event is still poisoned); skipping does.
	if _, err := projections.Retry(ctx, e.pool, "poison"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the retry to fail again", func() bool { return status(t, e.pool, "poison", 1).Status == "FAILED" })
	if _, err := projections.Skip(ctx, e.pool, "poison", bad.LastPosition+1); domain.CodeOf(err) != domain.RuleViolation {
		t.Fatalf("skip at the wrong position: %v", err)
	}
	if _, err := projections.Skip(ctx, e.pool, "poison", bad.LastPosition); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "poison to pass the event", caughtUp(t, e, "poison", 1, open.Position))
	var n int
	_ = e.pool.QueryRow(ctx, `SELECT count(*) FROM readmodel.seen_events`).Scan(&n)
	if n != 3 { // n=1, n=3 and AccountOpened
		t.Fatalf("seen %d events after skipping one of 4, want 3", n)
	}
	for _, c := range []struct {
		err  error
		code domain.Code
	}{
		{errOf(projections.Retry(ctx, e.pool, "nope")), domain.NotFound},
		{errOf(projections.Retry(ctx, e.pool, "poison")), domain.RuleViolation},
		{errOf(projections.Skip(ctx, e.pool, "nope", 1)), domain.NotFound},
	} {
		if domain.CodeOf(c.err) != c.code {
			t.Errorf("admin error = %v, want %s", c.err, c.code)
		}
	}
}

// TestLongFailureIsRecordedInWholeCharacters: a failure's message is kept
// to 2,000 bytes, cut at a character; cut at a byte, a message of
// characters of more than one byte was not UTF-8, PostgreSQL refused the
// record of the failure, and the projection retried the event for good
// instead of stopping FAILED.
func TestLongFailureIsRecordedInWholeCharacters(t *testing.T) {
	e := newEnv(t)
	e.start(t, projections.Options{MaxFailures: 2, RetryBackoff: 10 * time.Millisecond}, poison{})
	why := "a" + strings.Repeat("é", 1500)
	data, _ := json.Marshal(map[string]any{"poison": true, "why": why})
	if _, err := e.store.Append(context.Background(), "misc-1", domain.ExpectAny, domain.EventData{Type: "Misc", SchemaVersion: 1, Data: data}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the poison projection to fail", func() bool { return status(t, e.pool, "poison", 1).Status == "FAILED" })
	s := status(t, e.pool, "poison", 1)
	if !utf8.ValidString(s.LastError) || len(s.LastError) > 2000 || !strings.HasPrefix(why, strings.TrimSuffix(s.LastError, "...")) {
		t.Fatalf("last error %q (%d bytes), want the start of the failure's message", s.LastError, len(s.LastError))
	}
}

// TestOneLeaderPerProjection runs two runners (as two processes would): the
// read model is built once, and when the leader stops the other takes over.
func TestOneLeaderPerProjection(t *testing.T) {
	e := newEnv(t)
	ctxA, stopA := context.WithCancel(context.Background())
	ra, err := projections.NewRunner(e.pool, e.store, quiet, projections.Options{Poll: 50 * time.Millisecond, LeaderRetry: 50 * time.Millisecond}, projections.Accounts{})
	if err != nil {
		t.Fatal(err)
	}
	doneA := make(chan error, 1)
	go func() { doneA <- ra.Run(ctxA) }()
	e.start(t, projections.Options{}, projections.Accounts{})
	for i := 0; i < 10; i++ {
		e.exec(t, domain.OpenAccount{AccountID: fmt.Sprintf("a%d", i), Owner: "o", Currency: "EUR", InitialDeposit: 5})
	}
	stopA()
	<-doneA
	last := e.exec(t, domain.DepositMoney{AccountID: "a0", Amount: 1})
	waitFor(t, "the other runner to take over", caughtUp(t, e, "accounts", accountsV, last.Position))
	var n, sum int64
	_ = e.pool.QueryRow(context.Background(), `SELECT count(*), sum(balance) FROM readmodel.account_summary`).Scan(&n, &sum)
	if n != 10 || sum != 51 {
		t.Fatalf("%d accounts with %d in total, want 10 with 51", n, sum)
	}
}

func TestNewRunnerRejectsBadProjections(t *testing.T) {
	e := newEnv(t)
	if _, err := projections.NewRunner(e.pool, e.store, quiet, projections.Options{}, projections.Accounts{}, projections.Accounts{}); err == nil {
		t.Error("a projection registered twice was accepted")
	}
	if _, err := projections.NewRunner(e.pool, e.store, quiet, projections.Options{}, badName{}); err == nil {
		t.Error("a bad projection name was accepted")
	}
}

type badName struct{ poison }

func (badName) Name() string { return "Bad-Name" }

func statusB(b testing.TB, e *env, name string, version int) projections.Status {
	return status(b, e.pool, name, version)
}

// TestRebuildOnRequest: rebuildProjection builds a new generation of the
// serving version beside it, switches queries to it and drops the old one.
func TestRebuildOnRequest(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	runCtx, stop := context.WithCancel(ctx)
	r, err := projections.NewRunner(e.pool, e.store, quiet, projections.Options{Poll: 50 * time.Millisecond}, projections.Accounts{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Run(runCtx) }()
	e.burst(t, 8, 5, "acct")
	head := e.head(t)
	waitFor(t, "generation 1 to catch up", caughtUp(t, e, "accounts", accountsV, head))
	before := tableRows(t, e.pool, "readmodel.account_statement")
	stop()
	<-done

	if _, err := projections.Rebuild(ctx, e.pool, "accounts"); err != nil {
		t.Fatal(err)
	}
	if _, err := projections.Rebuild(ctx, e.pool, "accounts"); domain.CodeOf(err) != domain.RuleViolation {
		t.Fatalf("a second rebuild while one is under way: %v", err)
	}
	if _, err := projections.Rebuild(ctx, e.pool, "nope"); domain.CodeOf(err) != domain.NotFound {
		t.Fatalf("rebuilding an unknown projection: %v", err)
	}
	e.start(t, projections.Options{BatchSize: 9}, projections.Accounts{})
	more := e.exec(t, domain.DepositMoney{AccountID: "acct-00", Amount: 1}) // written during the rebuild
	waitFor(t, "generation 2 to serve", func() bool {
		list, _ := projections.List(ctx, e.pool)
		return len(list) == 1 && list[0].Generation == 2 && list[0].Serving && list[0].Position >= more.Position
	})
	after := tableRows(t, e.pool, "readmodel.account_statement")
	if len(after) != len(before)+1 {
		t.Fatalf("statement has %d lines after the rebuild, want %d", len(after), len(before)+1)
	}
	rebuiltLines := map[string]bool{}
	for _, l := range after {
		rebuiltLines[l] = true
	}
	for _, l := range before {
		if !rebuiltLines[l] {
			t.Fatalf("line %s of the statement differs after the rebuild", l)
		}
	}
	var exists bool
	_ = e.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, projections.SchemaName("accounts", accountsV)).Scan(&exists)
	if exists {
		t.Fatal("generation 1's schema was not dropped")
	}
	var rebuilt bool
	_ = e.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, projections.GenerationSchema("accounts", accountsV, 2)).Scan(&rebuilt)
	if !rebuilt {
		t.Fatal("generation 2's schema is missing")
	}
}

// accountsV is the accounts projection's current version.
var accountsV = projections.Accounts{}.Version()

// A rebuild asked for while the log never stops moving reaches the running
// projection: it keeps its own copy of its rows between batches, so this
// fails if that copy is never refreshed while wake-ups keep coming.
func TestRebuildOnRequestWhileEventsFlow(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.start(t, projections.Options{Poll: time.Hour}, projections.Accounts{})
	e.exec(t, domain.OpenAccount{AccountID: "busy", Owner: "o", Currency: "EUR"})
	stop := make(chan struct{})
	flowed := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				flowed <- nil
				return
			case <-time.After(5 * time.Millisecond):
			}
			if _, err := e.try(domain.DepositMoney{AccountID: "busy", Amount: 1}); err != nil {
				flowed <- err
				return
			}
		}
	}()
	time.Sleep(200 * time.Millisecond)
	if _, err := projections.Rebuild(ctx, e.pool, "accounts"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "generation 2 to serve while deposits go on", func() bool {
		list, _ := projections.List(ctx, e.pool)
		return len(list) == 1 && list[0].Generation == 2 && list[0].Serving
	})
	close(stop)
	if err := <-flowed; err != nil {
		t.Fatal(err)
	}
}

// A projection none of whose events are being written (products, while
// accounts move) reports the head as reached at once, through its runner,
// and saves that checkpoint soon after, not once per batch of the log.
func TestCheckpointOverOtherEventsIsSavedLazily(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	r := e.start(t, projections.Options{Poll: time.Hour}, projections.Accounts{}, projections.Products{})
	positions := projections.NewPositions(e.pool, r)
	e.exec(t, domain.OpenAccount{AccountID: "lazy", Owner: "o", Currency: "EUR"})
	waitFor(t, "both projections to serve", func() bool {
		list, _ := projections.List(ctx, e.pool)
		return len(list) == 2 && list[0].Serving && list[1].Serving
	})
	var last int64
	for i := 0; i < 20; i++ {
		last = e.exec(t, domain.DepositMoney{AccountID: "lazy", Amount: 1}).Position
		// A read that waits for the products read model to reach the
		// deposit returns without waiting for a checkpoint to be saved.
		if err := positions.WaitFor(ctx, []string{"products"}, last, 5*time.Second); err != nil {
			t.Fatalf("deposit %d: %v", i, err)
		}
		if passed, ok := r.Passed("products"); !ok || passed < last {
			t.Fatalf("deposit %d at %d: products passed %d, %v", i, last, passed, ok)
		}
	}
	// The checkpoint follows without more events and without polls.
	waitFor(t, "the products checkpoint to be saved", caughtUp(t, e, "products", projections.Products{}.Version(), last))
}

// quietProcess handles a type that is never written.
type quietProcess struct{}

func (quietProcess) Name() string                                       { return "quiet" }
func (quietProcess) EventTypes() []string                               { return []string{"NeverWritten"} }
func (quietProcess) Handle(context.Context, domain.RecordedEvent) error { return nil }
func (quietProcess) Tick(context.Context) error                         { return nil }
func (quietProcess) TickEvery() time.Duration                           { return time.Hour }

// A process reads past events it does not handle at once and saves that
// checkpoint soon after, without polls.
func TestProcessCheckpointOverOtherEventsIsSavedLazily(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	r, err := projections.NewProcessRunner(e.pool, e.store, quiet, projections.ProcessOptions{Poll: time.Hour}, quietProcess{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() { cancel(); <-done }()
	e.exec(t, domain.OpenAccount{AccountID: "p", Owner: "o", Currency: "EUR"})
	var last int64
	for i := 0; i < 10; i++ {
		last = e.exec(t, domain.DepositMoney{AccountID: "p", Amount: 1}).Position
	}
	waitFor(t, "the process to read past the deposits", func() bool { return r.Position() >= last })
	waitFor(t, "its checkpoint to be saved", func() bool {
		var saved int64
		err := e.pool.QueryRow(ctx, `SELECT position FROM process_checkpoints WHERE name = 'quiet'`).Scan(&saved)
		return err == nil && saved >= last
	})
}

// While a rebuild catches up beside it, the serving generation's position
// stays known to the runner (the rebuild's own progress records nothing),
// and after the switch the new generation's is.
func TestPassedFollowsTheServingGeneration(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.burst(t, 8, 10, "p")
	r := e.start(t, projections.Options{BatchSize: 5, CatchUpBatchSize: 5}, projections.Accounts{})
	head := e.head(t)
	waitFor(t, "generation 1 to catch up", func() bool { p, ok := r.Passed("accounts"); return ok && p >= head })
	if _, err := projections.Rebuild(ctx, e.pool, "accounts"); err != nil {
		t.Fatal(err)
	}
	misses := 0
	waitFor(t, "generation 2 to serve", func() bool {
		if p, ok := r.Passed("accounts"); !ok || p < head {
			misses++
		}
		list, _ := projections.List(ctx, e.pool)
		return len(list) == 1 && list[0].Generation == 2 && list[0].Serving
	})
	if misses > 0 {
		t.Errorf("during the rebuild, Passed lost the serving generation's position %d times", misses)
	}
	if p, ok := r.Passed("accounts"); !ok || p < head {
		t.Errorf("after the switch Passed = %d, %v; want at least %d", p, ok, head)
	}
}
