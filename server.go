// Command cqrsgate is a GraphQL CQRS gateway for event-sourced systems.
//
// With no configuration it starts a private PostgreSQL cluster (in
// .cqrsgate/pgdata) and serves GraphQL at http://localhost:8080/graphql.
// Run with -h for every setting; the README documents them.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/trace"

	"cqrsgate/domain"
	"cqrsgate/eventstore"
	"cqrsgate/graph"
	"cqrsgate/internal/demo"
	"cqrsgate/internal/gctune"
	"cqrsgate/internal/metrics"
	"cqrsgate/internal/pgdial"
	"cqrsgate/internal/pgembed"
	"cqrsgate/internal/tracing"
	"cqrsgate/projections"
	"cqrsgate/schemaregistry"
	"cqrsgate/web"
)

func main() {
	cfg, err := loadConfig(os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0) // -h: the usage is printed
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "cqrsgate:", err)
		os.Exit(2)
	}
	log := newLogger(cfg)
	applyGCPercent(cfg, os.Getenv) // tunes the collector for the process's life
	ctx, stop := stopSignals(context.Background())
	defer stop()
	tp, stopTracing, err := tracing.Setup(ctx, os.Getenv, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cqrsgate:", err)
		os.Exit(2)
	}
	err = run(ctx, cfg, log, tp)
	// Before os.Exit, which runs no deferred call: the last spans are
	// exported on a failure too.
	flushTracing(ctx, stopTracing, cfg.ShutdownTimeout, log)
	if err != nil {
		var sig stopSignal
		if errors.As(context.Cause(ctx), &sig) {
			// Asked to stop while starting (initdb, migrations): what
			// failed failed for that, and stopping is what was asked.
			log.Info("cqrsgate stopped during start-up", "signal", sig.String(), "err", err)
			return
		}
		log.Error("cqrsgate stopped", "err", err)
		os.Exit(1)
	}
}

// maxTracingFlush bounds the export of the spans left at shutdown.
const maxTracingFlush = 5 * time.Second

// flushTracing exports the spans left and stops the tracer provider
// (stop), giving it the shutdown timeout, at most maxTracingFlush: a
// collector that does not answer held the exit up for its own timeouts
// (30 s and more). Spans it could not export are lost, with a warning.
func flushTracing(ctx context.Context, stop func(context.Context) error, shutdownTimeout time.Duration, log *slog.Logger) {
	timeout := min(shutdownTimeout, maxTracingFlush)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	if err := stop(ctx); err != nil {
		log.Warn("OpenTelemetry: the last spans were not all exported at shutdown", "timeout", timeout, "err", err)
	}
}

// stopSignal is the cause of the context that run serves until: the
// signal that asked the gateway to stop.
type stopSignal struct{ os.Signal }

func (s stopSignal) Error() string { return s.String() + " signal received" }

// stopSignals returns a context that ends, its cause a stopSignal, at the
// first SIGINT or SIGTERM. A second one, while the shutdown runs (it may
// wait for requests in flight and for PostgreSQL), ends the process at once
// with status 1: Ctrl-C twice stops it.
func stopSignals(parent context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(parent)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	quit := make(chan struct{})
	go func() {
		select {
		case s := <-sigs:
			cancel(stopSignal{s})
		case <-quit:
			return
		}
		select {
		case s := <-sigs:
			fmt.Fprintf(os.Stderr, "cqrsgate: %s again: stopping at once, without finishing the shutdown\n", s)
			os.Exit(1)
		case <-quit:
		}
	}()
	return ctx, func() { signal.Stop(sigs); cancel(context.Canceled); close(quit) }
}

// applyGCPercent sets the garbage collector's target to cfg.GCPercent
// unless GOGC is set (the runtime applied that one). The gateway's live heap
// is small under load (about 10 MB: caches, the log's tail), and it
// allocates fast (a request's GraphQL work, events in and out): collecting
// when the heap has grown by 400% of the live heap rather than Go's 100%
// costs some tens of MB and saves much of the collector's CPU. What
// connections keep makes the live heap grow (about 9 KB each), and 400% of
// it would be hundreds of MB of garbage: the target is lowered, toward
// Go's 100%, once it would allow more than cfg.GCHeadroomMB beyond Go's
// default (see internal/gctune). It reports the target it set and the
// tuner that follows the live heap; 0 and none when it left GOGC's.
func applyGCPercent(cfg config, getenv func(string) string) (int, *gctune.Tuner) {
	if getenv("GOGC") != "" {
		return 0, nil
	}
	return cfg.GCPercent, gctune.Start(cfg.GCPercent, uint64(cfg.GCHeadroomMB)<<20)
}

