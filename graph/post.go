package graph

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/parser"

	"cqrsgate/internal/auth"
	"cqrsgate/internal/jsonvalue"
)

// postTransport is the GraphQL-over-HTTP POST transport (a JSON body of
// query, operationName, variables and extensions). It answers as gqlgen's
// transport.POST does, status codes included (httpSpec then applies the
// specification's rules to request errors), at a lower cost per request:
//   - the body readBody has read is used as it is, not read a second time;
//   - it is decoded in one pass without reflection (jsonvalue.DecodeAllText),
//     numbers kept exact, text that would not read as sent refused;
//   - the response is written in one piece, from a pooled buffer, without
//     re-encoding the data gqlgen has already encoded, and with its length;
//   - long list variables are checked without reflection (holdLongLists
//     marks them for listVariables).
type postTransport struct {
	refused refusalHook // told of operations refused before they run
	schema  *ast.Schema // the executor's (see observe)
}

var _ graphql.Transport = postTransport{}

// Supports implements graphql.Transport: POST with a JSON body.
func (postTransport) Supports(r *http.Request) bool {
	if r.Method != http.MethodPost || r.Header.Get("Upgrade") != "" {
		return false
	}
	ct := r.Header.Get("Content-Type")
	if ct == contentTypeJSON {
		return true
	}
	mediaType, _, err := mime.ParseMediaType(ct)
	return err == nil && mediaType == contentTypeJSON
}

// Do implements graphql.Transport.
func (t postTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	exec = observe(exec, t.refused, t.schema)
	ctx := r.Context()
	contentType := responseContentType(acceptOf(r))
	w.Header()["Content-Type"] = contentType
	start := graphql.Now()
	// NewHandler puts readBody before every POST: the body is in memory.
	params, err := decodePost(r.Body.(*readBodyBytes).bytes)
	if err != nil {
		message := "the request body is not a GraphQL request (a JSON object with a query)"
		if errors.Is(err, jsonvalue.ErrNotText) {
			message = "the request body is " + err.Error()
		}
		w.WriteHeader(http.StatusBadRequest)
		writeResponse(w, exec.DispatchError(ctx, gqlerror.List{{Message: message, Extensions: map[string]any{"code": "BAD_REQUEST"}}}))
		return
	}
	params.Headers = r.Header
	params.ReadTime = graphql.TraceTiming{Start: start, End: graphql.Now()}
	rc, opErr := exec.CreateOperationContext(holdLongLists(ctx, params.Variables), params)
	if opErr != nil {
		status := http.StatusOK
		if errcode.GetErrorKind(opErr) == errcode.KindProtocol {
			status = http.StatusUnprocessableEntity
			if contentType[0] == contentTypeGraphQLResponse {
				status = http.StatusBadRequest
			}
		}
		w.WriteHeader(status)
		writeResponse(w, exec.DispatchError(graphql.WithOperationContext(ctx, rc), opErr))
		return
	}
	if rc.Operation.Operation == ast.Subscription {
		// A subscription streams: over a request it would wait, with no
		// bound, for its first event (holding the server's shutdown).
		errs := gqlerror.List{{Message: subscriptionsOverWebsockets, Extensions: map[string]any{"code": "BAD_REQUEST"}}}
		if t.refused != nil {
			t.refused(ctx, string(rc.Operation.Operation), rc.Operation.Name, errs)
		}
		w.WriteHeader(http.StatusBadRequest)
		writeResponse(w, exec.DispatchError(graphql.WithOperationContext(ctx, rc), errs))
		return
	}
	responses, ctx := exec.DispatchOperation(ctx, rc)
	writeResponse(w, responses(ctx))
}

const subscriptionsOverWebsockets = "subscriptions are served over websockets (graphql-transport-ws or graphql-ws) at this path, not over plain HTTP"

// getTransport is gqlgen's GET transport, but for a mutation, which GET
// must not run (GraphQL over HTTP: 405 Method Not Allowed, Allow: POST),
// and a subscription (served over websockets): both are refused before
// anything of them runs. gqlgen's answers 406 to both, and only after the
// operation's context is made, which counts a mutation against the
// caller's MUTATIONS_PER_SECOND.
// A persisted query (its hash alone, in extensions) is looked up in apq,
// the cache the AutomaticPersistedQuery extension keeps.
type getTransport struct {
	transport.GET
	apq     graphql.Cache[string]
	refused refusalHook // told of operations refused before they run
	schema  *ast.Schema // the executor's (see observe)
}

