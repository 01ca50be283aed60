package graph

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"cqrsgate/domain"
	"cqrsgate/eventstore"
	"cqrsgate/schemaregistry"
)

// presentError is the one place where errors become GraphQL errors:
//   - a *domain.Error or *schemaregistry.Error keeps its client-safe
//     message and gets extensions.code (and field, rule and details when set);
//   - errors gqlgen itself raised (parse, validation) pass through;
//   - a cancelled or timed-out request gets code CANCELLED or TIMEOUT;
//   - a database that cannot be reached gets code UNAVAILABLE;
//   - anything else is an internal error: logged once with the request id,
//     and shown only as "internal error" with that request id.
func presentError(log *slog.Logger) graphql.ErrorPresenterFunc {
	return func(ctx context.Context, err error) *gqlerror.Error {
		gqlErr := graphql.DefaultErrorPresenter(ctx, err)
		var de *domain.Error
		var re *schemaregistry.Error
		switch {
		case errors.As(err, &de):
			gqlErr.Message = de.Message
			gqlErr.Extensions = domainExtensions(de)
			if de.Code == domain.Invalid && de.Field == "" {
				// A scalar that could not take a value (a Long of "ten")
				// knows no field; its path names it.
				if f := fieldOfPath(gqlErr.Path); f != "" {
					gqlErr.Extensions["field"] = f
				}
			}
			if de.Code == domain.Internal {
				// One the code meant to explain (a sum beyond a Long): its
				// message is shown, and it is logged with its request id
				// as every internal error is.
				gqlErr.Extensions["requestId"] = logInternal(ctx, log, gqlErr, err)
			}
		case errors.As(err, &re):
			gqlErr.Message = re.Message
			gqlErr.Extensions = domainExtensions(&domain.Error{Code: domain.Code(re.Code), Rule: re.Rule, Details: re.Details})
		case errors.Is(err, context.Canceled):
			gqlErr.Message = "the request was cancelled"
			gqlErr.Extensions = map[string]any{"code": "CANCELLED"}
		case errors.Is(err, context.DeadlineExceeded):
			gqlErr.Message = "the request timed out"
			gqlErr.Extensions = map[string]any{"code": "TIMEOUT"}
		case gqlErr.Unwrap() == nil:
			// Raised by gqlgen or gqlparser (parsing, validation, coercion):
			// its message is meant for the client.
		case eventstore.IsConnectionError(err):
			// The database could not be reached (restarting, failing over,
			// the network) by a read the store does not make, of a read
			// model or the projections' state: as the store's own, the
			// client is to try again, and nothing internal went wrong.
			gqlErr.Message = "the database is unavailable, retry later"
			gqlErr.Extensions = map[string]any{"code": string(domain.Unavailable)}
		default:
			reqID := logInternal(ctx, log, gqlErr, err) // before the message changes: err may be gqlErr
			gqlErr.Message = "internal error"
			gqlErr.Extensions = map[string]any{"code": string(domain.Internal), "requestId": reqID}
		}
		return gqlErr
	}
}

// logInternal logs an internal error with the request id it returns,
// which the client gets to quote.
func logInternal(ctx context.Context, log *slog.Logger, gqlErr *gqlerror.Error, err error) string {
	reqID := RequestID(ctx)
	log.ErrorContext(ctx, "graphql: internal error", "requestId", reqID, "path", gqlErr.Path.String(), "err", err)
	return reqID
}

// fieldOfPath names the input field an argument's path leads to, as the
// domain's errors name fields: the path after the root field, without the
// "input" object commands take ([depositMoney input amount] is "amount",
// [appendEvents events 0 data] "events.0.data"); "" for a path of a result
// (a resolver's error) or none.
func fieldOfPath(path ast.Path) string {
	if len(path) < 2 {
		return ""
	}
	var parts []string
	for i, el := range path[1:] {
		switch el := el.(type) {
		case ast.PathName:
			if i == 0 && el == "input" && len(path) > 2 {
				continue
			}
			parts = append(parts, string(el))
		case ast.PathIndex:
			parts = append(parts, strconv.Itoa(int(el)))
		}
	}
	return strings.Join(parts, ".")
}

func domainExtensions(de *domain.Error) map[string]any {
	ext := map[string]any{"code": string(de.Code)}
	if de.Field != "" {
		ext["field"] = de.Field
	}
	if de.Rule != "" {
		ext["rule"] = de.Rule
	}
	for k, v := range de.Details {
		if _, taken := ext[k]; !taken {
			ext[k] = v
		}
	}
	return ext
}

// recoverPanic turns a resolver panic into an internal error, logged with
// its request id.
func recoverPanic(log *slog.Logger) graphql.RecoverFunc {
	return func(ctx context.Context, p any) error {
		reqID := RequestID(ctx)
		log.ErrorContext(ctx, "graphql: panic in resolver", "requestId", reqID, "panic", p)
		return &gqlerror.Error{Message: "internal error", Extensions: map[string]any{"code": string(domain.Internal), "requestId": reqID}}
	}
}
