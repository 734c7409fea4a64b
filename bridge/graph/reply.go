package graph

// Replies: reply to a message so Outlook threads the answer (Graph sets
// In-Reply-To and References, which internetMessageHeaders cannot), and send
// with an explicit from (a shared mailbox's Send As). Finding a sent message
// again is drafts.go's FindByProperty: Sent Items copies carry no internet
// headers.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// MaxAttachmentBytes is the largest attachment Graph takes inline in one
// sendMail or reply request; beyond it Graph needs an upload session, which
// this package does not implement.
const MaxAttachmentBytes = 3 << 20

// MaxRequestBytes is Graph's limit on one REST request's body: "a limit of
// 4 MB on the total size of each REST request" (GDC
// api-reference/v1.0/api/profilephoto-update.md), read as 4,000,000 bytes,
// the stricter reading. Attachments travel base64-encoded in the JSON, so
// 3 MB of attachments already reach it; sends check the encoded body.
const MaxRequestBytes = 4_000_000

// MaxCustomHeaders is how many internetMessageHeaders Graph accepts on one
// message; more is 400 InvalidInternetMessageHeaderCollection ("Maximum
// number of headers in one message should be less than or equal to 5.").
const MaxCustomHeaders = 5

// checkRequestSize refuses a body Graph would answer 413, before sending it.
func checkRequestSize(body []byte) error {
	if len(body) > MaxRequestBytes {
		return fmt.Errorf("the request is %d bytes encoded; Graph accepts at most %d: %w", len(body), MaxRequestBytes, ErrRequestTooLarge)
	}
	return nil
}

// MaxRecipients is Graph's limit of to+cc+bcc recipients on one message.
const MaxRecipients = maxRecipients

// withFrom is an OutgoingMessage with the from property (Send As).
type withFrom struct {
	OutgoingMessage
	From *Recipient `json:"from,omitempty"`
}

// checkOutgoing applies Graph's rules that a request cannot fix later:
// recipient count (none allowed only when allowNone, as a reply defaults to
// the original sender), custom X- headers only, and the file attachment type.
func checkOutgoing(msg *OutgoingMessage, allowNone bool) error {
	n := len(msg.ToRecipients) + len(msg.CcRecipients) + len(msg.BccRecipients)
	switch {
	case n == 0 && !allowNone:
		return fmt.Errorf("no recipients")
	case n > maxRecipients:
		return fmt.Errorf("%d recipients; Graph allows at most %d in to, cc and bcc together", n, maxRecipients)
	}
	if len(msg.InternetMessageHeaders) > MaxCustomHeaders {
		return fmt.Errorf("%d custom headers; Graph accepts at most %d on a message", len(msg.InternetMessageHeaders), MaxCustomHeaders)
	}
	for _, h := range msg.InternetMessageHeaders {
		if !strings.HasPrefix(strings.ToLower(h.Name), "x-") {
			return fmt.Errorf("header %q: Graph accepts only custom X- headers", h.Name)
		}
	}
	for i := range msg.Attachments {
		if msg.Attachments[i].ODataType == "" {
			msg.Attachments[i].ODataType = FileAttachment
		}
		if len(msg.Attachments[i].ContentBytes) > MaxAttachmentBytes {
			return fmt.Errorf("attachment %q is %d bytes; inline attachments are limited to %d", msg.Attachments[i].Name, len(msg.Attachments[i].ContentBytes), MaxAttachmentBytes)
		}
	}
	return nil
}

// SendMailFrom is SendMail with from set: for a shared mailbox, the shared
// address, so the mail leaves as the mailbox (Send As) and, through
// /users/{shared}/sendMail, is saved to the shared mailbox's Sent Items. A
// nil from leaves Graph's default, the mailbox itself. Like SendMail it is
// retried only when Graph says the request was not processed.
func (m *MailboxClient) SendMailFrom(ctx context.Context, msg OutgoingMessage, from *Recipient, saveToSentItems bool) error {
	if err := checkOutgoing(&msg, false); err != nil {
		return fmt.Errorf("send mail: %w", err)
	}
	body, err := json.Marshal(map[string]any{"message": withFrom{msg, from}, "saveToSentItems": saveToSentItems})
	if err != nil {
		return fmt.Errorf("encode mail: %w", err)
	}
	if err := checkRequestSize(body); err != nil {
		return fmt.Errorf("send mail: %w", err)
	}
	if _, err := m.do(ctx, call{method: http.MethodPost, url: m.url("/sendMail", nil), kind: kindSend, body: body, notIdempotent: true}); err != nil {
		return fmt.Errorf("send mail: %w", err)
	}
	return nil
}

// Reply sends msg as a reply to the message messageID of this mailbox
// (POST /messages/{id}/reply, answered 202): Graph sets In-Reply-To and
// References from the original, so mail clients thread it, and saves it to
// the mailbox's Sent Items. Empty recipients default to the original's
// Reply-To or sender; msg.Subject empty keeps Graph's "RE: ..." subject.
// The body replaces the quoted original (no comment is sent, as Graph
// refuses a comment together with message.body). A 404 (the original was
// deleted) matches ErrItemNotFound; nothing was sent then. Retried only
// when Graph says the request was not processed.
func (m *MailboxClient) Reply(ctx context.Context, messageID string, msg OutgoingMessage, from *Recipient) error {
	if strings.TrimSpace(messageID) == "" {
		return fmt.Errorf("reply: empty message id")
	}
	if err := checkOutgoing(&msg, true); err != nil {
		return fmt.Errorf("reply: %w", err)
	}
	body, err := json.Marshal(map[string]any{"message": withFrom{msg, from}})
	if err != nil {
		return fmt.Errorf("encode reply: %w", err)
	}
	if err := checkRequestSize(body); err != nil {
		return fmt.Errorf("reply: %w", err)
	}
	u := m.url("/messages/"+url.PathEscape(messageID)+"/reply", nil)
	if _, err := m.do(ctx, call{method: http.MethodPost, url: u, kind: kindSend, body: body, notIdempotent: true}); err != nil {
		return fmt.Errorf("reply: %w", err)
	}
	return nil
}
