package metrics

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// RACounts are the router advertisement sender's totals ([ipv6] advertise = "ra").
type RACounts struct {
	Sent, Solicited, Foreign uint64
}

// raCollector reads the sender's counters at scrape time; all zero until SetRA.
type raCollector struct {
	read                     atomic.Pointer[func() RACounts]
	sent, solicited, foreign *prometheus.Desc
}

func newRACollector() *raCollector {
	return &raCollector{
		sent:      prometheus.NewDesc(RASent, "Router advertisements sent on the LAN interfaces ([ipv6] advertise = \"ra\").", nil, nil),
		solicited: prometheus.NewDesc(RASolicited, "Router solicitations answered.", nil, nil),
		foreign:   prometheus.NewDesc(RAForeign, "Router advertisements heard from another router on the LAN (uplinkd warns; it does not fight).", nil, nil),
	}
}

func (c *raCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.sent
	ch <- c.solicited
	ch <- c.foreign
}

func (c *raCollector) Collect(ch chan<- prometheus.Metric) {
	var n RACounts
	if f := c.read.Load(); f != nil {
		n = (*f)()
	}
	ch <- prometheus.MustNewConstMetric(c.sent, prometheus.CounterValue, float64(n.Sent))
	ch <- prometheus.MustNewConstMetric(c.solicited, prometheus.CounterValue, float64(n.Solicited))
	ch <- prometheus.MustNewConstMetric(c.foreign, prometheus.CounterValue, float64(n.Foreign))
}

// SetRA makes scrapes read the RA sender's counters from read (cheap, lock-free).
func (m *Metrics) SetRA(read func() RACounts) { m.ra.read.Store(&read) }
