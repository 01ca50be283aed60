package graph

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"cqrsgate/domain"
	"cqrsgate/graph/model"
)

// opts are the two fields every command input carries.
type opts struct {
	expectedVersion *int
	idempotencyKey  *string
}

// execute runs cmd through the command service with the request's
// correlation id, its request id as causation id, and the input's
// expectedVersion and idempotencyKey, and converts the result.
func execute[A domain.Aggregate](ctx context.Context, r *Resolver, k *domain.Kind[A], cmd domain.Command, o opts) (_ *model.CommandResult, err error) {
	meta := domain.CommandMeta{CorrelationID: CorrelationID(ctx), CausationID: RequestID(ctx), Tenant: tenantOf(ctx)}
	if o.expectedVersion != nil {
		v := int64(*o.expectedVersion)
		if v < 0 {
			return nil, domain.InvalidField("expectedVersion", "expectedVersion must not be negative, got %d", v)
		}
		meta.ExpectedVersion = &v
	}
	if o.idempotencyKey != nil {
		if err := domain.CheckClientIdempotencyKey(*o.idempotencyKey); err != nil {
			return nil, err
		}
		meta.IdempotencyKey = *o.idempotencyKey
	}
	if r.Tracer != nil {
		var span trace.Span
		ctx, span = r.Tracer.Start(ctx, "command "+cmd.CommandName(), trace.WithAttributes(
			attribute.String("cqrsgate.command", cmd.CommandName()), attribute.String("cqrsgate.aggregate", k.StreamID(cmd.AggregateID()))))
		defer span.End()
		defer func() {
			if code := domain.CodeOf(err); code != "" {
				span.SetStatus(codes.Error, string(code))
			}
		}()
	}
	res, err := domain.Execute(ctx, r.Commands, k, cmd, meta)
	if err != nil {
		return nil, err
	}
	correlationID, causationID := meta.CorrelationID, meta.CausationID
	if res.Duplicate {
		// The original result's, stored with its events: not this retry's.
		correlationID, causationID = storedIDs(res.Events, correlationID, causationID)
	}
	return &model.CommandResult{
		AggregateID:   res.AggregateID,
		StreamID:      unqualified(res.StreamID),
		Version:       int(res.Version),
		Position:      model.Position(res.Position),
		Duplicate:     res.Duplicate,
		CorrelationID: correlationID,
		CausationID:   causationID,
		Events:        toEvents(res.Events),
	}, nil
}

// newAggregateID returns the id for a creation command: the client's, or
// one derived from the idempotency key (so that a retry targets the same
// aggregate), or a new one.
func newAggregateID(kind string, given, idempotencyKey *string) string {
	switch {
	case given != nil:
		return *given
	case idempotencyKey != nil && *idempotencyKey != "":
		h := sha256.Sum256([]byte("cqrsgate/new-id\x00" + kind + "\x00" + *idempotencyKey))
		u := h[:16]
		u[6] = (u[6] & 0x0f) | 0x80 // UUID version 8
		u[8] = (u[8] & 0x3f) | 0x80
		s := hex.EncodeToString(u)
		return s[0:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:32]
	}
	return domain.NewID()
}

func long(l *model.Long) int64 {
	if l == nil {
		return 0
	}
	return int64(*l)
}

// aggregateOwning returns the name of the aggregate kind whose streams
// include stream, or "". Those streams are written only by their
// aggregate's commands, never by the generic appendEvents.
func aggregateOwning(stream string) string {
	for _, name := range []string{domain.Accounts.Name, domain.Orders.Name, domain.Products.Name, domain.Fulfilments.Name} {
		if strings.HasPrefix(stream, name+"-") {
			return name
		}
	}
	return ""
}
