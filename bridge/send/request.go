package send

// The send request: what the helpdesk posts to send a reply through a
// channel's mailbox, how it is checked before it is accepted, and how it
// becomes a Graph message.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/mail"
	"strings"

	"github.com/m365bridge/m365bridge/bridge/graph"
)

// Limits of a send request.
const (
	// MaxAttachmentsTotal is the decoded size of all attachments of
	// one request, and so of one attachment: 35 MB, Exchange Online's
	// default maximum message size ("By default, this message size limit is
	// 35 MB", GDC api-reference/v1.0/api/attachment-createuploadsession.md).
	// Files under 3 MB go to Graph in one POST, larger ones through an
	// upload session (Graph takes up to 150 MB per file, for tenants that
	// raised the limit; the bridge holds a request in memory and in its
	// store, so it stops at the default). A message over the mailbox's own
	// limit fails at Exchange with ErrorMessageSizeExceeded and its fix.
	MaxAttachmentsTotal = 35_000_000
	// MaxAttachmentBytes is the decoded size of one attachment.
	MaxAttachmentBytes = MaxAttachmentsTotal
	// MaxBodyBytes caps the JSON request: the attachments in base64
	// (4/3 of their size) plus 2 MiB for the text and HTML bodies.
	MaxBodyBytes = MaxAttachmentsTotal*4/3 + 2<<20
	// maxAttachmentName bounds a filename (and keeps a small attachment's
	// POST within Graph's 4 MB request limit).
	maxAttachmentName = 255
	// maxIdempotencyKey bounds the Idempotency-Key header.
	maxIdempotencyKey = 255
	// maxRequestID bounds the webhook-id header of a send request (it is
	// remembered for replay protection).
	maxRequestID = 255
	// sendIDHeader is set on every new message the bridge sends, for the
	// recipients' records. It is NOT how the bridge recognises its own mail:
	// Exchange keeps no internet headers on the Sent Items copy; see
	// PropertyID.
	sendIDHeader = "X-M365Bridge-Send-Id"
)

// PropertyID is the MAPI named property (a single-value extended
// property, String, in the bridge's own property set) every outgoing draft
// carries with its send id. Exchange keeps it on the Sent Items copy, so
// after an attempt whose outcome is unknown the worker finds the mail (or
// the unsent draft) by it before it sends anything again.
var PropertyID = graph.NamedStringProperty("{8c4e7c1a-5b0e-4d55-9b7e-2f6a1d3c9e42}", "M365BridgeSendId")

// Request is the body of POST /v1/channels/{name}/messages.
type Request struct {
	To          []Address    `json:"to"`
	Cc          []Address    `json:"cc,omitempty"`
	Bcc         []Address    `json:"bcc,omitempty"`
	ReplyTo     []Address    `json:"reply_to,omitempty"`
	Subject     string       `json:"subject"`
	HTML        string       `json:"html,omitempty"`
	Text        string       `json:"text,omitempty"`
	Attachments []Attachment `json:"attachments,omitempty"`
	// ReplyToEventID is the mail.received/mail.archived event of the
	// message this answers: the reply is sent with Graph's reply action,
	// so it threads.
	ReplyToEventID string `json:"reply_to_event_id,omitempty"`
	// InReplyTo is the Message-ID answered, <id@host>; a message the
	// channel imported is then found in the ledger and replied to.
	InReplyTo string `json:"in_reply_to,omitempty"`
	// References is the thread's Message-IDs (a string or a list). Graph
	// sets References itself on a reply; on a plain send it cannot be set.
	References MessageIDs `json:"references,omitempty"`
}

// Address is a recipient: in JSON a string ("Name <a@b>" or "a@b") or
// an object {"name","address"}.
type Address struct {
	Name    string `json:"name,omitempty"`
	Address string `json:"address"`
}