// newLogger is the gateway's logger: a line logged with the context of a
// request (log.InfoContext(ctx, ...)) carries its request id.
func newLogger(cfg config) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	var h slog.Handler = slog.NewTextHandler(os.Stderr, opts)
	if cfg.LogFormat == "json" {
		h = slog.NewJSONHandler(os.Stderr, opts)
	}
	return slog.New(withRequestID(h, graph.RequestID))
}

// requestIDKey is the attribute that holds a request's id in log lines.
const requestIDKey = "requestId"

// withRequestID wraps h so that a record logged with a context that id
// finds a request id in gets attribute requestId, unless it carries one
// already (in the record, or added with Logger.With). Under a group
// (Logger.WithGroup), the attribute is the group's, as the record's are.
// Records logged without a request's context are left as they are.
func withRequestID(h slog.Handler, id func(context.Context) string) slog.Handler {
	return &requestIDHandler{Handler: h, id: id}
}

type requestIDHandler struct {
	slog.Handler
	id func(context.Context) string
	// has: the attributes added with WithAttrs include a request id.
	has bool
}

func (h *requestIDHandler) Handle(ctx context.Context, r slog.Record) error {
	if h.has || ctx == nil {
		return h.Handler.Handle(ctx, r)
	}
	id := h.id(ctx)
	if id == "" {
		return h.Handler.Handle(ctx, r)
	}
	carries := false
	r.Attrs(func(a slog.Attr) bool {
		carries = a.Key == requestIDKey
		return !carries
	})
	if !carries {
		// A copy: the caller's record may be shared (handlers must not
		// change what they were handed).
		r = r.Clone()
		r.AddAttrs(slog.String(requestIDKey, id))
	}
	return h.Handler.Handle(ctx, r)
}

func (h *requestIDHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	has := h.has
	for _, a := range attrs {
		has = has || a.Key == requestIDKey
	}
	return &requestIDHandler{Handler: h.Handler.WithAttrs(attrs), id: h.id, has: has}
}

func (h *requestIDHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h // slog's rule: an empty group is no group
	}
	// A request id added with WithAttrs before the group stays on the
	// group's lines: they get no second one.
	return &requestIDHandler{Handler: h.Handler.WithGroup(name), id: h.id, has: h.has}
}

