package graph

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/validator"

	"cqrsgate/domain"
	"cqrsgate/eventstore"
)

const listVarsSchema = `
scalar JSON
enum Color { RED GREEN }
input Inner { n: Int!, f: Float, tags: [String!], c: Color }
input In { id: ID, type: String!, version: Int, data: JSON!, meta: JSON, inner: Inner, list: [Inner!], flag: Boolean, d: Int! = 3 }
type Query { f(a: [In!], b: [In], c: [[Int!]], d: [Color!], e: [ID], g: [JSON!], h: [Float], k: [Boolean!], s: [String]): Int }
`

// junk is what a client may send in place of any value.
var junk = []any{nil, "abc", "12", "1.5", "red", "RED", "Green", true, false,
	json.Number("7"), json.Number("-3"), json.Number("1.5"), json.Number("1e3"), json.Number("99999999999999999999"),
	"+1", "0x10", "1_0", "NaN", " 1", "Inf", json.Number("1E400"), json.Number("-9223372036854775808"), json.Number("9223372036854775808"),
	map[string]any{}, map[string]any{"n": json.Number("1")}, []any{}, []any{json.Number("1")}}

// genValue makes a value for typ, mostly of the right shape, sometimes not.
func genValue(r *rand.Rand, s *ast.Schema, typ *ast.Type, depth int) any {
	if r.IntN(14) == 0 {
		return junk[r.IntN(len(junk))]
	}
	if typ.Elem != nil {
		n := r.IntN(4)
		if depth > 3 {
			n = 0
		}
		l := make([]any, n)
		for i := range l {
			l[i] = genValue(r, s, typ.Elem, depth+1)
		}
		return l
	}
	def := s.Types[typ.NamedType]
	switch def.Kind {
	case ast.Enum:
		return []any{"RED", "GREEN", "red", "Green"}[r.IntN(4)]
	case ast.InputObject:
		m := map[string]any{}
		for _, f := range def.Fields {
			if !f.Type.NonNull && r.IntN(3) == 0 {
				continue
			}
			if f.DefaultValue != nil && r.IntN(2) == 0 {
				continue
			}
			if r.IntN(30) == 0 {
				continue // a required field may go missing
			}
			m[f.Name] = genValue(r, s, f.Type, depth+1)
		}
		switch r.IntN(25) {
		case 0:
			m["bogus"] = "x"
		case 1:
			m["__typename"] = def.Name
		case 2:
			m["__typename"] = junk[r.IntN(len(junk))]
		}
		return m
	}
	switch typ.NamedType {
	case "Int":
		return []any{json.Number("42"), "17", json.Number("-1")}[r.IntN(3)]
	case "Float":
		return []any{json.Number("4.5"), json.Number("1e-3"), "2.5", json.Number("3")}[r.IntN(4)]
	case "String":
		return []any{"hello", json.Number("5")}[r.IntN(2)]
	case "Boolean":
		return r.IntN(2) == 0
	case "ID":
		return []any{"id-1", json.Number("12")}[r.IntN(2)]
	}
	return map[string]any{"k": []any{json.Number("1"), "v", nil}} // JSON
}

// deepCopy copies the values the POST transport decodes.
func deepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = deepCopy(e)
		}
		return m
	case []any:
		l := make([]any, len(x))
		for i, e := range x {
			l[i] = deepCopy(e)
		}
		return l
	}
	return v
}

