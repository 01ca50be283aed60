// Package allocs measures allocations for tests that hold code to none.
package allocs

import "testing"

// Fewest returns the fewest allocations per call of f over up to five
// measurements of runs calls each, stopping at the first that finds none.
//
// testing.AllocsPerRun counts the allocations of every goroutine in the
// process, so a goroutine another test left behind (a closing connection
// pool, a timer) can add to one measurement; it cannot add to all five,
// while code that allocates does.
func Fewest(runs int, f func()) float64 {
	fewest := testing.AllocsPerRun(runs, f)
	for i := 1; i < 5 && fewest > 0; i++ {
		fewest = min(fewest, testing.AllocsPerRun(runs, f))
	}
	return fewest
}
