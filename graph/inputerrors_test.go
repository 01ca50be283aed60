package graph_test

import (
	"strings"
	"testing"
	"time"
)

// A Time argument that is not an RFC 3339 time is the client's error,
// VALIDATION naming what came (gqlgen's own Time answered INTERNAL).
func TestMalformedTimesAreValidationErrors(t *testing.T) {
	c := newServer(t, memStore(), nil)
	c.mustPost(`mutation { openAccount(input: {accountId: "a1", owner: "ada", currency: "EUR"}) { version } }`, nil, &struct{}{})
	for _, tc := range []struct {
		what, query string
		vars        map[string]any
		message     string
	}{
		{"a word", `query($at: Time) { accountAt(id: "a1", at: $at) { version } }`, map[string]any{"at": "yesterday"}, `not "yesterday"`},
		{"a number", `query($at: Time) { accountAt(id: "a1", at: $at) { version } }`, map[string]any{"at": 12345}, "not a number"},
		{"empty", `query($at: Time) { accountAt(id: "a1", at: $at) { version } }`, map[string]any{"at": ""}, `not ""`},
		{"no such day", `{ orderAt(id: "o1", at: "2026-02-30T00:00:00Z") { version } }`, nil, `not "2026-02-30T00:00:00Z"`},
		{"an offset beyond a day", `{ orderStatistics(from: "2026-01-01T00:00:00+99:00", to: "2026-01-02T00:00:00Z") { day } }`, nil, "+99:00"},
	} {
		out, _ := c.post(tc.query, tc.vars)
		wantCode(t, tc.what, out, "VALIDATION")
		if len(out.Errors) == 1 && !strings.Contains(out.Errors[0].Message, tc.message) {
			t.Errorf("%s: %q does not say %q", tc.what, out.Errors[0].Message, tc.message)
		}
	}
	// Both forms gqlgen's Time read still read.
	for _, at := range []string{"2099-01-01T00:00:00.5+02:00", "2099-01-01 00:00:00"} {
		var out struct{ AccountAt struct{ Version int } }
		c.mustPost(`query($at: Time) { accountAt(id: "a1", at: $at) { version } }`, map[string]any{"at": at}, &out)
		if out.AccountAt.Version != 1 {
			t.Errorf("at %s: version %d", at, out.AccountAt.Version)
		}
	}
}

// A mutation whose selection asks for its events' data at a version below
// 1 is refused before it runs: it was refused after writing, answered as if
// it had not run. One that fails on its events only once they exist still
// says what it wrote.
func TestMutationResultsNeverHideAWrite(t *testing.T) {
	c := newServer(t, memStore(), nil)
	c.mustPost(`mutation { openAccount(input: {accountId: "a1", owner: "ada", currency: "EUR"}) { version } }`, nil, &struct{}{})
	for _, q := range []struct {
		query string
		vars  map[string]any
	}{
		{`mutation { depositMoney(input: {accountId: "a1", amount: 500}) { version events { data(asVersion: 0) } } }`, nil},
		{`mutation($v: Int) { depositMoney(input: {accountId: "a1", amount: 500}) { ...R } } fragment R on CommandResult { events { data(asVersion: $v) } }`, map[string]any{"v": -1}},
	} {
		out, _ := c.post(q.query, q.vars)
		wantCode(t, q.query, out, "VALIDATION")
	}
	var at struct {
		AccountAt struct{ Balance, Version int }
	}
	c.mustPost(`{ accountAt(id: "a1") { balance version } }`, nil, &at)
	if at.AccountAt.Balance != 0 || at.AccountAt.Version != 1 {
		t.Fatalf("after two refused deposits: balance %d, version %d", at.AccountAt.Balance, at.AccountAt.Version)
	}
	// Version 2 exists for no type here (no registry): known only once the
	// event exists. The deposit is made, and its result says so.
	out, _ := c.post(`mutation { depositMoney(input: {accountId: "a1", amount: 500}) { version events { data(asVersion: 2) } } }`, nil)
	wantCode(t, "asVersion 2", out, "VALIDATION")
	if got := string(out.Data["depositMoney"]); got != `{"version":2,"events":null}` {
		t.Errorf("asVersion 2: result %s, want the version written and no events", got)
	}
}

