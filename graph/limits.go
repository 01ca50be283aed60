package graph

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/99designs/gqlgen/complexity"
	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"cqrsgate/domain"
	"cqrsgate/eventstore"
	"cqrsgate/graph/generated"
	"cqrsgate/graph/model"
	"cqrsgate/internal/auth"
)

// Limits bound what one operation, and one client, may ask of the gateway.
// Each refusal is an error with its own extensions.code.
type Limits struct {
	// MaxComplexity caps an operation's complexity: each field counts 1,
	// and a list field counts its children times the number of items it
	// asks for (`first`, or its default). 0: 20000. Code COMPLEXITY_LIMIT_EXCEEDED.
	MaxComplexity int
	// MaxDepth caps how deeply an operation's selections nest (introspection
	// fields aside). 0: 12. Code DEPTH_LIMIT_EXCEEDED.
	MaxDepth int
	// DisableIntrospection refuses __schema and __type (code
	// INTROSPECTION_DISABLED); __typename stays.
	DisableIntrospection bool
	// MutationsPerSecond and MutationBurst limit the mutations of each client
	// (its credential's subject, or its IP address without one); 0: no
	// limit. Code RATE_LIMITED, with retryAfterSeconds.
	MutationsPerSecond float64
	MutationBurst      int
}

func (l *Limits) withDefaults() {
	if l.MaxComplexity <= 0 {
		l.MaxComplexity = 20000
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = 12
	}
	if l.MutationBurst <= 0 {
		l.MutationBurst = int(math.Max(1, math.Ceil(2*l.MutationsPerSecond)))
	}
}

// listComplexity weights the list fields by how many items they ask for.
func listComplexity(c *generated.ComplexityRoot) {
	// n is the items a list asks for; a first past the field's own maximum
	// counts as that maximum (the resolver refuses it with VALIDATION).
	n := func(first *int, def int) int {
		if first != nil && *first > 0 {
			return min(*first, eventstore.MaxLimit)
		}
		return def
	}
	times := func(child, k int) int {
		if child > math.MaxInt32/max(k, 1) {
			return math.MaxInt32
		}
		return 1 + child*k
	}
	c.Query.Events = func(child int, _ *model.Position, first *int, _ *string, _ []string, _ *string, _ *string, _ *model.Position) int {
		return times(child, n(first, 100))
	}
	c.Query.Stream = func(child int, _ string, _ *int, first *int, _ *bool) int { return times(child, n(first, 100)) }
	c.Query.Accounts = func(child int, _ *model.AccountFilter, first *int, _ *string, _ *model.Position) int {
		return times(child, n(first, 20))
	}
	c.Query.AccountStatement = func(child int, _ string, first *int, _ *string, _ *model.Position) int {
		return times(child, n(first, 50))
	}
	c.Query.Orders = func(child int, _ *model.OrderFilter, _ *model.OrderOrderBy, first *int, _ *string, _ *model.Position) int {
		return times(child, n(first, 20))
	}
	c.Query.CustomerOrders = func(child int, _ string, _ *model.OrderOrderBy, first *int, _ *string, _ *model.Position) int {
		return times(child, n(first, 20))
	}
	c.Query.Products = func(child int, _ *int, first *int, _ *string, _ *model.Position) int {
		return times(child, n(first, 20))
	}
	c.Query.Fulfilments = func(child int, _ *model.FulfilmentState, first *int, _ *string, _ *model.Position) int {
		return times(child, n(first, 20))
	}
	// Time travel to a point before the stream's snapshot (which holds only
	// the latest state) folds the stream from its start, in pages of 1,000
	// events: it counts as one such page of events would.
	c.Query.AccountAt = func(child int, _ string, _ *int, _ *time.Time) int { return timeTravelCost + child }
	c.Query.OrderAt = func(child int, _ string, _ *int, _ *time.Time) int { return timeTravelCost + child }
}

// timeTravelCost is the complexity of accountAt and orderAt besides their
// selection.
const timeTravelCost = 100

// complexityLimit refuses operations whose complexity (every field 1, a
// list field its children times the items it asks for: listComplexity)
// exceeds max. It is gqlgen's FixedComplexityLimit without the per-operation
// statistics, which nothing reads and every operation (every websocket
// subscription among them) would keep.
type complexityLimit struct {
	max int
	es  graphql.ExecutableSchema
}

