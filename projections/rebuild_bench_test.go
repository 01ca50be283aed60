package projections_test

import (
	"context"
	"testing"
	"time"

	"cqrsgate/internal/workload"
	"cqrsgate/projections"
)

// fillMixed appends the bench command's rebuild history (workload.Mixed)
// with 8 writers.
func fillMixed(tb testing.TB, e *env, total int) {
	tb.Helper()
	streams, err := workload.Mixed(total, time.Now().UTC())
	if err == nil {
		err = workload.Append(context.Background(), e.store, streams, 8)
	}
	if err != nil {
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
	fillMixed(b, e, total)
	rebuildNextToScan(b, e, total, func(i int) []versionN {
		return []versionN{{projections.Accounts{}, 10 + i}, {projections.Orders{}, 10 + i}}
	})
}

// rebuildNextToScan runs b.N times: a pgx scan of every event (all
// columns, in position order), then a build of the projections versions(i)
// returns (new versions, so from the start of the log) until each has
// caught up with the head; it reports both rates and their ratio.
func rebuildNextToScan(b *testing.B, e *env, total int, versions func(i int) []versionN) {
	ctx := context.Background()
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

		vs := versions(i)
		ps := make([]projections.Projection, len(vs))
		for j, v := range vs {
			ps[j] = v
		}
		r, err := projections.NewRunner(e.pool, e.store, quiet, projections.Options{Poll: 20 * time.Millisecond}, ps...)
		if err != nil {
			b.Fatal(err)
		}
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		start = time.Now()
		go func() { done <- r.Run(runCtx) }()
		for _, v := range vs {
			for statusB(b, e, v.Name(), v.Version()).Position < head {
				time.Sleep(5 * time.Millisecond)
			}
		}
		rebuild := float64(total) / time.Since(start).Seconds()
		stop()
		<-done
		b.ReportMetric(raw, "raw-read-events/s")
		b.ReportMetric(rebuild, "rebuild-events/s")
		b.ReportMetric(rebuild/raw, "rebuild/raw")
	}
}
