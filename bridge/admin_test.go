package bridge

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/m365bridge/m365bridge/bridge/admin"
	"github.com/m365bridge/m365bridge/bridge/m365sim"
	"github.com/m365bridge/m365bridge/config"
	"github.com/m365bridge/m365bridge/webhooks/deliver"
)

func TestAdminAPIRequiresToken(t *testing.T) {
	rig := newDaemonRig(t, nil)
	for _, path := range []string{"/api/channels", "/api/deliveries", "/api/endpoints", "/metrics"} {
		t.Run(path, func(t *testing.T) {
			if code, body := adminCall(t, rig, http.MethodGet, path, "", nil); code != http.StatusUnauthorized || !strings.Contains(body, "admin token") {
				t.Errorf("no token: %d %s, want 401 saying the admin token is missing", code, body)
			}
			if code, _ := adminCall(t, rig, http.MethodGet, path, "wrong", nil); code != http.StatusUnauthorized {
				t.Errorf("wrong token: %d, want 401", code)
			}
			if code, body := adminCall(t, rig, http.MethodGet, path, "admin-token", nil); code != http.StatusOK {
				t.Errorf("right token: %d %s, want 200", code, body)
			}
		})
	}
	for _, path := range []string{"/api/replay", "/api/endpoints/helpdesk/pause", "/api/channels/sales/auth"} {
		if code, _ := adminCall(t, rig, http.MethodPost, path, "", map[string]any{"ids": []string{"x"}}); code != http.StatusUnauthorized {
			t.Errorf("POST %s without token: %d, want 401", path, code)
		}
	}
	if code, _ := adminCall(t, rig, http.MethodGet, "/healthz", "", nil); code != http.StatusOK {
		t.Errorf("/healthz needs no token, got %d", code)
	}
}

