package projections

import (
	"strconv"
	"time"

	"cqrsgate/domain"
)

// Decoding the payloads of the frequent account and order events is most
// of the Go work of a rebuild. The payloads as the event store returns them
// are flat JSON objects of plain strings and integers, which a small
// scanner reads several times faster than encoding/json. It takes only
// what it is sure of: a payload that is not that simple (a key it does not
// know, in another case, an escape, a non-ASCII character, a number that is
// not a plain integer or does not fit, null, nesting, anything after the
// object) is decoded by the domain's decoder, which then gives the same
// result or the same error as it always does.

// decodeAccountEvent decodes an account event's payload as
// domain.Accounts.Decode does.
func decodeAccountEvent(re domain.RecordedEvent) (domain.Event, error) {
	if e, ok := fastAccountEvent(re.Type, re.Data); ok {
		return e, nil
	}
	return domain.Accounts.Decode(re.Type, re.SchemaVersion, re.Data)
}

// decodeOrderEvent decodes an order event's payload as
// domain.Orders.Decode does.
func decodeOrderEvent(re domain.RecordedEvent) (domain.Event, error) {
	if e, ok := fastOrderEvent(re.Type, re.Data); ok {
		return e, nil
	}
	return domain.Orders.Decode(re.Type, re.SchemaVersion, re.Data)
}

func fastAccountEvent(eventType string, data []byte) (domain.Event, bool) {
	o := object{data: data}
	switch eventType {
	case "MoneyDeposited":
		var e domain.MoneyDeposited
		for o.next() {
			switch string(o.key) {
			case "amount":
				o.int(&e.Amount)
			case "balanceAfter":
				o.int(&e.BalanceAfter)
			default:
				o.unknown()
			}
		}
		return e, o.ok()
	case "MoneyWithdrawn":
		var e domain.MoneyWithdrawn
		for o.next() {
			switch string(o.key) {
			case "amount":
				o.int(&e.Amount)
			case "balanceAfter":
				o.int(&e.BalanceAfter)
			case "at":
				o.time(&e.At)
			default:
				o.unknown()
			}
		}
		return e, o.ok()
	case "AccountOpened":
		var e domain.AccountOpened
		for o.next() {
			switch string(o.key) {
			case "owner":
				o.string(&e.Owner)
			case "currency":
				o.string(&e.Currency)
			case "overdraftLimit":
				o.int(&e.OverdraftLimit)
			case "dailyWithdrawalLimit":
				o.int(&e.DailyWithdrawalLimit)
			case "openedAt":
				o.time(&e.OpenedAt)
			default:
				o.unknown()
			}
		}
		return e, o.ok()
	}
	return nil, false
}

func fastOrderEvent(eventType string, data []byte) (domain.Event, bool) {
	o := object{data: data}
	switch eventType {
	case "OrderItemAdded":
		var e domain.OrderItemAdded
		for o.next() {
			switch string(o.key) {
			case "sku":
				o.string(&e.Sku)
			case "quantity":
				o.int(&e.Quantity)
			case "unitPrice":
				o.int(&e.UnitPrice)
			case "lineTotal":
				o.int(&e.LineTotal)
			case "orderTotal":
				o.int(&e.OrderTotal)
			default:
				o.unknown()
			}
		}
		return e, o.ok()
	case "OrderItemRemoved":
		var e domain.OrderItemRemoved
		for o.next() {
			switch string(o.key) {
			case "sku":
				o.string(&e.Sku)
			case "quantity":
				o.int(&e.Quantity)
			case "orderTotal":
				o.int(&e.OrderTotal)
			default:
				o.unknown()
			}
		}
		return e, o.ok()
	case "OrderPlaced":
		var e domain.OrderPlaced
		for o.next() {
			switch string(o.key) {
			case "customerId":
				o.string(&e.CustomerID)
			case "currency":
				o.string(&e.Currency)
			case "placedAt":
				o.time(&e.PlacedAt)
			default:
				o.unknown()
			}
		}
		return e, o.ok()
	case "OrderSubmitted":
		var e domain.OrderSubmitted
		for o.next() {
			switch string(o.key) {
			case "subtotal":
				o.int(&e.Subtotal)
			case "tax":
				o.int(&e.Tax)
			case "total":
				o.int(&e.Total)
			case "currency":
				o.string(&e.Currency)
			case "itemCount":
				o.int(&e.ItemCount)
			case "submittedAt":
				o.time(&e.SubmittedAt)
			default:
				o.unknown()
			}
		}
		return e, o.ok()
	}
	return nil, false
}

