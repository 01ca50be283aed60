package projections_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"cqrsgate/domain"
	"cqrsgate/eventstore"
	"cqrsgate/projections"
)

const (
	sagaChildEnv  = "CQRSGATE_SAGA_CHILD_DB"
	sagaKillAtEnv = "CQRSGATE_SAGA_KILL_AT"
)

// runSagaChild is the process the saga crash test kills: it runs the
// fulfilment process on url and SIGKILLs itself right after the command of
// its killAt-th step (before the step is recorded: the worst moment).
func runSagaChild(url string, killAt int) {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	store := eventstore.NewPostgres(pool, quiet, eventstore.Limits{}, eventstore.NewBroadcaster())
	svc := domain.NewService(store, quiet, time.Now, domain.ServiceOptions{})
	steps := 0
	proc := domain.NewFulfilmentProcess(svc, quiet, time.Now, domain.FulfilmentOptions{StepTimeout: time.Minute,
		Hook: func(_ string, _ domain.FulfilmentStep, phase string) {
			if phase != "after" {
				return
			}
			if steps == killAt {
				_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
				time.Sleep(time.Minute) // the signal is on its way
			}
			steps++
		}})
	r, err := projections.NewProcessRunner(pool, store, quiet, projections.ProcessOptions{Poll: 50 * time.Millisecond, LeaderRetry: 50 * time.Millisecond}, proc)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	_ = r.Run(ctx)
}

// TestSagaSurvivesSIGKILLAtEachStep: for each step of two sagas in turn (one
// that fulfils its order, one that fails on stock and compensates), a
// gateway process running the fulfilment process is killed with SIGKILL
// right after that step's command, and another takes over. Every order ends
// fulfilled or compensated with balances and stock exactly right: no double
// charge, no leaked reservation.
func TestSagaSurvivesSIGKILLAtEachStep(t *testing.T) {
	const steps = 11 // o1: 2 reservations, charge, confirm, finish; o2: reserve, reserve (fails), release of the failed one (nothing held), release, cancel, finish
	for killAt := 0; killAt <= steps; killAt++ {
		t.Run("kill after step "+strconv.Itoa(killAt), func(t *testing.T) {
			e := newEnv(t)
			ctx := context.Background()
			exec1 := func(err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
			}
			do := func(cmd domain.Command) {
				t.Helper()
				var err error
				switch cmd.(type) {
				case domain.OpenAccount:
					_, err = domain.Execute(ctx, e.commands, domain.Accounts, cmd, domain.CommandMeta{})
				case domain.AddProduct, domain.RestockProduct:
					_, err = domain.Execute(ctx, e.commands, domain.Products, cmd, domain.CommandMeta{})
				default:
					_, err = domain.Execute(ctx, e.commands, domain.Orders, cmd, domain.CommandMeta{})
				}
				exec1(err)
			}
			do(domain.OpenAccount{AccountID: "cust", Owner: "Ann", Currency: "EUR", InitialDeposit: 1000})
			do(domain.AddProduct{Sku: "p1", Name: "One", Price: 100, Currency: "EUR"})
			do(domain.AddProduct{Sku: "p2", Name: "Two", Price: 100, Currency: "EUR"})
			do(domain.RestockProduct{Sku: "p1", Quantity: 5})
			do(domain.RestockProduct{Sku: "p2", Quantity: 2})
			for _, o := range []struct {
				id     string
				q1, q2 int64
			}{{"o1", 2, 1}, {"o2", 1, 5}} {
				do(domain.PlaceOrder{OrderID: o.id, CustomerID: "cust", Currency: "EUR"})
				do(domain.AddOrderItem{OrderID: o.id, Sku: "p1", Quantity: o.q1, UnitPrice: 100})
				do(domain.AddOrderItem{OrderID: o.id, Sku: "p2", Quantity: o.q2, UnitPrice: 100})
				do(domain.SubmitOrder{OrderID: o.id})
			}

			child := exec.Command(os.Args[0], "-test.run=^$")
			child.Env = append(os.Environ(), sagaChildEnv+"="+e.pool.Config().ConnString(), sagaKillAtEnv+"="+strconv.Itoa(killAt))
			if err := child.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- child.Wait() }()
			final := func(id string) string {
				f, _, err := domain.Load(ctx, e.commands, domain.Fulfilments, id)
				exec1(err)
				return f.State()
			}
			bothEnded := func() bool {
				return final("o1") == domain.FulfilmentFulfilled && final("o2") == domain.FulfilmentCompensated
			}
			if killAt == steps { // past the last step: the child finishes, then is stopped
				waitFor(t, "the child to finish both sagas", bothEnded)
				_ = child.Process.Signal(syscall.SIGKILL)
				<-exited
			} else {
				select {
				case err := <-exited:
					if ws, ok := child.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
						t.Fatalf("the child ended without being killed: %v", err)
					}
				case <-time.After(20 * time.Second):
					t.Fatalf("the child was not killed at step %d", killAt)
				}
			}

			// Another process takes over and finishes.
			proc := domain.NewFulfilmentProcess(e.commands, quiet, time.Now, domain.FulfilmentOptions{StepTimeout: time.Minute})
			r, err := projections.NewProcessRunner(e.pool, e.store, quiet, projections.ProcessOptions{Poll: 50 * time.Millisecond, LeaderRetry: 50 * time.Millisecond}, proc)
			exec1(err)
			runCtx, stop := context.WithCancel(ctx)
			done := make(chan struct{})
			go func() { defer close(done); _ = r.Run(runCtx) }()
			defer func() { stop(); <-done }()
			waitFor(t, "both sagas to end", bothEnded)

			a, _, _ := domain.Load(ctx, e.commands, domain.Accounts, "cust")
			p1, _, _ := domain.Load(ctx, e.commands, domain.Products, "p1")
			p2, _, _ := domain.Load(ctx, e.commands, domain.Products, "p2")
			o1, _, _ := domain.Load(ctx, e.commands, domain.Orders, "o1")
			o2, _, _ := domain.Load(ctx, e.commands, domain.Orders, "o2")
			if a.Balance() != 700 || p1.Reserved() != 2 || p2.Reserved() != 1 || p1.ReservedFor("o2") != 0 ||
				o1.Status() != domain.StatusConfirmed || o2.Status() != domain.StatusCancelled {
				t.Fatalf("balance %d, p1 reserved %d (o2: %d), p2 reserved %d, orders %s and %s",
					a.Balance(), p1.Reserved(), p1.ReservedFor("o2"), p2.Reserved(), o1.Status(), o2.Status())
			}
			// Exactly one charge, and each reservation and release once.
			count := func(stream, typ string) int {
				evs, err := e.store.ReadStream(ctx, stream, domain.StreamQuery{})
				exec1(err)
				n := 0
				for _, ev := range evs {
					if ev.Type == typ {
						n++
					}
				}
				return n
			}
			if w, r1, r2, rel := count("account-cust", "MoneyWithdrawn"), count("product-p1", "StockReserved"), count("product-p2", "StockReserved"), count("product-p1", "StockReleased"); w != 1 || r1 != 2 || r2 != 1 || rel != 1 {
				t.Fatalf("%d withdrawals, %d and %d reservations, %d releases; want 1, 2, 1, 1", w, r1, r2, rel)
			}
		})
	}
}
