package graph_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"cqrsgate/domain"
	"cqrsgate/eventstore"
	"cqrsgate/graph"
	"cqrsgate/internal/pgtest"
)

// BenchmarkMutations measures depositMoney mutations per second through the
// full HTTP path (JSON, GraphQL, command service, PostgreSQL), by 1 and 32
// concurrent clients, each on its own account or all on one shared account
// (where optimistic concurrency makes them retry). Run it with
//
//	go test -run '^$' -bench Mutations -benchtime 2s ./graph
func BenchmarkMutations(b *testing.B) {
	for _, clients := range []int{1, 32} {
		for _, shared := range []bool{false, true} {
			name := "distinct"
			if shared {
				name = "shared"
			}
			b.Run(fmt.Sprintf("clients=%d/accounts=%s", clients, name), func(b *testing.B) { benchMutations(b, clients, shared) })
		}
	}
}

func benchMutations(b *testing.B, clients int, shared bool) {
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(pgtest.NewDatabase(b))
	if err != nil {
		b.Fatal(err)
	}
	cfg.MaxConns = int32(clients + 4)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	log := slog.New(slog.DiscardHandler)
	store := eventstore.NewPostgres(pool, log, eventstore.Limits{}, eventstore.NewBroadcaster())
	commands := domain.NewService(store, log, time.Now, domain.ServiceOptions{MaxRetries: 1000})
	srv := httptest.NewServer(graph.NewHandler(graph.Config{Store: store, Commands: commands, Log: log}))
	defer srv.Close()
	httpClient := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}

	accounts := make([]string, clients)
	for i := range accounts {
		if shared && i > 0 {
			accounts[i] = accounts[0]
			continue
		}
		res, err := domain.Execute(ctx, commands, domain.Accounts, domain.OpenAccount{AccountID: domain.NewID(), Owner: "bench", Currency: "EUR"}, domain.CommandMeta{})
		if err != nil {
			b.Fatal(err)
		}
		accounts[i] = res.AggregateID
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body, _ := json.Marshal(map[string]any{
				"query":     `mutation($id: ID!) { depositMoney(input: {accountId: $id, amount: 1}) { version position } }`,
				"variables": map[string]any{"id": accounts[c]},
			})
			for next.Add(1) <= int64(b.N) {
				resp, err := httpClient.Post(srv.URL, "application/json", bytes.NewReader(body))
				if err != nil {
					b.Error(err)
					return
				}
				out, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if bytes.Contains(out, []byte(`"errors"`)) {
					b.Errorf("mutation failed: %s", out)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "mutations/s")
}

// BenchmarkAggregateLoad measures loading an account with 10, 1,000 and
// 100,000 events, with and without snapshots. Run it with
//
//	go test -run '^$' -bench AggregateLoad ./graph
func BenchmarkAggregateLoad(b *testing.B) {
	ctx := context.Background()
	pool := pgtest.NewPool(b)
	log := slog.New(slog.DiscardHandler)
	store := eventstore.NewPostgres(pool, log, eventstore.Limits{}, eventstore.NewBroadcaster())
	for _, n := range []int{10, 1000, 100_000} {
		id := fmt.Sprintf("load-%d", n)
		stream := domain.Accounts.StreamID(id)
		// Write the history directly, in large appends: it is the load
		// that is measured.
		opened, _ := json.Marshal(domain.AccountOpened{Owner: "bench", Currency: "EUR", OpenedAt: time.Now().UTC()})
		batch := []domain.EventData{{Type: "AccountOpened", SchemaVersion: 1, Data: opened}}
		for v := 1; v < n; v++ {
			data, _ := json.Marshal(domain.MoneyDeposited{Amount: 1, BalanceAfter: int64(v)})
			batch = append(batch, domain.EventData{Type: "MoneyDeposited", SchemaVersion: 1, Data: data})
			if len(batch) == 1000 || v == n-1 {
				if _, err := store.Append(ctx, stream, domain.ExpectAny, batch...); err != nil {
					b.Fatal(err)
				}
				batch = batch[:0]
			}
		}
		if len(batch) > 0 {
			if _, err := store.Append(ctx, stream, domain.ExpectAny, batch...); err != nil {
				b.Fatal(err)
			}
		}
		for _, snapshots := range []bool{false, true} {
			every := -1
			if snapshots {
				every = 100
				// What the service would have saved by now.
				acct, _, err := domain.Load(ctx, domain.NewService(store, log, time.Now, domain.ServiceOptions{SnapshotEvery: -1}), domain.Accounts, id)
				if err != nil {
					b.Fatal(err)
				}
				state, _ := domain.Accounts.SaveState(acct)
				if err := store.SaveSnapshot(ctx, domain.Snapshot{StreamID: stream, Version: int64(n), SchemaVersion: domain.Accounts.StateVersion, State: state}); err != nil {
					b.Fatal(err)
				}
			}
			svc := domain.NewService(store, log, time.Now, domain.ServiceOptions{SnapshotEvery: every})
			b.Run(fmt.Sprintf("events=%d/snapshots=%v", n, snapshots), func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					acct, v, err := domain.Load(ctx, svc, domain.Accounts, id)
					if err != nil || v != int64(n) || acct.Balance() != int64(n-1) {
						b.Fatalf("load: version %d balance %d: %v", v, acct.Balance(), err)
					}
				}
			})
		}
	}
}