// run starts everything, serves until ctx ends, then shuts down in reverse
// order: stop accepting and drain requests, stop the listener, close the
// pool, stop the embedded PostgreSQL.
func run(ctx context.Context, cfg config, log *slog.Logger, tp trace.TracerProvider) (err error) {
	// Bound first: an address in use fails at once, not after PostgreSQL,
	// the migrations and the runners have started. Connections that come
	// meanwhile wait in the listen queue until the gateway serves.
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on -addr (ADDR) %s: %w", cfg.Addr, err)
	}
	defer ln.Close() // served, the server has closed it already
	if cfg.DebugAddr != "" {
		stop, err := serveDebug(cfg.DebugAddr, log)
		if err != nil {
			return err
		}
		defer stop()
	}
	dbURL := cfg.DatabaseURL
	var dbExited <-chan struct{} // the embedded PostgreSQL's exit; nil (never) with DATABASE_URL
	if dbURL == "" {
		cluster, err := pgembed.Start(ctx, pgembed.Options{DataDir: cfg.DataDir, Database: "cqrsgate", Logger: log,
			Settings: map[string]string{"max_connections": strconv.Itoa(embeddedMaxConnections(cfg.DBMaxConns))}})
		if err != nil {
			return fmt.Errorf("embedded PostgreSQL: %w", err)
		}
		defer func() {
			// PostgreSQL's fast shutdown (a checkpoint) gets the shutdown
			// timeout, at least 10 s; then it is stopped at once (it
			// recovers from its WAL at the next start).
			stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), max(cfg.ShutdownTimeout, 10*time.Second))
			defer cancel()
			if serr := cluster.Stop(stopCtx); serr != nil {
				log.Error("stopping embedded PostgreSQL", "err", serr)
			}
		}()
		dbURL = cluster.URL()
		dbExited = cluster.Done()
	} else {
		log.Info("using PostgreSQL from DATABASE_URL")
	}

	poolCfg, tcp, err := poolConfig(dbURL, cfg.DatabaseURL != "", cfg.DBMaxConns)
	if err != nil {
		return err
	}
	if cfg.DatabaseURL != "" {
		log.Info("database connections", "tcp", tcp.String(), "pingTimeout", poolCfg.PingTimeout)
	}
	pool, err := pgxpool.NewWithConfig(ctx, poolCfg)
	if err != nil {
		return fmt.Errorf("database pool: %w", err)
	}
	defer pool.Close()
	if err := migrate(ctx, pool); err != nil {
		if cfg.DatabaseURL != "" {
			// The first use of the URL: a wrong host, port, user, password
			// or database name fails here.
			return fmt.Errorf("database of -database-url (DATABASE_URL): %w", err)
		}
		return fmt.Errorf("database: %w", err)
	}

	wake := eventstore.NewBroadcaster()
	rawStore := eventstore.NewPostgres(pool, log, eventstore.Limits{}, wake)
	registry, err := schemaregistry.New(ctx, pool, rawStore, log, schemaregistry.Options{
		PermissiveTypes: cfg.SchemaPermissiveTypes, ReplaySample: cfg.SchemaReplaySample,
	})
	if err != nil {
		return err
	}
	if err := registry.Seed(ctx, domain.EventSchemas()); err != nil {
		return fmt.Errorf("registering the domain's event schemas: %w", err)
	}
	registryCtx, stopRegistry := context.WithCancel(context.WithoutCancel(ctx))
	registryDone := make(chan struct{})
	go func() { defer close(registryDone); _ = registry.Run(registryCtx) }()
	defer func() { stopRegistry(); <-registryDone }()
	// Appends are validated by the registry (and counted); reads return
	// every event as the latest version of its type.
	meters := metrics.New()
	// The followers of the log in this process (projections, the saga, the
	// subscription hub) read each new stretch of it from PostgreSQL once
	// between them.
	tail := eventstore.NewTail(rawStore, eventstore.TailOptions{})
	store := meters.Store(tracing.Store(eventstore.WithSchemas(tail, registry), tp))
	admin := projections.NewAdmin(pool)
	listenerCtx, stopListener := context.WithCancel(context.WithoutCancel(ctx))
	var bg sync.WaitGroup
	bg.Add(1)
	go func() {
		defer bg.Done()
		_ = eventstore.NewListener(poolCfg.ConnConfig.Copy(), wake, log).Run(listenerCtx)
	}()
	// Watches for a transaction that holds back every reader of the log
	// (logged, and the cqrsgate_log_held_back_* gauges).
	lagWatch := eventstore.NewLagWatch(rawStore, log, eventstore.LagWatchOptions{})
	meters.ReaderLag(lagWatch)
	bg.Add(1)
	go func() {
		defer bg.Done()
		_ = lagWatch.Run(listenerCtx)
	}()
	defer func() { stopListener(); bg.Wait() }()

	hub := eventstore.NewHub(tail, log) // subscriptions migrate each event as their client asks
	hubCtx, stopHub := context.WithCancel(context.WithoutCancel(ctx))
	hubDone := make(chan struct{})
	go func() { defer close(hubDone); _ = hub.Run(hubCtx) }()
	defer func() { stopHub(); <-hubDone }()

	runnerOpts := projections.Options{}
	if tracing.Enabled(tp) {
		runnerOpts.Trace = tracing.ProjectionBatch(tp)
		log.Info("OpenTelemetry tracing on")
	}
	runner, err := projections.NewRunner(pool, store, log, runnerOpts, readModels...)
	if err != nil {
		return err
	}
	runnerCtx, stopRunner := context.WithCancel(context.WithoutCancel(ctx))
	runnerDone := make(chan struct{})
	go func() { defer close(runnerDone); _ = runner.Run(runnerCtx) }()
	defer func() { stopRunner(); <-runnerDone }()

	var shuttingDown atomic.Bool
	mux := http.NewServeMux()
	commands := domain.NewService(store, log, time.Now, domain.ServiceOptions{SnapshotEvery: cfg.SnapshotEvery, Observe: meters.ObserveCommand})

	// The fulfilment saga: one runner per database follows the log.
	fulfilments := projections.NewFulfilmentQueries(pool)
	saga := domain.NewFulfilmentProcess(commands, log, time.Now, domain.FulfilmentOptions{StepTimeout: cfg.StepTimeout, Active: fulfilments.Active})
	sagaRunner, err := projections.NewProcessRunner(pool, store, log, projections.ProcessOptions{}, saga)
	if err != nil {
		return err
	}
	sagaCtx, stopSaga := context.WithCancel(context.WithoutCancel(ctx))
	sagaDone := make(chan struct{})
	go func() { defer close(sagaDone); _ = sagaRunner.Run(sagaCtx) }()
	defer func() { stopSaga(); <-sagaDone }()
	if cfg.Demo {
		demoCtx, stopDemo := context.WithCancel(ctx)
		demoDone := make(chan struct{})
		go func() {
			defer close(demoDone)
			_ = demo.Run(demoCtx, commands, log, demo.Options{})
		}()
		defer func() { stopDemo(); <-demoDone }()
	}

	websockets := &graph.Websocket{AllowedOrigins: cfg.AllowedOrigins, Log: log}
	mux.Handle("/graphql", graph.NewHandler(graph.Config{
		Websocket: websockets, Hub: hub,
		Store: store, Schemas: registry, Commands: commands, Operations: meters.Operations(), RefusedOperations: meters.RefusedOperation, Tracer: tp, Log: log, MaxBodyBytes: cfg.MaxBodyBytes,
		AccountReads: projections.NewAccountQueries(pool), OrderReads: projections.NewOrderQueries(pool),
		ProductReads: projections.NewProductQueries(pool), FulfilmentReads: fulfilments, Admin: admin,
		Positions: projections.NewPositions(pool, runner), ReadTimeout: cfg.ReadTimeout,
		Auth: cfg.Auth,
		Limits: graph.Limits{MaxComplexity: cfg.MaxComplexity, MaxDepth: cfg.MaxDepth, DisableIntrospection: !cfg.Introspection,
			MutationsPerSecond: cfg.MutationsPerSecond},
	}))
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok"})
	})
	meters.Gateway(websockets, pool)
	meters.Projections(admin, rawStore, log)
	mux.Handle("GET /metrics", meters.Handler())
	mux.HandleFunc("GET /readyz", readyz(pool, &shuttingDown, cfg.Auth.Enabled()))
	// Other methods than GET and HEAD of /livez, /readyz and /metrics come
	// here too (the mux's 405 is only for paths no pattern of any method
	// matches): they and the pages are answered 405, where a POST to
	// /readyz was a 404, as if it did not exist, and one to / the page.
	mux.Handle("/", getOnly(web.Handler()))
	var handler http.Handler = mux
	if !cfg.Auth.Enabled() && loopback(cfg.Addr) {
		// Development mode: every caller is an administrator, so only
		// requests addressed to loopback are served (DNS rebinding).
		handler = graph.LoopbackHostOnly(handler)
	}
	handler = bodyReadDeadline(cfg.BodyReadTimeout, handler)

	// No ReadTimeout: it would also bound websockets and the wait of
	// queries with atLeast; bodyReadDeadline bounds request bodies.
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: idleTimeout,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	log.Info("cqrsgate listening", "addr", ln.Addr().String(), "graphql", "http://"+displayAddr(ln.Addr())+"/graphql")
	if !cfg.Auth.Enabled() {
		log.Warn("DEVELOPMENT MODE: no authentication is configured, so every caller is an administrator. " +
			"Set AUTH_JWT_SECRET, AUTH_JWT_PUBLIC_KEYS_FILE or AUTH_API_KEYS before exposing this gateway.")
	}

	var stopErr error
	select {
	case err := <-serveErr:
		return fmt.Errorf("http server: %w", err)
	case <-dbExited:
		// Nothing restarts it: exit non-zero so that a supervisor restarts
		// the gateway (and with it PostgreSQL, which recovers from its WAL).
		stopErr = errors.New("the embedded PostgreSQL exited unexpectedly (see its server log)")
	case <-ctx.Done():
	}
	shuttingDown.Store(true) // /readyz answers 503 from now on
	var sig stopSignal
	if delay := cfg.ShutdownDelay; delay > 0 && stopErr == nil && !(errors.As(context.Cause(ctx), &sig) && sig.Signal == syscall.SIGINT) {
		// Load balancers see /readyz fail and stop sending requests; those
		// that come meanwhile are served.
		log.Info("shutting down: /readyz answers 503; serving on for the shutdown delay", "delay", delay)
		select {
		case <-time.After(delay):
		case err := <-serveErr:
			return fmt.Errorf("http server: %w", err)
		}
	}
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	// Hijacked websocket connections are not the HTTP server's to close:
	// they are drained beside its requests (queries and mutations in
	// flight on either are let finish), within the one timeout.
	wsDone := make(chan error, 1)
	go func() { wsDone <- websockets.Shutdown(shutdownCtx) }()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		log.Warn("http shutdown did not finish in time", "err", err)
		_ = srv.Close()
	}
	if err := <-wsDone; err != nil {
		log.Warn("websocket shutdown did not finish in time", "err", err)
	}
	return stopErr
}

