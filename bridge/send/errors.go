package send

import (
	"cmp"
	"errors"
	"net/http"

	"github.com/m365bridge/m365bridge/bridge/entra"
	"github.com/m365bridge/m365bridge/bridge/graph"
	"github.com/m365bridge/m365bridge/bridge/store"
	"github.com/m365bridge/m365bridge/config"
)

// sendGuidance maps a permanent send error to what mail.send_failed
// carries: Graph's code, the reason in plain words and the operator's fix,
// from the one Graph vocabulary (graph.ExplainSend).
func sendGuidance(err error, ch config.Channel, account store.Account) (code, reason, fix string) {
	who, mailbox := account.UPN, ch.Mailbox.Address
	if who == "" {
		who = "the signed-in user"
	}
	if mailbox == "" {
		mailbox = account.UPN
	}
	code, reason, fix = graph.ExplainSend(err, mailbox, who, ch.Name)
	return cmp.Or(code, "send_failed"), reason, fix
}

// sendErrorKind is what an error from a send call means for the request.
type sendErrorKind int

const (
	// sendPermanent: Graph refused the message; retrying cannot help.
	sendPermanent sendErrorKind = iota
	// sendNotProcessed: Graph said it did not process the request (429,
	// 503, a refused token), or the token could not be had: send again.
	sendNotProcessed
	// sendUncertain: the mail may have gone out (a transport error, another
	// 5xx, the daemon stopping mid-call): search Sent Items first.
	sendUncertain
)

func classifySendError(err error) sendErrorKind {
	if errors.Is(err, entra.ErrReauthRequired) {
		return sendNotProcessed
	}
	var ge *graph.Error
	if !errors.As(err, &ge) {
		return sendUncertain
	}
	switch {
	case ge.Status == http.StatusTooManyRequests, ge.Status == http.StatusServiceUnavailable,
		ge.Status == http.StatusUnauthorized:
		return sendNotProcessed
	case ge.Status >= 500:
		return sendUncertain
	}
	return sendPermanent
}
