package send

import (
	"cmp"
	"errors"
	"net/http"
	"strings"

	"github.com/m365bridge/m365bridge/bridge/entra"
	"github.com/m365bridge/m365bridge/bridge/graph"
	"github.com/m365bridge/m365bridge/bridge/store"
	"github.com/m365bridge/m365bridge/config"
)

// sendGuidance maps a permanent send error to what mail.send_failed
// carries: Graph's code, the reason in plain words and the operator's fix.
// Codes are matched, never messages. Exchange's submission codes
// (ErrorQuotaExceeded, ErrorMessageSizeExceeded, ErrorSubmissionQuotaExceeded,
// ErrorMessageSubmissionBlocked, ErrorExceededMessageLimit) are EWS response
// codes Graph passes through.
func sendGuidance(err error, ch config.Channel, account store.Account) (code, reason, fix string) {
	var ge *graph.Error
	if errors.As(err, &ge) {
		code = ge.Code
	}
	who, mailbox := account.UPN, ch.Mailbox.Address
	if who == "" {
		who = "the signed-in user"
	}
	if mailbox == "" {
		mailbox = account.UPN
	}
	switch strings.ToLower(code) {
	case "errorinvalidrecipients", "errorinvalidrecipient":
		return code, "Exchange refused a recipient: " + ge.Message, "correct the recipient addresses and send again"
	case "errorrecipientlimitexceeded", "errorexceededmessagelimit":
		return code, "the message has more recipients than Exchange allows: " + ge.Message,
			"send to at most 500 recipients in to, cc and bcc together (the tenant may set a lower limit)"
	case "errorquotaexceeded", "quotalimitreached", "errorquotaexceededonsave":
		return code, "the mailbox " + mailbox + " is over its storage quota, so the sent copy cannot be saved",
			"free space in the mailbox (Sent Items counts) or raise its quota in the Exchange admin center"
	case "errormessagesizeexceeded":
		return code, "the message is larger than the mailbox's maximum send size",
			"send smaller attachments (or a link), or raise the mailbox's MaxSendSize in the Exchange admin center"
	case "errorsubmissionquotaexceeded", "errormessagesubmissionblocked":
		return code, "Exchange Online refused to submit the message: the account reached Microsoft's sending limits or is blocked from sending",
			"check Restricted entities in the Microsoft 365 Defender portal; use this channel for replies only, never for bulk or notification mail"
	}
	switch {
	case errors.Is(err, graph.ErrSendAsDenied):
		return cmp.Or(code, "ErrorSendAsDenied"), who + " may not send as " + mailbox,
			"grant Send As to the signed-in user " + who + " on the shared mailbox " + mailbox +
				" in the Exchange admin center (Recipients > Mailboxes > " + mailbox + " > Delegation > Send as), or with" +
				" Add-RecipientPermission " + mailbox + " -AccessRights SendAs -Trustee " + who + "; it can take up to an hour to apply"
	case errors.Is(err, graph.ErrAccessDenied):
		return cmp.Or(code, "ErrorAccessDenied"), "Microsoft Graph denied sending as " + mailbox + " (the consent lacks Mail.Send or Mail.Send.Shared, or the user lost access)",
			"sign in again for the channel (m365bridge auth " + ch.Name + ") so Mail.Send and Mail.Send.Shared are consented, and check the user's rights on the mailbox"
	}
	reason, fix = graph.Explain(err)
	if fix == "" {
		fix = "check the request and send it again"
	}
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
