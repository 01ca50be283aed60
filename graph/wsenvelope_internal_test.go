package graph

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"

	"cqrsgate/internal/allocs"
)

// TestInexactMemberAgreesWithTheDecoder: the scan of an envelope's member
// names finds what encoding/json's tokens find (inexactMemberEscaped reads
// them with a json.Decoder), over generated messages of every kind of
// value, nested and spaced.
func TestInexactMemberAgreesWithTheDecoder(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	names := []string{"type", "id", "payload", "Type", "TYPE", "iD", "PayLoad", "extra", "typ", "types", "", `a\"b`, "\\u0054ype", "ty\\u0070e", "x y"}
	var value func(depth int) string
	value = func(depth int) string {
		switch n := r.IntN(9); {
		case n == 0:
			return `"s,}]{[\"x\\"`
		case n == 1:
			return "-12.5e3"
		case n == 2:
			return "true"
		case n == 3:
			return "null"
		case n == 4 && depth < 3:
			var parts []string
			for range r.IntN(3) {
				parts = append(parts, value(depth+1))
			}
			return "[ " + strings.Join(parts, " , ") + " ]"
		case n == 5 && depth < 3:
			var parts []string
			for range r.IntN(3) {
				parts = append(parts, `"`+names[r.IntN(len(names))]+`" : `+value(depth+1))
			}
			return "{" + strings.Join(parts, ",") + "}"
		}
		return "0"
	}
	space := func() string { return []string{"", " ", "\n\t", "\r\n "}[r.IntN(4)] }
	for range 20000 {
		var parts []string
		for range r.IntN(5) {
			parts = append(parts, space()+`"`+names[r.IntN(len(names))]+`"`+space()+":"+space()+value(0)+space())
		}
		msg := space() + "{" + strings.Join(parts, ",") + "}" + space()
		if !json.Valid([]byte(msg)) {
			t.Fatalf("generated invalid JSON: %s", msg)
		}
		if got, want := inexactMember([]byte(msg)), inexactMemberEscaped([]byte(msg)); got != want {
			t.Fatalf("%s: scan found %q, the decoder %q", msg, got, want)
		}
	}
}

// TestInexactMemberAllocatesNothing: a message whose names hold no escape
// is scanned without allocating (a burst of connections sends thousands of
// them, and their garbage stays resident).
func TestInexactMemberAllocatesNothing(t *testing.T) {
	msg := []byte(`{"id":"1","type":"subscribe","payload":{"query":"subscription { events(after: 0) { position type } }","variables":{"a":[1,2,{"b":"c"}]}}}`)
	if n := allocs.Fewest(100, func() { inexactMember(msg) }); n != 0 {
		t.Fatalf("%v allocations a message", n)
	}
}
