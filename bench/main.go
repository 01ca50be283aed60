// Command bench measures cqrsgate against its physical baselines in the
// same run: each path through the gateway next to the raw work it stands
// on (pgx inserts, a pgx scan, a plain net/http handler, a raw
// gorilla/websocket broadcast), on the same machine minutes apart, so that
// the ratios hold even when the absolute figures drift.
//
//	go run ./bench                 # every scenario, 3 runs each
//	go run ./bench -quick          # a smoke run: small sizes, 1 run (CI)
//	go run ./bench -only mutations,typename -runs 5 -json out.json
//
// It starts its own PostgreSQL (or uses DATABASE_URL), builds the gateway
// and runs it as its own process on a fresh database per run; load comes
// from goroutines of this process with their own connections, over
// loopback, bounded in count and time. Each figure is the median of the
// runs, with min and max; a ratio is the median of the runs' own ratios
// (each run measures the gateway and its baseline together). Nothing here
// asserts a time: targets are shown with whether they were met.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"time"

	"cqrsgate/internal/gctune"
)

// scenario is one path through cqrsgate measured next to its baseline.
type scenario struct {
	name     string
	path     string // what goes through cqrsgate
	baseline string // the raw work it is compared with ("" for none)
	unit     string
	// higher is true when more is better (throughput), false for times.
	higher bool
	// target describes the goal; met reports whether a result meets it.
	target string
	met    func(r result) bool
	run    func(ctx context.Context, e *env) (measure, error)
}

// measure is one run's figures.
type measure struct {
	Value    float64 `json:"value"`
	Baseline float64 `json:"baseline,omitempty"`
	// Extra figures a target may depend on (e.g. "p99ms").
	Extra map[string]float64 `json:"extra,omitempty"`
	// Notes are more figures worth printing (p50, sizes, ...).
	Notes string `json:"notes,omitempty"`
}

// result aggregates the runs of a scenario.
type result struct {
	Name     string    `json:"name"`
	Path     string    `json:"path"`
	Unit     string    `json:"unit"`
	Runs     []measure `json:"runs"`
	Median   float64   `json:"median"`
	Min      float64   `json:"min"`
	Max      float64   `json:"max"`
	BaseName string    `json:"baselineName,omitempty"`
	BaseMed  float64   `json:"baselineMedian,omitempty"`
	BaseMin  float64   `json:"baselineMin,omitempty"`
	BaseMax  float64   `json:"baselineMax,omitempty"`
	// Ratio is cqrsgate against the baseline, so that higher is better:
	// value/baseline for throughputs, baseline/value for times. It is the
	// median of the runs' own ratios, each of a gateway figure and the
	// baseline measured in the same run, so that a machine slower in one
	// run than in another moves both sides of a ratio, not one; RatioMin
	// and RatioMax are their extremes.
	Ratio    float64 `json:"ratio,omitempty"`
	RatioMin float64 `json:"ratioMin,omitempty"`
	RatioMax float64 `json:"ratioMax,omitempty"`
	// Extra holds the median of each of the runs' extra figures.
	Extra  map[string]float64 `json:"extra,omitempty"`
	Target string             `json:"target,omitempty"`
	Met    *bool              `json:"met,omitempty"`
	Error  string             `json:"error,omitempty"`
}

// gatewayGCPercent and gatewayGCHeadroomMB are the gateway's default
// garbage collector target and the cap on the garbage it allows
// (GC_PERCENT and GC_HEADROOM_MB in the README's configuration table).
const (
	gatewayGCPercent    = 400
	gatewayGCHeadroomMB = 64
)

