// Package workload builds the event histories that the benchmark command
// and the projections' Go benchmarks load, so that both measure the same
// work.
package workload

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"cqrsgate/domain"
	"cqrsgate/eventstore"
)

// Stream is one new stream's events.
type Stream struct {
	ID     string
	Events []domain.EventData
}

// Mixed returns a history of total events: half in accounts (an opening
// and 49 deposits each), half in orders (placed, eight items, submitted),
// recorded at now.
func Mixed(total int, now time.Time) ([]Stream, error) {
	var streams []Stream
	var encErr error
	enc := func(e domain.Event) domain.EventData {
		d, err := domain.EncodeEvent(e)
		if err != nil && encErr == nil {
			encErr = err
		}
		return d
	}
	for a := 0; a < total/2/50; a++ {
		evs := []domain.EventData{enc(domain.AccountOpened{Owner: "bench", Currency: "EUR", OpenedAt: now})}
		for v := 1; v < 50; v++ {
			evs = append(evs, enc(domain.MoneyDeposited{Amount: 10, BalanceAfter: int64(10 * v)}))
		}
		streams = append(streams, Stream{fmt.Sprintf("account-b%06d", a), evs})
	}
	for o := 0; o < total/2/10; o++ {
		evs := []domain.EventData{enc(domain.OrderPlaced{CustomerID: fmt.Sprintf("c%d", o%100), Currency: "EUR", PlacedAt: now})}
		var sum int64
		for i := 0; i < 8; i++ {
			sum += 300
			evs = append(evs, enc(domain.OrderItemAdded{Sku: fmt.Sprintf("sku-%d", i), Quantity: 3, UnitPrice: 100, LineTotal: 300, OrderTotal: sum}))
		}
		evs = append(evs, enc(domain.OrderSubmitted{Subtotal: sum, Total: sum, Currency: "EUR", ItemCount: 24, SubmittedAt: now}))
		streams = append(streams, Stream{fmt.Sprintf("order-b%06d", o), evs})
	}
	return streams, encErr
}

// Append appends each stream (which must not exist yet) to store with
// writers concurrent writers; it returns the first error.
func Append(ctx context.Context, store eventstore.Store, streams []Stream, writers int) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(streams) || ctx.Err() != nil {
					return
				}
				if _, err := store.Append(ctx, streams[i].ID, domain.ExpectNoStream, streams[i].Events...); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	return ctx.Err()
}
