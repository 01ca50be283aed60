package projections

import (
	"math"
	"math/big"
	"math/rand/v2"
	"testing"
)

func TestSumIsExact(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	edges := []int64{math.MaxInt64, math.MinInt64, -1, 0, 1, math.MaxInt64 - 1, math.MinInt64 + 1}
	for round := 0; round < 200; round++ {
		var s sum
		want := new(big.Int)
		for i := 0; i < 50; i++ {
			v := r.Int64() - r.Int64()/2
			if r.IntN(3) == 0 {
				v = edges[r.IntN(len(edges))]
			}
			if r.IntN(2) == 0 {
				s.add(v)
				want.Add(want, big.NewInt(v))
			} else {
				s.sub(v)
				want.Sub(want, big.NewInt(v))
			}
			if s.String() != want.String() || s.isZero() != (want.Sign() == 0) {
				t.Fatalf("round %d step %d: sum %s (zero %v), want %s", round, i, s, s.isZero(), want)
			}
		}
	}
}
