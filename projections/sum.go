package projections

import (
	"math/big"
	"math/bits"
	"strconv"
)

// sum is an exact sum of int64 values, in 128 bits (two's complement,
// hi·2⁶⁴ + lo), which no batch of events can overflow. Read models keep
// sums over many aggregates (a tenant's balances, a day's revenue) in
// numeric columns: each amount fits 64 bits, their sum need not, and a sum
// that wrapped would be wrong, one that failed would stop the read model
// for every tenant.
type sum struct {
	hi int64
	lo uint64
}

func (s *sum) add(v int64) {
	var carry uint64
	s.lo, carry = bits.Add64(s.lo, uint64(v), 0)
	s.hi += int64(carry)
	if v < 0 {
		s.hi-- // v sign-extended: its high word is all ones
	}
}

func (s *sum) sub(v int64) {
	var borrow uint64
	s.lo, borrow = bits.Sub64(s.lo, uint64(v), 0)
	s.hi -= int64(borrow)
	if v < 0 {
		s.hi++
	}
}

func (s sum) isZero() bool { return s.hi == 0 && s.lo == 0 }

// String returns the sum in decimal, as PostgreSQL's numeric takes it.
func (s sum) String() string {
	if s.hi == 0 && s.lo <= 1<<63-1 || s.hi == -1 && s.lo >= 1<<63 {
		return strconv.FormatInt(int64(s.lo), 10) // fits 64 bits
	}
	b := new(big.Int).SetInt64(s.hi)
	b.Lsh(b, 64)
	return b.Add(b, new(big.Int).SetUint64(s.lo)).String()
}
