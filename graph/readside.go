package graph

import (
	"context"
	"errors"
	"time"

	"cqrsgate/domain"
	"cqrsgate/eventstore"
	"cqrsgate/graph/model"
	"cqrsgate/projections"
)

// readSide reports Unavailable when the handler was built without the
// read side (as in tests of the write side alone).
func (r *Resolver) readSide() error {
	if r.AccountReads == nil || r.OrderReads == nil || r.ProductReads == nil || r.Admin == nil || r.Positions == nil {
		return domain.Errorf(domain.Unavailable, "the read side is not configured")
	}
	return nil
}

// configured returns q, a read model's queries, or Unavailable naming
// the read model when the handler was built without them (left out of
// Config): a resolver that used a nil one failed with a nil pointer
// dereference, an internal error that said nothing of the cause.
func configured[Q any](q *Q, readModel string) (*Q, error) {
	if q == nil {
		return nil, domain.Errorf(domain.Unavailable, "the %s read model is not configured in this gateway", readModel)
	}
	return q, nil
}

// waitFor implements atLeast: it waits until the named projections have
// applied the log up to the position, for at most ReadTimeout.
func (r *Resolver) waitFor(ctx context.Context, atLeast *model.Position, names ...string) error {
	if err := r.readSide(); err != nil {
		return err
	}
	if atLeast == nil {
		return nil
	}
	return r.Positions.WaitFor(ctx, names, int64(*atLeast), r.readTimeout())
}

// readTimeout is how long atLeast waits: ReadTimeout, 5 s when unset.
func (r *Resolver) readTimeout() time.Duration {
	if r.ReadTimeout <= 0 {
		return 5 * time.Second
	}
	return r.ReadTimeout
}

// waitForLog implements events' atLeast: it waits until the log is
// readable up to the position (every transaction older than the event's
// own has ended; see eventstore.ReadAll), for at most ReadTimeout. With a
// hub (every gateway has one) it waits for the hub to move past the
// position, which costs the database nothing however many fields wait;
// without one it looks at the log's head at growing intervals (up to
// 50 ms), each look bounded by the deadline.
func (r *Resolver) waitForLog(ctx context.Context, atLeast *model.Position) error {
	if atLeast == nil || *atLeast <= 0 {
		return nil
	}
	want, timeout := int64(*atLeast), r.readTimeout()
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var err error
	if r.Hub != nil {
		err = r.Hub.WaitPast(wctx, want)
	} else {
		err = r.pollHead(wctx, want)
	}
	if err == nil || ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var reached int64
	if r.Hub != nil {
		reached, _ = r.Hub.Stats()
	} else if h, herr := r.head(ctx); herr == nil {
		reached = h
	}
	return domain.StaleError("the log is readable up to", min(reached, want-1), want, timeout)
}

// pollHead waits until the log's readable head reaches want, looking at
// once and then at growing intervals up to 50 ms, until ctx ends.
func (r *Resolver) pollHead(ctx context.Context, want int64) error {
	pause := time.Millisecond
	for {
		head, err := r.head(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err() // the deadline, not the store
			}
			return err
		}
		if head >= want {
			return nil
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		pause = min(2*pause, 50*time.Millisecond)
	}
}

func (r *Resolver) head(ctx context.Context) (int64, error) {
	page, err := r.reads().ReadAll(ctx, eventstore.AllQuery{Limit: 1})
	if err != nil {
		return 0, err
	}
	return page.Head, nil
}

// projectionStatuses lists the projections with their lag behind the log.
func (r *Resolver) projectionStatuses(ctx context.Context) ([]*model.ProjectionStatus, error) {
	if err := r.readSide(); err != nil {
		return nil, err
	}
	reports, err := r.Admin.Reports(ctx, r.reads())
	if err != nil {
		return nil, err
	}
	// A failure's error, event and position may name any tenant's data
	// (the error of a fold names the tenant-qualified id): callers scoped
	// to a tenant see that a projection failed, not on what.
	scoped := tenantOf(ctx) != ""
	out := make([]*model.ProjectionStatus, len(reports))
	for i, rep := range reports {
		out[i] = toProjectionStatus(rep)
		if scoped {
			out[i].LastError, out[i].FailedPosition, out[i].FailedEventID = nil, nil, nil
		}
	}
	return out, nil
}

