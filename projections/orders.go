package projections

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"cqrsgate/domain"
)

// Orders projects the order events into:
//   - order_list: one row per order (customer, status, total, item count,
//     subtotal and tax once submitted, times);
//   - order_items: the lines of each order;
//   - order_status_history: each status an order went through, with when and why;
//   - order_stats: per day placed (UTC) and current status, the number of
//     orders and their total value.
type Orders struct{}

var _ Projection = Orders{}

// Name implements Projection.
func (Orders) Name() string { return "orders" }

// Version implements Projection.
func (Orders) Version() int { return 5 } // 2: subtotal and tax, from OrderSubmitted v2; 3: tenants; 4: bulk folding; 5: exact revenue

// EventTypes implements Projection.
func (Orders) EventTypes() []string {
	return []string{"OrderPlaced", "OrderItemAdded", "OrderItemRemoved", "OrderSubmitted", "OrderConfirmed", "OrderCancelled", "OrderShipped"}
}

// Tables implements Projection.
func (Orders) Tables() []string {
	return []string{"order_list", "order_items", "order_status_history", "order_stats"}
}

// Setup implements Projection.
func (Orders) Setup(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, `
		CREATE TABLE IF NOT EXISTS order_list (
			id          text PRIMARY KEY,
			tenant      text GENERATED ALWAYS AS (`+tenantOf("id")+`) STORED,
			customer_id text        NOT NULL,
			currency    text        NOT NULL,
			status      text        NOT NULL,
			total       bigint      NOT NULL DEFAULT 0,
			item_count  bigint      NOT NULL DEFAULT 0,
			subtotal    bigint      NOT NULL DEFAULT 0,
			tax         bigint      NOT NULL DEFAULT 0,
			placed_at   timestamptz NOT NULL,
			updated_at  timestamptz NOT NULL,
			version     bigint      NOT NULL,
			position    bigint      NOT NULL
		);
		CREATE INDEX IF NOT EXISTS order_list_customer ON order_list (tenant, customer_id, placed_at, id);
		CREATE INDEX IF NOT EXISTS order_list_status ON order_list (tenant, status, placed_at, id);
		CREATE INDEX IF NOT EXISTS order_list_placed ON order_list (tenant, placed_at, id);
		CREATE INDEX IF NOT EXISTS order_list_total ON order_list (tenant, total, id);
		CREATE TABLE IF NOT EXISTS order_items (
			order_id   text   NOT NULL,
			sku        text   NOT NULL,
			quantity   bigint NOT NULL,
			unit_price bigint NOT NULL,
			PRIMARY KEY (order_id, sku)
		);
		CREATE TABLE IF NOT EXISTS order_status_history (
			order_id text        NOT NULL,
			version  bigint      NOT NULL,
			status   text        NOT NULL,
			reason   text        NOT NULL DEFAULT '',
			at       timestamptz NOT NULL,
			PRIMARY KEY (order_id, version)
		);
		CREATE TABLE IF NOT EXISTS order_stats (
			tenant  text   NOT NULL,
			day     date   NOT NULL,
			status  text   NOT NULL,
			orders  bigint NOT NULL DEFAULT 0,
			revenue numeric NOT NULL DEFAULT 0, -- a sum of totals: beyond 64 bits, it must not wrap
			PRIMARY KEY (tenant, day, status)
		);`)
	return err
}