func (*complexityLimit) ExtensionName() string { return "ComplexityLimit" }
func (c *complexityLimit) Validate(es graphql.ExecutableSchema) error {
	c.es = es
	return nil
}
func (c *complexityLimit) MutateOperationContext(ctx context.Context, rc *graphql.OperationContext) (gerr *gqlerror.Error) {
	op := rc.Doc.Operations.ForName(rc.OperationName)
	// Computing the complexity reads the arguments, and gqlparser panics on
	// a literal it cannot convert (an integer beyond 64 bits inside a JSON
	// argument); that is the client's error, not the gateway's.
	defer func() {
		if r := recover(); r != nil {
			what := "a literal in an argument cannot be read"
			if err, ok := r.(error); ok {
				if ne := (*strconv.NumError)(nil); errors.As(err, &ne) {
					what = fmt.Sprintf("the number %s in an argument is beyond what it can be read as", model.CutText(ne.Num, 64))
				}
			}
			gerr = gqlerror.Errorf("%s; pass values this large in a variable", what)
			errcode.Set(gerr, errcode.ValidationFailed)
		}
	}()
	intro, gerr := introspectionComplexity(rc.Doc, op)
	if gerr != nil {
		return gerr
	}
	if n := complexity.Calculate(ctx, c.es, op, rc.Variables) + intro; n > c.max {
		err := gqlerror.Errorf("operation has complexity %d, which exceeds the limit of %d", n, c.max)
		errcode.Set(err, "COMPLEXITY_LIMIT_EXCEEDED")
		return err
	}
	return nil
}

// The complexity of an introspection root (gqlgen counts none): what it
// may answer is bounded by the schema, since aliases below it are refused
// and graphql-js's introspection depth rule bounds its nesting; the
// fullest answer of __schema is some hundreds of kilobytes.
const (
	schemaIntrospectionCost = 5000
	typeIntrospectionCost   = 100
)

// introspectionComplexity returns the complexity of op's introspection
// roots (__schema and __type, at any alias), or a validation error when
// their selections hold an alias: one field asked for again under other
// names multiplies the answer (a 1 KB query could ask for many megabytes),
// and no introspection client needs them.
func introspectionComplexity(doc *ast.QueryDocument, op *ast.OperationDefinition) (int, *gqlerror.Error) {
	if op == nil || op.Operation != ast.Query {
		return 0, nil
	}
	total := 0
	var seen map[string]bool // fragments already checked for aliases, made at the first root
	var roots func(set ast.SelectionSet) *gqlerror.Error
	roots = func(set ast.SelectionSet) *gqlerror.Error {
		for _, sel := range set {
			switch s := sel.(type) {
			case *ast.Field:
				switch s.Name {
				case "__schema":
					total += schemaIntrospectionCost
				case "__type":
					total += typeIntrospectionCost
				default:
					continue
				}
				if seen == nil {
					seen = map[string]bool{}
				}
				if at := aliasIn(doc, s.SelectionSet, seen); at != nil {
					err := gqlerror.ErrorPosf(at.Position, "alias %q inside introspection (%s): introspection selections take no aliases", at.Alias, s.Name)
					errcode.Set(err, errcode.ValidationFailed)
					return err
				}
			case *ast.InlineFragment:
				if err := roots(s.SelectionSet); err != nil {
					return err
				}
			case *ast.FragmentSpread:
				if f := doc.Fragments.ForName(s.Name); f != nil {
					if err := roots(f.SelectionSet); err != nil {
						return err
					}
				}
			}
		}
		return nil
	}
	return total, roots(op.SelectionSet)
}

// aliasIn returns a field of set (or of the fragments it spreads, each
// looked at once) whose alias is not its name.
func aliasIn(doc *ast.QueryDocument, set ast.SelectionSet, seen map[string]bool) *ast.Field {
	for _, sel := range set {
		switch s := sel.(type) {
		case *ast.Field:
			if s.Alias != "" && s.Alias != s.Name {
				return s
			}
			if f := aliasIn(doc, s.SelectionSet, seen); f != nil {
				return f
			}
		case *ast.InlineFragment:
			if f := aliasIn(doc, s.SelectionSet, seen); f != nil {
				return f
			}
		case *ast.FragmentSpread:
			if seen[s.Name] {
				continue
			}
			seen[s.Name] = true
			if fr := doc.Fragments.ForName(s.Name); fr != nil {
				if f := aliasIn(doc, fr.SelectionSet, seen); f != nil {
					return f
				}
			}
		}
	}
	return nil
}

