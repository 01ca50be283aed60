package allocs

import "testing"

var sink []byte

func TestFewestCountsWhatFAllocates(t *testing.T) {
	if n := Fewest(100, func() {}); n != 0 {
		t.Errorf("an empty function: %v allocations, want 0", n)
	}
	if n := Fewest(100, func() { sink = make([]byte, 64) }); n != 1 {
		t.Errorf("one make: %v allocations, want 1", n)
	}
}
