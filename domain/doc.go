// Package domain holds cqrsgate's business core: the event envelope shared
// with the event store, aggregates, commands, business rules, the command
// service and the typed error that the GraphQL edge translates into
// extensions.code. It imports the standard library only.
package domain