func (t getTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	exec = observe(exec, t.refused, t.schema)
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		writeRequestError(w, r, http.StatusBadRequest, "the URL's query string cannot be decoded: "+err.Error(), "BAD_REQUEST")
		return
	}
	// variables and extensions are JSON objects, each whole (gqlgen's own
	// decoder reads the first value and ignores what follows, where this
	// check would not see a persisted mutation), and text that reads as
	// sent (as decodePost has it).
	var ext map[string]any
	for _, name := range []string{"variables", "extensions"} {
		raw := q.Get(name)
		if raw == "" {
			continue
		}
		v, err := jsonvalue.DecodeAllText([]byte(raw))
		obj, isObject := v.(map[string]any)
		switch {
		case err == nil && v == nil: // null: none
			continue
		case errors.Is(err, jsonvalue.ErrNotText):
			writeRequestError(w, r, http.StatusBadRequest, "the "+name+" are "+err.Error(), "BAD_REQUEST")
			return
		case err != nil || !isObject:
			writeRequestError(w, r, http.StatusBadRequest, "the "+name+" are not a JSON object", "BAD_REQUEST")
			return
		}
		if name == "extensions" {
			ext = obj
		}
	}
	if esc, bad := loneSurrogateLiteral(q.Get("query")); bad {
		writeRequestError(w, r, http.StatusBadRequest, "the query is not valid text: a string in it holds the escape "+esc+", half of a UTF-16 surrogate pair without its other half", "BAD_REQUEST")
		return
	}
	query := q.Get("query")
	if query == "" && t.apq != nil {
		hash, err := persistedHash(ext)
		if err != nil {
			writeRequestError(w, r, http.StatusBadRequest, err.Error(), "BAD_REQUEST")
			return
		}
		if hash != "" {
			query, _ = t.apq.Get(r.Context(), hash)
		}
	}
	var kind ast.Operation
	var name string
	// Only a document that names a mutation or a subscription can hold
	// one: the queries GET is for are not parsed here as well as by
	// gqlgen.
	if strings.Contains(query, "mutation") || strings.Contains(query, "subscription") {
		kind, name = operationOf(query, q.Get("operationName"))
	}
	refuse := func(status int, message, code string) {
		if t.refused != nil {
			t.refused(r.Context(), string(kind), name, gqlerror.List{{Message: message, Extensions: map[string]any{"code": code}}})
		}
		writeRequestError(w, r, status, message, code)
	}
	switch kind {
	case ast.Mutation:
		w.Header().Set("Allow", http.MethodPost)
		refuse(http.StatusMethodNotAllowed, "a mutation is sent with POST: GET runs queries only", "METHOD_NOT_ALLOWED")
		return
	case ast.Subscription:
		refuse(http.StatusBadRequest, subscriptionsOverWebsockets, "BAD_REQUEST")
		return
	}
	if accept := acceptOf(r); accept != "" {
		// gqlgen's negotiation ignores quality values: it is handed the
		// type chosen here, as POST chooses it.
		r.Header.Set("Accept", responseContentType(accept)[0])
	}
	t.GET.Do(w, r, exec)
}

// persistedHash is the sha256Hash of a persisted query's extensions, found
// as gqlgen's AutomaticPersistedQuery finds it (persistedQuery exactly; its
// member sha256Hash exactly, else in any case), or "". Members that differ
// only in case, none exactly sha256Hash, are an error: gqlgen would take
// one of them at random, perhaps another than this check looked at.
func persistedHash(ext map[string]any) (string, error) {
	pq, _ := ext["persistedQuery"].(map[string]any)
	if v, ok := pq["sha256Hash"]; ok {
		h, _ := v.(string)
		return h, nil
	}
	hash, found := "", ""
	for k, v := range pq {
		if strings.EqualFold(k, "sha256Hash") {
			if found != "" {
				return "", fmt.Errorf("the persisted query's hash is given twice, as %q and %q", found, k)
			}
			found = k
			hash, _ = v.(string)
		}
	}
	return hash, nil
}

// scopedQueries keeps persisted queries apart per caller scope (tenant and
// roles: auth.Principal.Scope; anonymous callers have their own): one
// cache for all let a caller learn, by asking for a hash, whether anyone,
// another tenant's caller included, had sent that exact document, ids
// written in it and all.
type scopedQueries struct {
	graphql.Cache[string]
}

func (c scopedQueries) Get(ctx context.Context, hash string) (string, bool) {
	return c.Cache.Get(ctx, auth.FromContext(ctx).Scope()+"\x00"+hash)
}

func (c scopedQueries) Add(ctx context.Context, hash, query string) {
	c.Cache.Add(ctx, auth.FromContext(ctx).Scope()+"\x00"+hash, query)
}

