package domain

import (
	"encoding/json"
	"math"
	"sort"
	"time"
)

// Product is a catalogue item with stock: on hand, reserved for orders and
// available (on hand minus reserved). Its id is its SKU. Streams:
// product-<sku>.
type Product struct {
	sku          string
	added        bool
	name         string
	price        int64
	currency     string
	onHand       int64
	reserved     int64
	reservations map[string]int64 // order id -> quantity
}

// Product commands. Quantities are units; prices are minor units.
type (
	// AddProduct adds a product to the catalogue.
	AddProduct struct {
		Sku, Name, Currency string
		Price               int64
	}
	// RestockProduct adds stock on hand.
	RestockProduct struct {
		Sku      string
		Quantity int64
	}
	// ReserveStock holds available stock for an order (one reservation per
	// order). OrderID is checked as an order's id is (Invalid, field
	// orderId), not as free text.
	ReserveStock struct {
		Sku, OrderID string
		Quantity     int64
		// AtPrice, when set, is the unit price and currency the order
		// has for the item: the reservation is refused (PRICE_MISMATCH,
		// CURRENCY_MISMATCH) unless they are the catalogue's, so that
		// an order is fulfilled only at the product's price. The
		// fulfilment saga sets it; nil reserves at any price. It is not
		// part of the command's identity for idempotency keys: the order's
		// lines cannot change once submitted, and a reservation made
		// before the field existed is found by its key.
		AtPrice *UnitPrice `json:"-"`
	}
	// ReleaseStock releases an order's whole reservation. An OrderID with
	// nothing reserved is checked as an order's id is (Invalid, field
	// orderId) before it is refused with NO_RESERVATION.
	ReleaseStock struct{ Sku, OrderID string }
	// ChangePrice sets a new price; the same price writes nothing.
	ChangePrice struct {
		Sku   string
		Price int64
	}
)

// UnitPrice is a price per unit in minor units of Currency.
type UnitPrice struct {
	Amount   int64
	Currency string
}

// Product events.
type (
	// ProductAdded: a product entered the catalogue.
	ProductAdded struct {
		Name     string `json:"name"`
		Price    int64  `json:"price"`
		Currency string `json:"currency"`
	}
	// ProductRestocked: stock arrived; OnHand is the stock on hand after it.
	ProductRestocked struct {
		Quantity int64 `json:"quantity"`
		OnHand   int64 `json:"onHand"`
	}
	// StockReserved: stock was held for an order; Reserved is the total held after it.
	StockReserved struct {
		OrderID  string `json:"orderId"`
		Quantity int64  `json:"quantity"`
		Reserved int64  `json:"reserved"`
	}
	// StockReleased: an order's reservation was released; Reserved is the total held after it.
	StockReleased struct {
		OrderID  string `json:"orderId"`
		Quantity int64  `json:"quantity"`
		Reserved int64  `json:"reserved"`
	}
	// PriceChanged: the price changed.
	PriceChanged struct {
		OldPrice int64 `json:"oldPrice"`
		NewPrice int64 `json:"newPrice"`
	}
)

// CommandName implements Command.
func (AddProduct) CommandName() string { return "AddProduct" }

// AggregateID implements Command.
func (c AddProduct) AggregateID() string { return c.Sku }

// CommandName implements Command.
func (RestockProduct) CommandName() string { return "RestockProduct" }

// AggregateID implements Command.
func (c RestockProduct) AggregateID() string { return c.Sku }

// CommandName implements Command.
func (ReserveStock) CommandName() string { return "ReserveStock" }

// AggregateID implements Command.
func (c ReserveStock) AggregateID() string { return c.Sku }

// CommandName implements Command.
func (ReleaseStock) CommandName() string { return "ReleaseStock" }

// AggregateID implements Command.
func (c ReleaseStock) AggregateID() string { return c.Sku }

// CommandName implements Command.
func (ChangePrice) CommandName() string { return "ChangePrice" }

// AggregateID implements Command.
func (c ChangePrice) AggregateID() string { return c.Sku }

// EventType implements Event.
func (ProductAdded) EventType() string { return "ProductAdded" }

// EventType implements Event.
func (ProductRestocked) EventType() string { return "ProductRestocked" }

// EventType implements Event.
func (StockReserved) EventType() string { return "StockReserved" }

// EventType implements Event.
func (StockReleased) EventType() string { return "StockReleased" }

