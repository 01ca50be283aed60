// Package gctune keeps the garbage collector's target high while the live
// heap is small, and bounds the garbage that target lets pile up once the
// live heap grows.
//
// A target above Go's default (GOGC=100) saves the collector's CPU where a
// process allocates fast and keeps little, as the gateway does under load.
// The same target over a large live heap (thousands of websocket
// connections) lets several times that heap accumulate as garbage between
// collections: at 400%, a 100 MB live heap grows to 500 MB before it is
// collected. The tuner caps the garbage the raised target allows beyond
// Go's default at a headroom (in bytes): after each collection it sets the
// target to the percent given, or, when that would allow more, to the
// percent that allows just the headroom more than Go's default, never
// lower than 100% (nor higher than the percent given).
//
// The runtime's goal grows the heap by the target's share of the live
// heap plus the goroutine stacks and globals it scanned, so the tuner
// counts those too.
package gctune

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// Percent is the collector's target when its goal grows from scanned
// bytes (the live heap, plus the stacks and globals the last collection
// scanned): percent, lowered so that the garbage allowed beyond Go's
// default target stays within headroom bytes, to no less than 100. A
// percent of 100 or less, a headroom of 0 (no cap) or nothing scanned yet
// (0) leave percent as it is.
func Percent(percent int, headroom, scanned uint64) int {
	if percent <= 100 || headroom == 0 || scanned == 0 {
		return percent
	}
	if scanned*uint64(percent)/100 <= scanned+headroom {
		return percent // the garbage it allows is within Go's default plus the headroom
	}
	// the percent p at which scanned*p/100 = scanned + headroom
	p := 100 + headroom*100/scanned
	return int(min(p, uint64(percent)))
}

// Tuner sets the collector's target after each collection (see Percent).
type Tuner struct {
	percent  int
	headroom uint64

	mu      sync.Mutex
	stopped bool
	current int // the target last set
	sample  []metrics.Sample
}

// Start sets the collector's target to percent and, when headroom is not 0,
// starts the tuner that lowers it, after each collection, as the live heap
// grows (see Percent). Stop ends the tuning; the target stays as it was
// last set.
func Start(percent int, headroom uint64) *Tuner {
	t := &Tuner{percent: percent, headroom: headroom, current: percent,
		sample: []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/gc/scan/stack:bytes"}, {Name: "/gc/scan/globals:bytes"}}}
	debug.SetGCPercent(percent)
	if headroom > 0 && percent > 100 {
		t.arm()
	}
	return t
}

// Stop ends the tuning: once it returns, the tuner sets nothing more.
func (t *Tuner) Stop() {
	t.mu.Lock()
	t.stopped = true
	t.mu.Unlock()
}

// sentinel is an object the tuner lets go of as soon as it is made: its
// cleanup runs after the collection that finds it unreachable, which is
// the next one. It holds a pointer so that the allocator gives it a block
// of its own (tiny, pointer-free objects share one, and a cleanup waits
// for the whole block).
type sentinel struct{ _ *byte }

func (t *Tuner) arm() {
	runtime.AddCleanup(new(sentinel), (*Tuner).collected, t)
}

// collected runs after a collection: it sets the target for what that
// collection found, and waits for the next.
func (t *Tuner) collected() {
	t.mu.Lock()
	if t.stopped {
		t.mu.Unlock()
		return
	}
	metrics.Read(t.sample)
	var scanned uint64
	for _, s := range t.sample {
		if s.Value.Kind() == metrics.KindUint64 {
			scanned += s.Value.Uint64()
		}
	}
	if p := Percent(t.percent, t.headroom, scanned); p != t.current {
		debug.SetGCPercent(p)
		t.current = p
	}
	t.mu.Unlock()
	t.arm()
}

// Current is the target the tuner last set.
func (t *Tuner) Current() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.current
}
