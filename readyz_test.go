package main

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestReadyChecksRunOnceAtATime: /readyz answers anyone, and each call ran
// its database checks: a flood of calls took the pool's connections. The
// checks now run at most once at a time, their result shared by the calls
// that wait for it, and a passing one reused for readyFresh; a failing one
// is not reused.
func TestReadyChecksRunOnceAtATime(t *testing.T) {
	var runs atomic.Int32
	release := make(chan struct{})
	c := &readyChecks{run: func(context.Context) map[string]string {
		runs.Add(1)
		<-release
		return map[string]string{"database": "ok"}
	}}
	var wg sync.WaitGroup
	concurrently(200, &wg, release, func() {
		if got := c.get(context.Background()); got["database"] != "ok" {
			t.Errorf("checks = %v", got)
		}
	})
	if n := runs.Load(); n != 1 {
		t.Fatalf("200 concurrent calls ran the checks %d times, want 1", n)
	}
	// Each caller gets its own copy.
	c.get(context.Background())["database"] = "changed"
	if got := c.get(context.Background()); got["database"] != "ok" || runs.Load() != 1 {
		t.Fatalf("after a caller changed its copy: %v (%d runs)", got, runs.Load())
	}
	// Stale results are not reused.
	c.mu.Lock()
	c.passed = time.Now().Add(-readyFresh)
	c.mu.Unlock()
	c.get(context.Background())
	if n := runs.Load(); n != 2 {
		t.Fatalf("a result older than readyFresh was reused (%d runs)", n)
	}

	// A failing result is shared by the calls waiting for it, not reused.
	var failing atomic.Int32
	failRelease := make(chan struct{})
	f := &readyChecks{run: func(context.Context) map[string]string {
		failing.Add(1)
		<-failRelease
		return map[string]string{"database": "unreachable"}
	}}
	concurrently(50, &wg, failRelease, func() {
		if got := f.get(context.Background()); got["database"] != "unreachable" {
			t.Errorf("checks = %v", got)
		}
	})
	if n := failing.Load(); n != 1 {
		t.Fatalf("50 concurrent calls ran the failing checks %d times, want 1", n)
	}
	f.get(context.Background())
	if n := failing.Load(); n != 2 {
		t.Fatalf("a failing result was reused (%d runs)", n)
	}
}

// concurrently runs call on n goroutines and, once all have started (and a
// moment more, for them to reach the checks), closes release, which the
// checks wait for; it returns when every call has.
func concurrently(n int, wg *sync.WaitGroup, release chan struct{}, call func()) {
	var started sync.WaitGroup
	for range n {
		wg.Add(1)
		started.Add(1)
		go func() {
			defer wg.Done()
			started.Done()
			call()
		}()
	}
	started.Wait()
	time.Sleep(50 * time.Millisecond)
	close(release)
	wg.Wait()
}

// TestReadyChecksWaiterGivesUpWithItsRequest: a call whose request ends
// while it waits for checks another call runs answers "not checked".
func TestReadyChecksWaiterGivesUpWithItsRequest(t *testing.T) {
	release := make(chan struct{})
	c := &readyChecks{run: func(context.Context) map[string]string {
		<-release
		return map[string]string{"database": "ok"}
	}}
	go c.get(context.Background())
	for {
		c.mu.Lock()
		running := c.running != nil
		c.mu.Unlock()
		if running {
			break
		}
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if got := c.get(ctx); got["database"] != "not checked" {
		t.Fatalf("a cancelled waiter got %v", got)
	}
	close(release)
}
