package bridge

import (
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/m365bridge/m365bridge/webhooks"
)

// TestReloadRefusesTypesThatDropMail (issue 12 item 3, the daemon from its
// config file): a reload whose webhook types leave out mail.archived, which
// the support channel (archive.mode auto) produces, is refused with the
// fix, and the running filter stays.
func TestReloadRefusesTypesThatDropMail(t *testing.T) {
	rig := newDaemonRig(t, nil)
	hook := "    secret: " + rig.secret + "\n"
	next := strings.Replace(rig.yaml, hook, hook+"    types: [mail.received, channel.*]\n", 1)
	if next == rig.yaml {
		t.Fatal("test setup: the webhook's secret line was not found")
	}
	if err := os.WriteFile(rig.path, []byte(next), 0o600); err != nil {
		t.Fatal(err)
	}
	code, body := rig.reload()
	if code != http.StatusUnprocessableEntity || !strings.Contains(body, "webhooks[0].types") ||
		!strings.Contains(body, `does not take mail.archived, which channel \"support\" (archive.mode auto) produces`) ||
		!strings.Contains(body, "add mail.archived") {
		t.Fatalf("reload = %d %s, want 422 naming webhooks[0].types, mail.archived, channel support and the fix", code, body)
	}
	if !rig.d.webhookTakes("helpdesk")(webhooks.TypeMailArchived) {
		t.Error("after the refused reload the helpdesk webhook no longer takes mail.archived")
	}
}