// Error messages name kinds of JSON values, not Go's types and functions.
func TestErrorMessagesNameNoGoInternals(t *testing.T) {
	c := newServer(t, memStore(), nil)
	c.mustPost(`mutation { openAccount(input: {accountId: "a1", owner: "ada", currency: "EUR"}) { version } }`, nil, &struct{}{})
	for _, tc := range []struct {
		query string
		vars  map[string]any
		says  string
	}{
		{`{ account(id: "a1", atLeast: {a: 1}) { id } }`, nil, "not an object"},
		{`mutation($a: Long!) { depositMoney(input: {accountId: "a1", amount: $a}) { version } }`, map[string]any{"a": []any{1}}, "not a list"},
		{`{ account(id: "a1", atLeast: 99999999999999999999) { id } }`, nil, "the number 99999999999999999999 in an argument"},
	} {
		out, _ := c.post(tc.query, tc.vars)
		if len(out.Errors) != 1 || !strings.Contains(out.Errors[0].Message, tc.says) ||
			strings.Contains(out.Errors[0].Message, "interface {}") || strings.Contains(out.Errors[0].Message, "strconv.") {
			t.Errorf("%s: %+v, want a message saying %q", tc.query, out.Errors, tc.says)
		}
	}
}

// Arguments that would reach PostgreSQL out of its range are answered, not
// failed as INTERNAL: a year-0 day in orderStatistics (PostgreSQL has no
// year 0) and a maxAvailable beyond the int4 column it bounds.
func TestArgumentsBeyondTheDatabasesRange(t *testing.T) {
	g := newFullGateway(t, 2*time.Second)
	for _, r := range [][2]string{
		{"0000-01-01T00:00:00Z", "0000-01-02T00:00:00Z"},
		{"0001-01-01T00:00:00+14:00", "0001-01-01T12:00:00Z"},
		{"9999-12-31T12:00:00Z", "9999-12-31T13:00:00-12:00"},
	} {
		out, _ := g.post(`query($f: Time!, $t: Time!) { orderStatistics(from: $f, to: $t) { day } }`, map[string]any{"f": r[0], "t": r[1]})
		if len(out.Errors) > 0 || string(out.Data["orderStatistics"]) != "[]" {
			t.Errorf("orderStatistics(from: %s, to: %s): %s %+v, want []", r[0], r[1], out.Data["orderStatistics"], out.Errors)
		}
	}
	added := g.mustMutate("addProduct", map[string]any{"sku": "sku-1", "name": "n", "price": 1, "currency": "EUR"})
	for _, q := range []struct {
		query string
		vars  map[string]any
	}{
		{`query($m: Int, $p: Position) { products(maxAvailable: $m, atLeast: $p) { totalCount } }`, map[string]any{"m": int64(2147483648)}},
		{`query($p: Position) { products(maxAvailable: 99999999999, atLeast: $p) { totalCount } }`, map[string]any{}},
	} {
		q.vars["p"] = added.Position
		out, _ := g.post(q.query, q.vars)
		if len(out.Errors) > 0 || string(out.Data["products"]) != `{"totalCount":1}` {
			t.Errorf("%s %v: %s %+v, want every product", q.query, q.vars, out.Data["products"], out.Errors)
		}
	}
}

// bankTotals say in how many digits each currency counts its minor unit,
// for clients (the dashboard) to write the sums: yen whole, dinars in
// thousandths.
func TestBankTotalsSayTheirMinorUnit(t *testing.T) {
	g := newFullGateway(t, 2*time.Second)
	var last result
	for _, c := range []string{"JPY", "KWD", "EUR"} {
		last = g.mustMutate("openAccount", map[string]any{"accountId": "a-" + c, "owner": "o", "currency": c, "initialDeposit": 1500})
	}
	out, _ := g.post(`query($p: Position) { bankTotals(atLeast: $p) { currency minorUnitDigits totalBalanceDecimal } }`, map[string]any{"p": last.Position})
	want := `[{"currency":"EUR","minorUnitDigits":2,"totalBalanceDecimal":"1500"},{"currency":"JPY","minorUnitDigits":0,"totalBalanceDecimal":"1500"},{"currency":"KWD","minorUnitDigits":3,"totalBalanceDecimal":"1500"}]`
	if len(out.Errors) > 0 || string(out.Data["bankTotals"]) != want {
		t.Errorf("bankTotals %s %+v, want %s", out.Data["bankTotals"], out.Errors, want)
	}
}