// depthLimit refuses operations nested deeper than max.
type depthLimit struct{ max int }

func (depthLimit) ExtensionName() string                   { return "DepthLimit" }
func (depthLimit) Validate(graphql.ExecutableSchema) error { return nil }
func (d depthLimit) MutateOperationContext(_ context.Context, rc *graphql.OperationContext) *gqlerror.Error {
	if rc.Operation == nil {
		return nil
	}
	if depth := selectionDepth(rc.Doc, rc.Operation.SelectionSet, 0, d.max); depth > d.max {
		return &gqlerror.Error{Message: fmt.Sprintf("the operation nests more than %d levels deep", d.max),
			Extensions: map[string]any{"code": "DEPTH_LIMIT_EXCEEDED", "maxDepth": d.max}}
	}
	return nil
}

// selectionDepth returns the depth of set below depth, stopping once it
// passes limit (validation has already refused fragment cycles).
func selectionDepth(doc *ast.QueryDocument, set ast.SelectionSet, depth, limit int) int {
	deepest := depth
	if depth > limit {
		return depth
	}
	for _, sel := range set {
		var d int
		switch s := sel.(type) {
		case *ast.Field:
			if len(s.Name) > 1 && s.Name[:2] == "__" {
				continue // introspection has its own, fixed shape
			}
			d = depth + 1
			if len(s.SelectionSet) > 0 {
				d = selectionDepth(doc, s.SelectionSet, depth+1, limit)
			}
		case *ast.InlineFragment:
			d = selectionDepth(doc, s.SelectionSet, depth, limit)
		case *ast.FragmentSpread:
			if f := doc.Fragments.ForName(s.Name); f != nil {
				d = selectionDepth(doc, f.SelectionSet, depth, limit)
			}
		}
		deepest = max(deepest, d)
	}
	return deepest
}

// mutationRate limits each client's mutations with a token bucket.
type mutationRate struct {
	perSecond float64
	burst     float64
	now       func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
	swept   time.Time
}

type bucket struct {
	tokens float64
	at     time.Time
}

func (*mutationRate) ExtensionName() string                   { return "MutationRateLimit" }
func (*mutationRate) Validate(graphql.ExecutableSchema) error { return nil }

func (m *mutationRate) MutateOperationContext(ctx context.Context, rc *graphql.OperationContext) *gqlerror.Error {
	if rc.Operation == nil || rc.Operation.Operation != ast.Mutation {
		return nil
	}
	// Each mutation field counts, aliased or not: one operation may hold many.
	n := len(graphql.CollectFields(rc, rc.Operation.SelectionSet, []string{"Mutation"}))
	if float64(n) > m.burst {
		return &gqlerror.Error{Message: fmt.Sprintf("too many mutations in one operation: %d, and a client may send at most %g at once (and %g per second)", n, m.burst, m.perSecond),
			Extensions: map[string]any{"code": "RATE_LIMITED", "mutations": n, "burst": m.burst}}
	}
	if wait := m.take(clientKey(ctx), float64(n)); wait > 0 {
		return &gqlerror.Error{Message: fmt.Sprintf("too many mutations: at most %g per second; retry in %.1f s", m.perSecond, wait.Seconds()),
			Extensions: map[string]any{"code": "RATE_LIMITED", "retryAfterSeconds": math.Ceil(wait.Seconds()*10) / 10}}
	}
	return nil
}

// take takes n tokens from key's bucket, or says how long until there are
// n (at most the burst).
func (m *mutationRate) take(key string, n float64) time.Duration {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if now.Sub(m.swept) > time.Minute { // forget idle clients
		for k, b := range m.buckets {
			if now.Sub(b.at) > time.Minute {
				delete(m.buckets, k)
			}
		}
		m.swept = now
	}
	b := m.buckets[key]
	if b == nil {
		b = &bucket{tokens: m.burst, at: now}
		m.buckets[key] = b
	}
	b.tokens = math.Min(m.burst, b.tokens+now.Sub(b.at).Seconds()*m.perSecond)
	b.at = now
	if b.tokens < n {
		// At most a day: a rate of 1e-12 a second waits ages, which as a
		// Duration overflowed to a negative wait, and let the mutation run.
		return time.Duration(math.Min((n-b.tokens)/m.perSecond, 86400) * float64(time.Second))
	}
	b.tokens -= n
	return 0
}

