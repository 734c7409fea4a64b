package bridge

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/bridge/m365sim"
)

// scrape reads /metrics into series -> value, a series written as Prometheus
// prints it: name{label="value",...} (labels in the exposition's order).
func scrape(t *testing.T, rig *daemonRig) map[string]float64 {
	t.Helper()
	code, body := adminCall(t, rig, http.MethodGet, "/metrics", "admin-token", nil)
	if code != http.StatusOK {
		t.Fatalf("GET /metrics = %d %s", code, body)
	}
	out := map[string]float64{}
	for line := range strings.SplitSeq(body, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// sumSeries adds up every series of name whose labels include all of want.
func sumSeries(m map[string]float64, name string, want ...string) (float64, int) {
	var sum float64
	var n int
next:
	for k, v := range m {
		if k != name && !strings.HasPrefix(k, name+"{") {
			continue
		}
		for _, w := range want {
			if !strings.Contains(k, w) {
				continue next
			}
		}
		sum += v
		n++
	}
	return sum, n
}

func TestMetricsAfterSync(t *testing.T) {
	rig := newDaemonRig(t, nil)
	// Access tokens shorter than the refresh margin make every Graph call
	// refresh first, so the refresh counter moves.
	rig.sim.Sim.SetTokenLifetimes(2*time.Minute, 0)
	old := time.Now().Add(-48 * time.Hour).UTC().Truncate(time.Second)
	for i := range 3 {
		if _, err := rig.sim.Sim.InjectMessage("support@contoso.com", m365sim.NewMessage{
			Folder: "Inbox/Support", Subject: fmt.Sprintf("old question %d", i), From: "carol@example.com",
			Body: "Hello", Received: old.Add(time.Duration(i) * time.Minute),
		}); err != nil {
			t.Fatal(err)
		}
	}
	injectSales(t, rig, "quote please")
	// One delta read is throttled (and retried after its Retry-After).
	if _, err := rig.sim.Sim.AddFault(m365sim.FaultRule{Method: "GET", Path: "**/messages/delta", Mailbox: "support@contoso.com", Status: 429, RetryAfter: 1, Count: 1}); err != nil {
		t.Fatal(err)
	}

	before := scrape(t, rig)
	if v, n := sumSeries(before, "m365bridge_channel_up", `channel="support"`); n != 1 || v != 0 {
		t.Errorf("before consent: channel_up{support} = %v (%d series), want 0", v, n)
	}
	if _, n := sumSeries(before, "m365bridge_sync_lag_seconds"); n != 0 {
		t.Errorf("before any sync: %d sync_lag series, want none", n)
	}

	mustConnect(t, rig, "support", "agent@contoso.com")
	mustConnect(t, rig, "sales", "sales@contoso.com")
	rig.waitEvents(4)
	// The delivered rows are counted once the dispatcher recorded them, and
	// the delivery counter moves just after the row is marked: wait for both
	// (seen: the row marked, the counter one behind, on a loaded machine).
	deadline := time.Now().Add(2 * time.Minute)
	var m map[string]float64
	for {
		m = scrape(t, rig)
		rows, _ := sumSeries(m, "m365bridge_outbox_depth", `state="delivered"`)
		counted, _ := sumSeries(m, "m365bridge_deliveries_total", `endpoint="helpdesk"`, `outcome="delivered"`)
		if rows >= 4 && counted >= 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 2 min: outbox_depth delivered = %v, deliveries_total delivered = %v; want both >= 4", rows, counted)
		}
		time.Sleep(20 * time.Millisecond) // pacing of /metrics scrapes, as Prometheus would; the deadline is the safety net
	}

	checks := []struct {
		name   string
		labels []string
		ok     func(v float64) bool
		want   string
	}{
		{"m365bridge_graph_requests_total", []string{`status="200"`}, func(v float64) bool { return v >= 4 }, ">= 4 (folder, delta and message reads of two channels)"},
		{"m365bridge_graph_throttled_total", nil, func(v float64) bool { return v == 1 }, "1 (one throttled delta read)"},
		{"m365bridge_graph_requests_total", []string{`kind="delta"`, `status="429"`}, func(v float64) bool { return v == 1 }, "1"},
		{"m365bridge_graph_request_seconds_count", nil, func(v float64) bool { return v >= 4 }, ">= 4 observations"},
		{"m365bridge_graph_request_seconds_bucket", []string{`le="+Inf"`}, func(v float64) bool { return v >= 4 }, ">= 4"},
		{"m365bridge_sync_lag_seconds", []string{`channel="support"`}, func(v float64) bool { return v >= 0 && v < 60 }, "between 0 and 60 s"},
		{"m365bridge_sync_lag_seconds", []string{`channel="sales"`}, func(v float64) bool { return v >= 0 && v < 60 }, "between 0 and 60 s"},
		{"m365bridge_messages_total", []string{`channel="support"`, `outcome="archived"`}, func(v float64) bool { return v == 3 }, "3"},
		{"m365bridge_messages_total", []string{`channel="support"`, `outcome="new"`}, func(v float64) bool { return v == 0 }, "0"},
		{"m365bridge_messages_total", []string{`channel="sales"`, `outcome="new"`}, func(v float64) bool { return v == 1 }, "1"},
		{"m365bridge_messages_total", []string{`channel="sales"`, `outcome="rejected"`}, func(v float64) bool { return v == 0 }, "0"},
		{"m365bridge_deliveries_total", []string{`endpoint="helpdesk"`, `outcome="delivered"`}, func(v float64) bool { return v >= 4 }, ">= 4"},
		{"m365bridge_deliveries_total", []string{`endpoint="helpdesk"`, `outcome="dead"`}, func(v float64) bool { return v == 0 }, "0"},
		{"m365bridge_outbox_depth", []string{`endpoint="helpdesk"`, `state="pending"`}, func(v float64) bool { return v >= 0 }, "present"},
		{"m365bridge_outbox_depth", []string{`endpoint="helpdesk"`, `state="dead"`}, func(v float64) bool { return v == 0 }, "0"},
		{"m365bridge_token_refreshes_total", []string{`channel="support"`, `result="ok"`}, func(v float64) bool { return v >= 1 }, ">= 1 (2-minute tokens)"},
		{"m365bridge_token_refreshes_total", []string{`channel="sales"`, `result="refused"`}, func(v float64) bool { return v == 0 }, "0"},
		{"m365bridge_channel_up", []string{`channel="support"`}, func(v float64) bool { return v == 1 }, "1"},
		{"m365bridge_channel_up", []string{`channel="sales"`}, func(v float64) bool { return v == 1 }, "1"},
		{"m365bridge_build_info", []string{`version="test"`}, func(v float64) bool { return v == 1 }, "1"},
	}
	for _, c := range checks {
		t.Run(c.name+strings.Join(c.labels, ","), func(t *testing.T) {
			v, n := sumSeries(m, c.name, c.labels...)
			if n == 0 {
				t.Fatalf("no series %s{%s}", c.name, strings.Join(c.labels, ","))
			}
			if !c.ok(v) {
				t.Errorf("%s{%s} = %v, want %s", c.name, strings.Join(c.labels, ","), v, c.want)
			}
		})
	}
}

// TestMetricsCountFailedDeliveries: a receiver down for an endpoint with
// one attempt makes a dead letter; one that refuses makes a rejected row;
// both are counted by outcome and show in the queue depth.
func TestMetricsCountFailedDeliveries(t *testing.T) {
	rig := newDaemonRig(t, nil)
	sr := newSwitchReceiver(rig, 1)
	sr.fail(http.StatusServiceUnavailable, "maintenance")
	injectSales(t, rig, "first")
	mustConnect(t, rig, "sales", "sales@contoso.com")
	waitDeliveries(t, rig, "state=dead", 1)

	sr.fail(http.StatusBadRequest, "no such group")
	injectSales(t, rig, "second")
	syncNow(t, rig, "sales")
	waitDeliveries(t, rig, "state=rejected", 1)

	m := scrape(t, rig)
	for _, c := range []struct {
		series []string
		want   float64
	}{
		{[]string{"m365bridge_deliveries_total", `endpoint="helpdesk"`, `outcome="dead"`}, 1},
		{[]string{"m365bridge_deliveries_total", `endpoint="helpdesk"`, `outcome="rejected"`}, 1},
		{[]string{"m365bridge_deliveries_total", `endpoint="helpdesk"`, `outcome="retry"`}, 0},
		{[]string{"m365bridge_deliveries_total", `endpoint="helpdesk"`, `outcome="delivered"`}, 0},
		{[]string{"m365bridge_outbox_depth", `endpoint="helpdesk"`, `state="dead"`}, 1},
		{[]string{"m365bridge_outbox_depth", `endpoint="helpdesk"`, `state="rejected"`}, 1},
		{[]string{"m365bridge_outbox_depth", `endpoint="helpdesk"`, `state="pending"`}, 0},
		{[]string{"m365bridge_messages_total", `channel="sales"`, `outcome="new"`}, 2},
	} {
		got, n := sumSeries(m, c.series[0], c.series[1:]...)
		if n == 0 || got != c.want {
			t.Errorf("%v = %v (%d series), want %v", c.series, got, n, c.want)
		}
	}
}

// TestRefusedRefreshShowsEverywhere: when Entra refuses a channel's refresh
// token, the refusal is counted, the channel is down in /metrics, and the
// status page says what happened and how to fix it.
func TestRefusedRefreshShowsEverywhere(t *testing.T) {
	rig := newDaemonRig(t, nil)
	rig.sim.Sim.SetTokenLifetimes(2*time.Minute, 0) // every Graph call refreshes first
	mustConnect(t, rig, "sales", "sales@contoso.com")
	syncNow(t, rig, "sales")
	if v, _ := sumSeries(scrape(t, rig), "m365bridge_channel_up", `channel="sales"`); v != 1 {
		t.Fatalf("channel_up{sales} = %v after a good round, want 1", v)
	}

	if err := rig.sim.Sim.RevokeSignInSessions("sales@contoso.com"); err != nil {
		t.Fatal(err)
	}
	r, _ := rig.d.Runner("sales")
	if _, err := r.SyncOnce(t.Context()); err == nil {
		t.Fatal("a sync round after the sign-in sessions were revoked succeeded")
	}
	m := scrape(t, rig)
	if v, n := sumSeries(m, "m365bridge_token_refreshes_total", `channel="sales"`, `result="refused"`); n != 1 || v != 1 {
		t.Errorf("token_refreshes_total{sales,refused} = %v, want 1", v)
	}
	if v, _ := sumSeries(m, "m365bridge_token_refreshes_total", `channel="sales"`, `result="ok"`); v < 1 {
		t.Errorf("token_refreshes_total{sales,ok} = %v, want >= 1 (before the revocation)", v)
	}
	if v, _ := sumSeries(m, "m365bridge_channel_up", `channel="sales"`); v != 0 {
		t.Errorf("channel_up{sales} = %v after the refusal, want 0", v)
	}

	p := newPageClient(t, rig)
	page, _ := p.signIn("admin-token")
	for _, want := range []string{"re-authentication needed", "<strong>Problem:</strong> AADSTS", "<strong>Fix:</strong>", `id="auth-sales">Re-authenticate`} {
		if !strings.Contains(page, want) {
			t.Errorf("status page lacks %q", want)
		}
	}
}