// Apply implements Projection. It folds the batch in memory (one row per
// order touched, its lines, and per tenant, day and status the change in
// the statistics) and writes in bulk: the orders touched are read once;
// orders placed in the batch go in with COPY, with their lines, and the
// others are written back with one statement each; the status history
// goes in with COPY and the statistics with one upsert. Events on a stream
// that is not an order's are skipped (ownEvents).
func (Orders) Apply(ctx context.Context, tx pgx.Tx, events []domain.RecordedEvent) error {
	events, streamIDs := ownEvents(domain.Orders, events)
	if len(events) == 0 {
		return nil
	}
	type row struct {
		id, customer, currency, status string
		total, items, subtotal, tax    int64
		placedAt, updatedAt            time.Time
		version, position              int64
		tenant, day                    string // day: the UTC date the order was placed
		placed                         bool   // in this batch: no row yet
	}
	type line struct {
		quantity, price int64
		removed         bool
	}
	type lineKey struct{ order, sku string }
	type statKey struct{ tenant, status, day string }
	type stat struct {
		orders  int64
		revenue sum
	}

	touched := map[string]*row{}
	// The lines of the orders whose lines change are read, except for the
	// orders placed in this batch, which have none (or are placed twice,
	// which fails).
	skipLines := map[string]bool{}
	var ids, lineOrders []string
	for i, re := range events {
		id := streamIDs[i]
		if _, ok := touched[id]; !ok {
			touched[id] = nil
			ids = append(ids, id)
			skipLines[id] = re.Type == "OrderPlaced"
		}
		if (re.Type == "OrderItemAdded" || re.Type == "OrderItemRemoved") && !skipLines[id] {
			skipLines[id] = true // read once
			lineOrders = append(lineOrders, id)
		}
	}
	b := &pgx.Batch{}
	b.Queue(`SELECT id, customer_id, currency, status, total, item_count, subtotal, tax, placed_at, updated_at, version, position
		FROM order_list WHERE id = ANY($1)`, ids)
	b.Queue(`SELECT order_id, sku, quantity, unit_price FROM order_items WHERE order_id = ANY($1)`, lineOrders)
	lines := map[lineKey]*line{}
	err := func() error {
		br := tx.SendBatch(ctx, b)
		defer br.Close()
		rows, err := br.Query()
		if err != nil {
			return err
		}
		for rows.Next() {
			r := &row{}
			if err := rows.Scan(&r.id, &r.customer, &r.currency, &r.status, &r.total, &r.items, &r.subtotal, &r.tax, &r.placedAt, &r.updatedAt, &r.version, &r.position); err != nil {
				rows.Close()
				return err
			}
			r.tenant, r.day = domain.TenantOf(r.id), r.placedAt.UTC().Format(time.DateOnly)
			touched[r.id] = r
		}
		if err := rows.Err(); err != nil {
			return err
		}
		rows, err = br.Query()
		if err != nil {
			return err
		}
		for rows.Next() {
			var k lineKey
			l := &line{}
			if err := rows.Scan(&k.order, &k.sku, &l.quantity, &l.price); err != nil {
				rows.Close()
				return err
			}
			lines[k] = l
		}
		return rows.Err()
	}()
	if err != nil {
		return err
	}

	stats := map[statKey]*stat{}
	// count adds (in, +1) or removes (-1) an order of total to or from the
	// statistics of status on the order's day.
	count := func(r *row, status string, in int64, total int64) {
		k := statKey{r.tenant, status, r.day}
		s := stats[k]
		if s == nil {
			s = &stat{}
			stats[k] = s
		}
		s.orders += in
		if in > 0 {
			s.revenue.add(total)
		} else {
			s.revenue.sub(total)
		}
	}
	move := func(r *row, status string, total int64) { // the order leaves its (status, total) for these
		count(r, r.status, -1, r.total)
		count(r, status, 1, total)
		r.status, r.total = status, total
	}
	type step struct {
		order          string
		version        int64
		status, reason string
		at             time.Time
	}
	var history []step
	for i, re := range events {
		e, err := decodeOrderEvent(re)
		if err != nil {
			return fmt.Errorf("event %s at %d: %w", re.Type, re.Position, err)
		}
		id := streamIDs[i]
		r := touched[id]
		if placed, ok := e.(domain.OrderPlaced); ok {
			if r != nil {
				return fmt.Errorf("order %s placed twice (position %d)", id, re.Position)
			}
			r = &row{id: id, customer: placed.CustomerID, currency: placed.Currency, placedAt: placed.PlacedAt, status: domain.StatusOpen,
				tenant: domain.TenantOf(id), day: placed.PlacedAt.UTC().Format(time.DateOnly), placed: true}
			touched[id] = r
			count(r, domain.StatusOpen, 1, 0)
		}
		if r == nil {
			return fmt.Errorf("event %s at %d for order %s, which was never placed", re.Type, re.Position, id)
		}
		switch e := e.(type) {
		case domain.OrderPlaced:
			history = append(history, step{id, re.StreamVersion, domain.StatusOpen, "", re.RecordedAt})
		case domain.OrderItemAdded:
			l := lines[lineKey{id, e.Sku}]
			if l == nil || l.removed {
				l = &line{}
				lines[lineKey{id, e.Sku}] = l
			}
			l.quantity += e.Quantity
			l.price = e.UnitPrice
			r.items += e.Quantity
			move(r, domain.StatusOpen, e.OrderTotal)
		case domain.OrderItemRemoved:
			lines[lineKey{id, e.Sku}] = &line{removed: true}
			r.items -= e.Quantity
			move(r, domain.StatusOpen, e.OrderTotal)
		case domain.OrderSubmitted:
			r.subtotal, r.tax = e.Subtotal, e.Tax
			move(r, domain.StatusSubmitted, e.Total)
			history = append(history, step{id, re.StreamVersion, domain.StatusSubmitted, "", re.RecordedAt})
		case domain.OrderConfirmed:
			move(r, domain.StatusConfirmed, r.total)
			history = append(history, step{id, re.StreamVersion, domain.StatusConfirmed, "", re.RecordedAt})
		case domain.OrderShipped:
			move(r, domain.StatusShipped, r.total)
			history = append(history, step{id, re.StreamVersion, domain.StatusShipped, e.TrackingNumber, re.RecordedAt})
		case domain.OrderCancelled:
			move(r, domain.StatusCancelled, r.total)
			history = append(history, step{id, re.StreamVersion, domain.StatusCancelled, e.Reason, re.RecordedAt})
		}
		r.version, r.position, r.updatedAt = re.StreamVersion, re.Position, re.RecordedAt
	}

	// Orders placed in this batch have no row and no lines yet: COPY.
	var placed, changed []*row
	for _, id := range ids {
		if r := touched[id]; r.placed {
			placed = append(placed, r)
		} else {
			changed = append(changed, r)
		}
	}
	type newLine struct {
		order, sku      string
		quantity, price int64
	}
	var newLines []newLine
	var delOrders, delSkus, upOrders, upSkus []string
	var upQty, upPrice []int64
	for k, l := range lines {
		switch {
		case touched[k.order].placed:
			if !l.removed {
				newLines = append(newLines, newLine{k.order, k.sku, l.quantity, l.price})
			}
		case l.removed:
			delOrders, delSkus = append(delOrders, k.order), append(delSkus, k.sku)
		default:
			upOrders, upSkus, upQty, upPrice = append(upOrders, k.order), append(upSkus, k.sku), append(upQty, l.quantity), append(upPrice, l.price)
		}
	}

	w := &pgx.Batch{}
	if n := len(changed); n > 0 {
		var (
			idCol, customers, currencies, statuses = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
			totals, counts, subtotals, taxes       = make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
			placedAts, updatedAts                  = make([]time.Time, n), make([]time.Time, n)
			versions, positions                    = make([]int64, n), make([]int64, n)
		)
		for i, r := range changed {
			idCol[i], customers[i], currencies[i], statuses[i] = r.id, r.customer, r.currency, r.status
			totals[i], counts[i], subtotals[i], taxes[i] = r.total, r.items, r.subtotal, r.tax
			placedAts[i], updatedAts[i], versions[i], positions[i] = r.placedAt, r.updatedAt, r.version, r.position
		}
		w.Queue(`INSERT INTO order_list (id, customer_id, currency, status, total, item_count, subtotal, tax, placed_at, updated_at, version, position)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[], $7::bigint[], $8::bigint[], $9::timestamptz[], $10::timestamptz[], $11::bigint[], $12::bigint[])
		ON CONFLICT (id) DO UPDATE SET status = excluded.status, total = excluded.total, item_count = excluded.item_count, subtotal = excluded.subtotal,
			tax = excluded.tax, updated_at = excluded.updated_at, version = excluded.version, position = excluded.position`,
			idCol, customers, currencies, statuses, totals, counts, subtotals, taxes, placedAts, updatedAts, versions, positions)
	}
	if len(delOrders) > 0 {
		w.Queue(`DELETE FROM order_items i USING unnest($1::text[], $2::text[]) AS d(order_id, sku) WHERE i.order_id = d.order_id AND i.sku = d.sku`, delOrders, delSkus)
	}
	if len(upOrders) > 0 {
		w.Queue(`INSERT INTO order_items (order_id, sku, quantity, unit_price) SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[])
			ON CONFLICT (order_id, sku) DO UPDATE SET quantity = excluded.quantity, unit_price = excluded.unit_price`, upOrders, upSkus, upQty, upPrice)
	}
	var sTenants, sStatuses, sDays, sRevenue []string
	var sOrders []int64
	for k, d := range stats {
		if d.orders != 0 || !d.revenue.isZero() {
			sTenants, sStatuses, sDays = append(sTenants, k.tenant), append(sStatuses, k.status), append(sDays, k.day)
			sOrders, sRevenue = append(sOrders, d.orders), append(sRevenue, d.revenue.String())
		}
	}
	if len(sTenants) > 0 {
		w.Queue(`INSERT INTO order_stats (tenant, day, status, orders, revenue)
			SELECT t, d::date, s, o, r FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::numeric[]) AS u(t, d, s, o, r)
			ON CONFLICT (tenant, day, status) DO UPDATE SET orders = order_stats.orders + excluded.orders, revenue = order_stats.revenue + excluded.revenue`,
			sTenants, sDays, sStatuses, sOrders, sRevenue)
		// A status no order of the day is in any more has no row, however
		// the changes were batched.
		w.Queue(`DELETE FROM order_stats o USING unnest($1::text[], $2::text[], $3::text[]) AS u(t, d, s)
			WHERE o.tenant = u.t AND o.day = u.d::date AND o.status = u.s AND o.orders = 0 AND o.revenue = 0`, sTenants, sDays, sStatuses)
	}
	if w.Len() > 0 {
		if err := tx.SendBatch(ctx, w).Close(); err != nil {
			return fmt.Errorf("orders: %w", err)
		}
	}
	if err := copyRows(ctx, tx, "order_list",
		[]string{"id", "customer_id", "currency", "status", "total", "item_count", "subtotal", "tax", "placed_at", "updated_at", "version", "position"},
		placed, func(r **row, dst []any) {
			x := *r
			dst[0], dst[1], dst[2], dst[3], dst[4], dst[5] = &x.id, &x.customer, &x.currency, &x.status, &x.total, &x.items
			dst[6], dst[7], dst[8], dst[9], dst[10], dst[11] = &x.subtotal, &x.tax, &x.placedAt, &x.updatedAt, &x.version, &x.position
		}); err != nil {
		return fmt.Errorf("new orders: %w", err)
	}
	if err := copyRows(ctx, tx, "order_items", []string{"order_id", "sku", "quantity", "unit_price"}, newLines, func(l *newLine, dst []any) {
		dst[0], dst[1], dst[2], dst[3] = &l.order, &l.sku, &l.quantity, &l.price
	}); err != nil {
		return fmt.Errorf("lines of new orders: %w", err)
	}
	if err := copyRows(ctx, tx, "order_status_history", []string{"order_id", "version", "status", "reason", "at"}, history, func(s *step, dst []any) {
		dst[0], dst[1], dst[2], dst[3], dst[4] = &s.order, &s.version, &s.status, &s.reason, &s.at
	}); err != nil {
		return fmt.Errorf("order status history: %w", err)
	}
	return nil
}
