package gctune

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"testing"
	"time"
)

func TestPercent(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		percent           int
		headroom, scanned uint64
		want              int
	}{
		{400, 64 * mib, 10 * mib, 400},     // small heap: 40 MiB of garbage, 30 beyond Go's default
		{400, 64 * mib, 64 * mib / 3, 400}, // exactly the headroom beyond the default (about 21.3 MiB live)
		{400, 64 * mib, 32 * mib, 300},     // 32 + 64 MiB of garbage allowed: 300%
		{400, 64 * mib, 64 * mib, 200},
		{400, 64 * mib, 100 * mib, 164},
		{400, 64 * mib, 10_000 * mib, 100}, // a huge heap: Go's default, never below
		{400, 0, 10_000 * mib, 400},        // no cap
		{400, 64 * mib, 0, 400},            // nothing scanned yet
		{100, 64 * mib, 10_000 * mib, 100},
		{50, 64 * mib, 10_000 * mib, 50}, // a target below Go's default is left as it is
		{150, 1 * mib, 100 * mib, 101},
	} {
		if got := Percent(c.percent, c.headroom, c.scanned); got != c.want {
			t.Errorf("Percent(%d, %d MiB, %d MiB scanned) = %d, want %d", c.percent, c.headroom/mib, c.scanned/mib, got, c.want)
		}
	}
}

// gogc is the collector's target in force.
func gogc() int {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return int(s[0].Value.Uint64())
}

// TestTunerFollowsTheLiveHeap: after collections, a live heap larger than
// the headroom lowers the target, and the target goes back up once that
// heap is let go; once stopped, the tuner changes nothing more.
func TestTunerFollowsTheLiveHeap(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	const headroom = 4 << 20
	tu := Start(400, headroom)
	defer tu.Stop()
	if got := gogc(); got != 400 {
		t.Fatalf("target after Start = %d, want 400", got)
	}

	// waitFor collects until the tuner has set want (its cleanup runs on a
	// goroutine of its own after the collection).
	waitFor := func(want func(int) bool, what string) int {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			runtime.GC()
			time.Sleep(10 * time.Millisecond)
			if p := tu.Current(); want(p) && gogc() == p {
				return p
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the tuner's target is %d (in force %d)", what, tu.Current(), gogc())
			}
		}
	}

	live := make([][]byte, 64) // 64 MiB live, 16 times the headroom
	for i := range live {
		live[i] = make([]byte, 1<<20)
	}
	// 4 MiB of headroom over at least 64 MiB: about 106%, no less than 100.
	if p := waitFor(func(p int) bool { return p <= 107 }, "with 64 MiB live"); p < 100 {
		t.Errorf("with 64 MiB live the target is %d, below Go's default", p)
	}
	runtime.KeepAlive(live)
	live = nil

	waitFor(func(p int) bool { return p == 400 }, "once the 64 MiB are let go")

	tu.Stop()
	debug.SetGCPercent(400)
	collectHolding64MiB()
	if got := gogc(); got != 400 {
		t.Errorf("a stopped tuner set the target to %d", got)
	}
}

// collectHolding64MiB runs a few collections (and lets any tuner's
// cleanup run after each) while 64 MiB are live.
func collectHolding64MiB() {
	big := make([][]byte, 64)
	for i := range big {
		big[i] = make([]byte, 1<<20)
	}
	for range 3 {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	runtime.KeepAlive(big)
}

// TestStartWithoutHeadroom: no headroom, or a target not above Go's
// default, sets the target and tunes nothing.
func TestStartWithoutHeadroom(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	for _, c := range []struct {
		percent  int
		headroom uint64
	}{{400, 0}, {80, 64 << 20}} {
		tu := Start(c.percent, c.headroom)
		collectHolding64MiB()
		if got := gogc(); got != c.percent || tu.Current() != c.percent {
			t.Errorf("Start(%d, %d): target %d (tuner %d), want it left at %d", c.percent, c.headroom, got, tu.Current(), c.percent)
		}
		tu.Stop()
	}
}

// deep holds a goroutine's stack at about depth KiB until release closes.
func deep(depth int, release <-chan struct{}) byte {
	var pad [1024]byte
	if depth == 0 {
		<-release
		return pad[0]
	}
	pad[depth%1024] = byte(depth)
	return deep(depth-1, release) + pad[(depth+1)%1024]
}

// TestTunerCountsStacks: the runtime's goal grows with the goroutine stacks
// it scans as well as with the live heap, so stacks that dwarf the heap
// lower the target as a live heap of their size would.
func TestTunerCountsStacks(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	tu := Start(400, 4<<20)
	defer tu.Stop()
	release := make(chan struct{})
	var done sync.WaitGroup
	for range 500 { // 500 goroutines of about 64 KiB of stack each: 32 MiB
		done.Add(1)
		go func() { defer done.Done(); deep(64, release) }()
	}
	defer func() { close(release); done.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
		if p := tu.Current(); p <= 120 && gogc() == p {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("with 32 MiB of stacks and 4 MiB of headroom the target is %d, want about 112", tu.Current())
		}
	}
}
