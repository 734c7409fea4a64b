package send

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/m365bridge/m365bridge/bridge/entra"
	"github.com/m365bridge/m365bridge/bridge/graph"
	"github.com/m365bridge/m365bridge/bridge/store"
	"github.com/m365bridge/m365bridge/config"
)

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
