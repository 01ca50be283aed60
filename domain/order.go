package domain

import (
	"encoding/json"
	"fmt"
	"sort"
	"time"
)

// Order statuses, as Order.Status reports them.
const (
	StatusOpen      = "OPEN"
	StatusSubmitted = "SUBMITTED"
	StatusConfirmed = "CONFIRMED"
	StatusShipped   = "SHIPPED"
	StatusCancelled = "CANCELLED"
)

// Order limits.
const (
	MaxOrderLines        = 100
	MaxOrderLineQuantity = 10_000
)

// Order is a customer's order: lines of products at unit prices in one
// currency, moving from OPEN through SUBMITTED and CONFIRMED to SHIPPED, or
// to CANCELLED. Streams: order-<id>.
type Order struct {
	id       string
	status   string // "" before PlaceOrder
	customer string
	currency string
	lines    map[string]OrderLine
	total    int64
}

// OrderLine is one product on an order.
type OrderLine struct {
	Sku       string `json:"sku"`
	Quantity  int64  `json:"quantity"`
	UnitPrice int64  `json:"unitPrice"`
}

// Order commands. Prices are minor units of the order's currency.
type (
	// PlaceOrder opens an empty order for a customer. CustomerID is the
	// account the order is charged to: it must be an id an account can
	// have (no space, control or invisible character, no '~'; Invalid on
	// field customerId).
	PlaceOrder struct{ OrderID, CustomerID, Currency string }
	// AddOrderItem adds a line, or more of a line at the same unit price,
	// while the order is open. Sku must be one a product can have (no
	// space, control or invisible character, no '~'), of at most 64 bytes
	// (Invalid on field sku).
	AddOrderItem struct {
		OrderID, Sku        string
		Quantity, UnitPrice int64
	}
	// RemoveOrderItem removes a line while the order is open. A Sku the
	// order holds no line of is checked as AddOrderItem checks it (Invalid
	// on field sku) before it is refused with ITEM_NOT_IN_ORDER; a line
	// held is removed whatever its sku (one added before skus were checked
	// as a product's).
	RemoveOrderItem struct{ OrderID, Sku string }
	// SubmitOrder submits an open order with at least one line.
	SubmitOrder struct{ OrderID string }
	// ConfirmOrder confirms a submitted order.
	ConfirmOrder struct{ OrderID string }
	// CancelOrder cancels an order that has not shipped.
	CancelOrder struct{ OrderID, Reason string }
	// ShipOrder ships a confirmed order.
	ShipOrder struct{ OrderID, TrackingNumber string }
)

// Order events.
type (
	// OrderPlaced: an order was opened.
	OrderPlaced struct {
		CustomerID string    `json:"customerId"`
		Currency   string    `json:"currency"`
		PlacedAt   time.Time `json:"placedAt"`
	}
	// OrderItemAdded: units of a product were added; totals are after the change.
	OrderItemAdded struct {
		Sku        string `json:"sku"`
		Quantity   int64  `json:"quantity"`
		UnitPrice  int64  `json:"unitPrice"`
		LineTotal  int64  `json:"lineTotal"`
		OrderTotal int64  `json:"orderTotal"`
	}
	// OrderItemRemoved: a line was removed; OrderTotal is after the change.
	OrderItemRemoved struct {
		Sku        string `json:"sku"`
		Quantity   int64  `json:"quantity"`
		OrderTotal int64  `json:"orderTotal"`
	}
	// OrderSubmitted (schema version 2): the customer submitted the order.
	// Version 1 had only Total; its events are read as version 2 by the
	// schema registry's migration (domain/schemas/OrderSubmitted.v2.migration.json):
	// Subtotal = Total, Tax = 0, Currency = "XXX" (not recorded).
	OrderSubmitted struct {
		Subtotal    int64     `json:"subtotal"`
		Tax         int64     `json:"tax"`
		Total       int64     `json:"total"`
		Currency    string    `json:"currency"`
		ItemCount   int64     `json:"itemCount"`
		SubmittedAt time.Time `json:"submittedAt"`
	}
	// OrderConfirmed: the order was confirmed.
	OrderConfirmed struct {
		ConfirmedAt time.Time `json:"confirmedAt"`
	}
	// OrderCancelled: the order was cancelled from PreviousStatus.
	OrderCancelled struct {
		Reason         string    `json:"reason"`
		PreviousStatus string    `json:"previousStatus"`
		CancelledAt    time.Time `json:"cancelledAt"`
	}
	// OrderShipped: the order left the warehouse.
	OrderShipped struct {
		TrackingNumber string    `json:"trackingNumber"`
		ShippedAt      time.Time `json:"shippedAt"`
	}
)

