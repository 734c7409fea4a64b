package bridge

import (
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/bridge/admin"
)

// TestWebhookURLSecretNeverShown: a helpdesk URL that carries a credential
// in its query (?token=…) is what many receivers ask for. When the
// receiver cannot be reached, the transport error names the URL; the
// credential must not reach the log, the outbox's last_error, the admin
// API or the status page. Checked through the daemon run from a config
// file, not through the redaction helper.
func TestWebhookURLSecretNeverShown(t *testing.T) {
	const secret = "tk-9f3a71c2e4b8d05a"
	rig := newRigBase(t, nil)
	rig.receiver = freeLoopback(t) // nothing listens there: every POST fails in transport
	rig.writeConfig(defaultRigChannels)
	rig.yaml = strings.Replace(rig.yaml, "/hooks\n", "/hooks?token="+secret+"\n", 1)
	if !strings.Contains(rig.yaml, "?token="+secret) {
		t.Fatalf("the test did not put the secret into the webhook URL:\n%s", rig.yaml)
	}
	if err := os.WriteFile(rig.path, []byte(rig.yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	rig.start()
	t.Cleanup(func() { rig.stop() })

	mustConnect(t, rig, "sales", "sales@contoso.com")
	injectSales(t, rig, "A secret in the URL")
	syncNow(t, rig, "sales")
	// The first attempt has failed once a row carries its error. The admin
	// API is polled (20 ms pacing) as an operator would; the 30 s deadline
	// is a safety net over an attempt that takes milliseconds.
	var failed admin.DeliveryView
	for deadline := time.Now().Add(30 * time.Second); failed.LastError == ""; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no delivery failed with an error: %s", fmtRows(deliveries(t, rig, "")))
		}
		for _, r := range deliveries(t, rig, "") {
			if r.LastError != "" {
				failed = r
			}
		}
	}
	if !strings.Contains(failed.LastError, "connect") && !strings.Contains(failed.LastError, "refused") {
		t.Errorf("last_error %q does not say why the POST failed", failed.LastError)
	}

	sinks := map[string]string{"log": rig.logs.String()}
	for _, path := range []string{"/api/deliveries", "/api/deliveries?state=pending", "/api/endpoints", "/api/channels"} {
		code, body := adminCall(t, rig, http.MethodGet, path, "admin-token", nil)
		if code != http.StatusOK {
			t.Fatalf("GET %s = %d %s", path, code, body)
		}
		sinks["GET "+path] = body
	}
	p := newPageClient(t, rig)
	page, _ := p.signIn("admin-token")
	sinks["status page"] = page
	if !strings.Contains(page, "helpdesk") {
		t.Errorf("the status page does not show the endpoint at all: %.500s", page)
	}
	if !strings.Contains(sinks["log"], "delivery failed") {
		t.Errorf("the log does not show the failed delivery:\n%s", sinks["log"])
	}
	for name, text := range sinks {
		if i := strings.Index(text, secret); i >= 0 {
			t.Errorf("%s shows the URL's secret: …%s…", name, text[max(0, i-200):min(len(text), i+60)])
		}
	}
}