// object reads the members of a flat JSON object of plain strings and
// integers. After next returns false, ok reports whether the whole input
// was such an object and every member was taken.
type object struct {
	data     []byte
	pos      int
	started  bool
	key, val []byte // val: a string's content without its quotes, or a number
	quoted   bool   // val is a string
	bad      bool
	end      bool // the closing brace was read
}

func (o *object) ws() {
	for o.pos < len(o.data) {
		switch o.data[o.pos] {
		case ' ', '\t', '\n', '\r':
			o.pos++
		default:
			return
		}
	}
}

// char consumes c (after white space) and reports whether it was there.
func (o *object) char(c byte) bool {
	o.ws()
	if o.pos < len(o.data) && o.data[o.pos] == c {
		o.pos++
		return true
	}
	return false
}

// plain reads a string of printable ASCII without escapes, after its
// opening quote, and returns its content.
func (o *object) plain() ([]byte, bool) {
	start := o.pos
	for o.pos < len(o.data) {
		c := o.data[o.pos]
		switch {
		case c == '"':
			o.pos++
			return o.data[start : o.pos-1], true
		case c < 0x20 || c >= 0x7f || c == '\\':
			return nil, false
		}
		o.pos++
	}
	return nil, false
}

// next reads the next member into key and val.
func (o *object) next() bool {
	if o.bad || o.end {
		return false
	}
	if !o.started {
		o.started = true
		if !o.char('{') {
			o.bad = true
			return false
		}
		if o.char('}') {
			o.end = true
			return false
		}
	} else if !o.char(',') {
		if o.end = o.char('}'); !o.end {
			o.bad = true
		}
		return false
	}
	var ok bool
	if !o.char('"') {
		o.bad = true
		return false
	}
	if o.key, ok = o.plain(); !ok || !o.char(':') {
		o.bad = true
		return false
	}
	o.ws()
	if o.pos >= len(o.data) {
		o.bad = true
		return false
	}
	if o.data[o.pos] == '"' {
		o.pos++
		o.quoted = true
		if o.val, ok = o.plain(); !ok {
			o.bad = true
			return false
		}
		return true
	}
	// An integer: -?(0|[1-9][0-9]*), not followed by a fraction or an
	// exponent.
	o.quoted = false
	start := o.pos
	if o.data[o.pos] == '-' {
		o.pos++
	}
	digits := o.pos
	for o.pos < len(o.data) && o.data[o.pos] >= '0' && o.data[o.pos] <= '9' {
		o.pos++
	}
	n := o.pos - digits
	if n == 0 || n > 1 && o.data[digits] == '0' || o.pos < len(o.data) && (o.data[o.pos] == '.' || o.data[o.pos] == 'e' || o.data[o.pos] == 'E') {
		o.bad = true
		return false
	}
	o.val = o.data[start:o.pos]
	return true
}

// ok reports whether the input was a flat object, read to its end, whose
// members were all taken.
func (o *object) ok() bool {
	if o.bad || !o.end {
		return false
	}
	o.ws()
	return o.pos == len(o.data)
}

// unknown refuses the current member.
func (o *object) unknown() { o.bad = true }

// int takes the current member as an int64.
func (o *object) int(dst *int64) {
	v := o.val
	if o.quoted {
		o.bad = true
		return
	}
	if len(v) > 18 { // may not fit: let strconv decide
		n, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil {
			o.bad = true
			return
		}
		*dst = n
		return
	}
	neg := v[0] == '-'
	if neg {
		v = v[1:]
	}
	var n int64
	for _, c := range v {
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	*dst = n
}

// string takes the current member as a string.
func (o *object) string(dst *string) {
	if !o.quoted {
		o.bad = true
		return
	}
	*dst = string(o.val)
}

// time takes the current member as a time, as encoding/json does
// (time.Time.UnmarshalJSON of the quoted string).
func (o *object) time(dst *time.Time) {
	if !o.quoted {
		o.bad = true
		return
	}
	// The quotes around val are in data, just outside it.
	if err := dst.UnmarshalJSON(o.data[o.pos-len(o.val)-2 : o.pos]); err != nil {
		o.bad = true
	}
}
