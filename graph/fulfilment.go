package graph

import (
	"context"

	"cqrsgate/graph/model"
	"cqrsgate/projections"
)

// withSteps converts fulfilments, loading the steps of all of them with one
// query (never one per saga).
func (r *Resolver) withSteps(ctx context.Context, list []projections.FulfilmentSummary) ([]*model.Fulfilment, error) {
	ids := make([]string, len(list))
	for i, f := range list {
		ids[i] = f.OrderID
	}
	reads, err := configured(r.FulfilmentReads, "fulfilments")
	if err != nil {
		return nil, err
	}
	steps, err := reads.Steps(ctx, tenantOf(ctx), ids)
	if err != nil {
		return nil, err
	}
	out := make([]*model.Fulfilment, len(list))
	for i, f := range list {
		m := &model.Fulfilment{
			OrderID: f.OrderID, State: model.FulfilmentState(f.State), Reason: optional(f.Reason), AccountID: f.AccountID, Currency: f.Currency,
			Amount: model.Long(f.Amount), StartedAt: f.StartedAt, UpdatedAt: f.UpdatedAt, Version: int(f.Version), Position: model.Position(f.Position),
			Items: make([]*model.FulfilmentItem, len(f.Items)), Steps: []*model.FulfilmentStep{}, Compensation: []*model.FulfilmentStep{},
		}
		if f.CurrentStep != "" {
			m.CurrentStep = &model.FulfilmentCurrentStep{Step: f.CurrentStep, Sku: optional(f.CurrentSku)}
		}
		for j, it := range f.Items {
			m.Items[j] = &model.FulfilmentItem{Sku: it.Sku, Quantity: int(it.Quantity)}
		}
		for _, s := range steps[f.OrderID] {
			step := &model.FulfilmentStep{Step: s.Step, Sku: optional(s.Sku), Compensation: s.Compensation, Outcome: s.Outcome, Reason: optional(s.Reason), At: s.At}
			m.Steps = append(m.Steps, step)
			if s.Compensation {
				m.Compensation = append(m.Compensation, step)
			}
		}
		out[i] = m
	}
	return out, nil
}

// optional returns nil for "".
func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
