package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"cqrsgate/eventstore"
)

// ReaderLags is what reports how far the readers of the log are held back
// (an eventstore.LagWatch): the latest look, and false when there is none
// or it failed.
type ReaderLags interface {
	Latest() (eventstore.ReaderLag, bool)
}

var (
	logHeldBackPositions = prometheus.NewDesc("cqrsgate_log_held_back_positions",
		"Log positions committed that readers cannot read yet (the committed head minus the readable head; positions have holes, so it bounds the events): "+
			"an open transaction anywhere on the server holds back every reader of the log.", nil, nil)
	logHeldBackSeconds = prometheus.NewDesc("cqrsgate_log_held_back_seconds",
		"How long the oldest committed event that readers cannot read yet has waited (0 when none).", nil, nil)
)

// ReaderLag registers the gauges of how far the readers of the log are
// held back, from lags' latest look (taken every few seconds, not at the
// scrape). They are left out of the scrapes while there is no look or the
// latest failed (the database cannot be reached).
func (m *Metrics) ReaderLag(lags ReaderLags) {
	m.reg.MustRegister(readerLagCollector{lags})
}

type readerLagCollector struct{ lags ReaderLags }

func (c readerLagCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- logHeldBackPositions
	ch <- logHeldBackSeconds
}

func (c readerLagCollector) Collect(ch chan<- prometheus.Metric) {
	lag, ok := c.lags.Latest()
	if !ok {
		return
	}
	ch <- prometheus.MustNewConstMetric(logHeldBackPositions, prometheus.GaugeValue, float64(lag.Behind()))
	ch <- prometheus.MustNewConstMetric(logHeldBackSeconds, prometheus.GaugeValue, lag.Waiting.Seconds())
}