// poolPingTimeout is how long a pool connection that was idle for a
// second or more may take to answer the ping it gets before it is handed
// out (pgxpool's PingTimeout, none by default), unless the URL sets
// pool_ping_timeout: one that died silently while idle is then dropped, and
// another taken or made, where its user hung on it.
const poolPingTimeout = 5 * time.Second

// poolConfig is the pool's configuration from dbURL (fromUser: it is
// DATABASE_URL, which errors name), with maxConns connections. Its
// connections dial with the TCP settings of pgdial, libpq's keepalives and
// tcp_user_timeout parameters of the URL or their defaults, which it
// returns; they time out connecting after 10 s and, idle, their pings
// after poolPingTimeout, unless the URL says otherwise. Errors: the URL's
// (malformed, a malformed TCP setting, or a pool_max_conns other than
// maxConns, which would be overridden without a word).
func poolConfig(dbURL string, fromUser bool, maxConns int) (*pgxpool.Config, pgdial.Settings, error) {
	invalid := func(err error) (*pgxpool.Config, pgdial.Settings, error) {
		if fromUser {
			return nil, pgdial.Settings{}, fmt.Errorf("invalid setting -database-url (DATABASE_URL): %w", err)
		}
		return nil, pgdial.Settings{}, fmt.Errorf("database URL: %w", err)
	}
	poolCfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return invalid(err)
	}
	if fromUser && strings.Contains(dbURL, "pool_max_conns") && poolCfg.MaxConns != int32(maxConns) {
		// It was overridden without a word by DB_MAX_CONNS (20 by default).
		return invalid(fmt.Errorf("its pool_max_conns (%d) is not -db-max-conns (DB_MAX_CONNS), %d, which sizes the gateway's pool: leave pool_max_conns out and set DB_MAX_CONNS", poolCfg.MaxConns, maxConns))
	}
	poolCfg.MaxConns = int32(maxConns)
	// pgx leaves libpq's TCP parameters for the server, which would refuse
	// the connection for them: they are the client's.
	tcp, err := pgdial.Configure(&poolCfg.ConnConfig.Config)
	if err != nil {
		return invalid(err)
	}
	if poolCfg.ConnConfig.ConnectTimeout == 0 && !strings.Contains(dbURL, "connect_timeout") {
		// Without it, a server that accepts and never answers hangs start-up
		// (and every reconnection) for ever; a connect_timeout in the URL wins
		// (0 there is libpq's "wait for ever").
		poolCfg.ConnConfig.ConnectTimeout = 10 * time.Second
	}
	if !strings.Contains(dbURL, "pool_ping_timeout") {
		poolCfg.PingTimeout = poolPingTimeout
	}
	return poolCfg, tcp, nil
}

