package schemaregistry_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"cqrsgate/domain"
	"cqrsgate/eventstore"
	"cqrsgate/schemaregistry"
)

// The registry's costs per event. Run with
//
//	go test -run '^$' -bench . -benchmem ./schemaregistry
//
// BenchmarkValidate and BenchmarkUpcast print ns/op and allocs/op for one
// event; BenchmarkAppend prints events/s appended through PostgreSQL with
// validation on and off (one writer, 1 and 100 events per append).

func benchEnv(b *testing.B) *env {
	b.Helper()
	e := newEnvTB(b, schemaregistry.Options{})
	if err := e.reg.Seed(context.Background(), domain.EventSchemas()); err != nil {
		b.Fatal(err)
	}
	return e
}

func BenchmarkValidate(b *testing.B) {
	e := benchEnv(b)
	ctx := context.Background()
	data := []byte(`{"owner": "Ann Lee", "currency": "EUR", "overdraftLimit": 10000, "dailyWithdrawalLimit": 50000, "openedAt": "2026-11-24T12:00:00Z"}`)
	b.ReportAllocs()
	for b.Loop() {
		if err := e.reg.Validate(ctx, "AccountOpened", 1, data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUpcast(b *testing.B) {
	e := benchEnv(b)
	ctx := context.Background()
	v1 := json.RawMessage(`{"total": 4500, "itemCount": 3, "submittedAt": "2026-11-24T12:00:00Z"}`)
	b.Run("v1 to v2 (3 operations, then validated)", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := e.reg.Upcast(ctx, "OrderSubmitted", 1, v1, 0); err != nil {
				b.Fatal(err)
			}
		}
	})
	v2 := json.RawMessage(`{"subtotal": 4500, "tax": 0, "total": 4500, "currency": "EUR", "itemCount": 3, "submittedAt": "2026-11-24T12:00:00Z"}`)
	b.Run("already the latest", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := e.reg.Upcast(ctx, "OrderSubmitted", 2, v2, 0); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkAppend(b *testing.B) {
	for _, validated := range []bool{false, true} {
		for _, n := range []int{1, 100} {
			b.Run(fmt.Sprintf("validation=%v/events=%d", validated, n), func(b *testing.B) {
				e := benchEnv(b)
				var store eventstore.Store = e.raw
				if validated {
					store = e.store
				}
				evs := make([]domain.EventData, n)
				for i := range evs {
					evs[i] = domain.EventData{Type: "MoneyDeposited", SchemaVersion: 1, Data: json.RawMessage(fmt.Sprintf(`{"amount": %d, "balanceAfter": %d}`, i+1, i+1))}
				}
				ctx := context.Background()
				i := 0
				for b.Loop() {
					i++
					if _, err := store.Append(ctx, fmt.Sprintf("account-%d", i), domain.ExpectNoStream, evs...); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "events/s")
			})
		}
	}
}