// persistedQueries is gqlgen's AutomaticPersistedQuery, its errors given
// codes: a hash that does not match its query, or extensions it cannot
// read, were errors without one (PERSISTED_QUERY_NOT_FOUND has its own).
// A hash given twice in different cases, neither spelled sha256Hash, is
// refused (BAD_REQUEST) over every transport, as GET refuses it: gqlgen
// would take one of them at random.
type persistedQueries struct {
	extension.AutomaticPersistedQuery
}

func (p persistedQueries) MutateOperationParameters(ctx context.Context, params *graphql.RawParams) *gqlerror.Error {
	if _, err := persistedHash(params.Extensions); err != nil {
		return &gqlerror.Error{Message: err.Error(), Extensions: map[string]any{"code": "BAD_REQUEST"}}
	}
	err := p.AutomaticPersistedQuery.MutateOperationParameters(ctx, params)
	if err != nil && err.Extensions["code"] == nil {
		errcode.Set(err, "BAD_REQUEST")
	}
	return err
}

// operationOf is the kind and name of the operation named name in the
// document query (the only one when name is empty), or "" and name when
// the document does not parse or has no such operation (gqlgen then says
// what is wrong).
func operationOf(query, name string) (ast.Operation, string) {
	doc, err := parser.ParseQuery(&ast.Source{Input: query})
	if err != nil {
		return "", name
	}
	if name == "" && len(doc.Operations) == 1 {
		return doc.Operations[0].Operation, doc.Operations[0].Name
	}
	if op := doc.Operations.ForName(name); op != nil {
		return op.Operation, op.Name
	}
	return "", name
}

// decodePost decodes a POST body (a JSON object of query, operationName,
// variables and extensions) in one pass, numbers as json.Number as gqlgen's
// own transports decode them. Member names match as encoding/json matches
// them to fields: exactly, else ignoring case; one given twice in
// different cases is an error. A body that is not valid text (invalid
// UTF-8, a lone surrogate escape) is jsonvalue.ErrNotText: read as U+FFFD,
// as encoding/json reads it, different ids and idempotency keys would
// arrive as one, and event data would be stored other than it was sent.
func decodePost(body []byte) (*graphql.RawParams, error) {
	doc, err := jsonvalue.DecodeAllText(body)
	if err != nil {
		return nil, err
	}
	obj, ok := doc.(map[string]any)
	if !ok {
		return nil, errors.New("the body is not a JSON object")
	}
	// The members by their exact names first; only a body with other
	// members as well is searched for names that differ in case.
	names := [...]string{"query", "operationName", "variables", "extensions"}
	var vals [len(names)]any
	var have [len(names)]bool
	exact := 0
	for i, name := range names {
		if vals[i], have[i] = obj[name]; have[i] {
			exact++
		}
	}
	if exact < len(obj) {
		// A member named twice in different cases ("Query" and "QUERY")
		// is refused: which one counts would otherwise be a guess.
		for i, name := range names {
			matches := 0
			for k, v := range obj {
				if strings.EqualFold(k, name) {
					matches++
					if !have[i] || k == name {
						vals[i], have[i] = v, true
					}
				}
			}
			if matches > 1 {
				return nil, fmt.Errorf("the member %q is given more than once, in different cases", name)
			}
		}
	}
	p := &graphql.RawParams{}
	if err := member(&p.Query, vals[0], names[0]); err != nil {
		return nil, err
	}
	if esc, bad := loneSurrogateLiteral(p.Query); bad {
		return nil, fmt.Errorf("%w: a string in the query holds the escape %s, half of a UTF-16 surrogate pair without its other half", jsonvalue.ErrNotText, esc)
	}
	if err := member(&p.OperationName, vals[1], names[1]); err != nil {
		return nil, err
	}
	if err := member(&p.Variables, vals[2], names[2]); err != nil {
		return nil, err
	}
	if err := member(&p.Extensions, vals[3], names[3]); err != nil {
		return nil, err
	}
	return p, nil
}

// member sets *dst to v, a decoded member named name, unless v is null or
// absent (nil); a v of another type is an error.
func member[T any](dst *T, v any, name string) error {
	if v == nil {
		return nil
	}
	t, ok := v.(T)
	if !ok {
		return fmt.Errorf("%s has the wrong type", name)
	}
	*dst = t
	return nil
}

// acceptOf is the request's Accept header: its lines, one list (RFC 9110
// reads repeated lines so; a client that sent two had the second ignored).
func acceptOf(r *http.Request) string {
	switch v := r.Header["Accept"]; len(v) {
	case 0:
		return ""
	case 1:
		return v[0]
	default:
		return strings.Join(v, ",")
	}
}

