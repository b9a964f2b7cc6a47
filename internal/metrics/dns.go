package metrics

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// DNSCounts are the authoritative DNS server's totals ([dns]).
type DNSCounts struct {
	Queries, Answered, Slipped, Dropped, TCPRefused uint64
}

// dnsCollector reads the server's counters at scrape time; all zero until SetDNS.
type dnsCollector struct {
	read      atomic.Pointer[func() DNSCounts]
	queries   *prometheus.Desc
	responses *prometheus.Desc
}

func newDNSCollector() *dnsCollector {
	return &dnsCollector{
		queries: prometheus.NewDesc(DNSQueries, "Queries that reached the built-in DNS server ([dns]), UDP and TCP.", nil, nil),
		responses: prometheus.NewDesc(DNSResponses, "What became of them: answered; slipped (rate-limited, sent truncated so a real client retries over TCP); "+
			"dropped (rate-limited); tcp_refused (a TCP connection beyond the limit).", []string{"result"}, nil),
	}
}

func (c *dnsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.queries; ch <- c.responses }

func (c *dnsCollector) Collect(ch chan<- prometheus.Metric) {
	var n DNSCounts
	if f := c.read.Load(); f != nil {
		n = (*f)()
	}
	ch <- prometheus.MustNewConstMetric(c.queries, prometheus.CounterValue, float64(n.Queries))
	for _, r := range []struct {
		result string
		v      uint64
	}{{"answered", n.Answered}, {"slipped", n.Slipped}, {"dropped", n.Dropped}, {"tcp_refused", n.TCPRefused}} {
		ch <- prometheus.MustNewConstMetric(c.responses, prometheus.CounterValue, float64(r.v), r.result)
	}
}

// SetDNS makes scrapes read the DNS server's counters from read (cheap, lock-free).
func (m *Metrics) SetDNS(read func() DNSCounts) { m.dns.read.Store(&read) }
