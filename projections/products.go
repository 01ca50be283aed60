package projections

import (
	"context"
	"fmt"
	"math"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"cqrsgate/domain"
)

// Products projects the product events into product_catalogue: one row per
// product with its price and stock on hand, reserved and available.
type Products struct{}

var _ Projection = Products{}

// Name implements Projection.
func (Products) Name() string { return "products" }

// Version implements Projection.
func (Products) Version() int { return 2 } // 2: tenants

// EventTypes implements Projection.
func (Products) EventTypes() []string {
	return []string{"ProductAdded", "ProductRestocked", "StockReserved", "StockReleased", "PriceChanged"}
}

// Tables implements Projection.
func (Products) Tables() []string { return []string{"product_catalogue"} }

// Setup implements Projection.
func (Products) Setup(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, `
		CREATE TABLE IF NOT EXISTS product_catalogue (
			sku       text PRIMARY KEY,
			tenant    text GENERATED ALWAYS AS (`+tenantOf("sku")+`) STORED,
			name      text   NOT NULL,
			price     bigint NOT NULL,
			currency  text   NOT NULL,
			on_hand   bigint NOT NULL DEFAULT 0,
			reserved  bigint NOT NULL DEFAULT 0,
			available bigint GENERATED ALWAYS AS (on_hand - reserved) STORED,
			version   bigint NOT NULL,
			position  bigint NOT NULL
		);
		CREATE INDEX IF NOT EXISTS product_catalogue_tenant ON product_catalogue (tenant, sku);
		CREATE INDEX IF NOT EXISTS product_catalogue_available ON product_catalogue (tenant, available, sku);`)
	return err
}

// Apply implements Projection. Events on a stream that is not a product's
// are skipped (ownEvents).
func (Products) Apply(ctx context.Context, tx pgx.Tx, events []domain.RecordedEvent) error {
	events, skus := ownEvents(domain.Products, events)
	if len(events) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	for i, re := range events {
		e, err := domain.Products.Decode(re.Type, re.SchemaVersion, re.Data)
		if err != nil {
			return fmt.Errorf("event %s at %d: %w", re.Type, re.Position, err)
		}
		sku := skus[i] // qualified with the tenant
		set := func(assign string, v int64) {
			b.Queue(`UPDATE product_catalogue SET `+assign+` = $2, version = $3, position = $4 WHERE sku = $1`, sku, v, re.StreamVersion, re.Position)
		}
		switch e := e.(type) {
		case domain.ProductAdded:
			b.Queue(`INSERT INTO product_catalogue (sku, name, price, currency, version, position) VALUES ($1, $2, $3, $4, $5, $6)`,
				sku, e.Name, e.Price, e.Currency, re.StreamVersion, re.Position)
		case domain.ProductRestocked:
			set("on_hand", e.OnHand)
		case domain.StockReserved:
			set("reserved", e.Reserved)
		case domain.StockReleased:
			set("reserved", e.Reserved)
		case domain.PriceChanged:
			set("price", e.NewPrice)
		}
	}
	return tx.SendBatch(ctx, b).Close()
}

// CatalogueEntry is a row of the product catalogue.
type CatalogueEntry struct {
	Sku, Name                   string
	Price                       int64
	Currency                    string
	OnHand, Reserved, Available int64
	Version, Position           int64
}

// ProductQueries reads the product catalogue.
type ProductQueries struct{ pool *pgxpool.Pool }

// NewProductQueries returns the catalogue queries on pool.
func NewProductQueries(pool *pgxpool.Pool) *ProductQueries { return &ProductQueries{pool: pool} }

const productColumns = `sku, name, price, currency, on_hand, reserved, available, version, position`

func scanProduct(r pgx.CollectableRow) (CatalogueEntry, error) {
	p, err := pgx.RowToStructByPos[CatalogueEntry](r)
	p.Sku = plainID(p.Sku)
	return p, err
}

// Product returns tenant's product sku, or a NotFound *domain.Error.
func (q *ProductQueries) Product(ctx context.Context, tenant, sku string) (CatalogueEntry, error) {
	return rowByID(ctx, q.pool, "product", "sku", tenant, sku, `SELECT `+productColumns+` FROM readmodel.product_catalogue WHERE sku = $1`, scanProduct,
		func() error { return domain.Errorf(domain.NotFound, "product %s not found", sku) })
}

// Products returns up to first of tenant's products by SKU after the
// cursor after, those with at most maxAvailable units available when
// maxAvailable >= 0 (low stock), the next cursor when more follow, and the
// number matching.
func (q *ProductQueries) Products(ctx context.Context, tenant string, maxAvailable int64, first int, after string) ([]CatalogueEntry, string, int, error) {
	first, err := pageSize(first)
	if err != nil {
		return nil, "", 0, err
	}
	afterSku, err := decodeCursor("product", after)
	if err != nil {
		return nil, "", 0, err
	}
	// available is an int4: a bound above its range holds every product
	// (and would not be sent as one).
	maxAvailable = min(maxAvailable, math.MaxInt32)
	where := `tenant = $2 AND ($1 < 0 OR available <= $1)`
	return countedPage(ctx, q.pool, "products", first,
		`SELECT count(*) FROM readmodel.product_catalogue WHERE `+where, []any{maxAvailable, tenant},
		`SELECT `+productColumns+` FROM readmodel.product_catalogue WHERE `+where+` AND sku > $3 ORDER BY sku LIMIT $4`,
		[]any{maxAvailable, tenant, domain.Qualify(tenant, afterSku), first + 1},
		scanProduct, ProductCursor)
}

// ProductCursor returns the cursor that pages past p.
func ProductCursor(p CatalogueEntry) string { return encodeCursor("product", p.Sku) }
