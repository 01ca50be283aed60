// Package graph is cqrsgate's GraphQL edge: the schema (graph/schema), the
// resolvers, the HTTP handler with its transports, and the one place where
// errors are translated into GraphQL errors with extensions.code.
package graph

//go:generate go run github.com/99designs/gqlgen generate

import (
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/trace"

	"cqrsgate/domain"
	"cqrsgate/eventstore"
	"cqrsgate/projections"
	"cqrsgate/schemaregistry"
)

// Resolver holds the resolvers' dependencies.
type Resolver struct {
	Store    eventstore.Store
	Commands *domain.Service
	Log      *slog.Logger
	// The read side (nil in a handler built for the write side only).
	AccountReads *projections.AccountQueries
	OrderReads   *projections.OrderQueries
	ProductReads *projections.ProductQueries
	// FulfilmentReads reads the fulfilment sagas (nil: their queries are unavailable).
	FulfilmentReads *projections.FulfilmentQueries
	Admin           *projections.Admin
	Positions       *projections.Positions
	// ReadTimeout bounds how long a query waits for atLeast (default 5s).
	ReadTimeout time.Duration
	// Hub fans the log out to subscriptions; nil: subscriptions are unavailable.
	Hub *eventstore.Hub
	// Schemas is the event schema registry; nil: events are shown as
	// stored and the registry's queries and mutations are unavailable.
	Schemas *schemaregistry.Registry
	// Connections counts open websocket connections (nil: none).
	Connections func() int
	// Tracer makes a span of each command (never nil in NewHandler's resolvers).
	Tracer trace.Tracer
}
