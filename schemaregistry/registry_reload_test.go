package schemaregistry

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"cqrsgate/internal/pgtest"
)

// TestConcurrentReloadsNeverGoBack: reloads run concurrently (Run, lookups
// that miss, every change); one that read its snapshot before a change
// committed used to install it after the change's own reload, so a
// registration could be invisible in the process that made it, right
// after Register returned. A snapshot older than the installed one is
// dropped now.
func TestConcurrentReloadsNeverGoBack(t *testing.T) {
	ctx := context.Background()
	r, err := New(ctx, pgtest.NewPool(t), nil, slog.New(slog.DiscardHandler), Options{})
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				_ = r.reload(ctx)
			}
		})
	}
	invisible := 0
	for i := range 150 {
		typ := fmt.Sprintf("T%d", i)
		if _, err := r.Register(ctx, Registration{Type: typ, Schema: json.RawMessage(`{"type": "object"}`)}); err != nil {
			t.Fatal(err)
		}
		if r.Latest(typ) == 0 {
			invisible++
		}
	}
	close(stop)
	wg.Wait()
	if invisible > 0 {
		t.Errorf("%d of 150 registrations were not visible right after Register returned", invisible)
	}

	// The rule itself: an older revision read before the newer one was
	// installed is dropped ...
	fresh := &Registry{}
	began := time.Now()
	newer, older := &state{revision: 10, types: map[string]*typeState{}, readFrom: began}, &state{revision: 9, types: map[string]*typeState{}, readFrom: began}
	fresh.install(newer)
	fresh.install(older)
	if got := fresh.state.Load(); got != newer {
		t.Errorf("installed revision %d over 10", got.revision)
	}
	// ... and one read after it is the database's: restored from a backup.
	time.Sleep(time.Millisecond)
	restored := &state{revision: 9, types: map[string]*typeState{}, readFrom: time.Now()}
	fresh.install(restored)
	if got := fresh.state.Load(); got != restored {
		t.Errorf("a database restored to revision 9: revision %d stays installed", got.revision)
	}
}

// TestDryRunsDoNotFillTheCompileCache: the cache of compiled schemas kept
// every schema ever checked or refused; it holds the stored ones only.
func TestDryRunsDoNotFillTheCompileCache(t *testing.T) {
	ctx := context.Background()
	r, err := New(ctx, pgtest.NewPool(t), nil, slog.New(slog.DiscardHandler), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		s := fmt.Sprintf(`{"type": "object", "description": "%d"}`, i)
		if _, err := r.Check(ctx, Registration{Type: "Dry", Schema: json.RawMessage(s)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.Register(ctx, Registration{Type: "Wet", Schema: json.RawMessage(`{"type": "object"}`)}); err != nil {
		t.Fatal(err)
	}
	n := 0
	r.compiled.Range(func(any, any) bool { n++; return true })
	if n != 1 {
		t.Errorf("after 200 dry runs and one registration, %d compiled schemas are cached, want 1", n)
	}
}
