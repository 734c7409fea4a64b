// Package webhooks is what a receiver of m365bridge events needs: the
// versioned event envelope and payload types, their JSON Schema, and
// Standard Webhooks v1 signing and verification (HMAC-SHA256 over
// "webhook-id.webhook-timestamp.body", whsec_ secrets, several signatures
// during secret rotation, a timestamp tolerance).
//
// It uses the standard library only, so a receiver can import it without cgo
// and without the rest of the bridge.
package webhooks

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Event types. mail.received and mail.archived carry MailData,
// mail.rejected carries RejectedData, channel.* carry ChannelData,
// mail.sent and mail.send_failed carry SendData, webhook.test carries
// TestData.
const (
	TypeMailReceived        = "mail.received"         // a new message, to become a ticket
	TypeMailArchived        = "mail.archived"         // a message older than the archive cut-off
	TypeMailRejected        = "mail.rejected"         // a message the bridge could not read; it stays in the mailbox
	TypeChannelAuthFailed   = "channel.auth_failed"   // the mailbox's sign-in stopped working
	TypeChannelAuthRestored = "channel.auth_restored" // the mailbox's sign-in works again
	TypeChannelError        = "channel.error"         // the channel cannot sync (folder gone, throttled, Entra unavailable…)
	TypeChannelRestored     = "channel.restored"      // a channel that had a channel.error syncs again
	TypeMailSent            = "mail.sent"             // a reply was sent through the mailbox
	TypeMailSendFailed      = "mail.send_failed"      // a reply could not be sent
	TypeWebhookTest         = "webhook.test"          // a test event, sent on demand
)

// Types is every event type of version 1.
var Types = []string{
	TypeMailReceived, TypeMailArchived, TypeMailRejected,
	TypeChannelAuthFailed, TypeChannelAuthRestored, TypeChannelError, TypeChannelRestored,
	TypeMailSent, TypeMailSendFailed, TypeWebhookTest,
}

// TypeFilterTakes reports whether a webhook's type filter (bridge.yaml's
// webhooks[].types) takes events of type typ: an empty filter takes every
// type; an entry is a type ("mail.received"), a prefix ending in ".*"
// ("mail.*" takes mail.received, mail.archived, mail.sent…) or "*".
func TypeFilterTakes(filter []string, typ string) bool {
	if len(filter) == 0 {
		return true
	}
	for _, t := range filter {
		if t == typ || t == "*" || strings.HasSuffix(t, ".*") && strings.HasPrefix(typ, strings.TrimSuffix(t, "*")) {
			return true
		}
	}
	return false
}

// Version is the payload version carried in every event's data.version.
const Version = 1

// MaxEventBytes is the largest request body the bridge sends (an encoded
// event: envelope and data) and the largest Receiver takes by default. A
// message whose event would be larger is rejected by the bridge and stays
// in the mailbox; a receiver that refuses less (413) makes a deliverable
// event dead for good.
const MaxEventBytes = 64 << 20

// Event is the Standard Webhooks envelope: {"type","timestamp","data"}. Data
// is kept raw so that a receiver decodes it into the type that matches Type.
type Event struct {
	Type      string          `json:"type"`
	Timestamp time.Time       `json:"timestamp"`
	Data      json.RawMessage `json:"data"`
}

// NewEvent builds an envelope around data, which is encoded as JSON.
func NewEvent(typ string, ts time.Time, data any) (Event, error) {
	if typ == "" {
		return Event{}, fmt.Errorf("build event: empty type")
	}
	raw, err := json.Marshal(data)
	if err != nil {
		return Event{}, fmt.Errorf("encode %s event data: %w", typ, err)
	}
	return Event{Type: typ, Timestamp: ts.UTC(), Data: raw}, nil
}

// ID returns data.id, the event id that is also sent as webhook-id; "" when
// data has none.
func (e Event) ID() string {
	var v struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(e.Data, &v) != nil {
		return ""
	}
	return v.ID
}

// Mailbox says whose mailbox a message came from.
type Mailbox struct {
	Type    string `json:"type"` // user | shared
	Address string `json:"address"`
}

// Address is a name and an e-mail address.
type Address struct {
	Name    string `json:"name,omitempty"`
	Address string `json:"address"`
}

// MailData is the data of mail.received and mail.archived.
type MailData struct {
	// ID is the event id, equal to the webhook-id header; see EventID.
	ID      string  `json:"id"`
	Version int     `json:"version"`
	Channel string  `json:"channel"`
	Mailbox Mailbox `json:"mailbox"`
	Folder  string  `json:"folder"`
	Group   string  `json:"group,omitempty"`
	// Archive is true for mail older than the channel's cut-off: the
	// receiver should import it quietly in Ticket.State.
	Archive bool     `json:"archive"`
	Tags    []string `json:"tags,omitempty"`
	Ticket  Ticket   `json:"ticket"`
	Article Article  `json:"article"`
}

