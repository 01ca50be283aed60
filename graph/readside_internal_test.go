package graph

import (
	"context"
	"strings"
	"testing"

	"cqrsgate/domain"
	"cqrsgate/projections"
)

// TestReadModelLeftOutIsUnavailable: a gateway built with the read side but
// without one read model's queries (here the fulfilments') answers that
// read model's queries and subscriptions UNAVAILABLE, naming it (a nil
// pointer dereference made them internal errors).
func TestReadModelLeftOutIsUnavailable(t *testing.T) {
	r := &Resolver{AccountReads: new(projections.AccountQueries), OrderReads: new(projections.OrderQueries),
		ProductReads: new(projections.ProductQueries), Admin: new(projections.Admin), Positions: new(projections.Positions)}
	ctx := context.Background()
	check := func(what string, err error) {
		t.Helper()
		if domain.CodeOf(err) != domain.Unavailable || !strings.Contains(err.Error(), "fulfilments read model is not configured") {
			t.Errorf("%s without FulfilmentReads: %v, want UNAVAILABLE naming the fulfilments read model", what, err)
		}
	}
	_, err := (&queryResolver{r}).Fulfilment(ctx, "o-1", nil)
	check("fulfilment", err)
	_, err = (&queryResolver{r}).Fulfilments(ctx, nil, nil, nil, nil)
	check("fulfilments", err)
	_, err = (&subscriptionResolver{r}).FulfilmentChanged(ctx, "o-1", nil)
	check("fulfilmentChanged", err)
}