// UnmarshalJSON accepts a string or an object.
func (a *Address) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		p, err := mail.ParseAddress(s)
		if err != nil {
			return fmt.Errorf("%q is not a mail address", s)
		}
		*a = Address{Name: p.Name, Address: p.Address}
		return nil
	}
	type plain Address
	var p plain
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return fmt.Errorf("a recipient is \"a@b\", \"Name <a@b>\" or {\"name\",\"address\"}: %v", err)
	}
	*a = Address(p)
	return nil
}

// MessageIDs is a list of Message-IDs; in JSON a list or one string of
// space-separated ids.
type MessageIDs []string

// UnmarshalJSON accepts a string or a list of strings.
func (m *MessageIDs) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		*m = strings.Fields(s)
		return nil
	}
	var l []string
	if err := json.Unmarshal(b, &l); err != nil {
		return fmt.Errorf("references is a string or a list of Message-IDs")
	}
	*m = l
	return nil
}

// Attachment is a file attached to the reply.
type Attachment struct {
	Filename      string `json:"filename"`
	ContentType   string `json:"content_type,omitempty"`
	ContentBase64 string `json:"content_base64"`
	Inline        bool   `json:"inline,omitempty"`
	ContentID     string `json:"content_id,omitempty"`
}

// requestError is a send request refused before it was accepted: the HTTP
// status and a message that says what to fix.
type requestError struct {
	status int
	msg    string
}

func (e *requestError) Error() string { return e.msg }

func badRequest(status int, format string, a ...any) error {
	return &requestError{status: status, msg: fmt.Sprintf(format, a...)}
}

// decodeSendRequest parses and checks a request body. Errors are
// *requestError: 400 for JSON that does not decode (with the decoder's
// message), 413 for attachments over Graph's limits, 422 for a request
// that decodes but cannot be sent.
func decodeSendRequest(body []byte) (Request, error) {
	var req Request
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, badRequest(http.StatusBadRequest, "malformed JSON body: %v", err)
	}
	if dec.More() {
		return req, badRequest(http.StatusBadRequest, "malformed JSON body: more than one JSON value")
	}
	return req, req.validate()
}

func (r *Request) validate() error {
	n := len(r.To) + len(r.Cc) + len(r.Bcc)
	switch {
	case n == 0:
		return badRequest(http.StatusUnprocessableEntity, "no recipient: give at least one address in to, cc or bcc")
	case n > graph.MaxRecipients:
		return badRequest(http.StatusUnprocessableEntity, "%d recipients: Microsoft Graph allows at most %d in to, cc and bcc together; split the message", n, graph.MaxRecipients)
	}
	for _, f := range []struct {
		name string
		list []Address
	}{{"to", r.To}, {"cc", r.Cc}, {"bcc", r.Bcc}, {"reply_to", r.ReplyTo}} {
		for i, a := range f.list {
			if p, err := mail.ParseAddress(a.Address); err != nil || p.Address != a.Address {
				return badRequest(http.StatusUnprocessableEntity, "%s[%d]: %q is not a mail address", f.name, i, a.Address)
			}
		}
	}
	if strings.ContainsAny(r.Subject, "\r\n") {
		return badRequest(http.StatusUnprocessableEntity, "subject: must be one line")
	}
	if r.HTML == "" && r.Text == "" {
		return badRequest(http.StatusUnprocessableEntity, "no body: give html, text or both (html is sent when both are given)")
	}
	for _, id := range append([]string{r.InReplyTo}, r.References...) {
		if id != "" && !validMessageID(id) {
			return badRequest(http.StatusUnprocessableEntity, "%q is not a Message-ID; write it with angle brackets, as in <id@host>", id)
		}
	}
	var total int
	for i, a := range r.Attachments {
		if strings.TrimSpace(a.Filename) == "" {
			return badRequest(http.StatusUnprocessableEntity, "attachments[%d]: filename is required", i)
		}
		if len(a.Filename) > maxAttachmentName {
			return badRequest(http.StatusUnprocessableEntity, "attachments[%d]: the filename is %d bytes; at most %d", i, len(a.Filename), maxAttachmentName)
		}
		if a.Inline && a.ContentID == "" {
			return badRequest(http.StatusUnprocessableEntity, "attachments[%d] (%s): an inline attachment needs content_id, the cid: the HTML refers to", i, a.Filename)
		}
		size := base64.StdEncoding.DecodedLen(len(a.ContentBase64))
		if size > MaxAttachmentBytes+3 {
			return badRequest(http.StatusRequestEntityTooLarge, "attachments[%d] (%s) is about %d bytes; a request takes at most %d bytes of attachments (Exchange Online's default message size); send a link instead", i, a.Filename, size, MaxAttachmentBytes)
		}
		data, err := base64.StdEncoding.DecodeString(a.ContentBase64)
		if err != nil {
			return badRequest(http.StatusBadRequest, "attachments[%d] (%s): content_base64 is not standard base64: %v", i, a.Filename, err)
		}
		if len(data) > MaxAttachmentBytes {
			return badRequest(http.StatusRequestEntityTooLarge, "attachments[%d] (%s) is %d bytes; a request takes at most %d bytes of attachments (Exchange Online's default message size); send a link instead", i, a.Filename, len(data), MaxAttachmentBytes)
		}
		total += len(data)
	}
	if total > MaxAttachmentsTotal {
		return badRequest(http.StatusRequestEntityTooLarge, "the attachments total %d bytes; a request takes at most %d bytes of attachments (Exchange Online's default message size); send links instead", total, MaxAttachmentsTotal)
	}
	return nil
}

