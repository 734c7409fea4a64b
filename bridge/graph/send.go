package graph

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
)

// maxRecipients is Graph's limit of to+cc+bcc recipients on one message.
const maxRecipients = 500

// OutgoingMessage is the message of a sendMail request (GDC message.md).
// InternetMessageHeaders may only carry custom X- headers; Graph rejects
// others. Attachments are file attachments with ContentBytes set (under
// 3 MB each for this API).
type OutgoingMessage struct {
	Subject                string       `json:"subject"`
	Body                   *ItemBody    `json:"body,omitempty"`
	ToRecipients           []Recipient  `json:"toRecipients,omitempty"`
	CcRecipients           []Recipient  `json:"ccRecipients,omitempty"`
	BccRecipients          []Recipient  `json:"bccRecipients,omitempty"`
	ReplyTo                []Recipient  `json:"replyTo,omitempty"`
	Importance             string       `json:"importance,omitempty"`
	InternetMessageHeaders []Header     `json:"internetMessageHeaders,omitempty"`
	Attachments            []Attachment `json:"attachments,omitempty"`
}

// SendMail sends msg from the mailbox (POST /sendMail, answered 202) and,
// if saveToSentItems, keeps a copy in its Sent Items. Sending is not
// idempotent, so only answers that say the request was not processed are
// retried (429, 503, and one 401 token refresh); a network error or another
// 5xx is returned as is, because the mail may have gone out. A shared
// mailbox needs Send As for the signed-in user: ErrSendAsDenied otherwise.
func (m *MailboxClient) SendMail(ctx context.Context, msg OutgoingMessage, saveToSentItems bool) error {
	if err := checkOutgoing(&msg, false); err != nil {
		return fmt.Errorf("send mail: %w", err)
	}
	body, err := json.Marshal(map[string]any{"message": msg, "saveToSentItems": saveToSentItems})
	if err != nil {
		return fmt.Errorf("encode mail: %w", err)
	}
	if err := checkRequestSize(body); err != nil {
		return fmt.Errorf("send mail: %w", err)
	}
	_, err = m.do(ctx, call{method: http.MethodPost, url: m.url("/sendMail", nil), kind: kindSend, body: body, notIdempotent: true})
	if err != nil {
		return fmt.Errorf("send mail: %w", err)
	}
	return nil
}