// CommandName implements Command.
func (PlaceOrder) CommandName() string { return "PlaceOrder" }

// AggregateID implements Command.
func (c PlaceOrder) AggregateID() string { return c.OrderID }

// CommandName implements Command.
func (AddOrderItem) CommandName() string { return "AddOrderItem" }

// AggregateID implements Command.
func (c AddOrderItem) AggregateID() string { return c.OrderID }

// CommandName implements Command.
func (RemoveOrderItem) CommandName() string { return "RemoveOrderItem" }

// AggregateID implements Command.
func (c RemoveOrderItem) AggregateID() string { return c.OrderID }

// CommandName implements Command.
func (SubmitOrder) CommandName() string { return "SubmitOrder" }

// AggregateID implements Command.
func (c SubmitOrder) AggregateID() string { return c.OrderID }

// CommandName implements Command.
func (ConfirmOrder) CommandName() string { return "ConfirmOrder" }

// AggregateID implements Command.
func (c ConfirmOrder) AggregateID() string { return c.OrderID }

// CommandName implements Command.
func (CancelOrder) CommandName() string { return "CancelOrder" }

// AggregateID implements Command.
func (c CancelOrder) AggregateID() string { return c.OrderID }

// CommandName implements Command.
func (ShipOrder) CommandName() string { return "ShipOrder" }

// AggregateID implements Command.
func (c ShipOrder) AggregateID() string { return c.OrderID }

// EventType implements Event.
func (OrderPlaced) EventType() string { return "OrderPlaced" }

// EventType implements Event.
func (OrderItemAdded) EventType() string { return "OrderItemAdded" }

// EventType implements Event.
func (OrderItemRemoved) EventType() string { return "OrderItemRemoved" }

// EventType implements Event.
func (OrderSubmitted) EventType() string { return "OrderSubmitted" }

// SchemaVersion implements Versioned.
func (OrderSubmitted) SchemaVersion() int { return 2 }

// EventType implements Event.
func (OrderConfirmed) EventType() string { return "OrderConfirmed" }

// EventType implements Event.
func (OrderCancelled) EventType() string { return "OrderCancelled" }

// EventType implements Event.
func (OrderShipped) EventType() string { return "OrderShipped" }

// Rule names of order refusals (extensions.rule on RULE_VIOLATION errors).
const (
	RuleOrderExists       = "ORDER_EXISTS"
	RuleOrderNotOpen      = "ORDER_NOT_OPEN"
	RuleOrderNotSubmitted = "ORDER_NOT_SUBMITTED"
	RuleOrderNotConfirmed = "ORDER_NOT_CONFIRMED"
	RuleOrderShipped      = "ORDER_SHIPPED"
	RuleOrderCancelled    = "ORDER_CANCELLED"
	RuleOrderEmpty        = "ORDER_EMPTY"
	RulePriceMismatch     = "PRICE_MISMATCH"
	RuleTooManyItems      = "TOO_MANY_ITEMS"
	RuleItemNotInOrder    = "ITEM_NOT_IN_ORDER"
)

// Orders is the order aggregate kind.
var Orders = &Kind[*Order]{
	Name:         "order",
	IDField:      "orderId",
	New:          func(id string) *Order { return &Order{id: id} },
	Decide:       func(o *Order, cmd Command, now time.Time) ([]Event, error) { return o.decide(cmd, now.UTC()) },
	Decode:       decodeOrderEvent,
	StateVersion: 1,
	SaveState:    func(o *Order) (json.RawMessage, error) { return json.Marshal(o.state()) },
	LoadState:    loadOrder,
}

// Status returns the order's status ("" for an order never placed).
func (o *Order) Status() string { return o.status }

// CustomerID returns the customer who placed the order.
func (o *Order) CustomerID() string { return o.customer }

// Currency returns the order's ISO 4217 currency.
func (o *Order) Currency() string { return o.currency }

// Total returns the order total in minor units.
func (o *Order) Total() int64 { return o.total }

// Items returns a copy of the order's lines, sorted by SKU.
func (o *Order) Items() []OrderLine {
	out := make([]OrderLine, 0, len(o.lines))
	for _, l := range o.lines {
		out = append(out, l)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Sku < out[j].Sku })
	return out
}

