package bridge

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/bridge/mailsync"
)

func (rig *daemonRig) reload() (int, string) {
	rig.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+rig.d.AdminAddr()+"/api/reload", nil)
	req.Header.Set("Authorization", "Bearer admin-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		rig.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (rig *daemonRig) channelNames() []string {
	rig.d.runMu.Lock()
	defer rig.d.runMu.Unlock()
	var out []string
	for _, ch := range rig.d.config().Channels {
		if _, ok := rig.d.chans[ch.Name]; ok {
			out = append(out, ch.Name)
		}
	}
	if len(out) != len(rig.d.chans) {
		rig.t.Errorf("running supervisors %d != configured channels %d", len(rig.d.chans), len(out))
	}
	return out
}

func TestReloadAddsRemovesAndRejects(t *testing.T) {
	rig := newDaemonRig(t, nil)
	if page := rig.connect("support", "agent@contoso.com"); !strings.HasPrefix(page, "200") {
		t.Fatalf("consent: %.200s", page)
	}
	deadline := time.Now().Add(20 * time.Second)
	var before *mailsync.Runner
	for before == nil {
		before, _ = rig.d.Runner("support")
		if time.Now().After(deadline) {
			t.Fatal("support never started syncing")
		}
		time.Sleep(10 * time.Millisecond) // pacing: the supervisor starts runners without a hook for tests; the deadline is the safety net
	}

	// Remove sales, add billing (another folder of the shared mailbox),
	// leave support untouched.
	next := strings.Replace(rig.yaml, `  - name: sales
    mailbox: {type: user}
    group: Sales
    poll_interval: 10s
    after_import: mark_read
    archive: {mode: off}
`, `  - name: billing
    mailbox: {type: shared, address: support@contoso.com}
    folder: Inbox/Billing
    group: Billing
    poll_interval: 10s
    archive: {mode: off}
`, 1)
	if next == rig.yaml {
		t.Fatal("test setup: the sales channel block was not found")
	}
	os.WriteFile(rig.path, []byte(next), 0o600)
	if code, body := rig.reload(); code != 200 || !strings.Contains(body, "reloaded") {
		t.Fatalf("reload = %d %s", code, body)
	}
	if got := strings.Join(rig.channelNames(), ","); got != "support,billing" {
		t.Errorf("channels after reload = %s, want support,billing", got)
	}
	if after, ok := rig.d.Runner("support"); !ok || after != before {
		t.Error("the unchanged support channel was restarted by the reload")
	}
	if _, ok := rig.d.Runner("sales"); ok {
		t.Error("the removed sales channel still has a runner")
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+rig.d.AdminAddr()+"/api/channels", nil)
	req.Header.Set("Authorization", "Bearer admin-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var chans []struct{ Name, State string }
	json.NewDecoder(resp.Body).Decode(&chans)
	resp.Body.Close()
	found := false
	for _, c := range chans {
		found = found || c.Name == "billing"
	}
	if !found {
		t.Errorf("billing missing from /api/channels: %+v", chans)
	}

	// An invalid edit is rejected whole, with the errors, and nothing changes.
	os.WriteFile(rig.path, []byte(next+"bogus_key: 1\n"), 0o600)
	code, body := rig.reload()
	if code != http.StatusUnprocessableEntity || !strings.Contains(body, "bogus_key") || !strings.Contains(body, ":") {
		t.Errorf("invalid reload = %d %s, want 422 naming the bad key with its position", code, body)
	}
	if got := strings.Join(rig.channelNames(), ","); got != "support,billing" {
		t.Errorf("channels after a rejected reload = %s, want support,billing", got)
	}
	if logs := rig.logs.String(); !strings.Contains(logs, "reload rejected: the running configuration stays") {
		t.Errorf("no log line for the rejected reload:\n%s", logs)
	}

	// Settings that need a restart are kept, and the answer says so.
	os.WriteFile(rig.path, []byte(strings.Replace(next, "client_secret: ", "client_secret: x", 1)), 0o600)
	if code, body := rig.reload(); code != 200 || !strings.Contains(body, "restart needed") {
		t.Errorf("reload with a changed client secret = %d %s, want 200 with a restart warning", code, body)
	}
	if strings.Contains(rig.logs.String(), "x"+rig.cfg.MS.ClientSecret.Value()) {
		t.Error("the client secret appeared in the logs")
	}
	// The admin listener's trusted proxies are fixed at start too.
	os.WriteFile(rig.path, []byte(strings.Replace(next, "token: admin-token}", "token: admin-token, trusted_proxies: [10.0.0.0/8]}", 1)), 0o600)
	if code, body := rig.reload(); code != 200 || !strings.Contains(body, "admin.hosts/admin.trusted_proxies") {
		t.Errorf("reload with new trusted proxies = %d %s, want 200 saying they need a restart", code, body)
	}
}
