package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestReadyChecksRunOnceAtATime: /readyz answers anyone, and each call ran
// its database checks: a flood of calls took the pool's connections. The
// checks now run at most once at a time, their result shared by the calls
// that wait for it, and a passing one reused for readyFresh; a failing one
// is not reused.
func TestReadyChecksRunOnceAtATime(t *testing.T) {
	var runs atomic.Int32
	release := make(chan struct{})
	c := &readyChecks{run: func(context.Context) readiness {
		runs.Add(1)
		<-release
		return readiness{checks: map[string]string{"database": "ok"}}
	}}
	var wg sync.WaitGroup
	concurrently(200, &wg, release, func() {
		if got := c.get(context.Background()).checks; got["database"] != "ok" {
			t.Errorf("checks = %v", got)
		}
	})
	if n := runs.Load(); n != 1 {
		t.Fatalf("200 concurrent calls ran the checks %d times, want 1", n)
	}
	// Each caller gets its own copy.
	c.get(context.Background()).checks["database"] = "changed"
	if got := c.get(context.Background()).checks; got["database"] != "ok" || runs.Load() != 1 {
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
	f := &readyChecks{run: func(context.Context) readiness {
		failing.Add(1)
		<-failRelease
		return readiness{checks: map[string]string{"database": "unreachable"}}
	}}
	concurrently(50, &wg, failRelease, func() {
		if got := f.get(context.Background()).checks; got["database"] != "unreachable" {
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
	c := &readyChecks{run: func(context.Context) readiness {
		<-release
		return readiness{checks: map[string]string{"database": "ok"}}
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
	if got := c.get(ctx).checks; got["database"] != "not checked" {
		t.Fatalf("a cancelled waiter got %v", got)
	}
	close(release)
}

// TestReadyzFailsOnlyForServingProjections: /readyz answered 503 when any
// projection generation had failed, a rebuild beside the serving one as
// well, which no query reads: a failed background rebuild took every
// gateway out of its load balancer. It is unready only when a serving
// generation has failed; a failed rebuild shows under "warnings".
func TestReadyzFailsOnlyForServingProjections(t *testing.T) {
	p := runInProcess(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.logged("embedded PostgreSQL started", "url"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	type answer struct {
		code     int
		Status   string
		Checks   map[string]string
		Warnings map[string]string
	}
	readyz := func() answer {
		t.Helper()
		resp, err := http.Get("http://" + p.addr + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		a := answer{code: resp.StatusCode}
		if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
			t.Fatal(err)
		}
		return a
	}
	// until asks /readyz until cond holds: a passing answer is reused for
	// readyFresh.
	until := func(what string, cond func(answer) bool) answer {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			a := readyz()
			if cond(a) {
				return a
			}
			if time.Now().After(deadline) {
				t.Fatalf("/readyz never %s: %d %+v", what, a.code, a)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	until("answered 200", func(a answer) bool { return a.code == http.StatusOK })
	for deadline := time.Now().Add(30 * time.Second); ; {
		var serving bool
		if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM projections WHERE name = 'accounts' AND serving)`).Scan(&serving); err != nil {
			t.Fatal(err)
		}
		if serving {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the accounts read model does not serve")
		}
		time.Sleep(50 * time.Millisecond)
	}

	// A rebuild of the accounts read model failed beside the serving
	// generation (as the runner records it).
	if tag, err := conn.Exec(ctx, `INSERT INTO projections (name, version, generation, status, failures, last_error, failed_position)
		SELECT name, version, generation + 1, 'FAILED', 5, 'cannot fold', 1 FROM projections WHERE name = 'accounts' AND serving`); err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("a failed rebuild: %v, %v", tag, err)
	}
	a := until("reported the failed rebuild", func(a answer) bool { return a.code != http.StatusOK || a.Warnings["projections"] != "" })
	if a.code != http.StatusOK || a.Status != "ok" || a.Checks["projections"] != "ok" {
		t.Fatalf("/readyz with a failed rebuild: %d %+v, want 200 and projections ok", a.code, a)
	}
	if w := a.Warnings["projections"]; !strings.Contains(w, "accounts") || !strings.Contains(w, "generation 2") || !strings.Contains(w, "position 1") {
		t.Fatalf("warning about the failed rebuild: %q", w)
	}

	// The serving generation fails: the gateway is unready, and the
	// warning stays.
	if _, err := conn.Exec(ctx, `UPDATE projections SET status = 'FAILED', failures = 5, last_error = 'cannot fold', failed_position = 3
		WHERE name = 'accounts' AND serving`); err != nil {
		t.Fatal(err)
	}
	a = until("answered 503", func(a answer) bool { return a.code == http.StatusServiceUnavailable })
	if a.Status != "unavailable" || !strings.Contains(a.Checks["projections"], "accounts") || !strings.Contains(a.Checks["projections"], "position 3") ||
		!strings.Contains(a.Warnings["projections"], "generation 2") {
		t.Fatalf("/readyz with the serving generation failed: %+v", a)
	}
}