// EventType implements Event.
func (PriceChanged) EventType() string { return "PriceChanged" }

// Rule names of product refusals (extensions.rule on RULE_VIOLATION errors).
const (
	RuleProductExists     = "PRODUCT_EXISTS"
	RuleInsufficientStock = "INSUFFICIENT_STOCK"
	RuleAlreadyReserved   = "ALREADY_RESERVED"
	RuleNoReservation     = "NO_RESERVATION"
)

// MaxStockQuantity bounds one restock or reservation.
const MaxStockQuantity = 1_000_000_000

// MaxStock bounds a product's stock on hand: the API gives it (and what is
// reserved and available) as a GraphQL Int, 32 bits, which three restocks
// of MaxStockQuantity passed.
const MaxStock = math.MaxInt32

// Products is the product (inventory) aggregate kind.
var Products = &Kind[*Product]{
	Name:         "product",
	IDField:      "sku",
	New:          func(sku string) *Product { return &Product{sku: sku} },
	Decide:       func(p *Product, cmd Command, now time.Time) ([]Event, error) { return p.decide(cmd) },
	Decode:       decodeProductEvent,
	StateVersion: 1,
	SaveState:    func(p *Product) (json.RawMessage, error) { return json.Marshal(p.state()) },
	LoadState:    loadProduct,
}

// OnHand returns the units in stock, reserved or not.
func (p *Product) OnHand() int64 { return p.onHand }

// Reserved returns the units held for orders.
func (p *Product) Reserved() int64 { return p.reserved }

// Available returns the units that can still be reserved.
func (p *Product) Available() int64 { return p.onHand - p.reserved }

// Price returns the price in minor units of Currency.
func (p *Product) Price() int64 { return p.price }

// Currency returns the price's ISO 4217 currency.
func (p *Product) Currency() string { return p.currency }

// ReservedFor returns the units held for orderID.
func (p *Product) ReservedFor(orderID string) int64 { return p.reservations[orderID] }

func (p *Product) decide(cmd Command) ([]Event, error) {
	if c, ok := cmd.(AddProduct); ok {
		return p.add(c)
	}
	if !p.added {
		return nil, notFound("product %s does not exist", p.sku)
	}
	switch c := cmd.(type) {
	case RestockProduct:
		if err := checkQuantity(c.Quantity); err != nil {
			return nil, err
		}
		onHand, ok := addMoney(p.onHand, c.Quantity)
		if !ok || onHand > MaxStock {
			return nil, ruleError(RuleAmountOverflow, "restocking %d would take the stock on hand past %d", c.Quantity, MaxStock)
		}
		return []Event{ProductRestocked{Quantity: c.Quantity, OnHand: onHand}}, nil
	case ReserveStock:
		if err := checkOrderID(c.OrderID); err != nil {
			return nil, err
		}
		if err := checkQuantity(c.Quantity); err != nil {
			return nil, err
		}
		if held := p.reservations[c.OrderID]; held > 0 {
			return nil, ruleError(RuleAlreadyReserved, "%d units of %s are already reserved for order %s", held, p.sku, c.OrderID)
		}
		if at := c.AtPrice; at != nil {
			if at.Currency != p.currency {
				return nil, ruleError(RuleCurrencyMismatch, "%s is priced in %s, and order %s is in %s", p.sku, p.currency, c.OrderID, CutText(at.Currency, maxQuoted))
			}
			if at.Amount != p.price {
				return nil, ruleError(RulePriceMismatch, "%s costs %d %s, and order %s has it at %d", p.sku, p.price, p.currency, c.OrderID, at.Amount)
			}
		}
		if c.Quantity > p.Available() {
			return nil, ruleError(RuleInsufficientStock, "%d units of %s requested, %d available", c.Quantity, p.sku, p.Available())
		}
		return []Event{StockReserved{OrderID: c.OrderID, Quantity: c.Quantity, Reserved: p.reserved + c.Quantity}}, nil
	case ReleaseStock:
		held := p.reservations[c.OrderID]
		if held == 0 {
			// An id held is released whatever it is: reservations made
			// by hand before order ids were checked as ids ("order 1")
			// stay releasable.
			if err := checkOrderID(c.OrderID); err != nil {
				return nil, err
			}
			return nil, ruleError(RuleNoReservation, "no units of %s are reserved for order %s", p.sku, c.OrderID)
		}
		return []Event{StockReleased{OrderID: c.OrderID, Quantity: held, Reserved: p.reserved - held}}, nil
	case ChangePrice:
		if err := checkPositive("price", c.Price); err != nil {
			return nil, err
		}
		if c.Price == p.price {
			return nil, nil
		}
		return []Event{PriceChanged{OldPrice: p.price, NewPrice: c.Price}}, nil
	}
	return nil, Errorf(Invalid, "product: unsupported command %s", cmd.CommandName())
}

