package graph

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"

	"cqrsgate/domain"
	"cqrsgate/eventstore"
	"cqrsgate/graph/model"
)

func toEvent(e domain.RecordedEvent) *model.Event {
	return &model.Event{
		ID:                  e.ID,
		StreamID:            unqualified(e.StreamID),
		StreamVersion:       int(e.StreamVersion),
		Position:            model.Position(e.Position),
		Type:                e.Type,
		StoredSchemaVersion: e.SchemaVersion,
		StoredData:          model.JSON(e.Data),
		Metadata:            model.JSON(e.Metadata),
		RecordedAt:          e.RecordedAt,
	}
}

func toEvents(evs []domain.RecordedEvent) []*model.Event {
	out := make([]*model.Event, len(evs))
	for i, e := range evs {
		out[i] = toEvent(e)
	}
	return out
}

func eventPage(p eventstore.Page, limit int) *model.EventPage {
	if limit == 0 {
		limit = eventstore.DefaultLimit
	}
	return &model.EventPage{
		Events:  toEvents(p.Events),
		Next:    model.Position(p.Next),
		Head:    model.Position(p.Head),
		HasMore: len(p.Events) == limit,
	}
}

func appendResult(res domain.AppendResult, correlationID string) *model.AppendResult {
	return &model.AppendResult{
		StreamID:      unqualified(res.StreamID),
		FirstVersion:  int(res.FirstVersion),
		Version:       int(res.LastVersion),
		FirstPosition: model.Position(res.FirstPosition),
		Position:      model.Position(res.LastPosition),
		Duplicate:     res.Duplicate,
		CorrelationID: correlationID,
		Events:        toEvents(res.Events),
	}
}

// withCorrelation returns the event's metadata with the request's
// correlation id added when the client did not set one.
func withCorrelation(meta model.JSON, correlationID string, index int) (json.RawMessage, error) {
	m := map[string]json.RawMessage{}
	if len(meta) > 0 && string(meta) != "null" {
		if err := json.Unmarshal(meta, &m); err != nil {
			return nil, domain.InvalidField("events."+strconv.Itoa(index)+".metadata", "metadata must be a JSON object")
		}
	}
	given, ok := m[domain.MetaCorrelationID]
	if !ok {
		m[domain.MetaCorrelationID], _ = json.Marshal(correlationID)
		return json.Marshal(m)
	}
	// One the client gives is what events(correlationId:) finds the event
	// by: a string, as the gateway's own are.
	var id string
	field := "events." + strconv.Itoa(index) + ".metadata.correlationId"
	if err := json.Unmarshal(given, &id); err != nil {
		return nil, domain.InvalidField(field, "correlationId must be a string")
	}
	if id == "" || len(id) > 128 {
		return nil, domain.InvalidField(field, "correlationId must be 1 to 128 bytes, got %d", len(id))
	}
	for _, r := range id {
		if !domain.TextRune(r) {
			return nil, domain.InvalidField(field, "correlationId contains a control or invisible character (%U)", r)
		}
	}
	return json.Marshal(m)
}

// storedIDs returns the correlation and causation ids stored in the
// metadata of the first of events (an idempotent retry's result, which is
// the original append's), or correlationID and causationID where it holds
// none.
func storedIDs(events []domain.RecordedEvent, correlationID, causationID string) (string, string) {
	if len(events) == 0 {
		return correlationID, causationID
	}
	var meta struct {
		Correlation *string `json:"correlationId"`
		Causation   *string `json:"causationId"`
	}
	if json.Unmarshal(events[0].Metadata, &meta) != nil {
		return correlationID, causationID
	}
	if meta.Correlation != nil {
		correlationID = *meta.Correlation
	}
	if meta.Causation != nil {
		causationID = *meta.Causation
	}
	return correlationID, causationID
}

// inClientTerms returns err with the tenant-qualified stream name it may
// quote (a conflict's message and its stream extension) spelt as the
// client gave it: ids and streams go in and come back without a tenant
// prefix.
func inClientTerms(err error, qualified, stream string) error {
	var de *domain.Error
	if qualified == stream || !errors.As(err, &de) {
		return err
	}
	out := *de
	// Quoted first (%q escapes a '"' or '\' a stream id may hold), then
	// as it is.
	out.Message = strings.ReplaceAll(de.Message, strconv.Quote(qualified), strconv.Quote(stream))
	out.Message = strings.ReplaceAll(out.Message, qualified, stream)
	if len(de.Details) > 0 {
		out.Details = make(map[string]any, len(de.Details))
		for k, v := range de.Details {
			if s, ok := v.(string); ok && s == qualified {
				v = stream
			}
			out.Details[k] = v
		}
	}
	return &out
}