// Ticket is what the receiver should create.
type Ticket struct {
	Title string `json:"title"`
	// State is the target state: "new" for new mail, the channel's archive
	// state (usually "closed") for archived mail.
	State string `json:"state"`
	// CreatedAt is the message's original received time.
	CreatedAt time.Time `json:"created_at"`
	// Customer is who the ticket is for: the first address found in From,
	// Sender, Reply-To, Return-Path, then any other header (CustomerSource
	// says which). When no header holds a usable address, Customer.Address
	// is empty, CustomerUnresolved is true and CustomerRaw carries the raw
	// From (or Sender) header, so the receiver decides.
	Customer Address `json:"customer"`
	// CustomerSource is where Customer came from: "from", "sender",
	// "reply_to", "return_path", "header:<Name>" or "none".
	CustomerSource     string `json:"customer_source,omitempty"`
	CustomerUnresolved bool   `json:"customer_unresolved,omitempty"`
	CustomerRaw        string `json:"customer_raw,omitempty"`
	// SuppressAutomations asks the receiver not to run triggers or send
	// auto-replies (true for archived mail).
	SuppressAutomations bool `json:"suppress_automations"`
}

// Article is the message itself.
type Article struct {
	InternetMessageID string   `json:"internet_message_id"`
	InReplyTo         string   `json:"in_reply_to,omitempty"`
	References        []string `json:"references,omitempty"`
	ConversationID    string   `json:"conversation_id,omitempty"`
	// GraphID is the message's immutable Microsoft Graph id.
	GraphID    string    `json:"graph_id"`
	From       Address   `json:"from"`
	Sender     *Address  `json:"sender,omitempty"`
	ReplyTo    []Address `json:"reply_to,omitempty"`
	To         []Address `json:"to,omitempty"`
	Cc         []Address `json:"cc,omitempty"`
	Subject    string    `json:"subject"`
	SentAt     time.Time `json:"sent_at"`
	ReceivedAt time.Time `json:"received_at"`
	// BodyType is the format the message was written in: "text" (then
	// BodyText is the text exactly as written, and BodyHTML Exchange's HTML
	// rendition of it) or "html" (then BodyText is a plain rendition of
	// BodyHTML: paragraphs, line breaks, lists and link targets kept).
	BodyType string `json:"body_type,omitempty"`
	BodyHTML string `json:"body_html,omitempty"`
	BodyText string `json:"body_text,omitempty"`
	// AutoSubmitted marks auto-replies, bounces and list mail (RFC 3834),
	// which a helpdesk should not answer; Reason says which header said so.
	AutoSubmitted       bool   `json:"auto_submitted"`
	AutoSubmittedReason string `json:"auto_submitted_reason,omitempty"`
	// Headers are selected message headers, in message order.
	Headers     []Header     `json:"headers,omitempty"`
	Attachments []Attachment `json:"attachments,omitempty"`
	RawMIME     *RawMIME     `json:"raw_mime,omitempty"`
}

