package graph

import (
	"context"
	"sync"
)

// streamWaker lets a subscription resolver announce each value it puts in
// its channel (and the channel's close), so that the websocket transport
// takes values only when one is there: no goroutine waits on an idle
// subscription's channel. A resolver that does not announce (it never
// calls streamWakerOf's result's announce) is waited on as usual.
type streamWaker struct {
	mu       sync.Mutex
	attached bool        // the resolver announces its values
	ready    int         // values (or the close) announced and not yet taken
	running  bool        // a goroutine is taking them
	next     func() bool // takes one; false: the stream has ended
	end      func()
	ended    bool
}

type streamWakerKey struct{}

func withStreamWaker(ctx context.Context, w *streamWaker) context.Context {
	return context.WithValue(ctx, streamWakerKey{}, w)
}

// announcer returns the function a subscription resolver calls after each
// value it sends on its channel and after closing it, or nil when the
// operation is not run by the websocket transport. The resolver calls
// attach once its channel exists.
func announcer(ctx context.Context) (announce func(), attach func()) {
	w, _ := ctx.Value(streamWakerKey{}).(*streamWaker)
	if w == nil {
		return nil, func() {}
	}
	return w.announce, w.attach
}

func (w *streamWaker) attach() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.attached = true
}

// announce counts a value (or the close) ready to be taken, and starts a
// goroutine to take it unless one is running.
func (w *streamWaker) announce() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ready++
	w.wakeLocked()
}

func (w *streamWaker) wakeLocked() {
	if w.next != nil && !w.running && !w.ended && w.ready > 0 {
		w.running = true
		go w.take()
	}
}

// start hands the stream to the waker when its resolver announces its
// values: next takes one value, end runs once the stream has ended. It
// reports false when the resolver does not announce (the caller waits on
// the stream itself).
func (w *streamWaker) start(next func() bool, end func()) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.attached {
		return false
	}
	w.next, w.end = next, end
	w.wakeLocked()
	return true
}

// take takes the announced values, then ends; each take finds its value
// already in the channel, so it never waits for one.
func (w *streamWaker) take() {
	for {
		w.mu.Lock()
		if w.ready == 0 {
			w.running = false
			w.mu.Unlock()
			return
		}
		w.ready--
		w.mu.Unlock()
		if !w.next() {
			w.mu.Lock()
			w.ended, w.running = true, false
			w.mu.Unlock()
			w.end()
			return
		}
	}
}
