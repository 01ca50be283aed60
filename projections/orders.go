package projections

import (
	"context"
	"fmt"

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
func (Orders) Version() int { return 3 } // 2: subtotal and tax, from OrderSubmitted v2; 3: tenants

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
			revenue bigint NOT NULL DEFAULT 0,
			PRIMARY KEY (tenant, day, status)
		);`)
	return err
}

// Apply implements Projection.
func (Orders) Apply(ctx context.Context, tx pgx.Tx, events []domain.RecordedEvent) error {
	b := &pgx.Batch{}
	for _, re := range events {
		e, err := domain.Orders.Decode(re.Type, re.SchemaVersion, re.Data)
		if err != nil {
			return fmt.Errorf("event %s at %d: %w", re.Type, re.Position, err)
		}
		id, _ := domain.Orders.IDOf(re.StreamID) // qualified with the tenant
		// stats moves this order's count and value between statuses of its day.
		stats := func(newStatus string, newTotal any) {
			b.Queue(`UPDATE order_stats s SET orders = s.orders - 1, revenue = s.revenue - o.total
				FROM order_list o WHERE o.id = $1 AND s.tenant = o.tenant AND s.day = (o.placed_at AT TIME ZONE 'UTC')::date AND s.status = o.status`, id)
			b.Queue(`INSERT INTO order_stats (tenant, day, status, orders, revenue)
				SELECT tenant, (placed_at AT TIME ZONE 'UTC')::date, $2, 1, coalesce($3::bigint, total) FROM order_list WHERE id = $1
				ON CONFLICT (tenant, day, status) DO UPDATE SET orders = order_stats.orders + 1, revenue = order_stats.revenue + excluded.revenue`,
				id, newStatus, newTotal)
		}
		touch := func(set string, args ...any) {
			all := append([]any{id, re.StreamVersion, re.Position, re.RecordedAt}, args...)
			b.Queue(`UPDATE order_list SET version = $2, position = $3, updated_at = $4`+set+` WHERE id = $1`, all...)
		}
		history := func(status, reason string) {
			b.Queue(`INSERT INTO order_status_history (order_id, version, status, reason, at) VALUES ($1, $2, $3, $4, $5)`,
				id, re.StreamVersion, status, reason, re.RecordedAt)
		}
		switch e := e.(type) {
		case domain.OrderPlaced:
			b.Queue(`INSERT INTO order_list (id, customer_id, currency, status, placed_at, updated_at, version, position)
				VALUES ($1, $2, $3, 'OPEN', $4, $5, $6, $7)`, id, e.CustomerID, e.Currency, e.PlacedAt, re.RecordedAt, re.StreamVersion, re.Position)
			b.Queue(`INSERT INTO order_stats (tenant, day, status, orders) VALUES ($2, ($1::timestamptz AT TIME ZONE 'UTC')::date, 'OPEN', 1)
				ON CONFLICT (tenant, day, status) DO UPDATE SET orders = order_stats.orders + 1`, e.PlacedAt, domain.TenantOf(id))
			history(domain.StatusOpen, "")
		case domain.OrderItemAdded:
			b.Queue(`INSERT INTO order_items (order_id, sku, quantity, unit_price) VALUES ($1, $2, $3, $4)
				ON CONFLICT (order_id, sku) DO UPDATE SET quantity = order_items.quantity + excluded.quantity, unit_price = excluded.unit_price`,
				id, e.Sku, e.Quantity, e.UnitPrice)
			stats(domain.StatusOpen, e.OrderTotal)
			touch(", total = $5, item_count = item_count + $6", e.OrderTotal, e.Quantity)
		case domain.OrderItemRemoved:
			b.Queue(`DELETE FROM order_items WHERE order_id = $1 AND sku = $2`, id, e.Sku)
			stats(domain.StatusOpen, e.OrderTotal)
			touch(", total = $5, item_count = item_count - $6", e.OrderTotal, e.Quantity)
		case domain.OrderSubmitted:
			stats(domain.StatusSubmitted, nil)
			touch(", status = 'SUBMITTED', subtotal = $5, tax = $6, total = $7", e.Subtotal, e.Tax, e.Total)
			history(domain.StatusSubmitted, "")
		case domain.OrderConfirmed:
			stats(domain.StatusConfirmed, nil)
			touch(", status = 'CONFIRMED'")
			history(domain.StatusConfirmed, "")
		case domain.OrderShipped:
			stats(domain.StatusShipped, nil)
			touch(", status = 'SHIPPED'")
			history(domain.StatusShipped, e.TrackingNumber)
		case domain.OrderCancelled:
			stats(domain.StatusCancelled, nil)
			touch(", status = 'CANCELLED'")
			history(domain.StatusCancelled, e.Reason)
		}
	}
	return tx.SendBatch(ctx, b).Close()
}
