// Package event turns a Graph message into a webhook event: the version-1
// mail event (customer, article, bodies, attachments, signed attachment
// links), its encoding and fitting under the size limit, and the archive
// policy that decides mail.archived or mail.received.
package event

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/m365bridge/m365bridge/bridge/graph"
	"github.com/m365bridge/m365bridge/config"
	"github.com/m365bridge/m365bridge/webhooks"
)

// archiveTag is the tag every archived message's event carries.
const archiveTag = "archive"

// newTicketState is the ticket state of mail imported as new.
const newTicketState = "new"

// ErrUnconvertible marks a message that cannot become an event (no id,
// too large, undecodable; never odd headers): the runner records it as
// rejected, with the error as the reason, tells the helpdesk with
// mail.rejected, and leaves it in the mailbox.
var ErrUnconvertible = errors.New("message cannot become an event")

// Source is everything BuildMailEvent needs besides the message.
type Source struct {
	// Tenant and Mailbox (the mailbox's address) key the event id together
	// with the message's immutable id.
	Tenant  string
	Mailbox string
	Channel config.Channel
	// Folder is the folder path shown in events (the resolved display path,
	// or the configured one).
	Folder string
	Policy ArchivePolicy
	Now    time.Time
	// Link, when set, gives an attachment's signed link and its expiry
	// (AttachmentLinks.For); nil leaves events without links.
	Link LinkFunc
}

// LinkFunc signs a link to one attachment of a message: the URL a receiver
// fetches its bytes from, and when that stops working.
type LinkFunc func(messageID, attachmentID, filename string) (url string, expires time.Time)

// BuildMailEvent turns a Graph message (with its attachments in
// msg.Attachments when it has any) into a version-1 mail event: mail.archived
// when the policy archives it, mail.received otherwise. raw, when not nil,
// is the raw MIME block (channel raw_mime). The event id is
// webhooks.EventID(src.Tenant, src.Mailbox, msg.ID), the same on every
// re-sync. A message that cannot be represented gives an error matching
// ErrUnconvertible.
func BuildMailEvent(src Source, msg *graph.Message, raw *webhooks.RawMIME) (webhooks.Event, *webhooks.MailData, error) {
	typ, d, err := MailDataOf(src, msg, raw)
	if err != nil {
		return webhooks.Event{}, nil, err
	}
	ev, err := webhooks.NewEvent(typ, src.Now, d)
	if err != nil {
		return webhooks.Event{}, nil, fmt.Errorf("%w: %w", ErrUnconvertible, err)
	}
	return ev, d, nil
}

// MailDataOf is BuildMailEvent without encoding: the event type and data,
// for EncodeMail, which encodes them once.
func MailDataOf(src Source, msg *graph.Message, raw *webhooks.RawMIME) (string, *webhooks.MailData, error) {
	if msg.ID == "" {
		return "", nil, fmt.Errorf("%w: the message has no id", ErrUnconvertible)
	}
	customer := customerOf(msg, src.Mailbox)
	archived := src.Policy.Archived(msg.ReceivedDateTime)
	mailboxType := src.Channel.Mailbox.Type
	if mailboxType == "" {
		mailboxType = config.MailboxUser
	}
	d := &webhooks.MailData{
		ID:      webhooks.EventID(src.Tenant, src.Mailbox, msg.ID),
		Version: webhooks.Version,
		Channel: src.Channel.Name,
		Mailbox: webhooks.Mailbox{Type: mailboxType, Address: src.Mailbox},
		Folder:  src.Folder,
		Group:   src.Channel.Group,
		Archive: archived,
		Ticket: webhooks.Ticket{
			Title:              titleOf(msg.Subject, customer),
			State:              newTicketState,
			CreatedAt:          msg.ReceivedDateTime,
			Customer:           customer.addr,
			CustomerSource:     customer.source,
			CustomerUnresolved: customer.source == "none",
			CustomerRaw:        customer.raw,
		},
		Article: articleOf(msg, attachmentPolicy{
			max: src.Channel.MaxAttachmentBytes, linkOnly: src.Channel.Attachments == config.AttachmentsLink, link: src.Link}),
	}
	if d.Ticket.CreatedAt.IsZero() {
		d.Ticket.CreatedAt = src.Now.UTC()
	}
	typ := webhooks.TypeMailReceived
	if archived {
		typ = webhooks.TypeMailArchived
		d.Tags = []string{archiveTag}
		d.Ticket.State = src.Policy.State
		if d.Ticket.State == "" {
			d.Ticket.State = config.DefaultArchiveState
		}
		d.Ticket.SuppressAutomations = true
	}
	d.Article.RawMIME = raw
	return typ, d, nil
}

func address(r *graph.Recipient) webhooks.Address {
	return webhooks.Address{Name: r.EmailAddress.Name, Address: r.EmailAddress.Address}
}

