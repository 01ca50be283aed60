package eventstore

import (
	"crypto/rand"
	"sync"
)

// Broadcaster wakes every waiter when events commit. Waiters take the
// channel from Changed before reading and wait on it when caught up; Notify
// closes it and installs a fresh one, so no notification is lost between a
// read and the wait, and a burst of commits costs waiters one wake-up.
// The zero value is not usable; use NewBroadcaster.
type Broadcaster struct {
	mu     sync.Mutex
	ch     chan struct{}
	latest int64
	origin string
}

// NewBroadcaster returns a Broadcaster with no waiters.
func NewBroadcaster() *Broadcaster {
	return &Broadcaster{ch: make(chan struct{}), origin: rand.Text()}
}

// Origin identifies the Broadcaster among every process's: the store that
// notifies it sends it with its commit notifications, and a Listener that
// notifies it skips those (the store woke it already).
func (b *Broadcaster) Origin() string { return b.origin }

// Changed returns a channel closed by the next Notify.
func (b *Broadcaster) Changed() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ch
}

// Notify wakes all waiters. position is the highest position known to be
// committed (0 when unknown, e.g. after a reconnect); Latest reports the
// highest seen.
func (b *Broadcaster) Notify(position int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if position > b.latest {
		b.latest = position
	}
	close(b.ch)
	b.ch = make(chan struct{})
}

// Latest returns the highest position passed to Notify.
func (b *Broadcaster) Latest() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.latest
}
