package graph

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/ast"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"cqrsgate/domain"
	"cqrsgate/eventstore"
	"cqrsgate/graph/generated"
	"cqrsgate/internal/auth"
	"cqrsgate/projections"
	"cqrsgate/schemaregistry"
)

// Config configures the GraphQL handler.
type Config struct {
	Store eventstore.Store
	// Commands executes command mutations against Store.
	Commands *domain.Service
	Log      *slog.Logger
	// MaxBodyBytes caps a request body (default 16 MiB).
	MaxBodyBytes int64
	// The read side; all nil for a write-only handler.
	AccountReads *projections.AccountQueries
	OrderReads   *projections.OrderQueries
	ProductReads *projections.ProductQueries
	// FulfilmentReads reads the fulfilment sagas.
	FulfilmentReads *projections.FulfilmentQueries
	Admin           *projections.Admin
	Positions       *projections.Positions
	// ReadTimeout bounds how long a query waits for atLeast (default 5s).
	ReadTimeout time.Duration
	// Hub fans the log out to subscriptions (see Resolver.Hub).
	Hub *eventstore.Hub
	// Websocket serves subscriptions (and any operation) over websockets at
	// the same path; nil: no websocket transport.
	Websocket *Websocket
	// Schemas is the event schema registry (nil: none; see Resolver.Schemas).
	// Store should then validate appends with it (eventstore.WithSchemas).
	Schemas *schemaregistry.Registry
	// Auth authenticates callers; nil or not Enabled: development mode, in
	// which every caller is an administrator.
	Auth *auth.Authenticator
	// Limits bound operations and clients (zero: the defaults).
	Limits Limits
	// Operations, when set, wraps every operation that runs (metrics).
	Operations graphql.OperationMiddleware
	// RefusedOperations, when set, is told of every operation refused
	// before it ran (it does not reach Operations): its type ("unknown"
	// when its document did not parse) and its errors' codes.
	RefusedOperations func(ctx context.Context, kind string, codes []string)
	// Tracer makes spans of requests, operations and commands (nil: none).
	Tracer trace.TracerProvider
}

// NewHandler returns the GraphQL endpoint: POST (application/json) and GET
// (queries only), with a parsed-query cache, introspection, request and
// correlation ids, authentication (cfg.Auth) and role checks for every
// operation, and errors presented with extensions.code.
func NewHandler(cfg Config) http.Handler {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 16 << 20
	}
	var connections func() int
	if cfg.Websocket != nil {
		connections = cfg.Websocket.Connections
	}
	cfg.Limits.withDefaults()
	if cfg.Tracer == nil {
		cfg.Tracer = noop.NewTracerProvider()
	}
	_, untraced := cfg.Tracer.(noop.TracerProvider) // no spans to make: no tracing middleware
	tracer := cfg.Tracer.Tracer(tracerName)
	gcfg := generated.Config{Resolvers: &Resolver{
		Connections: connections, Tracer: tracer,
		Store: cfg.Store, Commands: cfg.Commands, Log: cfg.Log,
		Hub: cfg.Hub, AccountReads: cfg.AccountReads, OrderReads: cfg.OrderReads, ProductReads: cfg.ProductReads, FulfilmentReads: cfg.FulfilmentReads, Admin: cfg.Admin, Positions: cfg.Positions, ReadTimeout: cfg.ReadTimeout,
		Schemas: cfg.Schemas,
	}}
	listComplexity(&gcfg.Complexity)
	es := generated.NewExecutableSchema(gcfg)
	srv := handler.New(es)
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	refused := logRefusals(cfg.Log, cfg.RefusedOperations)
	if cfg.Websocket != nil {
		if cfg.Websocket.Log == nil {
			cfg.Websocket.Log = cfg.Log
		}
		if cfg.Websocket.Init == nil {
			cfg.Websocket.Init = wsInit(cfg.Auth, cfg.Log)
		}
		if cfg.Websocket.ShareScope == nil {
			cfg.Websocket.ShareScope = func(ctx context.Context) string { return auth.FromContext(ctx).Scope() }
		}
		cfg.Websocket.refused, cfg.Websocket.schema = refused, es.Schema()
		srv.AddTransport(cfg.Websocket)
	}
	srv.AddTransport(transport.Options{})
	apq := scopedQueries{lru.New[string](1000)}
	srv.AddTransport(getTransport{apq: apq, refused: refused, schema: es.Schema()})
	srv.AddTransport(postTransport{refused: refused, schema: es.Schema()})
	queries := lru.New[*ast.QueryDocument](1000)
	srv.SetQueryCache(queries)
	if cfg.Limits.DisableIntrospection {
		srv.Use(noIntrospection{})
	} else {
		srv.Use(extension.Introspection{})
	}
	srv.Use(persistedQueries{extension.AutomaticPersistedQuery{Cache: apq}})
	srv.Use(&listVariables{cache: queries}) // after APQ, before what reads variables
	srv.Use(&exactEnums{})
	srv.Use(mutationResults{})
	srv.Use(authorization{})
	srv.Use(depthLimit{max: cfg.Limits.MaxDepth})
	srv.Use(exactLiterals{})
	srv.Use(&complexityLimit{max: cfg.Limits.MaxComplexity})
	if cfg.Limits.MutationsPerSecond > 0 {
		srv.Use(&mutationRate{perSecond: cfg.Limits.MutationsPerSecond, burst: float64(cfg.Limits.MutationBurst), now: time.Now, buckets: map[string]*bucket{}})
	}
	srv.AroundOperations(logOperations(cfg.Log))
	if !untraced {
		srv.AroundOperations(traceOperations(tracer))
	}
	if cfg.Operations != nil {
		srv.AroundOperations(cfg.Operations)
	}
	srv.SetErrorPresenter(presentError(cfg.Log))
	srv.SetRecoverFunc(recoverPanic(cfg.Log))
	var h http.Handler = httpSpec(srv)
	h = readBody(cfg.MaxBodyBytes, h)
	h = authenticate(cfg.Auth, cfg.Log, h)
	if !untraced {
		h = traceHTTP(tracer, h)
	}
	return withRequestIDs(h)
}