// gcPercent gives this process the gateway's default garbage collector
// target, tuned as the gateway tunes it (internal/gctune), unless GOGC is
// set, and returns the target it starts with and the headroom (0 with
// GOGC). The rebuild, lag and aggregate-load scenarios run the gateway's
// write and read path in this process, so they run with the setting the
// gateway runs with; the baselines measured in this process (the pgx scan
// and inserts) do too. The tuner, if one was started, is returned.
func gcPercent(getenv func(string) string) (percent, headroomMB int, tuner *gctune.Tuner) {
	if v := getenv("GOGC"); v != "" {
		n := debug.SetGCPercent(100) // read the target GOGC set, and put it back
		debug.SetGCPercent(n)
		return n, 0, nil
	}
	return gatewayGCPercent, gatewayGCHeadroomMB, gctune.Start(gatewayGCPercent, gatewayGCHeadroomMB<<20)
}

// gcTarget describes a garbage collector target as GOGC does (a
// percentage, or off for -1), with the headroom that caps it, if any.
func gcTarget(percent, headroomMB int) string {
	if percent < 0 {
		return "off"
	}
	if headroomMB > 0 && percent > 100 {
		return fmt.Sprintf("%d%% (lowered toward 100%% past %d MiB of garbage beyond Go's default)", percent, headroomMB)
	}
	return fmt.Sprintf("%d%%", percent)
}

func main() {
	quick := flag.Bool("quick", false, "smoke mode: small sizes and one run per scenario")
	runs := flag.Int("runs", 3, "runs per scenario; each figure is their median")
	only := flag.String("only", "", "comma-separated scenarios to run (default all): "+strings.Join(names(sizesFor(false)), ", "))
	jsonPath := flag.String("json", "bench-results.json", "where to write the results as JSON (empty: nowhere)")
	serveHTTP := flag.String("serve-http", "", "internal: run the plain net/http baseline server on this address")
	serveWS := flag.String("serve-ws", "", "internal: run the raw gorilla/websocket baseline server on this address")
	flag.Parse()

	switch {
	case *serveHTTP != "":
		exitOn(serveBaselineHTTP(*serveHTTP))
		return
	case *serveWS != "":
		exitOn(serveBaselineWS(*serveWS))
		return
	}
	gc, headroom, _ := gcPercent(os.Getenv)
	if *runs < 1 || *runs > 20 {
		exitOn(fmt.Errorf("-runs must be 1 to 20, got %d", *runs))
	}
	if *quick {
		*runs = 1
	}
	selected, err := selectScenarios(*only, sizesFor(*quick))
	exitOn(err)
	// The measuring runs in bench, whose deferred clean-up (PostgreSQL,
	// the temporary directory) must run before the process exits.
	os.Exit(bench(selected, *quick, *runs, *jsonPath, gc, headroom))
}

// bench runs the selected scenarios and returns the exit status: 1 when
// one failed or was cut short (an interrupt: its figures would be those of
// a part of its time, so none are reported), 0 otherwise.
func bench(selected []scenario, quick bool, runs int, jsonPath string, gc, headroom int) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	e, err := newEnv(ctx, quick)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	defer e.close()

	m := describeMachine(os.ReadFile)
	fmt.Printf("cqrsgate bench: %s; %s, GC target %s; %d run(s) per scenario%s\n\n", m, e.pgVersion, gcTarget(gc, headroom), runs,
		map[bool]string{true: " (quick: a smoke run at small sizes, targets not judged)", false: ""}[quick])
	var results []result
	for _, s := range selected {
		r := runScenario(ctx, e, s, runs)
		if quick {
			r.Met = nil // the targets are for the full sizes
		}
		results = append(results, r)
	}
	printTable(os.Stdout, results)
	if jsonPath != "" {
		out := map[string]any{"when": time.Now().UTC().Format(time.RFC3339), "machine": m, "cpus": m.CPUs, "go": m.Go,
			"postgres": e.pgVersion, "gcPercent": gc, "gcHeadroomMB": headroom, "quick": quick, "runs": runs, "results": results}
		data, _ := json.MarshalIndent(out, "", "  ")
		if err := os.WriteFile(jsonPath, append(data, '\n'), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
		fmt.Printf("\nwritten to %s\n", jsonPath)
	}
	for _, r := range results {
		if r.Error != "" {
			return 1
		}
	}
	return 0
}