// getOnly serves GET and HEAD requests with next and answers any other
// method 405 Method Not Allowed, with Allow.
func getOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed: GET or HEAD", http.StatusMethodNotAllowed)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// idleTimeout closes keep-alive connections that send no request for
// that long.
const idleTimeout = 2 * time.Minute

// bodyReadDeadline gives the body of each request timeout to arrive, from
// when the handler starts: the connection's read deadline is set, and
// cleared once the body has been read to its end, so that it does not end
// a long request (a query waiting for atLeast) whose body is in. Requests
// without a body and websocket upgrades (whose connection is the
// transport's) get no deadline. A body that does not arrive in time fails
// to read; the connection is then closed.
func bodyReadDeadline(timeout time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if timeout <= 0 || r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody || websocket.IsWebSocketUpgrade(r) {
			next.ServeHTTP(w, r)
			return
		}
		rc := http.NewResponseController(w)
		if err := rc.SetReadDeadline(time.Now().Add(timeout)); err != nil {
			next.ServeHTTP(w, r)
			return
		}
		r.Body = &deadlineBody{ReadCloser: r.Body, rc: rc}
		next.ServeHTTP(w, r)
	})
}

// deadlineBody clears the connection's read deadline when the body ends.
type deadlineBody struct {
	io.ReadCloser
	rc      *http.ResponseController
	cleared bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if errors.Is(err, io.EOF) && !b.cleared {
		b.cleared = true
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

// embeddedMaxConnections is max_connections of the embedded PostgreSQL:
// the pool (DB_MAX_CONNS), the connections the gateway holds outside it
// (each projection's leader, two while a new version is built beside the
// old one; the saga's leader; the log's and the schema registry's
// listeners) and room for an operator's psql, at least PostgreSQL's
// default of 100.
func embeddedMaxConnections(poolMax int) int {
	outsidePool := 2*len(readModels) + 1 + 2
	const operators = 10
	return max(100, poolMax+outsidePool+operators)
}

// readModels are the projections the gateway runs.
var readModels = projections.Shipped()

// serveDebug serves the Go profiler's endpoints (/debug/pprof/) on addr
// until stop is called. It does not serve /debug/pprof/cmdline: the
// command line may hold secrets given as flags.
func serveDebug(addr string, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on -debug-addr (DEBUG_ADDR) %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "not served: the command line may hold secrets", http.StatusNotFound)
	})
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	if loopback(ln.Addr().String()) {
		// Trusted as loopback, it must not answer a page of another site
		// that had its name resolve to 127.0.0.1 (DNS rebinding).
		srv.Handler = graph.LoopbackHostOnly(mux)
	}
	go func() { _ = srv.Serve(ln) }()
	if loopback(ln.Addr().String()) {
		log.Info("profiler listening", "addr", ln.Addr().String(), "url", "http://"+displayAddr(ln.Addr())+"/debug/pprof/")
	} else {
		log.Warn("PROFILER NOT ON LOOPBACK: the unauthenticated Go profiler is reachable from other hosts", "addr", ln.Addr().String(), "url", "http://"+displayAddr(ln.Addr())+"/debug/pprof/")
	}
	return func() { _ = srv.Close() }, nil
}

