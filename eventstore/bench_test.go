package eventstore_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"cqrsgate/domain"
	"cqrsgate/eventstore"
	"cqrsgate/eventstore/eventstoretest"
	"cqrsgate/internal/pgtest"
	"cqrsgate/internal/workload"
)

// BenchmarkAppend measures durable appends (fsync on) to distinct streams by
// 1 and 32 concurrent writers, of 1 and of 100 events each, and reports
// appends/s and events/s next to ns/op. Run it with
//
//	go test -run '^$' -bench Append -benchtime 2s ./eventstore
func BenchmarkAppend(b *testing.B) {
	for _, writers := range []int{1, 32} {
		for _, size := range []int{1, 100} {
			b.Run(fmt.Sprintf("writers=%d/events=%d", writers, size), func(b *testing.B) {
				benchAppend(b, writers, size)
			})
		}
	}
}

func benchAppend(b *testing.B, writers, size int) {
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(pgtest.NewDatabase(b))
	if err != nil {
		b.Fatal(err)
	}
	cfg.MaxConns = int32(writers + 2)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	s := eventstore.NewPostgres(pool, quietLogger(), eventstore.Limits{}, eventstore.NewBroadcaster())
	batch := make([]domain.EventData, size)
	for i := range batch {
		batch[i] = eventstoretest.Ev("Benchmarked", i)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stream := fmt.Sprintf("bench-%d", w)
			for next.Add(1) <= int64(b.N) {
				if _, err := s.Append(ctx, stream, domain.ExpectAny, batch...); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	b.ReportMetric(float64(b.N)/elapsed, "appends/s")
	b.ReportMetric(float64(b.N*size)/elapsed, "events/s")
}

// BenchmarkReadAll measures reading the log in position order, in pages of
// 2000 (as a projection catching up does), over 20,000 events of the
// bench command's mixed history; it reports events/s and the reader's CPU
// time per event (PostgreSQL's is not counted). Run it with
//
//	go test -run '^$' -bench ReadAll -benchmem ./eventstore
func BenchmarkReadAll(b *testing.B) {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, pgtest.NewDatabase(b))
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	s := eventstore.NewPostgres(pool, quietLogger(), eventstore.Limits{}, eventstore.NewBroadcaster())
	const total = 20_000
	streams, err := workload.Mixed(total, time.Now().UTC())
	if err == nil {
		err = workload.Append(ctx, s, streams, 4)
	}
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start, cpu := time.Now(), cpuTime()
	for range b.N {
		after, n := int64(0), 0
		for n < total {
			p, err := s.ReadAll(ctx, eventstore.AllQuery{After: after, Limit: 2000})
			if err != nil {
				b.Fatal(err)
			}
			n += len(p.Events)
			after = p.Next
		}
	}
	b.ReportMetric(float64(b.N*total)/time.Since(start).Seconds(), "events/s")
	b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N*total), "cpu-ns/event")
}

// cpuTime returns the CPU time the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