func validMessageID(id string) bool {
	return len(id) > 2 && id[0] == '<' && id[len(id)-1] == '>' && strings.Contains(id, "@") && !strings.ContainsAny(id, " \t\r\n")
}

func recipients(list []Address) []graph.Recipient {
	out := make([]graph.Recipient, 0, len(list))
	for _, a := range list {
		out = append(out, graph.Recipient{EmailAddress: graph.EmailAddress{Name: a.Name, Address: a.Address}})
	}
	return out
}

// outgoing turns the request into a Graph message carrying the send id in
// sendIDHeader. Graph lets sendMail set only X- headers, so threading on a
// plain send is carried in X-M365Bridge-In-Reply-To/References for the
// record; a real In-Reply-To needs the reply path.
func (r *Request) outgoing(sendID string) (graph.OutgoingMessage, error) {
	msg := graph.OutgoingMessage{
		Subject:      r.Subject,
		ToRecipients: recipients(r.To), CcRecipients: recipients(r.Cc), BccRecipients: recipients(r.Bcc),
		ReplyTo:                recipients(r.ReplyTo),
		InternetMessageHeaders: []graph.Header{{Name: sendIDHeader, Value: sendID}},
	}
	if r.HTML != "" {
		msg.Body = &graph.ItemBody{ContentType: "html", Content: r.HTML}
	} else {
		msg.Body = &graph.ItemBody{ContentType: "text", Content: r.Text}
	}
	for _, a := range r.Attachments {
		data, err := base64.StdEncoding.DecodeString(a.ContentBase64)
		if err != nil {
			return msg, fmt.Errorf("attachment %s: %w", a.Filename, err)
		}
		ct := a.ContentType
		if ct == "" {
			ct = "application/octet-stream"
		}
		msg.Attachments = append(msg.Attachments, graph.Attachment{ODataType: graph.FileAttachment, Name: a.Filename,
			ContentType: ct, IsInline: a.Inline, ContentID: a.ContentID, ContentBytes: data})
	}
	return msg, nil
}

// plainThreadHeaders are the X- headers a plain send carries instead of the
// In-Reply-To and References Graph does not let it set.
func (r *Request) plainThreadHeaders() []graph.Header {
	var hs []graph.Header
	if r.InReplyTo != "" {
		hs = append(hs, graph.Header{Name: "X-M365Bridge-In-Reply-To", Value: r.InReplyTo})
	}
	if len(r.References) > 0 {
		hs = append(hs, graph.Header{Name: "X-M365Bridge-References", Value: strings.Join(r.References, " ")})
	}
	return hs
}