// What listVariables accepts, gqlparser accepts too, and leaves as it was:
// compared on 40,000 generated values, valid and not, for list variables of
// every kind of type.
func TestListVariablesAcceptOnlyWhatGqlparserLeavesAsItIs(t *testing.T) {
	s := gqlparser.MustLoadSchema(&ast.Source{Input: listVarsSchema})
	l := &listVariables{schema: s}
	vars := map[string]string{"a": "[In!]!", "b": "[In]", "c": "[[Int!]]", "d": "[Color!]", "e": "[ID]", "g": "[JSON!]!", "h": "[Float]", "k": "[Boolean!]", "s": "[String]"}
	r := rand.New(rand.NewPCG(1, 2))
	// In a fixed order, so that each type gets the same values every run
	// (over a map's order the counts below moved from run to run, and one
	// run's [JSON!]! drew 19 refusals, under the check's 20).
	for _, arg := range slices.Sorted(maps.Keys(vars)) {
		typ := vars[arg]
		doc, errs := gqlparser.LoadQuery(s, fmt.Sprintf(`query($v: %s) { f(%s: $v) }`, typ, arg))
		if errs != nil {
			t.Fatal(errs)
		}
		op := doc.Operations[0]
		vt := op.VariableDefinitions[0].Type
		var fast, parsed, refused int
		for range 40000 / len(vars) {
			v := genValue(r, s, vt, 0)
			ok := l.accepts(vt, v)
			coerced, err := validator.VariableValues(s, op, map[string]any{"v": deepCopy(v)})
			switch {
			case err != nil:
				refused++
				if ok {
					t.Fatalf("%s: accepted %#v, which gqlparser refuses: %v", typ, v, err)
				}
			case ok:
				fast++
				if !reflect.DeepEqual(coerced["v"], v) {
					t.Fatalf("%s: accepted %#v, which gqlparser makes %#v", typ, v, coerced["v"])
				}
			default:
				parsed++
			}
		}
		t.Logf("%s: %d accepted, %d left to gqlparser and accepted by it, %d refused", typ, fast, parsed, refused)
		if fast < 200 || refused < 20 {
			t.Errorf("%s: %d accepted and %d refused: the generator no longer tries both", typ, fast, refused)
		}
		if fast < 2*parsed {
			t.Errorf("%s: %d accepted against %d that gqlparser accepts and listVariables does not", typ, fast, parsed)
		}
	}
}

// The hooks hand gqlparser an empty list for a long list they accept, and
// put the list back after it; the caller's variables stay as they were. A
// request not marked, an operation not in the cache, a short list and a
// list with a value gqlparser must coerce are left alone.
func TestListVariablesSwapAndRestore(t *testing.T) {
	s := gqlparser.MustLoadSchema(&ast.Source{Input: listVarsSchema})
	cache := lru.New[*ast.QueryDocument](10)
	l := &listVariables{schema: s, cache: cache}
	q := `query($v: [In!]!, $n: [Int!]) { f(a: $v, c: [$n]) }`
	doc, errs := gqlparser.LoadQuery(s, q)
	if errs != nil {
		t.Fatal(errs)
	}
	events := func(n int) []any {
		l := make([]any, n)
		for i := range l {
			l[i] = map[string]any{"type": "T", "data": map[string]any{"i": json.Number(fmt.Sprint(i))}}
		}
		return l
	}
	run := func(ctx context.Context, vars map[string]any) (swapped, restored map[string]any) {
		params := &graphql.RawParams{Query: q, Variables: vars}
		ctx = holdLongLists(ctx, vars)
		if err := l.MutateOperationParameters(ctx, params); err != nil {
			t.Fatal(err)
		}
		coerced, err := validator.VariableValues(s, doc.Operations[0], params.Variables)
		if err != nil {
			t.Fatal(err)
		}
		rc := &graphql.OperationContext{Variables: coerced}
		if err := l.MutateOperationContext(ctx, rc); err != nil {
			t.Fatal(err)
		}
		return params.Variables, rc.Variables
	}
	long := events(longList)
	vars := map[string]any{"v": long, "n": []any{json.Number("1")}}
	swapped, _ := run(context.Background(), vars)
	if len(swapped["v"].([]any)) != len(long) {
		t.Fatal("swapped before the query was cached")
	}
	cache.Add(context.Background(), q, doc)
	swapped, restored := run(context.Background(), vars)
	if got := swapped["v"].([]any); len(got) != 0 {
		t.Fatalf("gqlparser was given %d events, want none", len(got))
	}
	if got := restored["v"].([]any); len(got) != longList || &got[0] != &long[0] {
		t.Fatalf("the operation's variable is not the request's list: %d values", len(got))
	}
	if len(vars["v"].([]any)) != longList {
		t.Fatal("the request's own variables were changed")
	}
	for name, v := range map[string]any{
		"short": events(longList - 1),
		// gqlparser makes the single value of a list a list of one.
		"with a coercion": append(events(longList), map[string]any{"type": "T", "data": map[string]any{}, "list": map[string]any{"n": json.Number("1")}}),
	} {
		swapped, _ := run(context.Background(), map[string]any{"v": v})
		if len(swapped["v"].([]any)) != len(v.([]any)) {
			t.Errorf("%s: swapped", name)
		}
	}
	// Not marked (another transport): left alone.
	params := &graphql.RawParams{Query: q, Variables: map[string]any{"v": long}}
	if err := l.MutateOperationParameters(context.Background(), params); err != nil || len(params.Variables["v"].([]any)) != longList {
		t.Fatal("a request no transport marked was changed")
	}
}