// The response content types, as header values: shared, never modified.
var (
	jsonContentType            = []string{contentTypeJSON}
	graphQLResponseContentType = []string{contentTypeGraphQLResponse}
)

// responseContentType negotiates the response's media type from the Accept
// header as gqlgen does (application/json when none is given, or for */*
// and application/*; else the GraphQL media type named; else
// application/graphql-response+json), honouring quality values as RFC 9110
// has them: each type served takes the q of the most specific range that
// matches it (a type given q=0 is never served, even where a wildcard
// would take it), the higher q wins, and on a tie the type named over one
// only a wildcard takes, then the one named first (application/json when
// one wildcard matches both). When the
// client refuses application/graphql-response+json and accepts nothing
// the gateway serves, it gets application/json.
func responseContentType(accept string) []string {
	switch accept {
	case "", contentTypeJSON:
		return jsonContentType
	case contentTypeGraphQLResponse:
		return graphQLResponseContentType
	}
	// The most specific range matching each served type: 3 the type
	// itself, 2 application/*, 1 */*, 0 none.
	type match struct {
		q                float64
		specificity, pos int
	}
	var js, gql match
	for pos, part := 0, ""; accept != ""; pos++ {
		part, accept, _ = strings.Cut(accept, ",")
		mediaType, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		q := 1.0
		if v, ok := params["q"]; ok { // parameter names come lower-cased
			if q, err = strconv.ParseFloat(v, 64); err != nil || q < 0 || q > 1 {
				continue // not a quality value: the range is ignored
			}
		}
		jsSpec, gqlSpec := 0, 0
		switch mediaType {
		case contentTypeJSON:
			jsSpec = 3
		case contentTypeGraphQLResponse:
			gqlSpec = 3
		case "application/*":
			jsSpec, gqlSpec = 2, 2
		case "*/*":
			jsSpec, gqlSpec = 1, 1
		}
		if jsSpec > js.specificity {
			js = match{q, jsSpec, pos}
		}
		if gqlSpec > gql.specificity {
			gql = match{q, gqlSpec, pos}
		}
	}
	jsOK, gqlOK := js.specificity > 0 && js.q > 0, gql.specificity > 0 && gql.q > 0
	switch {
	case jsOK && gqlOK:
		// The higher q; on a tie the type named over one a wildcard
		// takes, then the one named first, then application/json.
		if gql.q != js.q {
			if gql.q > js.q {
				return graphQLResponseContentType
			}
			return jsonContentType
		}
		if gql.specificity != js.specificity {
			if gql.specificity > js.specificity {
				return graphQLResponseContentType
			}
			return jsonContentType
		}
		if gql.pos < js.pos {
			return graphQLResponseContentType
		}
		return jsonContentType
	case jsOK:
		return jsonContentType
	case gqlOK:
		return graphQLResponseContentType
	case gql.specificity > 0: // refused
		return jsonContentType
	}
	return graphQLResponseContentType
}

// responseBuffers holds the buffers responses are encoded in.
var responseBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// writeResponse writes resp as JSON, with its Content-Length, in one
// write. The data gqlgen encoded goes in as it is.
func writeResponse(w http.ResponseWriter, resp *graphql.Response) {
	if resp == nil { // a stream that ended before its first response
		resp = &graphql.Response{}
	}
	if resp.Label != "" || resp.Path != nil || resp.HasNext != nil { // incremental delivery: not over this transport
		b, err := json.Marshal(resp)
		if err != nil {
			panic(err) // as gqlgen's transports do: the recover handler answers
		}
		_, _ = w.Write(b)
		return
	}
	bp := responseBuffers.Get().(*[]byte)
	buf := append((*bp)[:0], '{')
	if len(resp.Errors) > 0 {
		errs, err := json.Marshal(resp.Errors)
		if err != nil {
			panic(err)
		}
		buf = append(append(append(buf, `"errors":`...), errs...), ',')
	}
	buf = append(buf, `"data":`...)
	if len(resp.Data) == 0 {
		buf = append(buf, "null"...)
	} else {
		buf = append(buf, resp.Data...)
	}
	if len(resp.Extensions) > 0 {
		ext, err := json.Marshal(resp.Extensions)
		if err != nil {
			panic(err)
		}
		buf = append(append(buf, `,"extensions":`...), ext...)
	}
	buf = append(buf, '}')
	w.Header()["Content-Length"] = []string{strconv.Itoa(len(buf))}
	_, _ = w.Write(buf)
	if cap(buf) <= 64<<10 { // a large one goes to the collector
		*bp = buf
		responseBuffers.Put(bp)
	}
}
