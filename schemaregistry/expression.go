package schemaregistry

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"cqrsgate/internal/jsonvalue"
)

// Limits of migration expressions.
const (
	maxExprBytes  = 4096
	maxExprDepth  = 64
	maxExprString = 1 << 20
)

// ExprError is an error compiling or evaluating an expression.
type ExprError struct {
	Expr string
	Msg  string
}

func (e *ExprError) Error() string { return fmt.Sprintf("expression %q: %s", e.Expr, e.Msg) }

// Expr is a compiled migration expression.
type Expr struct {
	src  string
	root node
}

// String returns the source.
func (e *Expr) String() string { return e.src }

// CompileExpr parses src, an expression over an event's data used by the
// compute migration operation:
//
//	expr    = or [ "?" expr ":" expr ]
//	or      = and { "||" and }          and = eq { "&&" eq }
//	eq      = rel { ("==" | "!=") rel }  rel = add { ("<" | "<=" | ">" | ">=") add }
//	add     = mul { ("+" | "-") mul }    mul = unary { ("*" | "/" | "%") unary }
//	unary   = ("-" | "!") unary | primary
//	primary = number | string | true | false | null | "(" expr ")"
//	        | name "(" [ expr { "," expr } ] ")"          a function
//	        | name { "." name | "[" (integer | string) "]" }  a field of the data
//
// A field that is missing yields null. Numbers that are both integers are
// computed exactly in int64 (overflow is an error, / truncates, % needs
// integers); otherwise in float64. An integer (written without a point or
// an exponent) beyond 64 bits, in the data or the source, is never
// rounded to a float: computing with it is an error, and == and != compare
// it exactly. + joins two strings. == and != compare
// any values (numbers by value); < <= > >= compare numbers or strings.
// && || ! and ?: need booleans. Arithmetic or comparison with null is an
// error naming the field: use coalesce(field, 0). Functions: coalesce,
// concat, lower, upper, trim, len, round (half away from zero), floor,
// ceil, int, string, number, min, max, if(cond, a, b), exists(field),
// contains(haystack, needle); int and number read a string holding a
// number in JSON's syntax (white space around it aside), and refuse any
// other. Source is at most 4096 bytes and 64 levels deep. Errors are
// *ExprError, naming the column.
func CompileExpr(src string) (*Expr, error) {
	if len(src) > maxExprBytes {
		return nil, &ExprError{Expr: truncateExpr(src), Msg: fmt.Sprintf("longer than %d bytes", maxExprBytes)}
	}
	p := &parser{src: src}
	p.next()
	root, err := p.expr(0)
	if err == nil && p.tok.kind != tEOF {
		err = p.errorf("unexpected %s", p.tok.describe())
	}
	if err != nil {
		return nil, &ExprError{Expr: src, Msg: err.Error()}
	}
	return &Expr{src: src, root: root}, nil
}

func truncateExpr(s string) string { return cutText(s, 64) }

