package projections

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"cqrsgate/domain"
)

// OrderSummary is a row of the order list.
type OrderSummary struct {
	ID, CustomerID, Currency, Status string
	Total, ItemCount                 int64
	// Subtotal and Tax are set when the order is submitted (0 before).
	Subtotal, Tax       int64
	PlacedAt, UpdatedAt time.Time
	Version, Position   int64
}

// OrderItem is a line of an order.
type OrderItem struct {
	OrderID, Sku        string
	Quantity, UnitPrice int64
}

// StatusChange is an entry of an order's status history.
type StatusChange struct {
	Version int64
	Status  string
	Reason  string
	At      time.Time
}

// OrderStat is the number of orders placed on Day that are now in Status,
// and their total value.
type OrderStat struct {
	Day    time.Time
	Status string
	Orders int64
	// Revenue is the orders' total as a decimal integer, exact at any
	// size (see Long).
	Revenue string
}

// OrderFilter narrows ListOrders; empty fields match everything.
type OrderFilter struct{ Status, CustomerID string }

// OrderSort orders ListOrders.
type OrderSort struct {
	// ByTotal sorts by total instead of by time placed.
	ByTotal bool
	// Descending reverses the order.
	Descending bool
}

// OrderQueries reads the orders read model.
type OrderQueries struct{ pool *pgxpool.Pool }

// NewOrderQueries returns the order queries on pool.
func NewOrderQueries(pool *pgxpool.Pool) *OrderQueries { return &OrderQueries{pool: pool} }

const orderColumns = `id, customer_id, currency, status, total, item_count, subtotal, tax, placed_at, updated_at, version, position`

func scanOrder(r pgx.CollectableRow) (OrderSummary, error) {
	o, err := pgx.RowToStructByPos[OrderSummary](r)
	o.ID = plainID(o.ID)
	return o, err
}

// Order returns tenant's order id, or a NotFound *domain.Error.
func (q *OrderQueries) Order(ctx context.Context, tenant, id string) (OrderSummary, error) {
	return rowByID(ctx, q.pool, "order", "id", tenant, id, `SELECT `+orderColumns+` FROM readmodel.order_list WHERE id = $1`, scanOrder,
		func() error { return domain.Errorf(domain.NotFound, "order %s not found", id) })
}

// Orders returns up to first of tenant's orders matching f in the order s
// asks for, after the cursor after, the next cursor when more follow, and
// the number matching. Errors: Invalid for a bad cursor or size.
func (q *OrderQueries) Orders(ctx context.Context, tenant string, f OrderFilter, s OrderSort, first int, after string) ([]OrderSummary, string, int, error) {
	first, err := pageSize(first)
	if err != nil {
		return nil, "", 0, err
	}
	key, dir, cmp := "placed_at", "ASC", ">"
	if s.ByTotal {
		key = "total"
	}
	if s.Descending {
		dir, cmp = "DESC", "<"
	}
	for _, v := range []struct{ field, value string }{{"filter.status", f.Status}, {"filter.customerId", f.CustomerID}} {
		if err := domain.CheckStorable(v.field, v.value); err != nil {
			return nil, "", 0, err
		}
	}
	where := `tenant = $3 AND ($1 = '' OR status = $1) AND ($2 = '' OR customer_id = $2)`
	args := []any{f.Status, f.CustomerID, tenant}
	page := where
	if after != "" {
		raw, err := decodeCursor(orderList(s), after)
		if err != nil {
			return nil, "", 0, err
		}
		sortKey, id, ok := strings.Cut(raw, "|")
		if !ok {
			return nil, "", 0, domain.InvalidField("after", "invalid cursor")
		}
		var k any = sortKey
		if s.ByTotal {
			n, err := strconv.ParseInt(sortKey, 10, 64)
			if err != nil {
				return nil, "", 0, domain.InvalidField("after", "invalid cursor")
			}
			k = n
		} else {
			t, err := time.Parse(time.RFC3339Nano, sortKey)
			if err != nil {
				return nil, "", 0, domain.InvalidField("after", "invalid cursor")
			}
			k = t
		}
		// Within one tenant, qualified ids sort as the plain ids do.
		args = append(args, k, domain.Qualify(tenant, id))
		page += fmt.Sprintf(" AND (%s, id) %s ($4, $5)", key, cmp)
	}
	return countedPage(ctx, q.pool, "orders", first,
		`SELECT count(*) FROM readmodel.order_list WHERE `+where, []any{f.Status, f.CustomerID, tenant},
		fmt.Sprintf(`SELECT %s FROM readmodel.order_list WHERE %s ORDER BY %s %s, id %s LIMIT %d`, orderColumns, page, key, dir, dir, first+1), args,
		scanOrder, func(o OrderSummary) string { return OrderCursor(o, s) })
}

