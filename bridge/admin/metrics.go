package admin

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/m365bridge/m365bridge/bridge/store"
	"github.com/m365bridge/m365bridge/webhooks/deliver"
)

// Delivery outcomes of m365bridge_deliveries_total.
const (
	deliveryDelivered = "delivered"
	deliveryRetry     = "retry"
	deliveryRejected  = "rejected"
	deliveryDead      = "dead"
)

// metrics is the daemon's Prometheus registry (its own, never the global
// one). Events that happen (Graph requests, delivery attempts, token
// refreshes) are counted as they happen; state (lag, queue depth, message
// counts, channel health) is read from the runners and the store at scrape
// time by stateCollector.
type metrics struct {
	reg *prometheus.Registry

	graphRequests *prometheus.CounterVec
	graphSeconds  *prometheus.HistogramVec
	deliveries    *prometheus.CounterVec
	refreshes     *prometheus.CounterVec
}

// scrapeTimeout bounds the store reads of one scrape.
const scrapeTimeout = 5 * time.Second

func newMetrics(a *Console) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		graphRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "m365bridge_graph_requests_total",
			Help: "Microsoft Graph HTTP attempts (retries and $batch calls included) by request kind and HTTP status; status 0 is a transport error.",
		}, []string{"kind", "status"}),
		graphSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "m365bridge_graph_request_seconds",
			Help:    "Duration of Microsoft Graph HTTP attempts by request kind.",
			Buckets: []float64{.025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"kind"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "m365bridge_deliveries_total",
			Help: "Webhook delivery attempts by endpoint and outcome (delivered, retry, rejected, dead).",
		}, []string{"endpoint", "outcome"}),
		refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "m365bridge_token_refreshes_total",
			Help: "Access token refreshes by channel and result (ok, failed: temporary, refused: re-authentication needed).",
		}, []string{"channel", "result"}),
	}
	// Known label values start at zero so that dashboards and absent()
	// alerts see every series from the first scrape.
	cfg := a.config()
	for _, ch := range cfg.Channels {
		for _, r := range []string{"ok", "failed", "refused"} {
			m.refreshes.WithLabelValues(ch.Name, r)
		}
	}
	for _, w := range cfg.Webhooks {
		for _, o := range []string{deliveryDelivered, deliveryRetry, deliveryRejected, deliveryDead} {
			m.deliveries.WithLabelValues(w.Name, o)
		}
	}
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "m365bridge_build_info", Help: "Always 1; the version label is the running build.",
		ConstLabels: prometheus.Labels{"version": a.version},
	})
	build.Set(1)
	m.reg.MustRegister(m.graphRequests, m.graphSeconds, m.deliveries, m.refreshes, build,
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "m365bridge_graph_throttled_total",
			Help: "Microsoft Graph answers of 429 Too Many Requests, including 429 items inside $batch responses.",
		}, func() float64 { return float64(a.graph.Stats().Throttled) }),
		&stateCollector{a: a},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// graphResponse is graph.Client.OnResponse.
func (m *metrics) graphResponse(method, kind string, status int, dur time.Duration) {
	m.graphRequests.WithLabelValues(kind, strconv.Itoa(status)).Inc()
	m.graphSeconds.WithLabelValues(kind).Observe(dur.Seconds())
}

// tokenRefresh is entra.Manager.OnRefresh.
func (m *metrics) tokenRefresh(channel, result string) {
	m.refreshes.WithLabelValues(channel, result).Inc()
}

// deliveryResult is deliver.Options.OnResult. It sees an attempt before
// the dispatcher records it, so it applies the dispatcher's rule for a
// dead letter itself: a failed attempt that used the last allowed attempt,
// or one past the endpoint's max age, is counted as dead, not retry.
func (m *metrics) deliveryResult(eps func() []deliver.Endpoint, now func() time.Time) func(string, deliver.Row, deliver.Result) {
	return func(endpoint string, row deliver.Row, res deliver.Result) {
		outcome := deliveryRetry
		switch res.Outcome {
		case deliver.Delivered:
			outcome = deliveryDelivered
		case deliver.Permanent:
			outcome = deliveryRejected
		case deliver.Transient:
			for _, ep := range eps() {
				if ep.Name != endpoint {
					continue
				}
				ep = ep.WithDefaults()
				if row.Attempts+1 >= ep.MaxAttempts || now().Sub(row.AgeBase()) >= ep.MaxAge {
					outcome = deliveryDead
				}
			}
		}
		m.deliveries.WithLabelValues(endpoint, outcome).Inc()
	}
}