func (p *Product) add(c AddProduct) ([]Event, error) {
	if p.added {
		return nil, ruleError(RuleProductExists, "product %s already exists", p.sku)
	}
	if err := checkText("sku", c.Sku, 64); err != nil {
		return nil, err
	}
	if err := checkText("name", c.Name, 200); err != nil {
		return nil, err
	}
	if err := checkPositive("price", c.Price); err != nil {
		return nil, err
	}
	if !ValidCurrency(c.Currency) {
		return nil, InvalidField("currency", "%q is not an ISO 4217 currency code", CutText(c.Currency, maxQuoted))
	}
	return []Event{ProductAdded{Name: c.Name, Price: c.Price, Currency: c.Currency}}, nil
}

// checkOrderID checks the order id a reservation is for as the commands
// and reads of an order check its id (validateReadID): 1 to 100 bytes, no
// white space, control character or tenant separator. Not the stricter
// rule for a new order's id (IDRune): the fulfilment saga reserves and
// releases for orders placed before that rule, under their own ids
// (without the tenant, which the product's stream carries).
func checkOrderID(id string) error {
	return validateReadID("orderId", id)
}

func checkQuantity(q int64) error {
	if err := checkPositive("quantity", q); err != nil {
		return err
	}
	if q > MaxStockQuantity {
		return InvalidField("quantity", "quantity %d is above the maximum of %d", q, MaxStockQuantity)
	}
	return nil
}

// Apply implements Aggregate.
func (p *Product) Apply(e Event) {
	switch e := e.(type) {
	case ProductAdded:
		p.added, p.name, p.price, p.currency = true, e.Name, e.Price, e.Currency
	case ProductRestocked:
		p.onHand = e.OnHand
	case StockReserved:
		if p.reservations == nil {
			p.reservations = map[string]int64{}
		}
		p.reservations[e.OrderID] += e.Quantity
		p.reserved = e.Reserved
	case StockReleased:
		delete(p.reservations, e.OrderID)
		p.reserved = e.Reserved
	case PriceChanged:
		p.price = e.NewPrice
	}
}

func decodeProductEvent(eventType string, schemaVersion int, data json.RawMessage) (Event, error) {
	switch eventType {
	case "ProductAdded":
		return DecodeAs[ProductAdded](data)
	case "ProductRestocked":
		return DecodeAs[ProductRestocked](data)
	case "StockReserved":
		return DecodeAs[StockReserved](data)
	case "StockReleased":
		return DecodeAs[StockReleased](data)
	case "PriceChanged":
		return DecodeAs[PriceChanged](data)
	}
	return nil, UnknownEvent("product", eventType, schemaVersion)
}

// productState is the snapshot shape (StateVersion 1).
type productState struct {
	Added            bool
	Name, Currency   string
	Price            int64
	OnHand, Reserved int64
	Reservations     []productReservation
}

type productReservation struct {
	OrderID  string
	Quantity int64
}

func (p *Product) state() productState {
	s := productState{Added: p.added, Name: p.name, Currency: p.currency, Price: p.price, OnHand: p.onHand, Reserved: p.reserved}
	for id, q := range p.reservations {
		s.Reservations = append(s.Reservations, productReservation{id, q})
	}
	sort.Slice(s.Reservations, func(i, j int) bool { return s.Reservations[i].OrderID < s.Reservations[j].OrderID })
	return s
}

func loadProduct(sku string, raw json.RawMessage) (*Product, error) {
	var s productState
	if err := strictUnmarshal(raw, &s); err != nil {
		return nil, err
	}
	p := &Product{sku: sku, added: s.Added, name: s.Name, currency: s.Currency, price: s.Price, onHand: s.OnHand, reserved: s.Reserved}
	for _, r := range s.Reservations {
		if p.reservations == nil {
			p.reservations = map[string]int64{}
		}
		p.reservations[r.OrderID] = r.Quantity
	}
	return p, nil
}