// runScenario runs s runs times (fewer when one fails or the bench is
// interrupted) and summarises its figures. A run that ctx's end cut short
// is not counted: its turns ended early, and what it measured is not the
// scenario's figure; the scenario is then an error ("interrupted").
func runScenario(ctx context.Context, e *env, s scenario, runs int) result {
	r := result{Name: s.name, Path: s.path, Unit: s.unit, BaseName: s.baseline, Target: s.target}
	for i := 0; i < runs; i++ {
		if ctx.Err() != nil {
			r.Error = "interrupted: not run"
			break
		}
		m, err := s.run(ctx, e)
		if ctx.Err() != nil {
			// Cut short: its turns ended early, and what it measured
			// is not the scenario's figure.
			r.Error = "interrupted"
			fmt.Fprintf(os.Stderr, "bench: %s: interrupted\n", s.name)
			break
		}
		if err != nil {
			r.Error = err.Error()
			fmt.Fprintf(os.Stderr, "bench: %s: %v\n", s.name, err)
			break
		}
		r.Runs = append(r.Runs, m)
		ratio := ""
		if x, ok := runRatio(m, s.higher); ok {
			ratio = fmt.Sprintf(", %.3fx", x)
		}
		fmt.Fprintf(os.Stderr, "bench: %s run %d: %s %s (baseline %s%s) %s\n", s.name, i+1, num(m.Value), s.unit, num(m.Baseline), ratio, m.Notes)
	}
	summarise(&r, s)
	return r
}

func names(sz sizes) []string {
	var out []string
	for _, s := range scenarios(sz) {
		out = append(out, s.name)
	}
	return out
}

func selectScenarios(only string, sz sizes) ([]scenario, error) {
	all := scenarios(sz)
	if only == "" {
		return all, nil
	}
	var out []scenario
	for _, n := range strings.Split(only, ",") {
		n = strings.TrimSpace(n)
		i := slices.IndexFunc(all, func(s scenario) bool { return s.name == n })
		if i < 0 {
			return nil, fmt.Errorf("-only: unknown scenario %q (have %s)", n, strings.Join(names(sz), ", "))
		}
		out = append(out, all[i])
	}
	return out, nil
}

func summarise(r *result, s scenario) {
	if len(r.Runs) == 0 {
		return
	}
	vals, bases := make([]float64, len(r.Runs)), make([]float64, len(r.Runs))
	for i, m := range r.Runs {
		vals[i], bases[i] = m.Value, m.Baseline
	}
	r.Median, r.Min, r.Max = stats(vals)
	if s.baseline != "" {
		r.BaseMed, r.BaseMin, r.BaseMax = stats(bases)
		var ratios []float64
		for _, m := range r.Runs {
			if x, ok := runRatio(m, s.higher); ok {
				ratios = append(ratios, x)
			}
		}
		if len(ratios) > 0 {
			r.Ratio, r.RatioMin, r.RatioMax = stats(ratios)
		}
	}
	for k := range r.Runs[0].Extra {
		xs := make([]float64, len(r.Runs))
		for i, m := range r.Runs {
			xs[i] = m.Extra[k]
		}
		if r.Extra == nil {
			r.Extra = map[string]float64{}
		}
		r.Extra[k], _, _ = stats(xs)
	}
	if s.met != nil {
		ok := s.met(*r)
		r.Met = &ok
	}
}

// runRatio is one run's ratio of cqrsgate to its baseline, higher better;
// false when the run lacks either figure.
func runRatio(m measure, higher bool) (float64, bool) {
	switch {
	case m.Value <= 0 || m.Baseline <= 0:
		return 0, false
	case higher:
		return m.Value / m.Baseline, true
	default:
		return m.Baseline / m.Value, true
	}
}

// stats returns the median, min and max.
func stats(v []float64) (median, lo, hi float64) {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		median = s[n/2]
	} else {
		median = (s[n/2-1] + s[n/2]) / 2
	}
	return median, s[0], s[n-1]
}

func exitOn(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// num formats a figure with three significant digits or so.
func num(v float64) string {
	switch {
	case v == 0:
		return "-"
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}
