package domain

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestNewIDIsAUniqueTimeOrderedUUIDv7(t *testing.T) {
	seen := map[string]bool{}
	prev := ""
	for i := 0; i < 1000; i++ {
		id := newUUIDv7(time.UnixMilli(int64(1_700_000_000_000 + i)))
		if !ValidID(id) || id[14] != '7' || !(id[19] == '8' || id[19] == '9' || id[19] == 'a' || id[19] == 'b') {
			t.Fatalf("%q is not a canonical UUIDv7", id)
		}
		if seen[id] {
			t.Fatalf("duplicate id %s", id)
		}
		if id[:13] < prev {
			t.Fatalf("ids are not time-ordered: %s after %s", id, prev)
		}
		seen[id], prev = true, id[:13]
	}
}

func TestValidID(t *testing.T) {
	for s, want := range map[string]bool{
		"01a20582-7077-7ef1-83b1-701947f575d1": true,
		"01A20582-7077-7EF1-83B1-701947F575D1": true,
		"01a20582-7077-7ef1-83b1-701947f575d":  false,
		"01a20582x7077-7ef1-83b1-701947f575d1": false,
		"01a20582-7077-7ef1-83b1-701947f575dg": false,
		"":                                     false,
	} {
		if got := ValidID(s); got != want {
			t.Errorf("ValidID(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestCodeOf(t *testing.T) {
	sentinel := errors.New("sentinel")
	wrapped := fmt.Errorf("context: %w", &Error{Code: Conflict, Message: "m", Err: sentinel})
	cases := []struct {
		err  error
		want Code
	}{
		{nil, ""},
		{errors.New("plain"), Internal},
		{wrapped, Conflict},
		{InvalidField("amount", "must be positive"), Invalid},
	}
	for _, c := range cases {
		if got := CodeOf(c.err); got != c.want {
			t.Errorf("CodeOf(%v) = %q, want %q", c.err, got, c.want)
		}
	}
	if !errors.Is(wrapped, sentinel) {
		t.Error("errors.Is does not see through *Error")
	}
	if got := wrapped.Error(); got != "context: m: sentinel" {
		t.Errorf("Error() = %q", got)
	}
}

func TestExpectedVersion(t *testing.T) {
	for v, want := range map[ExpectedVersion]string{ExpectNoStream: "no stream", ExpectAny: "any", ExpectStreamExists: "stream exists", 7: "7"} {
		if v.String() != want || !v.Valid() {
			t.Errorf("%d: String() = %q, Valid() = %v", v, v.String(), v.Valid())
		}
	}
	if ExpectedVersion(-3).Valid() {
		t.Error("-3 is valid")
	}
}