// Each operation made with a context gets its own lists back, also after
// an earlier one whose variables gqlparser refused (its lists were held
// and never put back).
func TestListVariablesHoldEachOperationsOwn(t *testing.T) {
	s := gqlparser.MustLoadSchema(&ast.Source{Input: listVarsSchema})
	cache := lru.New[*ast.QueryDocument](10)
	l := &listVariables{schema: s, cache: cache}
	q := `query($v: [Int!], $w: Float) { f(c: [$v], h: [$w]) }`
	doc, errs := gqlparser.LoadQuery(s, q)
	if errs != nil {
		t.Fatal(errs)
	}
	cache.Add(context.Background(), q, doc)
	list := func(x string) []any {
		out := make([]any, longList)
		for i := range out {
			out[i] = json.Number(x)
		}
		return out
	}
	ctx := holdLongLists(context.Background(), map[string]any{"v": list("1")})
	for i, vars := range []map[string]any{
		{"v": list("1"), "w": "not a number"}, // refused after the swap
		{"v": list("2")},
		{"v": list("3")},
	} {
		p := &graphql.RawParams{Query: q, Variables: vars}
		if err := l.MutateOperationParameters(ctx, p); err != nil {
			t.Fatal(err)
		}
		coerced, err := validator.VariableValues(s, doc.Operations[0], p.Variables)
		if i == 0 {
			if err == nil {
				t.Fatal("gqlparser accepted a word for a Float")
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		rc := &graphql.OperationContext{Variables: coerced}
		if err := l.MutateOperationContext(ctx, rc); err != nil {
			t.Fatal(err)
		}
		if got := rc.Variables["v"].([]any); len(got) != longList || got[0] != vars["v"].([]any)[0] {
			t.Fatalf("operation %d sees %v, its own list holds %v", i, got[0], vars["v"].([]any)[0])
		}
	}
}

// NewHandler runs listVariables where it does its work: on the second
// request of an operation (the first puts it in the query cache), and on
// a persisted query sent by its hash alone.
func TestHandlerHoldsLongListsOfCachedOperations(t *testing.T) {
	store := eventstore.NewMemory(eventstore.Limits{}, time.Now)
	log := slog.New(slog.DiscardHandler)
	srv := httptest.NewServer(NewHandler(Config{Store: store, Commands: domain.NewService(store, log, time.Now, domain.ServiceOptions{}), Log: log}))
	defer srv.Close()
	events := make([]any, 20)
	for i := range events {
		events[i] = map[string]any{"type": "Tick", "data": map[string]any{"i": i}}
	}
	post := func(body map[string]any) {
		t.Helper()
		raw, _ := json.Marshal(body)
		resp, err := http.Post(srv.URL, "application/json", bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out struct {
			Data struct {
				AppendEvents struct{ Events []struct{ Position int64 } }
			}
			Errors []any
		}
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || len(out.Errors) > 0 || len(out.Data.AppendEvents.Events) != len(events) {
			t.Fatalf("append: %v %+v", err, out)
		}
	}
	q := `mutation($s: String!, $e: [EventInput!]!) { appendEvents(stream: $s, events: $e) { events { position } } }`
	held := func() int64 { return listsHeld.Load() }
	before := held()
	post(map[string]any{"query": q, "variables": map[string]any{"s": "a", "e": events}})
	if n := held() - before; n != 0 {
		t.Fatalf("%d lists held on an operation's first request", n)
	}
	post(map[string]any{"query": q, "variables": map[string]any{"s": "b", "e": events}})
	if n := held() - before; n != 1 {
		t.Fatalf("%d lists held after its second request, want 1", n)
	}
	pq := q + " # persisted"
	sum := sha256.Sum256([]byte(pq))
	ext := map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": hex.EncodeToString(sum[:])}}
	post(map[string]any{"query": pq, "extensions": ext, "variables": map[string]any{"s": "c", "e": events}})
	post(map[string]any{"extensions": ext, "variables": map[string]any{"s": "d", "e": events}})
	if n := held() - before; n != 2 {
		t.Fatalf("%d lists held after a persisted query sent by its hash, want 2", n)
	}
}
