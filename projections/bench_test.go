package projections_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"cqrsgate/domain"
	"cqrsgate/projections"
)

// BenchmarkRebuild measures rebuilding the accounts read model from 100,000
// events next to simply reading the same events with pgx, in the same run
// (see rebuildNextToScan).
// Run it with
//
//	go test -run '^$' -bench Rebuild -benchtime 1x ./projections
func BenchmarkRebuild(b *testing.B) {
	const accounts, perAccount = 1000, 100
	e := newEnvB(b)
	ctx := context.Background()
	opened, _ := json.Marshal(domain.AccountOpened{Owner: "bench", Currency: "EUR", OpenedAt: time.Now().UTC()})
	for a := 0; a < accounts; a++ {
		batch := []domain.EventData{{Type: "AccountOpened", SchemaVersion: 1, Data: opened}}
		for v := 1; v < perAccount; v++ {
			data, _ := json.Marshal(domain.MoneyDeposited{Amount: 1, BalanceAfter: int64(v)})
			batch = append(batch, domain.EventData{Type: "MoneyDeposited", SchemaVersion: 1, Data: data})
		}
		if _, err := e.store.Append(ctx, fmt.Sprintf("account-b%04d", a), domain.ExpectNoStream, batch...); err != nil {
			b.Fatal(err)
		}
	}
	rebuildNextToScan(b, e, accounts*perAccount, func(i int) []versionN {
		return []versionN{{projections.Accounts{}, 10 + i}}
	})
}

// BenchmarkProjectionLag measures the time from an append's commit to the
// accounts read model having applied it, under a steady write load of 200
// deposits per second for 5 seconds, and prints p50 and p99. Run it with
//
//	go test -run '^$' -bench ProjectionLag -benchtime 1x ./projections
func BenchmarkProjectionLag(b *testing.B) {
	e := newEnvB(b)
	ctx := context.Background()
	r, err := projections.NewRunner(e.pool, e.store, quiet, projections.Options{}, projections.Accounts{})
	if err != nil {
		b.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(runCtx) }()
	defer func() { stop(); <-done }()
	const writers, rate, seconds = 8, 200, 5
	for w := 0; w < writers; w++ {
		if _, err := domain.Execute(ctx, e.commands, domain.Accounts, domain.OpenAccount{AccountID: fmt.Sprint("lag-", w), Owner: "o", Currency: "EUR"}, domain.CommandMeta{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		type write struct {
			position int64
			at       time.Time
		}
		var mu sync.Mutex
		var pending []write
		var lags []time.Duration
		stopWatch := make(chan struct{})
		watched := make(chan struct{})
		go func() { // records when the checkpoint passes each write
			defer close(watched)
			for {
				wake := r.Progress()
				var cp int64
				_ = e.pool.QueryRow(ctx, `SELECT position FROM projections WHERE name = 'accounts' AND serving`).Scan(&cp)
				now := time.Now()
				mu.Lock()
				rest := pending[:0]
				for _, w := range pending {
					if w.position <= cp {
						lags = append(lags, now.Sub(w.at))
					} else {
						rest = append(rest, w)
					}
				}
				pending = rest
				left := len(pending)
				mu.Unlock()
				select {
				case <-stopWatch:
					if left == 0 {
						return
					}
				default:
				}
				select {
				case <-wake:
				case <-time.After(5 * time.Millisecond):
				}
			}
		}()
		var wg sync.WaitGroup
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				tick := time.NewTicker(time.Second * writers / rate)
				defer tick.Stop()
				for n := 0; n < rate*seconds/writers; n++ {
					<-tick.C
					res, err := domain.Execute(ctx, e.commands, domain.Accounts, domain.DepositMoney{AccountID: fmt.Sprint("lag-", w), Amount: 1}, domain.CommandMeta{})
					if err != nil {
						b.Error(err)
						return
					}
					mu.Lock()
					pending = append(pending, write{res.Position, time.Now()})
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		close(stopWatch)
		<-watched
		sort.Slice(lags, func(i, j int) bool { return lags[i] < lags[j] })
		b.ReportMetric(float64(lags[len(lags)/2].Microseconds())/1000, "p50-lag-ms")
		b.ReportMetric(float64(lags[len(lags)*99/100].Microseconds())/1000, "p99-lag-ms")
		b.ReportMetric(float64(len(lags))/seconds, "writes/s")
	}
}

// versionN is a projection under an arbitrary version.
type versionN struct {
	projections.Projection
	v int
}

func (p versionN) Version() int { return p.v }
