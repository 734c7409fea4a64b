package bridge

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/bridge/admin"
	"github.com/m365bridge/m365bridge/bridge/m365sim"
	"github.com/m365bridge/m365bridge/webhooks"
)

// switchReceiver is a helpdesk receiver the test can break and fix: while
// failing it answers failStatus with failBody; otherwise it verifies the
// signature and records the event.
type switchReceiver struct {
	srv *httptest.Server

	mu         sync.Mutex
	failStatus int
	failBody   string
	events     map[string]webhooks.Event // by webhook-id
	got        chan string               // webhook-ids of accepted events
}

// newSwitchReceiver starts the receiver and points the rig's helpdesk
// webhook at it (the dispatcher's endpoint set is replaced the way a
// reload does), with maxAttempts attempts per event.
func newSwitchReceiver(rig *daemonRig, maxAttempts int) *switchReceiver {
	rig.t.Helper()
	sr := &switchReceiver{events: map[string]webhooks.Event{}, got: make(chan string, 100)}
	recv := &webhooks.Receiver{Verifier: webhooks.Verifier{Secrets: []string{rig.secret}}}
	recv.OnEvent = func(ctx context.Context, d *webhooks.Delivery) error {
		sr.mu.Lock()
		sr.events[d.ID] = d.Event
		sr.mu.Unlock()
		sr.got <- d.ID
		return nil
	}
	sr.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sr.mu.Lock()
		status, body := sr.failStatus, sr.failBody
		sr.mu.Unlock()
		if status != 0 {
			http.Error(w, body, status)
			return
		}
		recv.ServeHTTP(w, r)
	}))
	rig.t.Cleanup(sr.srv.Close)

	d := rig.d
	d.mu.Lock()
	eps := append(d.endpoints[:0:0], d.endpoints...)
	for i := range eps {
		eps[i].URL = sr.srv.URL + "/hooks"
		eps[i].MaxAttempts = maxAttempts
	}
	d.endpoints = eps
	d.mu.Unlock()
	if err := d.disp.SetEndpoints(eps); err != nil {
		rig.t.Fatal(err)
	}
	return sr
}

func (sr *switchReceiver) fail(status int, body string) {
	sr.mu.Lock()
	defer sr.mu.Unlock()
	sr.failStatus, sr.failBody = status, body
}

// waitFor waits until the receiver accepted the event with id.
func (sr *switchReceiver) waitFor(t *testing.T, id string) webhooks.Event {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case got := <-sr.got:
			if got == id {
				sr.mu.Lock()
				defer sr.mu.Unlock()
				return sr.events[id]
			}
		case <-timeout:
			t.Fatalf("event %s never reached the receiver", id)
		}
	}
}

// adminCall is one admin API request: auth is the Bearer token ("" for
// none); body, when not nil, is sent as JSON.
func adminCall(t *testing.T, rig *daemonRig, method, path, auth string, body any, header ...string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = strings.NewReader(string(b))
	}
	req, _ := http.NewRequest(method, "http://"+rig.d.AdminAddr()+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// noRedirect shows 303s to the test instead of following them.
var noRedirect = &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
	return http.ErrUseLastResponse
}}

// deliveries lists outbox rows through the admin API.
func deliveries(t *testing.T, rig *daemonRig, query string) []admin.DeliveryView {
	t.Helper()
	code, body := adminCall(t, rig, http.MethodGet, "/api/deliveries?"+query, "admin-token", nil)
	if code != http.StatusOK {
		t.Fatalf("GET /api/deliveries?%s = %d %s", query, code, body)
	}
	var out []admin.DeliveryView
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatalf("deliveries JSON: %v: %s", err, body)
	}
	return out
}

// waitDeliveries polls /api/deliveries until n rows match query.
func waitDeliveries(t *testing.T, rig *daemonRig, query string, n int) []admin.DeliveryView {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		rows := deliveries(t, rig, query)
		if len(rows) >= n {
			return rows
		}
		if time.Now().After(deadline) {
			t.Fatalf("deliveries?%s: %d rows, want %d", query, len(rows), n)
		}
		time.Sleep(20 * time.Millisecond) // pacing: the admin API is what tells, and it cannot push; the deadline is the safety net
	}
}

// injectSales puts one new message into the sales user mailbox.
func injectSales(t *testing.T, rig *daemonRig, subject string) {
	t.Helper()
	if _, err := rig.sim.Sim.InjectMessage("sales@contoso.com", m365sim.NewMessage{Subject: subject, From: "dave@example.com", Body: "Hi"}); err != nil {
		t.Fatal(err)
	}
}

// syncNow runs a sync round of a running channel at once (Notify only runs
// post-import actions; rounds otherwise wait for the poll interval).
func syncNow(t *testing.T, rig *daemonRig, channel string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if r, ok := rig.d.Runner(channel); ok {
			if _, err := r.SyncOnce(t.Context()); err != nil {
				t.Fatalf("sync %s: %v", channel, err)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("channel %s never started syncing", channel)
		}
		time.Sleep(10 * time.Millisecond) // pacing: the supervisor starts runners without a hook for tests; the deadline is the safety net
	}
}

func mustConnect(t *testing.T, rig *daemonRig, channel, upn string) {
	t.Helper()
	if page := rig.connect(channel, upn); !strings.HasPrefix(page, "200") {
		t.Fatalf("%s consent: %.300s", channel, page)
	}
}

func jsonField(t *testing.T, body string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("decode %T: %v: %s", v, err, body)
	}
}

func fmtRows(rows []admin.DeliveryView) string {
	var b strings.Builder
	for _, r := range rows {
		fmt.Fprintf(&b, "%s %s %s attempts=%d status=%d; ", r.EventID, r.Channel, r.State, r.Attempts, r.LastStatus)
	}
	return b.String()
}