// cutText cuts s to at most limit (>= 4) bytes, at the start of a
// character, with "..." for what was cut: text quoted in an error. Cut at
// a byte, text with characters of more than one byte could end in bytes
// that are not UTF-8. It is domain.CutText's rule; the registry imports
// neither domain nor graph (see STYLE.md), and domain imports nothing but
// the standard library, so each holds its own.
func cutText(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	cut := limit - len("...")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

// Eval evaluates e over data (decoded JSON, numbers as json.Number). The
// result is nil, bool, string, json.Number, []any or map[string]any.
func (e *Expr) Eval(data map[string]any) (any, error) {
	v, err := e.root.eval(data)
	if err != nil {
		return nil, &ExprError{Expr: e.src, Msg: err.Error()}
	}
	if n, ok := v.(num); ok {
		return n.json()
	}
	return v, nil
}

// ---- tokens

type tkind int

const (
	tEOF tkind = iota
	tNum
	tStr
	tIdent
	tOp
)

type token struct {
	kind tkind
	text string // operator or identifier; number text; decoded string
	col  int
}

func (t token) describe() string {
	switch {
	case t.kind == tEOF:
		return "end of expression"
	case t.kind == tStr:
		return "string " + strconv.Quote(t.text)
	case strings.HasPrefix(t.text, "\x00char"):
		return "character " + strconv.Quote(strings.TrimPrefix(t.text, "\x00char"))
	case t.text == "\x00unterminated":
		return "an unterminated string"
	case t.text == "\x00badstring":
		return "a string with an invalid escape"
	}
	return strconv.Quote(t.text)
}

type parser struct {
	src   string
	pos   int
	tok   token
	depth int
}

func (p *parser) errorf(format string, args ...any) error {
	return fmt.Errorf("column %d: %s", p.tok.col, fmt.Sprintf(format, args...))
}

func (p *parser) next() {
	for p.pos < len(p.src) && strings.ContainsRune(" \t\r\n", rune(p.src[p.pos])) {
		p.pos++
	}
	start := p.pos
	col := utf8.RuneCountInString(p.src[:start]) + 1
	if p.pos >= len(p.src) {
		p.tok = token{kind: tEOF, col: col}
		return
	}
	c := p.src[p.pos]
	switch {
	case c >= '0' && c <= '9':
		for p.pos < len(p.src) && strings.IndexByte("0123456789.eE", p.src[p.pos]) >= 0 ||
			p.pos > start && p.pos < len(p.src) && (p.src[p.pos] == '+' || p.src[p.pos] == '-') && (p.src[p.pos-1] == 'e' || p.src[p.pos-1] == 'E') {
			p.pos++
		}
		p.tok = token{kind: tNum, text: p.src[start:p.pos], col: col}
	case c == '"':
		p.pos++
		for p.pos < len(p.src) && p.src[p.pos] != '"' {
			if p.src[p.pos] == '\\' {
				p.pos++
			}
			p.pos++
		}
		if p.pos >= len(p.src) {
			p.tok = token{kind: tOp, text: "\x00unterminated", col: col}
			p.pos = len(p.src)
			return
		}
		p.pos++
		var s string
		if err := json.Unmarshal([]byte(p.src[start:p.pos]), &s); err != nil {
			p.tok = token{kind: tOp, text: "\x00badstring", col: col}
			return
		}
		p.tok = token{kind: tStr, text: s, col: col}
	case c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
		for p.pos < len(p.src) && (p.src[p.pos] == '_' || p.src[p.pos] >= 'a' && p.src[p.pos] <= 'z' ||
			p.src[p.pos] >= 'A' && p.src[p.pos] <= 'Z' || p.src[p.pos] >= '0' && p.src[p.pos] <= '9') {
			p.pos++
		}
		p.tok = token{kind: tIdent, text: p.src[start:p.pos], col: col}
	default:
		for _, op := range []string{"||", "&&", "==", "!=", "<=", ">=", "<", ">", "+", "-", "*", "/", "%", "!", "(", ")", "[", "]", ".", ",", "?", ":"} {
			if strings.HasPrefix(p.src[p.pos:], op) {
				p.pos += len(op)
				p.tok = token{kind: tOp, text: op, col: col}
				return
			}
		}
		r, _ := utf8.DecodeRuneInString(p.src[p.pos:])
		p.tok = token{kind: tOp, text: "\x00char" + string(r), col: col}
		p.pos = len(p.src)
	}
}

func (p *parser) is(op string) bool { return p.tok.kind == tOp && p.tok.text == op }

func (p *parser) expect(op string) error {
	if !p.is(op) {
		return p.errorf("expected %q, found %s", op, p.tok.describe())
	}
	p.next()
	return nil
}

// binary operators by precedence level, lowest first.
var levels = [][]string{{"||"}, {"&&"}, {"==", "!="}, {"<", "<=", ">", ">="}, {"+", "-"}, {"*", "/", "%"}}

func (p *parser) expr(level int) (node, error) {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > maxExprDepth {
		return nil, p.errorf("nested too deeply (at most %d levels)", maxExprDepth)
	}
	if level == 0 {
		cond, err := p.expr(1)
		if err != nil || !p.is("?") {
			return cond, err
		}
		p.next()
		a, err := p.expr(0)
		if err != nil {
			return nil, err
		}
		if err := p.expect(":"); err != nil {
			return nil, err
		}
		b, err := p.expr(0)
		if err != nil {
			return nil, err
		}
		return &callNode{name: "if", args: []node{cond, a, b}}, nil
	}
	if level > len(levels) {
		return p.unary()
	}
	left, err := p.expr(level + 1)
	if err != nil {
		return nil, err
	}
	for p.tok.kind == tOp && contains(levels[level-1], p.tok.text) {
		op := p.tok.text
		p.next()
		right, err := p.expr(level + 1)
		if err != nil {
			return nil, err
		}
		left = &binaryNode{op: op, l: left, r: right}
	}
	return left, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (p *parser) unary() (node, error) {
	if p.is("-") || p.is("!") {
		op := p.tok.text
		p.next()
		if op == "-" && p.tok.kind == tNum {
			// A negative number: -9223372036854775808, the smallest
			// int64, has no positive counterpart to negate.
			t := p.tok
			t.text = "-" + t.text
			p.next()
			return numLiteral(t)
		}
		p.depth++
		defer func() { p.depth-- }()
		if p.depth > maxExprDepth {
			return nil, p.errorf("nested too deeply (at most %d levels)", maxExprDepth)
		}
		x, err := p.unary()
		if err != nil {
			return nil, err
		}
		return &unaryNode{op: op, x: x}, nil
	}
	return p.primary()
}

// arity of each function: min and max arguments (-1: any number).
var functions = map[string][2]int{
	"coalesce": {1, -1}, "concat": {1, -1}, "lower": {1, 1}, "upper": {1, 1}, "trim": {1, 1}, "len": {1, 1},
	"round": {1, 1}, "floor": {1, 1}, "ceil": {1, 1}, "int": {1, 1}, "string": {1, 1}, "number": {1, 1},
	"min": {1, -1}, "max": {1, -1}, "if": {3, 3}, "exists": {1, 1}, "contains": {2, 2},
}

func (p *parser) primary() (node, error) {
	t := p.tok
	switch t.kind {
	case tNum:
		p.next()
		return numLiteral(t)
	case tStr:
		p.next()
		return &litNode{v: t.text}, nil
	case tIdent:
		p.next()
		switch t.text {
		case "true":
			return &litNode{v: true}, nil
		case "false":
			return &litNode{v: false}, nil
		case "null":
			return &litNode{v: nil}, nil
		}
		if p.is("(") {
			return p.call(t)
		}
		ref := &refNode{name: t.text, path: []any{t.text}}
		for {
			switch {
			case p.is("."):
				p.next()
				if p.tok.kind != tIdent {
					return nil, p.errorf("expected a field name after '.', found %s", p.tok.describe())
				}
				ref.path = append(ref.path, p.tok.text)
				ref.name += "." + p.tok.text
				p.next()
			case p.is("["):
				p.next()
				switch p.tok.kind {
				case tStr:
					ref.path = append(ref.path, p.tok.text)
					ref.name += "[" + strconv.Quote(p.tok.text) + "]"
				case tNum:
					i, err := strconv.Atoi(p.tok.text)
					if err != nil || i < 0 {
						return nil, p.errorf("an index must be a whole number, 0 or more")
					}
					ref.path = append(ref.path, i)
					ref.name += "[" + p.tok.text + "]"
				default:
					return nil, p.errorf("expected an index or a quoted field name, found %s", p.tok.describe())
				}
				p.next()
				if err := p.expect("]"); err != nil {
					return nil, err
				}
			default:
				return ref, nil
			}
		}
	case tOp:
		switch {
		case t.text == "(":
			p.next()
			x, err := p.expr(0)
			if err != nil {
				return nil, err
			}
			return x, p.expect(")")
		case t.text == "\x00unterminated":
			return nil, fmt.Errorf("column %d: unterminated string", t.col)
		case t.text == "\x00badstring":
			return nil, fmt.Errorf("column %d: invalid string escape", t.col)
		case strings.HasPrefix(t.text, "\x00char"):
			return nil, fmt.Errorf("column %d: unexpected character %q", t.col, strings.TrimPrefix(t.text, "\x00char"))
		}
	}
	return nil, p.errorf("expected a value, found %s", t.describe())
}

// numLiteral is the value of a number token. An integer beyond 64 bits
// keeps its text (without leading zeros, which JSON has not): compared, it
// is exact; computed with, an error.
func numLiteral(t token) (node, error) {
	n, err := parseNum(t.text)
	switch {
	case errors.Is(err, errBeyond64Bits):
		sign, digits := "", t.text
		if strings.HasPrefix(digits, "-") {
			sign, digits = "-", digits[1:]
		}
		return &litNode{v: json.Number(sign + strings.TrimLeft(digits, "0"))}, nil
	case err != nil:
		return nil, fmt.Errorf("column %d: %q is not a number", t.col, t.text)
	}
	return &litNode{v: n}, nil
}

func (p *parser) call(name token) (node, error) {
	arity, ok := functions[name.text]
	if !ok {
		return nil, fmt.Errorf("column %d: unknown function %s", name.col, name.text)
	}
	p.next() // (
	var args []node
	for !p.is(")") {
		if len(args) > 0 {
			if err := p.expect(","); err != nil {
				return nil, err
			}
		}
		a, err := p.expr(0)
		if err != nil {
			return nil, err
		}
		args = append(args, a)
	}
	p.next()
	if len(args) < arity[0] || arity[1] >= 0 && len(args) > arity[1] {
		want := strconv.Itoa(arity[0])
		switch {
		case arity[1] < 0:
			want = "at least " + want
		case arity[1] != arity[0]:
			want += " to " + strconv.Itoa(arity[1])
		}
		return nil, fmt.Errorf("column %d: %s takes %s arguments, got %d", name.col, name.text, want, len(args))
	}
	if name.text == "exists" {
		if _, ok := args[0].(*refNode); !ok {
			return nil, fmt.Errorf("column %d: exists takes a field, such as exists(customer.name)", name.col)
		}
	}
	return &callNode{name: name.text, args: args}, nil
}

// ---- values

// num is a number during evaluation: an exact integer or a float.
type num struct {
	isInt bool
	i     int64
	f     float64
}

func (n num) float() float64 {
	if n.isInt {
		return float64(n.i)
	}
	return n.f
}

func (n num) json() (json.Number, error) {
	if n.isInt {
		return json.Number(strconv.FormatInt(n.i, 10)), nil
	}
	if math.IsNaN(n.f) || math.IsInf(n.f, 0) {
		return "", fmt.Errorf("the result is not a finite number")
	}
	return json.Number(strconv.FormatFloat(n.f, 'g', -1, 64)), nil
}

// errBeyond64Bits is parseNum's error for an integer beyond int64.
var errBeyond64Bits = errors.New("integer beyond 64 bits")

// parseNum reads a number's text: an integer (no point, no exponent)
// exactly as an int64, anything else as a float64. Errors: errBeyond64Bits
// for an integer that does not fit (never a rounded float), or s is not a
// number.
func parseNum(s string) (num, error) {
	if !strings.ContainsAny(s, ".eE") {
		i, err := strconv.ParseInt(s, 10, 64)
		if err == nil {
			return num{isInt: true, i: i}, nil
		}
		if errors.Is(err, strconv.ErrRange) {
			return num{}, fmt.Errorf("%w: %s", errBeyond64Bits, truncateExpr(s))
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	switch {
	case math.IsInf(f, 0) && errors.Is(err, strconv.ErrRange):
		return num{}, fmt.Errorf("%s is beyond the range of a 64-bit float", truncateExpr(s))
	case err != nil || math.IsInf(f, 0):
		return num{}, fmt.Errorf("%q is not a number", truncateExpr(s))
	}
	return num{f: f}, nil
}

// parseNumString reads a string as a number: JSON's syntax, white space
// around it aside (not Go's, which takes 1_000, 0x1p4 and Inf).
func parseNumString(s string) (num, error) {
	t := strings.TrimSpace(s)
	if t == "" || t[0] != '-' && (t[0] < '0' || t[0] > '9') || !json.Valid([]byte(t)) {
		return num{}, fmt.Errorf("%q is not a number", truncateExpr(s))
	}
	return parseNum(t)
}

// toNum reads a value as a number: ok is false for any other value, and
// err is set for a number that cannot be computed with (an integer beyond
// 64 bits).
func toNum(v any) (n num, ok bool, err error) {
	switch x := v.(type) {
	case num:
		return x, true, nil
	case json.Number:
		n, err := parseNum(x.String())
		return n, true, err
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return num{isInt: true, i: int64(x)}, true, nil
		}
		return num{f: x}, true, nil
	case int64:
		return num{isInt: true, i: x}, true, nil
	case int:
		return num{isInt: true, i: int64(x)}, true, nil
	}
	return num{}, false, nil
}

// plain returns v as JSON-ready data.
func plain(v any) any {
	if n, ok := v.(num); ok {
		j, err := n.json()
		if err != nil {
			return nil
		}
		return j
	}
	return v
}

func typeName(v any) string {
	if _, ok, _ := toNum(v); ok {
		return "a number"
	}
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case string:
		return "a string"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return "a value"
}

// ---- nodes

type node interface {
	eval(data map[string]any) (any, error)
}

type litNode struct{ v any }

func (n *litNode) eval(map[string]any) (any, error) { return n.v, nil }

type refNode struct {
	name string
	path []any // string keys and int indexes
}

func (n *refNode) lookup(data map[string]any) (any, bool) {
	var cur any = data
	for _, seg := range n.path {
		switch s := seg.(type) {
		case string:
			m, ok := cur.(map[string]any)
			if !ok {
				return nil, false
			}
			if cur, ok = m[s]; !ok {
				return nil, false
			}
		case int:
			a, ok := cur.([]any)
			if !ok || s >= len(a) {
				return nil, false
			}
			cur = a[s]
		}
	}
	return cur, true
}

func (n *refNode) eval(data map[string]any) (any, error) {
	v, _ := n.lookup(data)
	return v, nil
}

// operand evaluates x, and for null says which field it came from.
func operand(x node, data map[string]any, what string) (any, error) {
	v, err := x.eval(data)
	if err != nil {
		return nil, err
	}
	if v == nil {
		if r, ok := x.(*refNode); ok {
			return nil, fmt.Errorf("field %q is null or missing (use coalesce(%s, ...))", r.name, r.name)
		}
		return nil, fmt.Errorf("%s of null", what)
	}
	return v, nil
}

func boolOperand(x node, data map[string]any, op string) (bool, error) {
	v, err := operand(x, data, op)
	if err != nil {
		return false, err
	}
	b, ok := v.(bool)
	if !ok {
		return false, fmt.Errorf("%s needs booleans, got %s", op, typeName(v))
	}
	return b, nil
}

type unaryNode struct {
	op string
	x  node
}

func (n *unaryNode) eval(data map[string]any) (any, error) {
	if n.op == "!" {
		b, err := boolOperand(n.x, data, "!")
		return !b, err
	}
	v, err := operand(n.x, data, "negation")
	if err != nil {
		return nil, err
	}
	x, ok, err := toNum(v)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("- needs a number, got %s", typeName(v))
	}
	if x.isInt {
		if x.i == math.MinInt64 {
			return nil, fmt.Errorf("integer overflow")
		}
		return num{isInt: true, i: -x.i}, nil
	}
	return num{f: -x.f}, nil
}

type binaryNode struct {
	op   string
	l, r node
}

func (n *binaryNode) eval(data map[string]any) (any, error) {
	switch n.op {
	case "&&", "||":
		l, err := boolOperand(n.l, data, n.op)
		if err != nil {
			return nil, err
		}
		if n.op == "&&" && !l || n.op == "||" && l {
			return l, nil
		}
		return boolOperand(n.r, data, n.op)
	case "==", "!=":
		l, err := n.l.eval(data)
		if err != nil {
			return nil, err
		}
		r, err := n.r.eval(data)
		if err != nil {
			return nil, err
		}
		eq := jsonvalue.Equal(plain(l), plain(r))
		return eq == (n.op == "=="), nil
	}
	l, err := operand(n.l, data, n.op)
	if err != nil {
		return nil, err
	}
	r, err := operand(n.r, data, n.op)
	if err != nil {
		return nil, err
	}
	if ls, ok := l.(string); ok {
		rs, ok := r.(string)
		switch {
		case !ok && n.op == "+":
			return nil, fmt.Errorf("+ of a string and %s (use concat())", typeName(r))
		case !ok && strings.Contains("<<=>>=", n.op):
			return nil, fmt.Errorf("%s compares a string and %s", n.op, typeName(r))
		case !ok:
			return nil, fmt.Errorf("%s needs numbers, got a string", n.op)
		case n.op == "+":
			if len(ls)+len(rs) > maxExprString {
				return nil, fmt.Errorf("string longer than %d bytes", maxExprString)
			}
			return ls + rs, nil
		case n.op == "<":
			return ls < rs, nil
		case n.op == "<=":
			return ls <= rs, nil
		case n.op == ">":
			return ls > rs, nil
		case n.op == ">=":
			return ls >= rs, nil
		}
		return nil, fmt.Errorf("%s needs numbers, got strings", n.op)
	}
	a, ok1, err := toNum(l)
	if err != nil {
		return nil, err
	}
	b, ok2, err := toNum(r)
	if err != nil {
		return nil, err
	}
	if !ok1 || !ok2 {
		bad := l
		if ok1 {
			bad = r
		}
		return nil, fmt.Errorf("%s needs numbers, got %s", n.op, typeName(bad))
	}
	return arith(n.op, a, b)
}

func arith(op string, a, b num) (any, error) {
	switch op {
	case "<":
		return cmpNum(a, b) < 0, nil
	case "<=":
		return cmpNum(a, b) <= 0, nil
	case ">":
		return cmpNum(a, b) > 0, nil
	case ">=":
		return cmpNum(a, b) >= 0, nil
	}
	if a.isInt && b.isInt {
		x, y := a.i, b.i
		var r int64
		switch op {
		case "+":
			r = x + y
			if (r > x) != (y > 0) {
				return nil, fmt.Errorf("integer overflow")
			}
		case "-":
			r = x - y
			if (r < x) != (y > 0) {
				return nil, fmt.Errorf("integer overflow")
			}
		case "*":
			if x != 0 && y != 0 {
				r = x * y
				if r/y != x || (x == -1 && y == math.MinInt64) || (y == -1 && x == math.MinInt64) {
					return nil, fmt.Errorf("integer overflow")
				}
			}
		case "/", "%":
			if y == 0 {
				return nil, fmt.Errorf("division by zero")
			}
			if x == math.MinInt64 && y == -1 {
				return nil, fmt.Errorf("integer overflow")
			}
			if op == "/" {
				r = x / y
			} else {
				r = x % y
			}
		}
		return num{isInt: true, i: r}, nil
	}
	x, y := a.float(), b.float()
	var r float64
	switch op {
	case "+":
		r = x + y
	case "-":
		r = x - y
	case "*":
		r = x * y
	case "/":
		if y == 0 {
			return nil, fmt.Errorf("division by zero")
		}
		r = x / y
	case "%":
		return nil, fmt.Errorf("%% needs integers")
	}
	if math.IsInf(r, 0) || math.IsNaN(r) {
		return nil, fmt.Errorf("the result is not a finite number")
	}
	return num{f: r}, nil
}

func cmpNum(a, b num) int {
	if a.isInt && b.isInt {
		switch {
		case a.i < b.i:
			return -1
		case a.i > b.i:
			return 1
		}
		return 0
	}
	x, y := a.float(), b.float()
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

type callNode struct {
	name string
	args []node
}

func (n *callNode) eval(data map[string]any) (any, error) {
	switch n.name {
	case "if":
		c, err := boolOperand(n.args[0], data, "if")
		if err != nil {
			return nil, err
		}
		if c {
			return n.args[1].eval(data)
		}
		return n.args[2].eval(data)
	case "coalesce":
		for _, a := range n.args {
			v, err := a.eval(data)
			if err != nil || v != nil {
				return v, err
			}
		}
		return nil, nil
	case "exists":
		_, ok := n.args[0].(*refNode).lookup(data)
		return ok, nil
	}
	vals := make([]any, len(n.args))
	for i, a := range n.args {
		v, err := a.eval(data)
		if err != nil {
			return nil, err
		}
		vals[i] = v
	}
	switch n.name {
	case "concat":
		var b strings.Builder
		for _, v := range vals {
			switch x := plain(v).(type) {
			case nil:
			case string:
				b.WriteString(x)
			default:
				j, _ := json.Marshal(x)
				b.Write(j)
			}
			if b.Len() > maxExprString {
				return nil, fmt.Errorf("string longer than %d bytes", maxExprString)
			}
		}
		return b.String(), nil
	case "lower", "upper", "trim":
		s, ok := vals[0].(string)
		if !ok {
			return nil, n.argErr(0, "a string", vals[0])
		}
		switch n.name {
		case "lower":
			return strings.ToLower(s), nil
		case "upper":
			return strings.ToUpper(s), nil
		}
		return strings.TrimSpace(s), nil
	case "len":
		switch x := vals[0].(type) {
		case string:
			return num{isInt: true, i: int64(utf8.RuneCountInString(x))}, nil
		case []any:
			return num{isInt: true, i: int64(len(x))}, nil
		case map[string]any:
			return num{isInt: true, i: int64(len(x))}, nil
		}
		return nil, n.argErr(0, "a string, array or object", vals[0])
	case "round", "floor", "ceil", "int":
		x, ok, err := toNum(vals[0])
		if s, isStr := vals[0].(string); isStr && n.name == "int" {
			if x, err = parseNumString(s); err != nil {
				return nil, fmt.Errorf("int: %w", err)
			}
			ok = true
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n.name, err)
		}
		if !ok {
			return nil, n.argErr(0, "a number", vals[0])
		}
		if x.isInt {
			return x, nil
		}
		var f float64
		switch n.name {
		case "round":
			f = math.Round(x.f)
		case "floor":
			f = math.Floor(x.f)
		case "ceil":
			f = math.Ceil(x.f)
		default:
			f = math.Trunc(x.f)
		}
		if f < -(1<<63) || f >= 1<<63 {
			return nil, fmt.Errorf("%s: %v does not fit in a 64-bit integer", n.name, x.f)
		}
		return num{isInt: true, i: int64(f)}, nil
	case "string":
		switch x := plain(vals[0]).(type) {
		case string:
			return x, nil
		case nil:
			return nil, n.argErr(0, "a value", nil)
		default:
			j, _ := json.Marshal(x)
			return string(j), nil
		}
	case "number":
		s, ok := vals[0].(string)
		if !ok {
			x, isNum, err := toNum(vals[0])
			if err != nil {
				return nil, fmt.Errorf("number: %w", err)
			}
			if isNum {
				return x, nil
			}
			return nil, n.argErr(0, "a numeric string", vals[0])
		}
		x, err := parseNumString(s)
		if err != nil {
			return nil, fmt.Errorf("number: %w", err)
		}
		return x, nil
	case "min", "max":
		var best num
		for i, v := range vals {
			x, ok, err := toNum(v)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", n.name, err)
			}
			if !ok {
				return nil, n.argErr(i, "a number", v)
			}
			if i == 0 || n.name == "min" && cmpNum(x, best) < 0 || n.name == "max" && cmpNum(x, best) > 0 {
				best = x
			}
		}
		return best, nil
	case "contains":
		switch h := vals[0].(type) {
		case string:
			s, ok := vals[1].(string)
			if !ok {
				return nil, n.argErr(1, "a string", vals[1])
			}
			return strings.Contains(h, s), nil
		case []any:
			needle := plain(vals[1])
			for _, x := range h {
				if jsonvalue.Equal(x, needle) {
					return true, nil
				}
			}
			return false, nil
		}
		return nil, n.argErr(0, "a string or an array", vals[0])
	}
	return nil, fmt.Errorf("unknown function %s", n.name)
}

func (n *callNode) argErr(i int, want string, got any) error {
	if r, ok := n.args[i].(*refNode); ok && got == nil {
		return fmt.Errorf("%s: field %q is null or missing", n.name, r.name)
	}
	return fmt.Errorf("%s needs %s, got %s", n.name, want, typeName(got))
}
