package schemaregistry

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

var exprData = map[string]any{
	"total": json.Number("120"), "subtotal": json.Number("100"), "rate": json.Number("0.2"), "tax": nil,
	"name": "Ann Lee", "status": "OPEN", "flag": true, "big": json.Number("9223372036854775807"),
	"customer": map[string]any{"name": "Ann", "tags": []any{"vip", "eu"}}, "lines": []any{map[string]any{"sku": "a", "qty": json.Number("2")}},
	"odd key": "x",
}

func TestExpressions(t *testing.T) {
	tests := []struct {
		src  string
		want string // the result as JSON
	}{
		{`total - subtotal`, `20`},
		{`1 + 2 * 3`, `7`},
		{`(1 + 2) * 3`, `9`},
		{`10 - 4 - 3`, `3`},
		{`7 / 2`, `3`},
		{`-7 / 2`, `-3`},
		{`7 % 3`, `1`},
		{`7.0 / 2`, `3.5`},
		{`subtotal * rate`, `20`},
		{`round(2.5)`, `3`},
		{`round(-2.5)`, `-3`},
		{`floor(2.7) + ceil(2.1)`, `5`},
		{`int("42") + int(3.9)`, `45`},
		{`number("1.5") * 2`, `3`},
		{`2e3`, `2000`},
		{`"a" + "b"`, `"ab"`},
		{`concat(name, " #", 7, " ", flag, tax)`, `"Ann Lee #7 true"`},
		{`lower(status) + upper("x") + trim("  y ")`, `"openXy"`},
		{`len(name) + len(customer.tags) + len(customer)`, `11`},
		{`len("héllo")`, `5`},
		{`string(12) + string(true) + string("s")`, `"12trues"`},
		{`min(3, total, 1.5)`, `1.5`},
		{`max(3, total)`, `120`},
		{`coalesce(tax, missing, 0)`, `0`},
		{`coalesce(tax, subtotal)`, `100`},
		{`coalesce(tax)`, `null`},
		{`customer.name`, `"Ann"`},
		{`customer.tags[1]`, `"eu"`},
		{`lines[0].qty * 3`, `6`},
		{`lines[5].qty`, `null`},
		{`name.first`, `null`},
		{`["odd key"]`, ``},
		{`customer["name"]`, `"Ann"`},
		{`customer`, `{"name":"Ann","tags":["vip","eu"]}`},
		{`exists(tax) && !exists(missing)`, `true`},
		{`exists(customer.tags)`, `true`},
		{`contains(name, "Lee") && contains(customer.tags, "vip") && !contains(customer.tags, "us")`, `true`},
		{`status == "OPEN" ? "ACTIVE" : "OTHER"`, `"ACTIVE"`},
		{`false ? 1 : true ? 2 : 3`, `2`},
		{`if(total > 100, "big", "small")`, `"big"`},
		{`1 == 1.0 && 2 != 3 && "a" < "b" && 2 <= 2 && 3 >= 2.5`, `true`},
		{`tax == null`, `true`},
		{`customer == customer`, `true`},
		{`false && missing + 1 > 0`, `false`},
		{`true || missing + 1 > 0`, `true`},
		{`-subtotal`, `-100`},
		{`null`, `null`},
		{`"\u00e9\n"`, `"é\n"`},
	}
	for _, tt := range tests {
		if tt.want == "" {
			continue // a parse error, tested below
		}
		e, err := CompileExpr(tt.src)
		if err != nil {
			t.Errorf("%s: %v", tt.src, err)
			continue
		}
		v, err := e.Eval(exprData)
		if err != nil {
			t.Errorf("%s: %v", tt.src, err)
			continue
		}
		got, _ := json.Marshal(v)
		if string(got) != tt.want {
			t.Errorf("%s = %s, want %s", tt.src, got, tt.want)
		}
	}
}

