package main

import (
	"runtime/debug"
	"testing"
)

func TestGCPercentFollowsTheGateway(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))

	debug.SetGCPercent(100)
	if got := gcPercent(func(string) string { return "" }); got != gatewayGCPercent {
		t.Fatalf("without GOGC: gcPercent = %d, want the gateway's %d", got, gatewayGCPercent)
	}
	if now := debug.SetGCPercent(100); now != gatewayGCPercent {
		t.Fatalf("without GOGC the target in force is %d, want %d", now, gatewayGCPercent)
	}

	// With GOGC set (the runtime read it at start; here it is 73), the
	// target stays as it is.
	debug.SetGCPercent(73)
	if got := gcPercent(func(k string) string { return map[string]string{"GOGC": "73"}[k] }); got != 73 {
		t.Fatalf("with GOGC=73: gcPercent = %d, want 73", got)
	}
	if now := debug.SetGCPercent(100); now != 73 {
		t.Fatalf("with GOGC set the target in force is %d, want it left at 73", now)
	}
}

func TestGCTargetReadsAsGOGC(t *testing.T) {
	for n, want := range map[int]string{400: "400%", 100: "100%", -1: "off"} {
		if got := gcTarget(n); got != want {
			t.Errorf("gcTarget(%d) = %q, want %q", n, got, want)
		}
	}
}