// OrderCursor returns the cursor that pages past o in sort order s.
func OrderCursor(o OrderSummary, s OrderSort) string {
	if s.ByTotal {
		return encodeCursor(orderList(s), fmt.Sprintf("%d|%s", o.Total, o.ID))
	}
	return encodeCursor(orderList(s), o.PlacedAt.UTC().Format(time.RFC3339Nano)+"|"+o.ID)
}

// qualifyAll returns ids in tenant's namespace.
func qualifyAll(tenant string, ids []string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = domain.Qualify(tenant, id)
	}
	return out
}

// Items returns the lines of tenant's given orders, in one query, by order
// and sku.
func (q *OrderQueries) Items(ctx context.Context, tenant string, orderIDs []string) (map[string][]OrderItem, error) {
	rows, err := q.pool.Query(ctx, `SELECT order_id, sku, quantity, unit_price FROM readmodel.order_items WHERE order_id = ANY($1) ORDER BY order_id, sku`,
		qualifyAll(tenant, orderIDs))
	if err != nil {
		return nil, readError("order items", err)
	}
	items, err := pgx.CollectRows(rows, pgx.RowToStructByPos[OrderItem])
	if err != nil {
		return nil, readError("order items", err)
	}
	out := map[string][]OrderItem{}
	for _, it := range items {
		it.OrderID = plainID(it.OrderID)
		out[it.OrderID] = append(out[it.OrderID], it)
	}
	return out, nil
}

// History returns the status history of tenant's given orders, in one query.
func (q *OrderQueries) History(ctx context.Context, tenant string, orderIDs []string) (map[string][]StatusChange, error) {
	rows, err := q.pool.Query(ctx, `SELECT order_id, version, status, reason, at FROM readmodel.order_status_history WHERE order_id = ANY($1) ORDER BY order_id, version`,
		qualifyAll(tenant, orderIDs))
	if err != nil {
		return nil, readError("order history", err)
	}
	out := map[string][]StatusChange{}
	for rows.Next() {
		var id string
		var c StatusChange
		if err := rows.Scan(&id, &c.Version, &c.Status, &c.Reason, &c.At); err != nil {
			rows.Close()
			return nil, readError("order history", err)
		}
		out[plainID(id)] = append(out[plainID(id)], c)
	}
	if err := rows.Err(); err != nil {
		return nil, readError("order history", err)
	}
	return out, nil
}

// firstDay and lastDay bound the days Statistics reads.
var (
	firstDay = time.Date(1, time.January, 1, 0, 0, 0, 0, time.UTC)
	lastDay  = time.Date(10000, time.January, 1, 0, 0, 0, 0, time.UTC).Add(-time.Nanosecond)
)

// Statistics returns, for tenant's orders, per UTC day placed from `from`
// to `to` inclusive and per current status, the number of orders and their
// value.
func (q *OrderQueries) Statistics(ctx context.Context, tenant string, from, to time.Time) ([]OrderStat, error) {
	if to.Before(from) {
		return nil, domain.InvalidField("to", "to is before from")
	}
	// Orders are placed within years 1 to 9999 (PostgreSQL has no year 0,
	// and a date Go writes outside them it cannot read): a range beyond
	// them holds no day of orders.
	from, to = from.UTC(), to.UTC()
	if to.Before(firstDay) || from.After(lastDay) {
		return nil, nil
	}
	if from.Before(firstDay) {
		from = firstDay
	}
	if to.After(lastDay) {
		to = lastDay
	}
	rows, err := q.pool.Query(ctx, `SELECT day, status, orders, revenue::text FROM readmodel.order_stats
		WHERE tenant = $3 AND day BETWEEN $1::date AND $2::date AND orders > 0 ORDER BY day, status`,
		from.Format(time.DateOnly), to.Format(time.DateOnly), tenant)
	if err != nil {
		return nil, readError("order statistics", err)
	}
	stats, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (OrderStat, error) {
		var s OrderStat
		err := row.Scan(&s.Day, &s.Status, &s.Orders, &s.Revenue)
		return s, err
	})
	if err != nil {
		return nil, readError("order statistics", err)
	}
	return stats, nil
}

// orderList names the list of orders sorted by s, for its cursors: a
// cursor of one order is not valid in another (descending orders share
// their key, and the direction is in the query).
func orderList(s OrderSort) string {
	if s.ByTotal {
		return "order.total"
	}
	return "order.placed"
}
