package domain

import (
	"sync"
	"testing"
)

func TestKeyLockSerialisesPerKeyAndForgetsUnusedKeys(t *testing.T) {
	var kl keyLock
	var wg sync.WaitGroup
	var counters [2]int // one per key: distinct memory, guarded by its key's lock
	keys := [2]string{"a", "b"}
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			unlock := kl.lock(keys[i%2])
			v := counters[i%2] // the race detector flags this if the lock does not hold
			counters[i%2] = v + 1
			unlock()
		}()
	}
	wg.Wait()
	if counters[0] != 100 || counters[1] != 100 {
		t.Fatalf("counters = %v", counters)
	}
	if len(kl.locks) != 0 {
		t.Fatalf("%d unused locks kept", len(kl.locks))
	}
}
