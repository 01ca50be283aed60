package graph

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"cqrsgate/graph/model"
)

// refusalHook is told of an operation refused before it ran: a document
// that does not parse or validate, or one a limit, a role check or the
// mutation rate refused: its kind ("" when the document does not parse),
// its name and its errors.
type refusalHook func(ctx context.Context, kind, name string, errs gqlerror.List)

// observedExec is an executor whose refusals of operations are told to a
// refusalHook: an operation refused in CreateOperationContext never reaches
// the operation middleware, which logs and counts those that run, so it
// was neither logged nor counted. A variable refused for its kind, and an
// Int literal beyond 64 bits, are explained in the client's terms first
// (explainVariable, with schema when it is not nil; explainIntLiterals).
type observedExec struct {
	graphql.GraphExecutor
	refused refusalHook
	schema  *ast.Schema
}

func (e observedExec) CreateOperationContext(ctx context.Context, params *graphql.RawParams) (*graphql.OperationContext, gqlerror.List) {
	rc, errs := e.GraphExecutor.CreateOperationContext(ctx, params)
	if errs == nil || apqHandshake(errs) {
		return rc, errs
	}
	explainVariable(e.schema, rc, params.Variables, errs)
	explainIntLiterals(errs)
	explainOperationName(rc, params.OperationName, errs)
	if i := infoOf(ctx); i != nil {
		i.refused = errs
	}
	if e.refused != nil {
		var kind ast.Operation
		name := params.OperationName
		if rc != nil && rc.Operation != nil {
			kind, name = rc.Operation.Operation, rc.Operation.Name
		} else {
			// A document that did not validate has no operation context:
			// its syntax says what it was (when it parses).
			kind, name = operationOf(params.Query, params.OperationName)
		}
		e.refused(ctx, string(kind), name, errs)
	}
	return rc, errs
}

// observe returns exec with its refusals told to hook (when there is one)
// and kept in the request's information for httpSpec, and its variables'
// refusals explained by schema, exec's (when there is one).
func observe(exec graphql.GraphExecutor, hook refusalHook, schema *ast.Schema) graphql.GraphExecutor {
	return observedExec{exec, hook, schema}
}

// logRefusals logs each refused operation as logOperations logs those that
// run (with the first error's code), and tells count, when set, its type
// and the codes of its errors.
func logRefusals(log *slog.Logger, count func(ctx context.Context, kind string, codes []string)) refusalHook {
	return func(ctx context.Context, kind, name string, errs gqlerror.List) {
		if kind == "" {
			kind = "unknown"
		}
		codes := make([]string, len(errs))
		for i, e := range errs {
			codes[i], _ = e.Extensions["code"].(string)
			if codes[i] == "" {
				codes[i] = "UNKNOWN"
			}
		}
		log.InfoContext(ctx, "graphql", "requestId", RequestID(ctx), "operation", kind, "name", model.CutText(name, maxLoggedName),
			"client", clientKey(ctx), "refused", codes[0], "errors", len(errs))
		if count != nil {
			count(ctx, kind, codes)
		}
	}
}

// maxLoggedName is the most bytes of a client's operation name that logs
// and spans carry: a name is the client's, of any length (1 MiB made a log
// line of 1 MiB).
const maxLoggedName = 128

// apqHandshake reports whether errs is an automatic persisted query's
// first step (its hash alone, not known yet): the client sends the query
// next, and that is the operation, not two.
func apqHandshake(errs gqlerror.List) bool {
	return len(errs) == 1 && errs[0].Extensions["code"] == "PERSISTED_QUERY_NOT_FOUND"
}

// explainOperationName rewrites gqlgen's "operation X not found", which
// for a document of several operations sent without an operationName read
// "operation  not found", naming nothing: it says what the document holds
// and what to send.
func explainOperationName(rc *graphql.OperationContext, name string, errs gqlerror.List) {
	if rc == nil || rc.Doc == nil || rc.Operation != nil || len(errs) != 1 || errs[0].Message != "operation "+name+" not found" {
		return
	}
	ops := rc.Doc.Operations
	var names []string
	for i, op := range ops { // named: validation leaves an unnamed one alone
		if i == 10 {
			names = append(names, "...")
			break
		}
		names = append(names, strconv.Quote(model.CutText(op.Name, 64)))
	}
	if name == "" {
		errs[0].Message = fmt.Sprintf("the document holds %d operations (%s): name the one to run in operationName", len(ops), strings.Join(names, ", "))
		return
	}
	errs[0].Message = fmt.Sprintf("the document holds no operation named %s (it holds %s): operationName names one of them", strconv.Quote(model.CutText(name, 64)), strings.Join(names, ", "))
}
