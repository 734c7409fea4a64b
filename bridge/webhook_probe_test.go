package bridge

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/m365bridge/m365bridge/bridge/admin"
	"github.com/m365bridge/m365bridge/webhooks"
	"github.com/m365bridge/m365bridge/webhooks/deliver"
)

// TestWebhookTestEvent is issue 12 item 10: webhook.test is sent on demand
// through the admin API and the status page, signed with the endpoint's
// secret (the receiver verifies it), once, outside the outbox, also while
// the endpoint is paused; the receiver's answer comes back.
func TestWebhookTestEvent(t *testing.T) {
	rig := newDaemonRig(t, nil)
	sr := newSwitchReceiver(rig, 5)

	code, body := adminCall(t, rig, http.MethodPost, "/api/endpoints/helpdesk/test", "admin-token", nil)
	var res admin.WebhookTestResult
	jsonField(t, body, &res)
	if code != http.StatusOK || !res.OK || res.Status != http.StatusNoContent && res.Status != http.StatusOK || res.Outcome != "delivered" ||
		!strings.HasPrefix(res.EventID, "evt_") || res.EndpointState != deliver.EndpointActive {
		t.Fatalf("POST /api/endpoints/helpdesk/test = %d %s, want ok with the receiver's 2xx", code, body)
	}
	ev := sr.waitFor(t, res.EventID) // the receiver verified its signature
	if ev.Type != webhooks.TypeWebhookTest || ev.ID() != res.EventID {
		t.Errorf("receiver got %s %s, want webhook.test %s", ev.Type, ev.ID(), res.EventID)
	}
	if rows := deliveries(t, rig, "state=pending,delivered,dead,rejected"); len(rows) != 0 {
		t.Errorf("a test event went through the outbox: %s", fmtRows(rows))
	}

	// A refusing receiver: its status and answer come back, nothing is queued.
	sr.fail(http.StatusUnauthorized, `{"error":"bad signature secret"}`)
	if code, _ := adminCall(t, rig, http.MethodPost, "/api/endpoints/helpdesk/pause", "admin-token", nil); code != http.StatusOK {
		t.Fatalf("pause = %d", code)
	}
	code, body = adminCall(t, rig, http.MethodPost, "/api/endpoints/helpdesk/test", "admin-token", nil)
	res = admin.WebhookTestResult{}
	jsonField(t, body, &res)
	if code != http.StatusOK || res.OK || res.Status != http.StatusUnauthorized || res.Outcome != "permanent" ||
		!strings.Contains(res.Response, "bad signature secret") || res.EndpointState != deliver.EndpointPaused {
		t.Errorf("test against a refusing, paused endpoint = %d %s, want 401 with the answer, endpoint paused", code, body)
	}
	if code, body := adminCall(t, rig, http.MethodPost, "/api/endpoints/nope/test", "admin-token", nil); code != http.StatusNotFound || !strings.Contains(body, "no webhook nope") {
		t.Errorf("test of an unknown webhook = %d %s, want 404", code, body)
	}
	if code, _ := adminCall(t, rig, http.MethodPost, "/api/endpoints/helpdesk/test", "", nil); code != http.StatusUnauthorized {
		t.Errorf("test without the admin token = %d, want 401", code)
	}

	// The status page's button: the flash shows the receiver's answer.
	sr.fail(0, "")
	p := newPageClient(t, rig)
	page, csrf := p.signIn("admin-token")
	if !strings.Contains(page, `id="test-helpdesk"`) {
		t.Fatalf("status page has no Send test button")
	}
	resp, _ := p.do(http.MethodPost, "/ui/endpoints/helpdesk/test", url.Values{"csrf": {csrf}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/#endpoints" {
		t.Fatalf("Send test = %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	page, _ = p.page()
	if !strings.Contains(page, "Test sent. webhook helpdesk answered HTTP 2") || !strings.Contains(page, "(delivered) to webhook.test evt_") {
		t.Errorf("no flash with the receiver's answer:\n%s", page)
	}
	sr.fail(http.StatusInternalServerError, "helpdesk down for maintenance")
	p.do(http.MethodPost, "/ui/endpoints/helpdesk/test", url.Values{"csrf": {csrf}})
	if page, _ = p.page(); !strings.Contains(page, "answered HTTP 500") || !strings.Contains(page, "helpdesk down for maintenance") || !strings.Contains(page, `class="flash bad"`) {
		t.Errorf("no failure flash with the answer")
	}
}
