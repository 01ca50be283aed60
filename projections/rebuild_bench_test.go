package projections_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cqrsgate/domain"
	"cqrsgate/projections"
)

// fillMixed appends total events, half to accounts (an opening and 49
// deposits each) and half to orders (placed, eight items, submitted), as
// the rebuild scenario of the bench command does, with 8 writers.
func fillMixed(tb testing.TB, e *env, total int) {
	tb.Helper()
	ctx := context.Background()
	now := time.Now().UTC()
	var streams []func() (string, []domain.EventData)
	for a := 0; a < total/2/50; a++ {
		streams = append(streams, func() (string, []domain.EventData) {
			evs := []domain.EventData{payload(tb, domain.AccountOpened{Owner: "bench", Currency: "EUR", OpenedAt: now})}
			for v := 1; v < 50; v++ {
				evs = append(evs, payload(tb, domain.MoneyDeposited{Amount: 10, BalanceAfter: int64(10 * v)}))
			}
			return fmt.Sprintf("account-b%06d", a), evs
		})
	}
	for o := 0; o < total/2/10; o++ {
		streams = append(streams, func() (string, []domain.EventData) {
			evs := []domain.EventData{payload(tb, domain.OrderPlaced{CustomerID: fmt.Sprintf("c%d", o%100), Currency: "EUR", PlacedAt: now})}
			var sum int64
			for i := 0; i < 8; i++ {
				sum += 300
				evs = append(evs, payload(tb, domain.OrderItemAdded{Sku: fmt.Sprintf("sku-%d", i), Quantity: 3, UnitPrice: 100, LineTotal: 300, OrderTotal: sum}))
			}
			evs = append(evs, payload(tb, domain.OrderSubmitted{Subtotal: sum, Total: sum, Currency: "EUR", ItemCount: 24, SubmittedAt: now}))
			return fmt.Sprintf("order-b%06d", o), evs
		})
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(streams) {
					return
				}
				id, evs := streams[i]()
				if _, err := e.store.Append(ctx, id, domain.ExpectNoStream, evs...); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkRebuildMixed measures building the accounts and orders read
// models from 100,000 events (the bench command's rebuild scenario at half
// size) next to reading the same events with pgx. Run it with
//
//	go test -run '^$' -bench RebuildMixed -benchtime 1x ./projections
func BenchmarkRebuildMixed(b *testing.B) {
	const total = 100_000
	e := newEnvB(b)
	ctx := context.Background()
	fillMixed(b, e, total)
	head := e.head(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		rows, err := e.pool.Query(ctx, `SELECT position, event_id, stream_id, stream_version, event_type, schema_version, data, metadata, recorded_at FROM events ORDER BY position`)
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for rows.Next() {
			var (
				pos, version    int64
				id, stream, typ string
				sv              int
				data, meta      []byte
				at              time.Time
			)
			if err := rows.Scan(&pos, &id, &stream, &version, &typ, &sv, &data, &meta, &at); err != nil {
				b.Fatal(err)
			}
			n++
		}
		rows.Close()
		raw := float64(n) / time.Since(start).Seconds()

		accounts, orders := versionN{projections.Accounts{}, 10 + i}, versionN{projections.Orders{}, 10 + i}
		r, err := projections.NewRunner(e.pool, e.store, quiet, projections.Options{Poll: 20 * time.Millisecond}, accounts, orders)
		if err != nil {
			b.Fatal(err)
		}
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		start = time.Now()
		go func() { done <- r.Run(runCtx) }()
		for statusB(b, e, "accounts", accounts.Version()).Position < head || statusB(b, e, "orders", orders.Version()).Position < head {
			time.Sleep(5 * time.Millisecond)
		}
		rebuild := float64(total) / time.Since(start).Seconds()
		stop()
		<-done
		b.ReportMetric(raw, "raw-read-events/s")
		b.ReportMetric(rebuild, "rebuild-events/s")
		b.ReportMetric(rebuild/raw, "rebuild/raw")
	}
}
