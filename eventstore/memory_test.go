package eventstore_test

import (
	"testing"
	"time"

	"cqrsgate/eventstore"
	"cqrsgate/eventstore/eventstoretest"
)

func TestMemoryConformance(t *testing.T) {
	eventstoretest.Run(t, func(t *testing.T) eventstore.Store {
		return eventstore.NewMemory(eventstore.Limits{}, time.Now)
	})
}
