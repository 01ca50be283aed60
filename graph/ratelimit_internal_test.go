package graph

import (
	"math"
	"testing"
	"time"
)

// TestTinyMutationRateStillLimits: MUTATIONS_PER_SECOND takes any number
// from 0 to 1e6, such as 1e-12 (an operator's "practically none"); the
// wait for the next token, 1/rate seconds, overflowed time.Duration and
// came out negative: no wait, every mutation went through.
func TestTinyMutationRateStillLimits(t *testing.T) {
	now := time.Unix(1000, 0)
	for _, rate := range []float64{1e-9, 1e-10, 1e-12} {
		burst := math.Max(1, math.Ceil(2*rate))
		m := &mutationRate{perSecond: rate, burst: burst, now: func() time.Time { return now }, buckets: map[string]*bucket{}}
		allowed := 0
		for range 5 {
			if m.take("ip:1", 1) <= 0 {
				allowed++
			}
		}
		if allowed > 1 {
			t.Errorf("MUTATIONS_PER_SECOND=%g: %d of 5 mutations at one instant allowed, want 1 (the burst)", rate, allowed)
		}
	}
}
