// Package demo drives a realistic stream of commands through the command
// service (accounts, orders, stock) so that the dashboard has something to
// show: `cqrsgate -demo`.
package demo

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"cqrsgate/domain"
)

// Options shape the load.
type Options struct {
	// Rate is how many commands per second are sent (default 10).
	Rate int
	// Accounts and Products are how many of each the demo works with
	// (default 12 and 8).
	Accounts, Products int
}

// Run sends commands until ctx ends, then returns nil. Commands the domain
// refuses (insufficient funds or stock, say) are part of the show: they
// are counted and logged at debug level.
func Run(ctx context.Context, svc *domain.Service, log *slog.Logger, opts Options) error {
	if opts.Rate <= 0 {
		opts.Rate = 10
	}
	if opts.Accounts <= 0 {
		opts.Accounts = 12
	}
	if opts.Products <= 0 {
		opts.Products = 8
	}
	rnd := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	// The run's ids differ from every earlier run's: the date and time
	// (a time of day alone came round again the next day) and a random
	// part (two gateways started in one second).
	run := fmt.Sprintf("%s-%04x", time.Now().UTC().Format("20060102-150405"), rnd.Uint32()&0xffff)
	d := &driver{svc: svc, log: log, opts: opts, rnd: rnd, run: run}
	d.setUp(ctx)
	log.Info("demo load started", "commandsPerSecond", opts.Rate)
	tick := time.NewTicker(time.Second / time.Duration(opts.Rate))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			log.Info("demo load stopped", "commands", d.sent, "refused", d.refused)
			return nil
		case <-tick.C:
			d.step(ctx)
		}
	}
}

type driver struct {
	svc           *domain.Service
	log           *slog.Logger
	opts          Options
	rnd           *rand.Rand
	run           string // distinguishes the ids of this run from earlier ones
	orders        int
	open          []*order // orders in progress
	sent, refused int
}

type order struct {
	id    string
	items map[string]int64 // sku -> quantity
	stage int
}

func (d *driver) account(i int) string { return fmt.Sprintf("demo-%s-acct-%02d", d.run, i) }
func (d *driver) sku(i int) string     { return fmt.Sprintf("demo-%s-sku-%02d", d.run, i) }

func (d *driver) do(ctx context.Context, kind string, cmd domain.Command) bool {
	var err error
	meta := domain.CommandMeta{Actor: "demo"}
	switch kind {
	case "account":
		_, err = domain.Execute(ctx, d.svc, domain.Accounts, cmd, meta)
	case "order":
		_, err = domain.Execute(ctx, d.svc, domain.Orders, cmd, meta)
	default:
		_, err = domain.Execute(ctx, d.svc, domain.Products, cmd, meta)
	}
	d.sent++
	if err != nil {
		d.refused++
		if ctx.Err() == nil {
			d.log.Debug("demo command refused", "command", cmd.CommandName(), "err", err)
		}
		return false
	}
	return true
}

func (d *driver) setUp(ctx context.Context) {
	for i := range d.opts.Products {
		d.do(ctx, "product", domain.AddProduct{Sku: d.sku(i), Name: fmt.Sprintf("Widget %c", 'A'+i%26), Price: int64(500 + 250*i), Currency: "EUR"})
		d.do(ctx, "product", domain.RestockProduct{Sku: d.sku(i), Quantity: 20})
	}
	for i := range d.opts.Accounts {
		d.do(ctx, "account", domain.OpenAccount{AccountID: d.account(i), Owner: fmt.Sprintf("Customer %d", i), Currency: "EUR", InitialDeposit: 50_000, OverdraftLimit: 10_000})
	}
}

// step sends one command: a payment, a restock, or the next step of an order.
func (d *driver) step(ctx context.Context) {
	switch r := d.rnd.IntN(10); {
	case r < 3:
		acct := d.account(d.rnd.IntN(d.opts.Accounts))
		amount := int64(100 * (1 + d.rnd.IntN(50)))
		if d.rnd.IntN(2) == 0 {
			d.do(ctx, "account", domain.DepositMoney{AccountID: acct, Amount: amount})
		} else {
			d.do(ctx, "account", domain.WithdrawMoney{AccountID: acct, Amount: amount})
		}
	case r < 4:
		d.do(ctx, "product", domain.RestockProduct{Sku: d.sku(d.rnd.IntN(d.opts.Products)), Quantity: int64(5 + d.rnd.IntN(10))})
	default:
		d.orderStep(ctx)
	}
}

func (d *driver) orderStep(ctx context.Context) {
	if len(d.open) < 5 {
		d.orders++
		o := &order{id: fmt.Sprintf("demo-%s-order-%05d", d.run, d.orders), items: map[string]int64{}}
		if d.do(ctx, "order", domain.PlaceOrder{OrderID: o.id, CustomerID: d.account(d.rnd.IntN(d.opts.Accounts)), Currency: "EUR"}) {
			d.open = append(d.open, o)
		}
		return
	}
	i := d.rnd.IntN(len(d.open))
	o := d.open[i]
	done := func() { d.open = append(d.open[:i], d.open[i+1:]...) }
	switch o.stage {
	case 0, 1: // add an item (twice)
		p := d.rnd.IntN(d.opts.Products)
		q := int64(1 + d.rnd.IntN(3))
		if d.do(ctx, "order", domain.AddOrderItem{OrderID: o.id, Sku: d.sku(p), Quantity: q, UnitPrice: int64(500 + 250*p)}) {
			o.items[d.sku(p)] += q
		}
	case 2:
		if !d.do(ctx, "order", domain.SubmitOrder{OrderID: o.id}) {
			done()
			return
		}
	case 3: // the fulfilment saga reserves, charges and confirms; sometimes the customer cancels
		if d.rnd.IntN(8) == 0 {
			d.do(ctx, "order", domain.CancelOrder{OrderID: o.id, Reason: "the customer changed their mind"})
			done()
			return
		}
	default: // ship once the saga has confirmed it (a refusal until then, or for good when it was compensated)
		if d.do(ctx, "order", domain.ShipOrder{OrderID: o.id, TrackingNumber: fmt.Sprintf("TRK%06d", d.rnd.IntN(1_000_000))}) || o.stage > 6 {
			done()
			return
		}
	}
	o.stage++
}
