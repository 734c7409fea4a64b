package bridge

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/bridge/m365sim"
	"github.com/m365bridge/m365bridge/bridge/send"
)

// The worker's retry rules against Graph faults: an answer that may hide a
// sent mail is checked in Sent Items before sending again; throttling is
// retried on the schedule; a permanent refusal ends at once; retries end.
func TestSendRetries(t *testing.T) {
	rig := newSendRig(t, nil)
	rig.stop()
	// The Graph client's own retry waits take no time here.
	rig.beforeRun = func(d *Daemon) { d.graph.Sleep = func(ctx context.Context, _ time.Duration) error { return ctx.Err() } }
	rig.start(sendRigOptions())
	md := rig.imported("retries")
	const support = "support@contoso.com"
	fault := func(path string, f m365sim.FaultRule) {
		t.Helper()
		f.Method, f.Path, f.Mailbox = http.MethodPost, path, support
		if _, err := rig.sim.Sim.AddFault(f); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name         string
		body         map[string]any
		setup        func()
		wantStatus   string
		wantAttempts int
		wantCode     string
		wantCopies   int
	}{
		{"500 on reply: checked, then sent once", map[string]any{"to": []any{"carol@example.com"}, "text": "a", "reply_to_event_id": md.ID},
			func() { fault("**/send", m365sim.FaultRule{Status: 500, Count: 1}) }, "sent", 2, "", 1},
		{"429 storm: retried on the schedule", map[string]any{"to": []any{"carol@example.com"}, "text": "b"},
			func() { fault("**/send", m365sim.FaultRule{Status: 429, Count: 10}) }, "sent", 2, "", 1},
		{"invalid recipient: failed at once", map[string]any{"to": []any{"carol@example.com"}, "text": "c"},
			func() {
				fault("**/send", m365sim.FaultRule{Status: 400, Code: "ErrorInvalidRecipients", Message: "Recipient 'carol' is not resolved.", Count: 1})
			}, "failed", 1, "ErrorInvalidRecipients", 0},
		{"503 every time: retries end", map[string]any{"to": []any{"carol@example.com"}, "text": "d"},
			func() { fault("**/send", m365sim.FaultRule{Status: 503, Count: 18}) }, "failed", 3, "retries_exhausted", 0},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.setup()
			a := rig.send("support", fmt.Sprintf("retry-%d", i), tt.body)
			if a.status != http.StatusAccepted {
				t.Fatalf("POST: %d %s", a.status, a.body)
			}
			st := rig.waitFinal("support", a.send.ID)
			if st.Status != tt.wantStatus || st.Attempts != tt.wantAttempts || st.Code != tt.wantCode {
				t.Errorf("got %s after %d attempts, code %q; want %s after %d, code %q (%+v)", st.Status, st.Attempts, st.Code,
					tt.wantStatus, tt.wantAttempts, tt.wantCode, st)
			}
			if st.Status == "failed" && st.Fix == "" {
				t.Errorf("failed without a fix: %+v", st)
			}
			if n := len(rig.sentWithID(support, a.send.ID)); n != tt.wantCopies {
				t.Errorf("%d copies in Sent Items, want %d", n, tt.wantCopies)
			}
			if st.Status == "failed" {
				for _, mi := range rig.sim.Sim.Messages(support, "Drafts") {
					if mi.ExtendedProperties[send.PropertyID] == a.send.ID {
						t.Errorf("the failed request left its draft in Drafts")
					}
				}
			}
		})
	}
}