func addresses(rs []graph.Recipient) []webhooks.Address {
	if len(rs) == 0 {
		return nil
	}
	out := make([]webhooks.Address, 0, len(rs))
	for i := range rs {
		out = append(out, address(&rs[i]))
	}
	return out
}

// titleOf is the subject, or "(no subject)" and who sent it.
func titleOf(subject string, c customer) string {
	if s := strings.TrimSpace(subject); s != "" {
		return s
	}
	who := c.addr.Address
	switch {
	case c.addr.Name != "" && who != "":
		who = c.addr.Name + " <" + who + ">"
	case c.addr.Name != "":
		who = c.addr.Name
	case who == "":
		return "(no subject, no sender)"
	}
	return "(no subject) from " + who
}

// keptHeaders are the headers copied into events: threading, loop
// detection and provenance. Others (Received chains, authentication
// results) stay in raw MIME for receivers that want them.
var keptHeaders = map[string]bool{
	"date": true, "message-id": true, "in-reply-to": true, "references": true, "return-path": true,
	"auto-submitted": true, "x-auto-response-suppress": true, "precedence": true, "list-id": true,
	"list-unsubscribe": true, "x-autoreply": true, "x-autorespond": true, "x-autoresponder": true,
	"x-loop": true, "x-mailer": true, "x-ms-exchange-generated-message-source": true,
}

// attachmentPolicy is how a channel's attachments travel: inline up to
// max bytes (never when linkOnly), each with a signed link when link is
// set.
type attachmentPolicy struct {
	max      int64
	linkOnly bool
	link     LinkFunc
}

func articleOf(msg *graph.Message, pol attachmentPolicy) webhooks.Article {
	a := webhooks.Article{
		InternetMessageID: msg.InternetMessageID,
		ConversationID:    msg.ConversationID,
		GraphID:           msg.ID,
		ReplyTo:           addresses(msg.ReplyTo),
		To:                addresses(msg.ToRecipients),
		Cc:                addresses(msg.CcRecipients),
		Subject:           msg.Subject,
		SentAt:            msg.SentDateTime,
		ReceivedAt:        msg.ReceivedDateTime,
	}
	if msg.From != nil {
		a.From = address(msg.From)
	} else if msg.Sender != nil {
		a.From = address(msg.Sender)
	}
	if msg.Sender != nil && msg.Sender.EmailAddress.Address != "" {
		s := address(msg.Sender)
		a.Sender = &s
	}
	if v, ok := msg.Header("In-Reply-To"); ok {
		a.InReplyTo = strings.TrimSpace(v)
	}
	if v, ok := msg.Header("References"); ok {
		a.References = strings.Fields(v)
	}
	if a.InternetMessageID == "" {
		if v, ok := msg.Header("Message-ID"); ok {
			a.InternetMessageID = strings.TrimSpace(v)
		}
	}
	for _, h := range msg.InternetMessageHeaders {
		if keptHeaders[strings.ToLower(h.Name)] {
			a.Headers = append(a.Headers, webhooks.Header{Name: h.Name, Value: h.Value})
		}
	}
	a.AutoSubmitted, a.AutoSubmittedReason = autoSubmitted(msg.InternetMessageHeaders)
	switch {
	case msg.TextBody != nil:
		// Written as text: the text rendition Graph returned is the text as
		// written; the HTML Exchange made of it stays alongside.
		a.BodyType, a.BodyText = "text", msg.TextBody.Content
		if msg.Body != nil && strings.EqualFold(msg.Body.ContentType, "html") {
			a.BodyHTML = msg.Body.Content
		}
	case msg.Body != nil && strings.EqualFold(msg.Body.ContentType, "html"):
		a.BodyType, a.BodyHTML, a.BodyText = "html", msg.Body.Content, htmlToText(msg.Body.Content)
	case msg.Body != nil:
		a.BodyType, a.BodyText = "text", msg.Body.Content
	}
	used := map[string]int{}
	for i := range msg.Attachments {
		a.Attachments = append(a.Attachments, attachmentOf(msg.ID, &msg.Attachments[i], pol, used))
	}
	return a
}

