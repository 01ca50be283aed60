package model

// RowPosition returns the position of the last event reflected in the row
// (for subscriptions that must not send one state twice).
func (a *Account) RowPosition() int64 { return int64(a.Position) }

// RowPosition returns the position of the last event reflected in the row.
func (o *Order) RowPosition() int64 { return int64(o.Position) }

// RowPosition returns the position of the last event reflected in the row.
func (p *Product) RowPosition() int64 { return int64(p.Position) }

// RowPosition returns the position of the last event reflected in the row.
func (f *Fulfilment) RowPosition() int64 { return int64(f.Position) }
