package domain

import (
	"math"
	"math/bits"
	"strings"
	"unicode"
)

// Amounts of money are int64 counts of a currency's minor unit (cents for
// EUR, yen for JPY). Never floats.

// currencies maps the active ISO 4217 codes to their number of minor-unit
// digits.
var currencies = func() map[string]int {
	m := map[string]int{}
	for _, c := range strings.Fields(`AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BRL
		BSD BTN BWP BYN BZD CAD CDF CHF CNY COP CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP
		GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK LBP LKR
		LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN
		PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB
		TJS TMT TOP TRY TTD TWD TZS UAH USD UYU UZS VES WST XCD YER ZAR ZMW ZWG`) {
		m[c] = 2
	}
	for _, c := range strings.Fields(`BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX VND VUV XAF XOF XPF`) {
		m[c] = 0
	}
	for _, c := range strings.Fields(`BHD IQD JOD KWD LYD OMR TND`) {
		m[c] = 3
	}
	return m
}()

// ValidCurrency reports whether code is an active ISO 4217 currency code
// (upper case, e.g. "EUR").
func ValidCurrency(code string) bool {
	_, ok := currencies[code]
	return ok
}

// CurrencyDigits returns the number of minor-unit digits of an ISO 4217
// currency (2 for EUR, 0 for JPY, 3 for KWD) and whether code is known.
func CurrencyDigits(code string) (int, bool) {
	d, ok := currencies[code]
	return d, ok
}

// addMoney returns a+b, or false when the sum overflows int64.
func addMoney(a, b int64) (int64, bool) {
	s := a + b
	if (b > 0 && s < a) || (b < 0 && s > a) {
		return 0, false
	}
	return s, true
}

// mulMoney returns a*b for non-negative a and b, or false on overflow.
func mulMoney(a, b int64) (int64, bool) {
	if a == 0 || b == 0 {
		return 0, true
	}
	if a < 0 || b < 0 || a > math.MaxInt64/b {
		return 0, false
	}
	return a * b, true
}

// ruleError builds a RuleViolation *Error with a stable rule name.
func ruleError(rule, format string, args ...any) *Error {
	e := Errorf(RuleViolation, format, args...)
	e.Rule = rule
	return e
}

// notFound builds a NotFound *Error.
func notFound(format string, args ...any) *Error { return Errorf(NotFound, format, args...) }

// checkText validates a required free-text field of at most max bytes.
func checkText(field, value string, max int) error {
	switch {
	case strings.TrimSpace(value) == "":
		return InvalidField(field, "%s is required", field)
	case len(value) > max:
		return InvalidField(field, "%s is %d bytes; at most %d are allowed", field, len(value), max)
	}
	for _, r := range value {
		if !TextRune(r) {
			return InvalidField(field, "%s contains %s (%U)", field, disallowedKind(r), r)
		}
	}
	return nil
}

// disallowedKind names the kind of a character free text may not hold
// (see TextRune), for an error: an invisible one is not a control
// character to the client who sent it.
func disallowedKind(r rune) string {
	switch {
	case r < 0x80 || unicode.IsControl(r):
		return "a control character"
	case unicode.In(r, unicode.Zl, unicode.Zp):
		return "a line or paragraph separator"
	}
	return "an invisible character"
}

// TextRune reports whether r may appear in free text (an owner, a reason):
// anything but control characters, line and paragraph separators and
// invisible characters (see invisible).
func TextRune(r rune) bool {
	if r < 0x80 {
		return r >= 0x20 && r != 0x7f
	}
	return !unicode.IsControl(r) && !unicode.In(r, unicode.Zl, unicode.Zp) && !invisible(r)
}

// IDRune reports whether r may appear in a new id: a character that shows,
// with no white space, control or invisible character (see invisible),
// which would make two ids look alike. Joiners (U+200C, U+200D, in emoji
// sequences and Persian or Indic words), variation selectors and code
// points newer than Go's Unicode tables are fine.
func IDRune(r rune) bool {
	if r < 0x80 {
		return r > 0x20 && r != 0x7f
	}
	return !unicode.IsControl(r) && !unicode.IsSpace(r) && !unicode.In(r, unicode.Zl, unicode.Zp) && !invisible(r)
}

// invisible reports whether r shows nothing and joins nothing (zero-width
// spaces, soft hyphens, fillers, byte order marks) or changes how the text
// around it displays (the bidirectional controls).
func invisible(r rune) bool {
	switch {
	case r == 0x00ad, r == 0x034f, r == 0x061c, r == 0x115f, r == 0x1160, r == 0x17b4, r == 0x17b5, r == 0x180e,
		r == 0x200b, r == 0x200e, r == 0x200f, 0x202a <= r && r <= 0x202e, 0x2060 <= r && r <= 0x2064,
		0x2066 <= r && r <= 0x206f, r == 0x3164, r == 0xfeff, r == 0xffa0, 0xfff9 <= r && r <= 0xfffb:
		return true
	}
	return false
}

// basisPoints returns amount*bp/10000 rounded down, for non-negative amount
// and bp at most 10000 (so that it cannot overflow).
func basisPoints(amount, bp int64) int64 {
	hi, lo := bits.Mul64(uint64(amount), uint64(bp))
	q, _ := bits.Div64(hi, lo, 10000)
	return int64(q)
}

// checkPositive validates an amount or quantity that must be above zero.
func checkPositive(field string, v int64) error {
	if v <= 0 {
		return InvalidField(field, "%s must be greater than zero, got %d", field, v)
	}
	return nil
}

// checkNonNegative validates an amount that may be zero.
func checkNonNegative(field string, v int64) error {
	if v < 0 {
		return InvalidField(field, "%s must not be negative, got %d", field, v)
	}
	return nil
}