func TestAdminAPIValidation(t *testing.T) {
	rig := newDaemonRig(t, nil)
	tests := []struct {
		method, path string
		body         any
		wantCode     int
		wantText     string
	}{
		{"GET", "/api/deliveries?state=bogus", nil, 400, `is not one of pending, delivered, dead, rejected`},
		{"GET", "/api/deliveries?limit=0", nil, 400, "limit"},
		{"GET", "/api/deliveries?limit=abc", nil, 400, "limit"},
		{"GET", "/api/deliveries?since=yesterday", nil, 400, "is not an RFC 3339 time"},
		{"GET", "/api/deliveries?id=evt_a,evt_b&until=2026-11-26T20:00:00Z", nil, 200, "[]"},
		{"POST", "/api/replay", map[string]any{}, 400, "say which events to replay"},
		{"POST", "/api/replay", map[string]any{"channel": "sales", "states": []string{"pending"}}, 400, "only dead and rejected"},
		{"POST", "/api/replay", map[string]any{"idz": []string{"x"}}, 400, "unknown field"},
		{"POST", "/api/replay", map[string]any{"channel": "sales", "since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, 400, "since must be before until"},
		{"POST", "/api/replay", map[string]any{"ids": []string{"evt_nothing"}}, 200, `"replayed":0`},
		{"POST", "/api/endpoints/nope/pause", nil, 404, "no webhook nope in bridge.yaml"},
		{"POST", "/api/endpoints/nope/resume", nil, 404, "no webhook nope"},
		{"POST", "/api/channels/nope/auth", nil, 404, "no channel nope in bridge.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			code, body := adminCall(t, rig, tt.method, tt.path, "admin-token", tt.body)
			if code != tt.wantCode || !strings.Contains(body, tt.wantText) {
				t.Errorf("got %d %s, want %d containing %q", code, body, tt.wantCode, tt.wantText)
			}
		})
	}
}

// TestAdminAPIRejectReplayPause drives the delivery half of the API: a
// receiver that refuses an event leaves a rejected row with its answer;
// once fixed, a replay by id delivers the same event id; a paused endpoint
// holds its queue until resumed.
func TestAdminAPIRejectReplayPause(t *testing.T) {
	rig := newDaemonRig(t, nil)
	sr := newSwitchReceiver(rig, 5)
	sr.fail(http.StatusBadRequest, `{"error":"unknown customer group"}`)
	injectSales(t, rig, "quote please")
	mustConnect(t, rig, "sales", "sales@contoso.com")

	rejected := waitDeliveries(t, rig, "state=rejected&channel=sales", 1)
	got := rejected[0]
	if got.Endpoint != "helpdesk" || got.Attempts != 1 || got.LastStatus != 400 ||
		!strings.Contains(got.LastError, "unknown customer group") || got.Type != "mail.received" {
		t.Errorf("rejected row = %+v, want helpdesk mail.received, 1 attempt, 400 with the receiver's answer", got)
	}
	if rows := deliveries(t, rig, "state=rejected&channel=support"); len(rows) != 0 {
		t.Errorf("channel filter: support rows %s", fmtRows(rows))
	}

	code, body := adminCall(t, rig, http.MethodGet, "/api/endpoints", "admin-token", nil)
	var eps []admin.EndpointView
	jsonField(t, body, &eps)
	if code != 200 || len(eps) != 1 || eps[0].Rejected != 1 || !strings.Contains(eps[0].LastError, "unknown customer group") ||
		eps[0].State != deliver.EndpointActive || strings.Contains(eps[0].URL, "?") {
		t.Errorf("GET /api/endpoints = %d %+v, want helpdesk active with 1 rejected and its last error", code, eps)
	}

	sr.fail(0, "")
	code, body = adminCall(t, rig, http.MethodPost, "/api/replay", "admin-token", admin.ReplayRequest{IDs: []string{got.EventID}})
	if code != 200 || body != `{"replayed":1}`+"\n" {
		t.Fatalf("replay = %d %s, want 1 replayed", code, body)
	}
	ev := sr.waitFor(t, got.EventID)
	if ev.Type != "mail.received" {
		t.Errorf("replayed event type %s", ev.Type)
	}
	if rows := waitDeliveries(t, rig, "state=delivered&endpoint=helpdesk", 1); rows[0].EventID != got.EventID {
		t.Errorf("delivered rows %s, want %s", fmtRows(rows), got.EventID)
	}

	t.Run("pause and resume", func(t *testing.T) {
		code, body := adminCall(t, rig, http.MethodPost, "/api/endpoints/helpdesk/pause", "admin-token", admin.PauseRequest{Reason: "helpdesk maintenance"})
		var ep admin.EndpointView
		jsonField(t, body, &ep)
		if code != 200 || ep.State != deliver.EndpointPaused || ep.Reason != "helpdesk maintenance" {
			t.Fatalf("pause = %d %s", code, body)
		}
		injectSales(t, rig, "second question")
		syncNow(t, rig, "sales")
		pending := waitDeliveries(t, rig, "state=pending&channel=sales", 1)

		code, body = adminCall(t, rig, http.MethodPost, "/api/endpoints/helpdesk/resume", "admin-token", nil)
		jsonField(t, body, &ep)
		if code != 200 || ep.State != deliver.EndpointActive {
			t.Fatalf("resume = %d %s", code, body)
		}
		sr.waitFor(t, pending[0].EventID)
	})
}

// TestAdminLoopbackOnlyWithoutToken: with no admin.token the admin listener
// serves loopback clients without sign-in and refuses anyone else.
func TestAdminLoopbackOnlyWithoutToken(t *testing.T) {
	sim, err := m365sim.StartServer(m365sim.Options{}, m365sim.DefaultSeed())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	dir := t.TempDir()
	yml := fmt.Sprintf(`public_url: http://127.0.0.1:1
listen: 127.0.0.1:0
admin: {listen: "0.0.0.0:0"}
state_dir: %s
microsoft: {client_id: %s, client_secret: %s, tenant: contoso.onmicrosoft.com, login_url: %s, graph_url: %s}
webhooks:
  - {name: helpdesk, url: "http://127.0.0.1:1/hooks", secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw}
channels:
  - {name: sales, mailbox: {type: user}}
`, filepath.Join(dir, "data"), m365sim.DefaultClientID, m365sim.DefaultClientSecret, sim.URL, sim.URL)
	path := filepath.Join(dir, "bridge.yaml")
	os.WriteFile(path, []byte(yml), 0o600)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	d := New(cfg, Options{Version: "test"})
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close(context.Background()) })
	_, port, _ := net.SplitHostPort(d.AdminAddr())

	resp, err := http.Get("http://127.0.0.1:" + port + "/")
	if err != nil {
		t.Fatal(err)
	}
	page := readBody(t, resp)
	if resp.StatusCode != 200 || !strings.Contains(page, "No <code>admin.token</code> is configured") || !strings.Contains(page, "Connect") {
		t.Errorf("loopback GET / = %d, want the status page with the no-token warning and a Connect button: %.400s", resp.StatusCode, page)
	}
	resp, err = http.Get("http://127.0.0.1:" + port + "/api/endpoints")
	if err != nil {
		t.Fatal(err)
	}
	if body := readBody(t, resp); resp.StatusCode != 200 || !strings.Contains(body, `"name":"helpdesk"`) {
		t.Errorf("loopback /api/endpoints = %d %s", resp.StatusCode, body)
	}
	// The CLI dials admin.listen as written: Host 0.0.0.0 is the listener's own.
	req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:"+port+"/api/endpoints", nil)
	req.Host = "0.0.0.0:" + port
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if body := readBody(t, resp); resp.StatusCode != 200 {
		t.Errorf("Host 0.0.0.0 (the listen host) = %d %s, want 200", resp.StatusCode, body)
	}
	// A page on another site posting to the loopback listener is refused.
	req, _ = http.NewRequest(http.MethodPost, "http://127.0.0.1:"+port+"/api/endpoints/helpdesk/pause", nil)
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if body := readBody(t, resp); resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "cross-origin") {
		t.Errorf("cross-site POST = %d %s, want 403", resp.StatusCode, body)
	}

	ip := nonLoopbackIP()
	if ip == "" {
		t.Skip("no non-loopback address on this machine to test the refusal from")
	}
	resp, err = http.Get("http://" + net.JoinHostPort(ip, port) + "/api/channels")
	if err != nil {
		t.Fatal(err)
	}
	if body := readBody(t, resp); resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "loopback") {
		t.Errorf("GET from %s = %d %s, want 403 naming the loopback rule", ip, resp.StatusCode, body)
	}
}

func nonLoopbackIP() string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return ""
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil && !n.IP.IsLinkLocalUnicast() {
			return n.IP.String()
		}
	}
	return ""
}

func readBody(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return string(b)
}