func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if err := eventstore.Migrate(ctx, conn.Conn()); err != nil {
		return err
	}
	if err := schemaregistry.Migrate(ctx, conn.Conn()); err != nil {
		return err
	}
	return projections.Migrate(ctx, conn.Conn())
}

// readyz reports whether the gateway can serve: the database answers, its
// migrations are applied, no projection that queries read has failed, and
// shutdown has not begun. Its body also says whether authentication is on
// or the gateway runs in development mode, and, under "warnings", what
// failed without making it unready (a rebuild beside a serving
// generation). The database checks run through a readyChecks: at most one
// at a time, a passing result reused for readyFresh.
func readyz(pool *pgxpool.Pool, shuttingDown *atomic.Bool, authEnabled bool) http.HandlerFunc {
	checks := &readyChecks{run: func(ctx context.Context) readiness { return databaseChecks(ctx, pool) }}
	return func(w http.ResponseWriter, r *http.Request) {
		got := checks.get(r.Context())
		c := got.checks
		c["shutdown"] = "ok"
		if shuttingDown.Load() {
			c["shutdown"] = "shutting down"
		}
		ready := passed(c)
		status := http.StatusOK
		body := map[string]any{"status": "ok", "checks": c, "authentication": "on"}
		if len(got.warnings) > 0 {
			body["warnings"] = got.warnings
		}
		if !authEnabled {
			body["authentication"] = "off: development mode, every caller is an administrator"
		}
		if !ready {
			status, body["status"] = http.StatusServiceUnavailable, "unavailable"
		}
		writeJSON(w, status, body)
	}
}

