package domain

import (
	"errors"
	"reflect"
	"testing"
	"time"
)

// gwt is one given/when/then case: given past events, when a command is
// decided at now, then these events (or this error) follow.
type gwt struct {
	name     string
	given    []Event
	when     Command
	want     []Event
	wantCode Code   // "" when the command must succeed
	wantRule string // for RuleViolation
	wantFld  string // for Invalid
}

var testNow = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

// runGWT replays given through Apply, decides when, and compares.
func runGWT[A Aggregate](t *testing.T, k *Kind[A], cases []gwt) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := k.New("x1")
			for _, e := range c.given {
				a.Apply(e)
			}
			got, err := k.Decide(a, c.when, testNow)
			if c.wantCode != "" {
				var de *Error
				if !errors.As(err, &de) || de.Code != c.wantCode {
					t.Fatalf("err = %v, want code %s", err, c.wantCode)
				}
				if c.wantRule != "" && de.Rule != c.wantRule {
					t.Fatalf("rule = %q, want %q (%v)", de.Rule, c.wantRule, err)
				}
				if c.wantFld != "" && de.Field != c.wantFld {
					t.Fatalf("field = %q, want %q (%v)", de.Field, c.wantFld, err)
				}
				if got != nil {
					t.Fatalf("a refused command recorded %v", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v, want events %v", err, c.want)
			}
			if len(got) == 0 && len(c.want) == 0 {
				return
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("events = %#v\nwant     %#v", got, c.want)
			}
			// Every recorded event must survive encoding and decoding.
			for _, e := range got {
				roundTrip(t, k, e)
			}
		})
	}
}
