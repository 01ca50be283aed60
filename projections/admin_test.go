package projections_test

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"cqrsgate/domain"
	"cqrsgate/projections"
)

// servingAndStopped runs a Runner with ps until every one serves, then
// stops it, so that a rebuild asked for stays under way.
func servingAndStopped(t *testing.T, e *env, ps ...projections.Projection) {
	t.Helper()
	r, err := projections.NewRunner(e.pool, e.store, quiet, projections.Options{Poll: 50 * time.Millisecond, LeaderRetry: 50 * time.Millisecond}, ps...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	waitFor(t, "every projection to serve", func() bool {
		for _, p := range ps {
			if !status(t, e.pool, p.Name(), p.Version()).Serving {
				return false
			}
		}
		return true
	})
	stop()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v", err)
	}
}

// TestConcurrentRebuildsStartOne: rebuilds of one projection asked for at
// the same time picked the same generation, and all but one failed with
// PostgreSQL's unique violation (INTERNAL at the edge). Exactly one starts
// and every other finds it under way.
func TestConcurrentRebuildsStartOne(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	ps := []projections.Projection{projections.Accounts{}, projections.Orders{}, projections.Products{}, projections.Fulfilments{}}
	servingAndStopped(t, e, ps...)
	for _, p := range ps {
		const callers = 16
		errs := make([]error, callers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, errs[i] = projections.NewAdmin(e.pool).Rebuild(ctx, p.Name())
			}()
		}
		close(start)
		wg.Wait()
		started := 0
		for _, err := range errs {
			var de *domain.Error
			switch {
			case err == nil:
				started++
			case errors.As(err, &de) && de.Code == domain.RuleViolation && de.Rule == "REBUILD_IN_PROGRESS":
			default:
				t.Errorf("rebuild of %s racing others: %v (code %s), want RULE_VIOLATION REBUILD_IN_PROGRESS", p.Name(), err, domain.CodeOf(err))
			}
		}
		if started != 1 {
			t.Errorf("%d of %d concurrent rebuilds of %s started, want 1", started, callers, p.Name())
		}
		var generations []int
		list, err := projections.List(ctx, e.pool)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range list {
			if s.Name == p.Name() {
				generations = append(generations, s.Generation)
			}
		}
		if !reflect.DeepEqual(generations, []int{1, 2}) {
			t.Errorf("generations of %s after the rebuilds: %v, want [1 2]", p.Name(), generations)
		}
	}
}

// TestAdminRefusesNamesNoProjectionHas: a name with a NUL or bytes that
// are not UTF-8 reached PostgreSQL, which refused it (INTERNAL at the
// edge). It is unknown (NOT_FOUND), and nothing changes.
func TestAdminRefusesNamesNoProjectionHas(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	servingAndStopped(t, e, projections.Accounts{})
	before, err := projections.List(ctx, e.pool)
	if err != nil {
		t.Fatal(err)
	}
	admin := projections.NewAdmin(e.pool)
	for _, name := range []string{"accounts\x00", "\xff", "accounts\xff"} {
		for what, err := range map[string]error{
			"Rebuild":             errOf(projections.Rebuild(ctx, e.pool, name)),
			"Retry":               errOf(projections.Retry(ctx, e.pool, name)),
			"Skip":                errOf(projections.Skip(ctx, e.pool, name, 1)),
			"Admin.Rebuild":       errOf(admin.Rebuild(ctx, name)),
			"Admin.Retry":         errOf(admin.Retry(ctx, name)),
			"Admin.Skip":          errOf(admin.Skip(ctx, name, 1)),
			"CancelRebuild":       errOf(projections.CancelRebuild(ctx, e.pool, name)),
			"Admin.CancelRebuild": errOf(admin.CancelRebuild(ctx, name)),
		} {
			if domain.CodeOf(err) != domain.NotFound {
				t.Errorf("%s(%q): %v (code %s), want NOT_FOUND", what, name, err, domain.CodeOf(err))
			}
		}
	}
	after, err := projections.List(ctx, e.pool)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(after, before) {
		t.Errorf("projections changed:\n%+v\nwant\n%+v", after, before)
	}
}

// errOf is the error of a call that also returns a value.
func errOf[T any](_ T, err error) error { return err }
