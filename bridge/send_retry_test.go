package bridge

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/bridge/entra"
	"github.com/m365bridge/m365bridge/bridge/graph"
	"github.com/m365bridge/m365bridge/bridge/m365sim"
	"github.com/m365bridge/m365bridge/bridge/store"
	"github.com/m365bridge/m365bridge/config"
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
					if mi.ExtendedProperties[SendPropertyID] == a.send.ID {
						t.Errorf("the failed request left its draft in Drafts")
					}
				}
			}
		})
	}
}

func TestClassifySendError(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want sendErrorKind
	}{
		{"throttled", &graph.Error{Status: 429, Code: "TooManyRequests"}, sendNotProcessed},
		{"unavailable", &graph.Error{Status: 503}, sendNotProcessed},
		{"token refused", &graph.Error{Status: 401, Code: "InvalidAuthenticationToken"}, sendNotProcessed},
		{"needs sign-in", fmt.Errorf("get access token: %w", entra.ErrReauthRequired), sendNotProcessed},
		{"server error", &graph.Error{Status: 500, Code: "generalException"}, sendUncertain},
		{"gateway timeout", &graph.Error{Status: 504}, sendUncertain},
		{"connection dropped", errors.New("POST send: EOF"), sendUncertain},
		{"send as denied", &graph.Error{Status: 403, Code: "ErrorSendAsDenied"}, sendPermanent},
		{"bad recipient", &graph.Error{Status: 400, Code: "ErrorInvalidRecipients"}, sendPermanent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := classifySendError(tt.err); got != tt.want {
				t.Errorf("got %d, want %d", got, tt.want)
			}
		})
	}
}

func TestSendGuidance(t *testing.T) {
	shared := config.Channel{Name: "support", Mailbox: config.Mailbox{Type: config.MailboxShared, Address: "support@contoso.com"}}
	acct := store.Account{UPN: "agent@contoso.com"}
	tests := []struct {
		name, code string
		status     int
		wantCode   string
		wantFix    string
	}{
		{"send as", "ErrorSendAsDenied", 403, "ErrorSendAsDenied", "grant Send As to the signed-in user agent@contoso.com on the shared mailbox support@contoso.com"},
		{"access denied", "ErrorAccessDenied", 403, "ErrorAccessDenied", "m365bridge auth support"},
		{"quota", "ErrorQuotaExceeded", 507, "ErrorQuotaExceeded", "free space"},
		{"sending limit", "ErrorSubmissionQuotaExceeded", 403, "ErrorSubmissionQuotaExceeded", "never for bulk"},
		{"too large", "ErrorMessageSizeExceeded", 413, "ErrorMessageSizeExceeded", "smaller attachments"},
		{"recipient limit", "ErrorRecipientLimitExceeded", 400, "ErrorRecipientLimitExceeded", "at most 500"},
		{"unknown", "SomethingNew", 400, "SomethingNew", "check the request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, reason, fix := sendGuidance(&graph.Error{Status: tt.status, Code: tt.code, Message: "m"}, shared, acct)
			if code != tt.wantCode || reason == "" || !strings.Contains(fix, tt.wantFix) {
				t.Errorf("got %q, %q, %q; want code %q and a fix with %q", code, reason, fix, tt.wantCode, tt.wantFix)
			}
		})
	}
}