// readiness is what /readyz's database checks found: checks, each "ok"
// or why not, which must all pass; and warnings, what an operator should
// see that does not make the gateway unready.
type readiness struct {
	checks, warnings map[string]string
}

// databaseChecks runs /readyz's checks of the database: it answers, the
// migrations are applied, no serving projection generation (one queries
// read) has failed ("ok" each, or why not). A generation that failed
// without serving (a rebuild beside the serving one, or a version that
// another release runs) is a warning: no query reads it, so it does not
// take every gateway out of its load balancer.
func databaseChecks(ctx context.Context, pool *pgxpool.Pool) readiness {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	r := readiness{checks: map[string]string{"database": "ok", "migrations": "ok", "projections": "ok"}}
	if err := pool.Ping(ctx); err != nil {
		r.checks["database"] = "unreachable"
		return r
	}
	ok1, err1 := eventstore.MigrationsApplied(ctx, pool)
	ok2, err2 := projections.MigrationsApplied(ctx, pool)
	ok3, err3 := schemaregistry.MigrationsApplied(ctx, pool)
	if err1 != nil || err2 != nil || err3 != nil || !ok1 || !ok2 || !ok3 {
		r.checks["migrations"] = "not applied"
		return r
	}
	list, err := projections.List(ctx, pool)
	if err != nil {
		r.checks["projections"] = "unreadable"
		return r
	}
	var failed, notServing []string
	for _, p := range list {
		switch {
		case p.Status != "FAILED":
		case p.Serving:
			failed = append(failed, fmt.Sprintf("%s v%d failed at position %d", p.Name, p.Version, p.FailedPosition))
		default:
			notServing = append(notServing, fmt.Sprintf("%s v%d generation %d, which does not serve, failed at position %d", p.Name, p.Version, p.Generation, p.FailedPosition))
		}
	}
	if len(failed) > 0 {
		r.checks["projections"] = strings.Join(failed, "; ")
	}
	if len(notServing) > 0 {
		r.warnings = map[string]string{"projections": strings.Join(notServing, "; ")}
	}
	return r
}

// readyFresh is how long a passing result of /readyz's database checks is
// reused.
const readyFresh = time.Second

// readyChecks runs /readyz's database checks at most once at a time, and
// reuses a passing result for readyFresh. /readyz answers anyone (load
// balancers have no credentials), and each call ran five queries on the
// gateway's pool: a flood of calls took the connections GraphQL needs.
// Calls that come while the checks run wait for their result. A failing
// result is not reused, so that a recovery shows at once.
type readyChecks struct {
	run func(context.Context) readiness

	mu      sync.Mutex
	passed  time.Time     // when the last result passed (zero: it did not)
	last    readiness     // the last result
	running chan struct{} // closed when the checks running end; nil when none run
}

// get returns a copy of a result of the checks: the last one, when it
// passed less than readyFresh ago; else that of the checks running, or of
// checks it runs. A caller whose request ends while it waits gets
// "database": "not checked".
func (c *readyChecks) get(ctx context.Context) readiness {
	c.mu.Lock()
	switch {
	case !c.passed.IsZero() && time.Since(c.passed) < readyFresh:
	case c.running != nil:
		running := c.running
		c.mu.Unlock()
		select {
		case <-running:
		case <-ctx.Done():
			return readiness{checks: map[string]string{"database": "not checked"}}
		}
		c.mu.Lock()
	default:
		done := make(chan struct{})
		c.running = done
		c.mu.Unlock()
		// Not the caller's context: others wait for this result.
		result := c.run(context.WithoutCancel(ctx))
		c.mu.Lock()
		c.last, c.passed, c.running = result, time.Time{}, nil
		if passed(result.checks) {
			c.passed = time.Now()
		}
		close(done)
	}
	out := readiness{checks: maps.Clone(c.last.checks), warnings: maps.Clone(c.last.warnings)}
	c.mu.Unlock()
	return out
}

// passed reports whether every check is "ok".
func passed(checks map[string]string) bool {
	for _, v := range checks {
		if v != "ok" {
			return false
		}
	}
	return true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func displayAddr(a net.Addr) string {
	tcp, ok := a.(*net.TCPAddr)
	if !ok || tcp.IP.IsUnspecified() {
		if ok {
			return fmt.Sprintf("localhost:%d", tcp.Port)
		}
		return a.String()
	}
	return tcp.String()
}