// Header is one message header.
type Header struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Attachment describes one attachment; its content is inline (base64) when
// Included, otherwise Reason says why not and URL may point to it. An
// attached message (a forward, the returned mail of a bounce) is a
// message/rfc822 file named after its subject with ".eml"; Item is then
// true. A part without a filename is named from its content type
// ("image.jpg", "Delivery report.txt").
type Attachment struct {
	Filename      string `json:"filename"`
	ContentType   string `json:"content_type"`
	Size          int64  `json:"size"`
	ContentID     string `json:"content_id,omitempty"`
	Inline        bool   `json:"inline"`
	Included      bool   `json:"included"`
	ContentBase64 string `json:"content_base64,omitempty"`
	Reason        string `json:"reason,omitempty"`
	// URL is a signed link on the bridge's public listener that streams
	// the attachment's bytes from the mailbox when fetched (a plain GET,
	// no credentials: the link is the credential). It is set on every
	// file and attached-item attachment, included or not, and works until
	// ExpiresAt, across bridge restarts. A wrong or altered link answers
	// 403, an expired one 410, content no longer in the mailbox 404.
	URL       string     `json:"url,omitempty"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	// SHA256 is the hex SHA-256 of the content, when the bridge read it
	// while building the event (absent when it did not: check the bytes
	// you fetch against it when present).
	SHA256 string `json:"sha256,omitempty"`
	// Item marks an attached Outlook item (Graph itemAttachment), delivered
	// as its MIME (message/rfc822), iCalendar or vCard form.
	Item bool `json:"item,omitempty"`
}

// RawMIME is the original message, when the channel is configured to send it.
type RawMIME struct {
	Included      bool   `json:"included"`
	Size          int64  `json:"size"`
	ContentBase64 string `json:"content_base64,omitempty"`
	Reason        string `json:"reason,omitempty"`
}

// RejectedData is the data of mail.rejected: a message in the mailbox that
// could not become a mail event (Graph returned it unreadable, or the event
// would exceed the size limit even without attachment content, or building
// it hit a bug). It stays in the mailbox untouched and is listed on the
// status page with Reason. ID is RejectedEventID of the message, stable
// across re-syncs.
type RejectedData struct {
	ID      string  `json:"id"`
	Version int     `json:"version"`
	Channel string  `json:"channel"`
	Mailbox Mailbox `json:"mailbox"`
	Folder  string  `json:"folder"`
	Group   string  `json:"group,omitempty"`
	// GraphID is the message's immutable Graph id; MailEventID the id its
	// mail event carries if it is ever imported.
	GraphID           string    `json:"graph_id"`
	MailEventID       string    `json:"mail_event_id"`
	InternetMessageID string    `json:"internet_message_id,omitempty"`
	Subject           string    `json:"subject,omitempty"`
	ReceivedAt        time.Time `json:"received_at,omitempty,omitzero"`
	Reason            string    `json:"reason"`
}

// ChannelData is the data of the channel.* operational events.
type ChannelData struct {
	ID      string   `json:"id"`
	Version int      `json:"version"`
	Channel string   `json:"channel"`
	Mailbox *Mailbox `json:"mailbox,omitempty"`
	// State is the channel's state after the change, e.g. "auth_failed",
	// "ok", "error".
	State string `json:"state"`
	// Code is a machine-readable cause, e.g. "AADSTS700082" or
	// "folder_not_found".
	Code   string `json:"code,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Fix tells the operator what to do.
	Fix string `json:"fix,omitempty"`
}

// SendData is the data of mail.sent and mail.send_failed.
type SendData struct {
	ID      string  `json:"id"`
	Version int     `json:"version"`
	Channel string  `json:"channel"`
	Mailbox Mailbox `json:"mailbox"`
	// RequestID is the id the helpdesk gave the send request.
	RequestID         string    `json:"request_id,omitempty"`
	InternetMessageID string    `json:"internet_message_id,omitempty"`
	InReplyTo         string    `json:"in_reply_to,omitempty"`
	To                []Address `json:"to,omitempty"`
	Subject           string    `json:"subject,omitempty"`
	// ReplyToEventID is the event of the message this mail answered, when
	// the request named one.
	ReplyToEventID string `json:"reply_to_event_id,omitempty"`
	// Attempts is how many times the bridge called Graph for this request.
	Attempts int `json:"attempts,omitempty"`
	// Code is Graph's error code of a failure, e.g. ErrorSendAsDenied;
	// Reason says what went wrong and Fix what the operator should do.
	Code   string `json:"code,omitempty"`
	Reason string `json:"reason,omitempty"`
	Fix    string `json:"fix,omitempty"`
}

// TestData is the data of webhook.test.
type TestData struct {
	ID      string `json:"id"`
	Version int    `json:"version"`
	Message string `json:"message"`
}

// idEncoding is lower-case base32 without padding: URL- and header-safe,
// and free of the "." that Standard Webhooks forbids in ids.
var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// EventID is the stable id of a mail event: "msg_" and 26 characters
// derived from SHA-256 of the tenant, the mailbox address (case-folded) and
// the message's immutable Graph id. The same inputs always give the same id,
// so retries, restarts, re-syncs and replays all reuse it.
func EventID(tenant, mailbox, immutableID string) string {
	h := sha256.New()
	for _, part := range []string{strings.ToLower(tenant), strings.ToLower(mailbox), immutableID} {
		fmt.Fprintf(h, "%d:%s;", len(part), part)
	}
	return "msg_" + idEncoding.EncodeToString(h.Sum(nil)[:16])
}

// RejectedEventID is the stable id of a message's mail.rejected event:
// "rej_" and the same 26 characters as its EventID, so the two are
// distinct (acknowledging the notice never marks the mail delivered) and
// a re-sync reuses it.
func RejectedEventID(tenant, mailbox, immutableID string) string {
	return "rej_" + strings.TrimPrefix(EventID(tenant, mailbox, immutableID), "msg_")
}

// NewID returns a random id with the given prefix (for operational events,
// which have no natural key), e.g. NewID("evt").
func NewID(prefix string) string {
	var b [16]byte
	rand.Read(b[:])
	return prefix + "_" + idEncoding.EncodeToString(b[:])
}