func (o *Order) decide(cmd Command, now time.Time) ([]Event, error) {
	if c, ok := cmd.(PlaceOrder); ok {
		return o.place(c, now)
	}
	if o.status == "" {
		return nil, notFound("order %s does not exist", o.id)
	}
	switch c := cmd.(type) {
	case AddOrderItem:
		return o.addItem(c)
	case RemoveOrderItem:
		line, held := o.lines[c.Sku]
		if !held {
			// A line held is removed whatever its sku: lines added before
			// skus were checked as a product's ("p 1", or with an
			// invisible character, which the free-text check refused)
			// stay removable.
			if err := checkLineSku(c.Sku); err != nil {
				return nil, err
			}
		}
		if err := o.require(StatusOpen, RuleOrderNotOpen); err != nil {
			return nil, err
		}
		if !held {
			return nil, ruleError(RuleItemNotInOrder, "order %s has no item %s", o.id, c.Sku)
		}
		return []Event{OrderItemRemoved{Sku: c.Sku, Quantity: line.Quantity, OrderTotal: o.total - line.Quantity*line.UnitPrice}}, nil
	case SubmitOrder:
		if err := o.require(StatusOpen, RuleOrderNotOpen); err != nil {
			return nil, err
		}
		if len(o.lines) == 0 {
			return nil, ruleError(RuleOrderEmpty, "order %s has no items to submit", o.id)
		}
		var count int64
		for _, l := range o.lines {
			count += l.Quantity
		}
		// No tax rules yet: the tax is zero and the total is the items' total.
		return []Event{OrderSubmitted{Subtotal: o.total, Tax: 0, Total: o.total, Currency: o.currency, ItemCount: count, SubmittedAt: now}}, nil
	case ConfirmOrder:
		if err := o.require(StatusSubmitted, RuleOrderNotSubmitted); err != nil {
			return nil, err
		}
		return []Event{OrderConfirmed{ConfirmedAt: now}}, nil
	case CancelOrder:
		if err := checkText("reason", c.Reason, 500); err != nil {
			return nil, err
		}
		switch o.status {
		case StatusShipped:
			return nil, ruleError(RuleOrderShipped, "order %s has shipped and can no longer be cancelled", o.id)
		case StatusCancelled:
			return nil, ruleError(RuleOrderCancelled, "order %s is already cancelled", o.id)
		}
		return []Event{OrderCancelled{Reason: c.Reason, PreviousStatus: o.status, CancelledAt: now}}, nil
	case ShipOrder:
		if err := checkText("trackingNumber", c.TrackingNumber, 100); err != nil {
			return nil, err
		}
		if err := o.require(StatusConfirmed, RuleOrderNotConfirmed); err != nil {
			return nil, err
		}
		return []Event{OrderShipped{TrackingNumber: c.TrackingNumber, ShippedAt: now}}, nil
	}
	return nil, Errorf(Invalid, "order: unsupported command %s", cmd.CommandName())
}

func (o *Order) place(c PlaceOrder, now time.Time) ([]Event, error) {
	if o.status != "" {
		return nil, ruleError(RuleOrderExists, "order %s already exists", o.id)
	}
	// The customer is the account the saga charges: text that an
	// account's id can be too (validateReadID).
	if err := checkText("customerId", c.CustomerID, 100); err != nil {
		return nil, err
	}
	if err := validateReadID("customerId", c.CustomerID); err != nil {
		return nil, err
	}
	if !ValidCurrency(c.Currency) {
		return nil, InvalidField("currency", "%q is not an ISO 4217 currency code", CutText(c.Currency, maxQuoted))
	}
	return []Event{OrderPlaced{CustomerID: c.CustomerID, Currency: c.Currency, PlacedAt: now}}, nil
}

// checkLineSku checks the sku of a new order line (field sku). A line is
// a product the saga reserves: text of at most 64 bytes (as a product's
// SKU), with no control or invisible character, that a product's SKU can
// be too (validateReadID: no white space, no '~').
func checkLineSku(sku string) error {
	if err := checkText("sku", sku, 64); err != nil {
		return err
	}
	return validateReadID("sku", sku)
}

