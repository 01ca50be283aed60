package graph

import (
	"context"

	"cqrsgate/graph/model"
	"cqrsgate/projections"
)

func (r *Resolver) orderConnection(ctx context.Context, f projections.OrderFilter, orderBy *model.OrderOrderBy, first *int, after *string, atLeast *model.Position) (*model.OrderConnection, error) {
	if err := r.waitFor(ctx, atLeast, "orders"); err != nil {
		return nil, err
	}
	var sort projections.OrderSort
	if orderBy != nil {
		sort = projections.OrderSort{ByTotal: orderBy.Field == model.OrderSortFieldTotal, Descending: orderBy.Direction == model.SortDirectionDesc}
	}
	n, err := pageArg(first)
	if err != nil {
		return nil, err
	}
	list, next, total, err := r.OrderReads.Orders(ctx, tenantOf(ctx), f, sort, n, deref(after))
	if err != nil {
		return nil, err
	}
	nodes, err := r.withItems(ctx, list)
	if err != nil {
		return nil, err
	}
	conn := &model.OrderConnection{Edges: make([]*model.OrderEdge, len(list)), TotalCount: total, PageInfo: pageInfo(next)}
	for i, o := range list {
		conn.Edges[i] = &model.OrderEdge{Cursor: projections.OrderCursor(o, sort), Node: nodes[i]}
	}
	return conn, nil
}

// withItems converts orders, loading the items and status history of all of
// them with one query each (never one per order).
func (r *Resolver) withItems(ctx context.Context, list []projections.OrderSummary) ([]*model.Order, error) {
	ids := make([]string, len(list))
	for i, o := range list {
		ids[i] = o.ID
	}
	items, err := r.OrderReads.Items(ctx, tenantOf(ctx), ids)
	if err != nil {
		return nil, err
	}
	history, err := r.OrderReads.History(ctx, tenantOf(ctx), ids)
	if err != nil {
		return nil, err
	}
	out := make([]*model.Order, len(list))
	for i, o := range list {
		m := &model.Order{
			ID: o.ID, CustomerID: o.CustomerID, Currency: o.Currency, Status: o.Status, Total: model.Long(o.Total),
			Subtotal: model.Long(o.Subtotal), Tax: model.Long(o.Tax), ItemCount: int(o.ItemCount), PlacedAt: o.PlacedAt, UpdatedAt: o.UpdatedAt, Version: int(o.Version), Position: model.Position(o.Position),
			Items: []*model.OrderItem{}, StatusHistory: []*model.OrderStatusChange{},
		}
		for _, it := range items[o.ID] {
			m.Items = append(m.Items, &model.OrderItem{Sku: it.Sku, Quantity: int(it.Quantity), UnitPrice: model.Long(it.UnitPrice)})
		}
		for _, h := range history[o.ID] {
			m.StatusHistory = append(m.StatusHistory, &model.OrderStatusChange{Version: int(h.Version), Status: h.Status, Reason: h.Reason, At: h.At})
		}
		out[i] = m
	}
	return out, nil
}

func toProduct(p projections.CatalogueEntry) *model.Product {
	return &model.Product{
		Sku: p.Sku, Name: p.Name, Price: model.Long(p.Price), Currency: p.Currency, OnHand: int(p.OnHand),
		Reserved: int(p.Reserved), Available: int(p.Available), Version: int(p.Version), Position: model.Position(p.Position),
	}
}