// attachmentOf inlines an attachment's content up to pol.max bytes and
// lists anything else with included: false and the reason. Every file and
// item attachment carries a signed link (when pol.link is set), included
// or not, so content left out here or later (fitEvent) stays reachable
// (DESIGN.md invariant 8), and the SHA-256 of its content when it was
// read. An item attachment whose MIME the runner fetched (ContentBytes
// set) travels as a file: message/rfc822 named after the attached subject
// with ".eml" (or its iCalendar / vCard form). used keeps generated names
// unique.
func attachmentOf(messageID string, at *graph.Attachment, pol attachmentPolicy, used map[string]int) webhooks.Attachment {
	max := pol.max
	out := webhooks.Attachment{
		ContentType: at.ContentType,
		Size:        at.Size,
		ContentID:   strings.Trim(at.ContentID, "<>"),
		Inline:      at.IsInline,
	}
	if at.ODataType == graph.ItemAttachment {
		out.Item = true
		ct, ext := itemKind(at.ContentBytes)
		out.ContentType, out.Filename = ct, itemFilename(at.Name, ext, used)
	} else {
		out.Filename = partName(at.Name, at.ContentType, used)
	}
	if out.ContentType == "" {
		out.ContentType = "application/octet-stream"
	}
	linked := pol.link != nil && at.ID != "" && messageID != "" && at.ODataType != graph.ReferenceAttachment
	if linked {
		u, exp := pol.link(messageID, at.ID, out.Filename)
		out.URL, out.ExpiresAt = u, &exp
	}
	c := contentOf(at)
	if c != nil && c.Err == nil {
		out.SHA256 = hex.EncodeToString(c.SHA256[:])
	}
	tooLarge := "larger than the channel's max_attachment_bytes (%d > %d)"
	if linked {
		tooLarge += ": fetch it from url"
	}
	switch {
	case at.ODataType == graph.ReferenceAttachment:
		out.Reason = "reference attachment: a link to a file in the cloud, it has no content in the message"
	case c == nil && at.ODataType == graph.ItemAttachment && at.Size > max:
		out.Reason = fmt.Sprintf("attached message "+tooLarge, at.Size, max)
	case c == nil && at.ODataType == graph.ItemAttachment:
		out.Reason = "attached Outlook item: Microsoft Graph did not return its content"
	case c == nil && at.Size > max:
		out.Reason = fmt.Sprintf(tooLarge, at.Size, max)
	case c == nil && linked:
		out.Reason = "content not returned with the message: fetch it from url"
	case c == nil:
		out.Reason = "content not returned by Microsoft Graph"
	case c.Err != nil:
		// Graph's contentBytes did not decode: listed without content (and
		// the link, when there is one), never with broken base64.
		out.Reason = "Microsoft Graph returned content that is not valid base64"
		if linked {
			out.Reason += ": fetch it from url"
		}
	case pol.linkOnly && linked:
		out.Size = c.Size
		out.Reason = "the channel sends attachments by link (attachments: link): fetch it from url"
	case c.Size > max:
		out.Size = c.Size
		out.Reason = fmt.Sprintf(tooLarge, out.Size, max)
	default:
		out.Size = c.Size
		out.Included = true
		out.ContentBase64 = c.Base64
	}
	return out
}

// contentOf is at's content: as Graph sent it (Content, base64), or the
// bytes the runner read (ContentBytes, an item's $value), encoded here;
// nil when there is none.
func contentOf(at *graph.Attachment) *graph.Content {
	if at.Content != nil {
		return at.Content
	}
	if at.ContentBytes == nil {
		return nil
	}
	return &graph.Content{Base64: base64.StdEncoding.EncodeToString(at.ContentBytes),
		Size: int64(len(at.ContentBytes)), SHA256: sha256.Sum256(at.ContentBytes)}
}

// itemKind tells what an item attachment's $value is: Graph gives MIME for
// an attached message, iCalendar for an event and vCard for a contact (GDC
// api/attachment-get.md, "Get the raw contents of a file or item
// attachment").
func itemKind(b []byte) (contentType, ext string) {
	head := strings.ToUpper(strings.TrimSpace(string(b[:min(len(b), 64)])))
	switch {
	case strings.HasPrefix(head, "BEGIN:VCALENDAR"):
		return "text/calendar", ".ics"
	case strings.HasPrefix(head, "BEGIN:VCARD"):
		return "text/vcard", ".vcf"
	}
	return "message/rfc822", ".eml"
}

// autoSubmitted reports whether headers mark a message as machine-generated
// (an auto-reply, a bounce, list or bulk mail), which a helpdesk must not
// answer, and which header said so (RFC 3834 and common practice).
func autoSubmitted(headers []graph.Header) (bool, string) {
	for _, h := range headers {
		v := strings.ToLower(strings.TrimSpace(h.Value))
		switch strings.ToLower(h.Name) {
		case "auto-submitted":
			if v != "" && v != "no" {
				return true, "Auto-Submitted: " + h.Value
			}
		case "x-auto-response-suppress":
			if v != "" && v != "none" {
				return true, "X-Auto-Response-Suppress: " + h.Value
			}
		case "precedence":
			switch v {
			case "bulk", "junk", "list", "auto_reply", "auto-reply":
				return true, "Precedence: " + h.Value
			}
		case "list-id":
			return true, "List-Id: " + h.Value
		case "x-autoreply", "x-autorespond", "x-autoresponder":
			if v != "no" && v != "false" {
				return true, h.Name + ": " + h.Value
			}
		case "return-path":
			if v == "<>" {
				return true, "Return-Path: <> (a bounce)"
			}
		}
	}
	return false, ""
}