// instrument connects the metrics to the daemon's parts; Start calls it
// before the dispatcher is built from dopts.
func (a *Console) instrument(dopts *deliver.Options) {
	a.metrics = newMetrics(a)
	a.graph.OnResponse = a.metrics.graphResponse
	a.auth.OnRefresh = a.metrics.tokenRefresh
	count := a.metrics.deliveryResult(a.endpoints, a.now)
	if prev := dopts.OnResult; prev != nil {
		dopts.OnResult = func(endpoint string, row deliver.Row, res deliver.Result) {
			count(endpoint, row, res)
			prev(endpoint, row, res)
		}
	} else {
		dopts.OnResult = count
	}
}

var (
	descLag = prometheus.NewDesc("m365bridge_sync_lag_seconds",
		"Seconds since the channel's last successful sync round; absent before the first one.", []string{"channel"}, nil)
	descMessages = prometheus.NewDesc("m365bridge_messages_total",
		"Messages the channel turned into events (archived, new) or refused (rejected), since the channel was first connected.", []string{"channel", "outcome"}, nil)
	descDepth = prometheus.NewDesc("m365bridge_outbox_depth",
		"Outbox rows by webhook endpoint and state (pending is the queue; dead and rejected wait for a replay).", []string{"endpoint", "state"}, nil)
	descSends = prometheus.NewDesc("m365bridge_sends",
		"Replies sent through the channel's mailbox, by state: queued and sending are in progress, sent and failed are final.", []string{"channel", "state"}, nil)
	descUp = prometheus.NewDesc("m365bridge_channel_up",
		"1 when the channel is signed in and its last sync round succeeded, else 0.", []string{"channel"}, nil)
	descScrapeErr = prometheus.NewDesc("m365bridge_scrape_errors",
		"1 when this scrape could not read the state store (the store-backed series are missing).", nil, nil)
)

// stateCollector reads channel and outbox state at scrape time.
type stateCollector struct{ a *Console }

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descLag, descMessages, descDepth, descSends, descUp, descScrapeErr, descNotifyState, descNotifyReceived, descNotifyWakes} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	views, err := c.a.channelViews(ctx)
	failed := 0.0
	if err != nil {
		c.a.log.Warn("metrics: read channel state", slog.String("err", err.Error()))
		failed = 1
	}
	now := c.a.now()
	for _, v := range views {
		up := 0.0
		if v.Auth.State == store.ChannelActive && v.Up() {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, up, v.Name)
		if last := v.LastSuccess(); !last.IsZero() {
			ch <- prometheus.MustNewConstMetric(descLag, prometheus.GaugeValue, max(now.Sub(last).Seconds(), 0), v.Name)
		}
		ch <- prometheus.MustNewConstMetric(descMessages, prometheus.CounterValue, float64(v.Sync.Archived), v.Name, "archived")
		ch <- prometheus.MustNewConstMetric(descMessages, prometheus.CounterValue, float64(v.Sync.New), v.Name, "new")
		ch <- prometheus.MustNewConstMetric(descMessages, prometheus.CounterValue, float64(v.Sync.Rejected), v.Name, "rejected")
	}
	collectNotifications(ch, views)
	counts, err := c.a.db.Outbox().Counts(ctx)
	if err != nil {
		c.a.log.Warn("metrics: count outbox", slog.String("err", err.Error()))
		failed = 1
	} else {
		for _, name := range c.a.endpointNames(counts) {
			for _, st := range outboxStates {
				ch <- prometheus.MustNewConstMetric(descDepth, prometheus.GaugeValue, float64(counts[name][st]), name, string(st))
			}
		}
	}
	sends, err := c.a.db.SendCounts(ctx)
	if err != nil {
		c.a.log.Warn("metrics: count sends", slog.String("err", err.Error()))
		failed = 1
	}
	for _, v := range views {
		for _, st := range []string{store.SendQueued, store.SendSending, store.SendSent, store.SendFailed} {
			ch <- prometheus.MustNewConstMetric(descSends, prometheus.GaugeValue, float64(sends[v.Name][st]), v.Name, st)
		}
	}
	ch <- prometheus.MustNewConstMetric(descScrapeErr, prometheus.GaugeValue, failed)
}

var outboxStates = []deliver.State{deliver.StatePending, deliver.StateDelivered, deliver.StateDead, deliver.StateRejected}
