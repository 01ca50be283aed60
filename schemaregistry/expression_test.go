package schemaregistry

import (
	"encoding/json"
	"errors"
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
		{`int("x")`, "int needs a number"},
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
