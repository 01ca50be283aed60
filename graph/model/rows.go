package model

// RowID and RowPosition identify a row and the position of the last event
// it reflects, for subscriptions that must not send one state twice.

// RowID returns the account's id.
func (a *Account) RowID() string { return a.ID }

// RowPosition returns the position of the last event reflected in the row.
func (a *Account) RowPosition() int64 { return int64(a.Position) }

// RowID returns the order's id.
func (o *Order) RowID() string { return o.ID }

// RowPosition returns the position of the last event reflected in the row.
func (o *Order) RowPosition() int64 { return int64(o.Position) }

// RowID returns the product's sku.
func (p *Product) RowID() string { return p.Sku }

// RowPosition returns the position of the last event reflected in the row.
func (p *Product) RowPosition() int64 { return int64(p.Position) }

// RowID returns the fulfilment's order id.
func (f *Fulfilment) RowID() string { return f.OrderID }

// RowPosition returns the position of the last event reflected in the row.
func (f *Fulfilment) RowPosition() int64 { return int64(f.Position) }
