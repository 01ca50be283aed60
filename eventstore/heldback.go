package eventstore

import (
	"context"
	"time"
)

// Held-back commits. A reader of the log sees an event only once every
// transaction older than the event's own has ended (see ReadAll). So an
// append can commit and announce itself while an older transaction (a
// projection's batch, a checkpoint's move, another append) still hides it:
// the readers it wakes find nothing, and when that older transaction ends
// no announcement follows. Without more, they would wait for their next
// poll, or the next commit: up to seconds on a quiet log, which is when a
// client waiting to read its own write is alone.
//
// So a read that finds an event announced before it began still hidden
// starts a watcher (one per store at a time). The watcher asks PostgreSQL
// for the readable head, at once and then at growing intervals (up to
// heldBackMaxPause), until the announced events are readable, and then
// wakes every reader as a commit does. It gives up when a commit wakes the
// readers first: they read again, and start a watcher again if they need one.

// heldBackMaxPause is the longest the watcher waits between two looks.
const heldBackMaxPause = 100 * time.Millisecond

// wakeWhenReadable starts the watcher unless it is running (it looks at
// the latest announcement each time). A read calls it when it found hidden
// an event that was announced before it began.
func (s *Postgres) wakeWhenReadable() {
	if s.heldBack.CompareAndSwap(false, true) {
		go s.watchHeldBack()
	}
}

func (s *Postgres) watchHeldBack() {
	pause := time.Millisecond
	timer := time.NewTimer(pause)
	defer timer.Stop()
	for {
		changed := s.wake.Changed()
		select {
		case <-changed:
			s.heldBack.Store(false) // a commit woke the readers: they look for themselves
			return
		case <-timer.C:
		}
		announced := s.wake.Latest()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		var head int64
		err := s.pool.QueryRow(ctx, headSQL).Scan(&head)
		cancel()
		if err != nil {
			s.heldBack.Store(false) // the readers' own polls take over
			return
		}
		if head >= announced {
			s.heldBack.Store(false) // before waking them, so that a read that finds more hidden can start a watcher
			s.wake.Notify(0)
			return
		}
		pause = min(2*pause, heldBackMaxPause)
		timer.Reset(pause)
	}
}