func (o *Order) addItem(c AddOrderItem) ([]Event, error) {
	if err := checkLineSku(c.Sku); err != nil {
		return nil, err
	}
	if err := checkPositive("quantity", c.Quantity); err != nil {
		return nil, err
	}
	if err := checkNonNegative("unitPrice", c.UnitPrice); err != nil {
		return nil, err
	}
	if err := o.require(StatusOpen, RuleOrderNotOpen); err != nil {
		return nil, err
	}
	line, exists := o.lines[c.Sku]
	switch {
	case exists && line.UnitPrice != c.UnitPrice:
		return nil, ruleError(RulePriceMismatch, "item %s is on the order at unit price %d, not %d: remove it first", c.Sku, line.UnitPrice, c.UnitPrice)
	case !exists && len(o.lines) >= MaxOrderLines:
		return nil, ruleError(RuleTooManyItems, "order %s already has %d items, the most allowed", o.id, MaxOrderLines)
	}
	quantity, ok := addMoney(line.Quantity, c.Quantity)
	if !ok || quantity > MaxOrderLineQuantity {
		return nil, InvalidField("quantity", "item %s has %d units: adding %d would pass the most allowed, %d", c.Sku, line.Quantity, c.Quantity, MaxOrderLineQuantity)
	}
	added, ok := mulMoney(c.Quantity, c.UnitPrice)
	lineTotal, ok2 := mulMoney(quantity, c.UnitPrice)
	total, ok3 := addMoney(o.total, added)
	if !ok || !ok2 || !ok3 {
		return nil, ruleError(RuleAmountOverflow, "adding %d × %d would overflow the order total", c.Quantity, c.UnitPrice)
	}
	return []Event{OrderItemAdded{Sku: c.Sku, Quantity: c.Quantity, UnitPrice: c.UnitPrice, LineTotal: lineTotal, OrderTotal: total}}, nil
}

// require refuses the command unless the order is in status want.
func (o *Order) require(want, rule string) error {
	if o.status == want {
		return nil
	}
	return ruleError(rule, "order %s is %s, not %s", o.id, o.status, want)
}

// Apply implements Aggregate.
func (o *Order) Apply(e Event) {
	switch e := e.(type) {
	case OrderPlaced:
		o.status, o.customer, o.currency = StatusOpen, e.CustomerID, e.Currency
		o.lines = map[string]OrderLine{}
	case OrderItemAdded:
		line := o.lines[e.Sku]
		line.Sku, line.UnitPrice = e.Sku, e.UnitPrice
		line.Quantity += e.Quantity
		o.lines[e.Sku] = line
		o.total = e.OrderTotal
	case OrderItemRemoved:
		delete(o.lines, e.Sku)
		o.total = e.OrderTotal
	case OrderSubmitted:
		o.status = StatusSubmitted
		o.total = e.Subtotal + e.Tax
	case OrderConfirmed:
		o.status = StatusConfirmed
	case OrderCancelled:
		o.status = StatusCancelled
	case OrderShipped:
		o.status = StatusShipped
	}
}

func decodeOrderEvent(eventType string, schemaVersion int, data json.RawMessage) (Event, error) {
	switch eventType {
	case "OrderPlaced":
		return DecodeAs[OrderPlaced](data)
	case "OrderItemAdded":
		return DecodeAs[OrderItemAdded](data)
	case "OrderItemRemoved":
		return DecodeAs[OrderItemRemoved](data)
	case "OrderSubmitted":
		return DecodeAs[OrderSubmitted](data)
	case "OrderConfirmed":
		return DecodeAs[OrderConfirmed](data)
	case "OrderCancelled":
		return DecodeAs[OrderCancelled](data)
	case "OrderShipped":
		return DecodeAs[OrderShipped](data)
	}
	return nil, UnknownEvent("order", eventType, schemaVersion)
}

// orderState is the snapshot shape (StateVersion 1).
type orderState struct {
	Status, Customer, Currency string
	Lines                      []OrderLine
	Total                      int64
}

func (o *Order) state() orderState {
	return orderState{Status: o.status, Customer: o.customer, Currency: o.currency, Lines: o.Items(), Total: o.total}
}

func loadOrder(id string, raw json.RawMessage) (*Order, error) {
	var s orderState
	if err := strictUnmarshal(raw, &s); err != nil {
		return nil, err
	}
	o := &Order{id: id, status: s.Status, customer: s.Customer, currency: s.Currency, total: s.Total}
	if s.Status != "" {
		o.lines = map[string]OrderLine{}
	}
	for _, l := range s.Lines {
		if o.lines == nil {
			return nil, fmt.Errorf("order snapshot has lines but no status")
		}
		o.lines[l.Sku] = l
	}
	return o, nil
}
