package eventstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"cqrsgate/domain"
	"cqrsgate/internal/pgtest"
)

// holdWriters has appends to busy-0 ... busy-3 occupy every batch writer of
// s (their batches wait in the before-commit hook until release is closed;
// other streams go to hook), and returns once they do; wait returns once
// they are answered.
func holdWriters(t *testing.T, s *Postgres, hook func(ctx context.Context, stream string) error) (release chan struct{}, wait func()) {
	t.Helper()
	release = make(chan struct{})
	entered := make(chan struct{})
	s.beforeCommit = func(ctx context.Context, stream string) error {
		if strings.HasPrefix(stream, "busy-") {
			entered <- struct{}{}
			<-release
			return nil
		}
		return hook(ctx, stream)
	}
	var wg sync.WaitGroup
	for i := range maxGroupWriters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.Append(context.Background(), fmt.Sprintf("busy-%d", i), domain.ExpectNoStream, domain.EventData{Type: "Busy", SchemaVersion: 1, Data: json.RawMessage(`{}`)}); err != nil {
				t.Error(err)
			}
		}()
		<-entered
	}
	return release, wg.Wait
}

// appendQueued starts an append to each of streams once every batch writer
// is busy, and returns once all of them wait in the queue; wait returns
// their errors.
func appendQueued(t *testing.T, s *Postgres, streams []string, events []domain.EventData) (wait func() []error) {
	t.Helper()
	errs := make([]error, len(streams))
	var wg sync.WaitGroup
	for i, stream := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = s.Append(context.Background(), stream, domain.ExpectNoStream, events...)
		}()
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(time.Millisecond) {
		s.group.mu.Lock()
		queued := len(s.group.queue)
		s.group.mu.Unlock()
		if queued == len(streams) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d appends queued", queued, len(streams))
		}
	}
	return func() []error { wg.Wait(); return errs }
}

// A batch holds appends of at most maxGroupBytes of data and metadata
// between them (one larger goes alone): appends valid each alone could
// otherwise make an INSERT beyond what PostgreSQL and pgx take in one
// message (1 GiB), and fail together.
func TestBatchesAreCappedInBytes(t *testing.T) {
	s := NewPostgres(pgtest.NewPool(t), slog.New(slog.NewTextHandler(io.Discard, nil)), Limits{}, NewBroadcaster())
	var mu sync.Mutex
	batches := map[context.Context][]string{} // the streams of each batch, by its context
	release, busy := holdWriters(t, s, func(ctx context.Context, stream string) error {
		mu.Lock()
		defer mu.Unlock()
		batches[ctx] = append(batches[ctx], stream)
		return nil
	})
	blob := json.RawMessage(`{"blob":"` + strings.Repeat("x", 1_000_000-11) + `"}`)
	events := make([]domain.EventData, maxGroupBytes/2/(len(blob)+2)+1) // two appends are beyond the cap
	for i := range events {
		events[i] = domain.EventData{Type: "Blob", SchemaVersion: 1, Data: blob}
	}
	size := len(events) * (len(blob) + len(`{}`))
	streams := []string{"big-1", "big-2", "big-3"}
	wait := appendQueued(t, s, streams, events)
	close(release)
	busy()
	for i, err := range wait() {
		if err != nil {
			t.Errorf("%s: %v", streams[i], err)
		}
	}
	for _, streams := range batches {
		if len(streams) > 1 && len(streams)*size > maxGroupBytes {
			t.Errorf("appends to %v (%d bytes each) were written in one batch: %d bytes, beyond the cap of %d", streams, size, len(streams)*size, maxGroupBytes)
		}
	}
}

// When a batch fails as a whole, each of its appends is tried again alone
// with a timeout of its own, not what is left of the batch's.
func TestAppendsRetriedAloneHaveTheirOwnTimeout(t *testing.T) {
	s := NewPostgres(pgtest.NewPool(t), slog.New(slog.NewTextHandler(io.Discard, nil)), Limits{}, NewBroadcaster())
	const pause = 300 * time.Millisecond
	var mu sync.Mutex
	var batch time.Time               // the deadline of the batch that failed
	retries := map[string]time.Time{} // the deadlines of the appends tried again
	release, busy := holdWriters(t, s, func(ctx context.Context, stream string) error {
		mu.Lock()
		defer mu.Unlock()
		deadline, _ := ctx.Deadline()
		if batch.IsZero() {
			batch = deadline
			time.Sleep(pause) // the batch spends some of its time
			return errors.New("refused by the test")
		}
		retries[stream] = deadline
		return nil
	})
	streams := []string{"retry-1", "retry-2"}
	wait := appendQueued(t, s, streams, []domain.EventData{{Type: "Retried", SchemaVersion: 1, Data: json.RawMessage(`{}`)}})
	close(release)
	busy()
	for i, err := range wait() {
		if err != nil {
			t.Errorf("%s: %v", streams[i], err)
		}
	}
	if len(retries) != len(streams) {
		t.Fatalf("appends tried again alone: %v; want %v", retries, streams)
	}
	for stream, deadline := range retries {
		if deadline.Sub(batch) < pause {
			t.Errorf("%s was tried again with a deadline %v after the failed batch's; want a fresh timeout (at least %v later)", stream, deadline.Sub(batch), pause)
		}
	}
}