func TestExpressionErrors(t *testing.T) {
	compile := []struct{ src, want string }{
		{`1 +`, "column 4: expected a value"},
		{`total - `, "column 9: expected a value"},
		{`explode(total)`, "column 1: unknown function explode"},
		{`round(1, 2)`, "round takes 1 arguments, got 2"},
		{`if(true, 1)`, "if takes 3 arguments, got 2"},
		{`coalesce()`, "coalesce takes at least 1 arguments, got 0"},
		{`"abc`, "column 1: unterminated string"},
		{`1 2`, `column 3: unexpected "2"`},
		{`(1 + 2`, `expected ")"`},
		{`a[-1]`, "expected an index"},
		{`a.`, "expected a field name"},
		{`exists(1)`, "exists takes a field"},
		{`1 # 2`, `unexpected character "#"`},
		{`a ? b`, `expected ":"`},
		{strings.Repeat("(", 100) + "1" + strings.Repeat(")", 100), "nested too deeply"},
		{strings.Repeat("-", 100) + "1", "nested too deeply"},
		{strings.Repeat("1+", 3000) + "1", "longer than 4096 bytes"},
		{`["odd key"]`, "expected a value"},
	}
	for _, tt := range compile {
		_, err := CompileExpr(tt.src)
		var ee *ExprError
		if !errors.As(err, &ee) || !strings.Contains(ee.Msg, tt.want) {
			t.Errorf("CompileExpr(%.40s): %v, want %q", tt.src, err, tt.want)
		}
	}
	eval := []struct{ src, want string }{
		{`tax + 1`, `field "tax" is null or missing (use coalesce(tax, ...))`},
		{`missing * 2`, `field "missing" is null or missing`},
		{`big + 1`, "integer overflow"},
		{`-big - 2`, "integer overflow"},
		{`big * 2`, "integer overflow"},
		{`1 / 0`, "division by zero"},
		{`1 % 0`, "division by zero"},
		{`1.5 % 2`, "% needs integers"},
		{`1.0 / 0`, "division by zero"},
		{`1e308 * 10`, "not a finite number"},
		{`"a" + 1`, "use concat()"},
		{`name - 1`, "needs numbers"},
		{`"a" < 1`, "a string and a number"},
		{`!total`, "! needs booleans"},
		{`tax ? 1 : 2`, `field "tax" is null or missing`},
		{`1 && true`, "&& needs booleans"},
		{`lower(total)`, "lower needs a string"},
		{`upper(tax)`, `field "tax" is null or missing`},
		{`len(total)`, "len needs a string, array or object"},
		{`int("x")`, `int: "x" is not a number`},
		{`number("1x")`, `"1x" is not a number`},
		{`round(1e300)`, "does not fit in a 64-bit integer"},
		{`contains(total, 1)`, "contains needs a string or an array"},
		{`min(1, "a")`, "min needs a number"},
	}
	for _, tt := range eval {
		e, err := CompileExpr(tt.src)
		if err != nil {
			t.Errorf("%s: %v", tt.src, err)
			continue
		}
		_, err = e.Eval(exprData)
		var ee *ExprError
		if !errors.As(err, &ee) || !strings.Contains(ee.Error(), tt.want) || !strings.HasPrefix(ee.Error(), `expression "`) {
			t.Errorf("%s: %v, want %q", tt.src, err, tt.want)
		}
	}
}

func FuzzExpr(f *testing.F) {
	for _, s := range []string{`total - subtotal`, `concat(name, customer.tags[1])`, `coalesce(tax, 0) * 2 / (1 - 1)`,
		`status == "OPEN" ? upper(name) : lower(name)`, `round(rate * 100) % 7`, `len(lines) > 0 && exists(lines[0].sku)`,
		`max(min(1, 2.5), -big)`, `"\u0000" + string(customer)`, `((((1))))`, `!!!flag`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		e, err := CompileExpr(src)
		if err != nil {
			var ee *ExprError
			if !errors.As(err, &ee) {
				t.Fatalf("a compile error of another type: %v", err)
			}
			return
		}
		v, err := e.Eval(exprData)
		if err != nil {
			return
		}
		if _, err := json.Marshal(v); err != nil {
			t.Fatalf("%s: the result does not encode: %v", src, err)
		}
	})
}