// ipKey is the client key of a caller known by its address.
func ipKey(remoteAddr string) string {
	if host, _, err := net.SplitHostPort(remoteAddr); err == nil {
		return "ip:" + host
	}
	return "ip:" + remoteAddr
}

// clientKey identifies the caller for the rate limits: the credential's
// subject in its tenant, or the remote IP address (for a credential
// without a subject too, which would otherwise share one key with every
// other).
func clientKey(ctx context.Context) string {
	if p := auth.FromContext(ctx); p != nil && p.Method != auth.MethodDevelopment && p.Subject != "" {
		return p.Method + ":" + p.Tenant + ":" + p.Subject // a websocket's credential comes after the upgrade
	}
	if i := infoOf(ctx); i != nil {
		return ipKey(i.remoteAddr)
	}
	return ""
}

// noIntrospection refuses __schema and __type when introspection is off.
type noIntrospection struct{}

func (noIntrospection) ExtensionName() string                   { return "NoIntrospection" }
func (noIntrospection) Validate(graphql.ExecutableSchema) error { return nil }
func (noIntrospection) MutateOperationContext(_ context.Context, rc *graphql.OperationContext) *gqlerror.Error {
	if rc.Operation == nil || rc.Operation.Operation != ast.Query {
		return nil
	}
	for _, f := range graphql.CollectFields(rc, rc.Operation.SelectionSet, []string{"Query"}) {
		if f.Name == "__schema" || f.Name == "__type" {
			return &gqlerror.Error{Message: "introspection is disabled on this gateway", Path: ast.Path{ast.PathName(f.Alias)},
				Extensions: map[string]any{"code": "INTROSPECTION_DISABLED"}}
		}
	}
	return nil
}

// logOperations logs one line per operation, when its first response is
// ready: request id, operation type and name, client, duration and the
// number of errors. Never variables or credentials.
func logOperations(log *slog.Logger) graphql.OperationMiddleware {
	return func(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
		if !log.Enabled(ctx, slog.LevelInfo) {
			return next(ctx) // nothing to log: no timing, no wrapper
		}
		rc := graphql.GetOperationContext(ctx)
		start := time.Now()
		responses := next(ctx)
		var once sync.Once
		return func(ctx context.Context) *graphql.Response {
			resp := responses(ctx)
			once.Do(func() {
				kind, name := "", rc.OperationName
				if rc.Operation != nil {
					kind, name = string(rc.Operation.Operation), rc.Operation.Name
				}
				errs := 0
				if resp != nil {
					errs = len(resp.Errors)
				}
				log.InfoContext(ctx, "graphql", "requestId", RequestID(ctx), "operation", kind, "name", model.CutText(name, maxLoggedName),
					"client", clientKey(ctx), "durationMs", float64(time.Since(start).Microseconds())/1000, "errors", errs)
			})
			return resp
		}
	}
}

// maxReadTypes is the most event types a read of the log (the events query
// or subscription) filters by: the store reads each type on its own (a
// branch of one statement each), and thousands of them took PostgreSQL
// seconds to plan, or more stack than it has (an internal error).
const maxReadTypes = 100

func checkReadTypes(types []string) error {
	if len(types) > maxReadTypes {
		return domain.InvalidField("types", "%d event types were asked for; a read filters by at most %d", len(types), maxReadTypes)
	}
	return nil
}

// longOf reads a sum over many aggregates (a decimal integer, exact) for a
// Long field: every amount fits a Long, their sum need not. Beyond 64 bits
// it is an OUT_OF_RANGE error on the field, naming the field (exact) that
// has it whole; the rest of the answer stands.
func longOf(what, exact, decimal string) (*model.Long, error) {
	n, err := strconv.ParseInt(decimal, 10, 64)
	if err != nil {
		return nil, &domain.Error{Code: domain.OutOfRange, Message: fmt.Sprintf("%s is %s, beyond a Long (64 bits): read %s", what, decimal, exact),
			Details: map[string]any{"value": decimal}}
	}
	l := model.Long(n)
	return &l, nil
}