// generationStatus returns the status of generation g (its name, version
// and generation) as projections lists it, with its lag; nil when it was
// retired meanwhile (a rebuild cancelled, or replaced by a newer one).
func (r *Resolver) generationStatus(ctx context.Context, g projections.Status) (*model.ProjectionStatus, error) {
	return r.statusWhere(ctx, func(s *model.ProjectionStatus) bool {
		return s.Name == g.Name && s.Version == g.Version && s.Generation == g.Generation
	})
}

// servingStatus returns the status of the generation of projection name
// that queries read; nil when none does.
func (r *Resolver) servingStatus(ctx context.Context, name string) (*model.ProjectionStatus, error) {
	return r.statusWhere(ctx, func(s *model.ProjectionStatus) bool { return s.Name == name && s.Serving })
}

func (r *Resolver) statusWhere(ctx context.Context, match func(*model.ProjectionStatus) bool) (*model.ProjectionStatus, error) {
	list, err := r.projectionStatuses(ctx)
	if err != nil {
		return nil, err
	}
	for _, s := range list {
		if match(s) {
			return s, nil
		}
	}
	return nil, nil
}

// shown picks, of the generations an administrator's mutation acted on
// (by version and generation, at least one), the one its result shows: the
// one queries read when it is among them, else the newest.
func shown(acted []projections.Status) projections.Status {
	for _, s := range acted {
		if s.Serving {
			return s
		}
	}
	return acted[len(acted)-1]
}

func toProjectionStatus(rep projections.Report) *model.ProjectionStatus {
	s := rep.Status
	out := &model.ProjectionStatus{
		Name: s.Name, Version: s.Version, Generation: s.Generation, Status: s.Status, Serving: s.Serving,
		Position: model.Position(s.Position), Lag: model.Position(rep.Lag), LagSeconds: rep.LagSeconds,
		Failures: s.Failures, UpdatedAt: s.UpdatedAt,
	}
	if s.LastError != "" {
		out.LastError = &s.LastError
	}
	if s.FailedPosition > 0 {
		p := model.Position(s.FailedPosition)
		out.FailedPosition = &p
		out.FailedEventID = &s.FailedEventID
	}
	return out
}

func toAccount(a projections.AccountSummary) *model.Account {
	return &model.Account{
		ID: a.ID, Owner: a.Owner, Currency: a.Currency, Balance: model.Long(a.Balance), Status: a.Status,
		OverdraftLimit: model.Long(a.OverdraftLimit), DailyWithdrawalLimit: model.Long(a.DailyLimit),
		OpenedAt: a.OpenedAt, LastActivityAt: a.LastActivityAt, Version: int(a.Version), Position: model.Position(a.Position),
	}
}

func pageInfo(next string) *model.PageInfo {
	if next == "" {
		return &model.PageInfo{}
	}
	return &model.PageInfo{HasNextPage: true, EndCursor: &next}
}

// pageArg returns the page size a list field was asked for, 0 for the
// default when first is absent; an explicit 0 is out of range, not the
// default.
func pageArg(first *int) (int, error) {
	switch {
	case first == nil:
		return 0, nil
	case *first == 0:
		return 0, domain.InvalidField("first", "first must be 1 to %d, got 0", projections.MaxPageSize)
	}
	return *first, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// versionArg reads a time-travel version: absent means the latest.
func versionArg(v *int) (int64, error) {
	if v == nil {
		return 0, nil
	}
	if *v < 1 {
		return 0, domain.InvalidField("version", "version must be at least 1, got %d", *v)
	}
	return int64(*v), nil
}