// TestExpressionIntegersBeyondInt64AreNotRounded: the README promises
// "integers are exact (overflow is an error)". An integer beyond int64 (a
// JSON Schema "integer" may be any size; PostgreSQL keeps it exactly) was
// silently turned into a float64 instead: arithmetic on it rounded, and it
// no longer equaled itself written as a literal. Computing with it is an
// error naming it; comparing it is exact.
func TestExpressionIntegersBeyondInt64AreNotRounded(t *testing.T) {
	data := map[string]any{"id": json.Number("18446744073709551615"), "amount": json.Number("12345678901234567891"), "s": " 18446744073709551616 ", "huge": json.Number("1e400")}
	for _, tt := range []struct{ src, want string }{
		{`id == 18446744073709551615`, `true`},
		{`id != 18446744073709551614`, `true`},
		{`-9223372036854775808`, `-9223372036854775808`}, // the smallest int64, as a literal
		{`-9223372036854775807 - 1`, `-9223372036854775808`},
		{`- 2 * 3`, `-6`},
		{`1 - -2`, `3`},
		{`-(2)`, `-2`},
		{`18446744073709551615`, `18446744073709551615`},
		{`-18446744073709551615`, `-18446744073709551615`},
		{`coalesce(amount, 0)`, `12345678901234567891`},
		{`string(id)`, `"18446744073709551615"`},
	} {
		e, err := CompileExpr(tt.src)
		if err != nil {
			t.Fatalf("%s: %v", tt.src, err)
		}
		v, err := e.Eval(data)
		if got, _ := json.Marshal(v); err != nil || string(got) != tt.want {
			t.Errorf("%s = %s, %v; want %s", tt.src, got, err, tt.want)
		}
	}
	for _, tt := range []struct{ src, want string }{
		{`amount + 1`, "integer beyond 64 bits: 12345678901234567891"},
		{`amount * 100`, "integer beyond 64 bits: 12345678901234567891"},
		{`1.5 * id`, "integer beyond 64 bits: 18446744073709551615"},
		{`id > 0`, "integer beyond 64 bits: 18446744073709551615"},
		{`-id`, "integer beyond 64 bits: 18446744073709551615"},
		{`18446744073709551615 - 1`, "integer beyond 64 bits: 18446744073709551615"},
		{`--9223372036854775808`, "integer overflow"},
		{`round(amount)`, "round: integer beyond 64 bits"},
		{`max(1, id)`, "max: integer beyond 64 bits"},
		{`number(id)`, "number: integer beyond 64 bits"},
		{`int(s)`, "int: integer beyond 64 bits: 18446744073709551616"},
		{`number("1e400")`, "number: 1e400 is beyond the range of a 64-bit float"},
		{`number(huge)`, "number: 1e400 is beyond the range of a 64-bit float"},
		{`number(s)`, "number: integer beyond 64 bits: 18446744073709551616"},
	} {
		e, err := CompileExpr(tt.src)
		if err != nil {
			t.Fatalf("%s: %v", tt.src, err)
		}
		v, err := e.Eval(data)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			got, _ := json.Marshal(v)
			t.Errorf("%s = %s, %v; want an error: %s", tt.src, got, err, tt.want)
		}
	}
}

// TestNumberOfAStringTakesOnlyJSONNumbers: number() and int() of a string
// read it with strconv.ParseFloat, which takes Go's syntax: digit
// separators and hexadecimal floats. A migration turning a string field
// into a number made 1000 of "1_000" and 16 of "0x1p4" instead of failing
// on text that is no number (JSON's, or anyone's, in event data). JSON's
// syntax is taken, with white space around it.
func TestNumberOfAStringTakesOnlyJSONNumbers(t *testing.T) {
	for _, s := range []string{"1_000", "0x1p4", "0X1P-2", "infinity", "Inf", "NaN", "+1", "01", ".5", "1.", "0x10", "", " ", "1 2"} {
		for _, f := range []string{"number", "int"} {
			e, err := CompileExpr(f + "(s)")
			if err != nil {
				t.Fatal(err)
			}
			v, err := e.Eval(map[string]any{"s": s})
			if want := fmt.Sprintf("%s: %q is not a number", f, s); err == nil || !strings.Contains(err.Error(), want) {
				got, _ := json.Marshal(v)
				t.Errorf("%s(%q) = %s, %v; want an error: %s", f, s, got, err, want)
			}
		}
	}
	for s, want := range map[string]string{"-1.5e1": "-15", " 42\n": "42", "0": "0", "-0": "0", "2E+2": "200"} {
		e, err := CompileExpr("number(s)")
		if err != nil {
			t.Fatal(err)
		}
		v, err := e.Eval(map[string]any{"s": s})
		if got, _ := json.Marshal(v); err != nil || string(got) != want {
			t.Errorf("number(%q) = %s, %v; want %s", s, got, err, want)
		}
	}
}
