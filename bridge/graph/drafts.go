package graph

// Drafts and send verification by extended property: the way to send
// exactly once on properties real Exchange keeps.
//
// A message is created as a draft tagged with a single-value extended
// property (a MAPI named property) holding the caller's id, filled in,
// given its attachments, and sent by id. After an attempt whose outcome is
// unknown, FindByProperty looks for the tag in Sent Items and in Drafts:
// Exchange keeps extended properties on the Sent Items copy, while it keeps
// no internetMessageHeaders there (microsoftgraph/microsoft-graph-docs#2716)
// and files the copy some time after the send was accepted. The draft's id
// cannot be followed either: "The immutable ID of the copy in Sent Items
// will not be the same immutable ID of the draft message" (GDC
// concepts/outlook-immutable-id.md).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// ExtendedProperty is a singleValueLegacyExtendedProperty: ID is
// "{type} {guid} Name {name}" for a named property (GDC
// resources/singlevaluelegacyextendedproperty.md).
type ExtendedProperty struct {
	ID    string `json:"id"`
	Value string `json:"value"`
}

// NamedStringProperty is the id of a String named property in the property
// set guid ({xxxxxxxx-…}); the name is case-sensitive.
func NamedStringProperty(guid, name string) string {
	return "String " + guid + " Name " + name
}

// Draft is a message in Drafts, as the draft calls return it.
type Draft struct {
	ID                string `json:"id"`
	InternetMessageID string `json:"internetMessageId"`
	IsDraft           bool   `json:"isDraft"`
	ParentFolderID    string `json:"parentFolderId"`
}

// draftFields is what the draft calls read back.
const draftFields = "id,internetMessageId,isDraft,parentFolderId"

// CreateDraft saves msg as a draft in the mailbox's Drafts (POST /messages,
// answered 201), tagged with props and, when from is set, sent as from
// (Send As). Attachments are not sent here: add them with AddAttachment.
func (m *MailboxClient) CreateDraft(ctx context.Context, msg OutgoingMessage, from *Recipient, props []ExtendedProperty) (Draft, error) {
	msg.Attachments = nil
	if err := checkOutgoing(&msg, false); err != nil {
		return Draft{}, fmt.Errorf("create draft: %w", err)
	}
	body, err := json.Marshal(struct {
		withFrom
		Props []ExtendedProperty `json:"singleValueExtendedProperties,omitempty"`
	}{withFrom{msg, from}, props})
	if err != nil {
		return Draft{}, fmt.Errorf("encode draft: %w", err)
	}
	if err := checkRequestSize(body); err != nil {
		return Draft{}, fmt.Errorf("create draft: %w", err)
	}
	return m.draftCall(ctx, "create draft", call{method: http.MethodPost, url: m.url("/messages", url.Values{"$select": {draftFields}}), kind: kindMessage, body: body, notIdempotent: true})
}

// CreateReplyDraft creates a reply draft to messageID (POST
// /messages/{id}/createReply, answered 201), tagged with props: Graph sets
// its recipients, "RE:" subject, In-Reply-To and References from the
// original. A 404 (the original is gone) matches ErrItemNotFound.
func (m *MailboxClient) CreateReplyDraft(ctx context.Context, messageID string, props []ExtendedProperty) (Draft, error) {
	if strings.TrimSpace(messageID) == "" {
		return Draft{}, fmt.Errorf("create reply draft: empty message id")
	}
	body, err := json.Marshal(map[string]any{"message": map[string]any{"singleValueExtendedProperties": props}})
	if err != nil {
		return Draft{}, fmt.Errorf("encode reply draft: %w", err)
	}
	u := m.url("/messages/"+url.PathEscape(messageID)+"/createReply", url.Values{"$select": {draftFields}})
	return m.draftCall(ctx, "create reply draft", call{method: http.MethodPost, url: u, kind: kindMessage, body: body, notIdempotent: true})
}

// UpdateDraft sets a draft's body, the recipients msg has (empty lists
// keep the draft's), its subject when msg has one, and from (PATCH,
// answered 200). A PATCH of the same values is idempotent, so it is retried
// like a read.
func (m *MailboxClient) UpdateDraft(ctx context.Context, id string, msg OutgoingMessage, from *Recipient) error {
	msg.Attachments = nil
	if err := checkOutgoing(&msg, true); err != nil {
		return fmt.Errorf("update draft: %w", err)
	}
	patch := map[string]any{}
	if msg.Body != nil {
		patch["body"] = msg.Body
	}
	if msg.Subject != "" {
		patch["subject"] = msg.Subject
	}
	for k, v := range map[string][]Recipient{"toRecipients": msg.ToRecipients, "ccRecipients": msg.CcRecipients, "bccRecipients": msg.BccRecipients, "replyTo": msg.ReplyTo} {
		if len(v) > 0 {
			patch[k] = v
		}
	}
	if len(msg.InternetMessageHeaders) > 0 {
		patch["internetMessageHeaders"] = msg.InternetMessageHeaders
	}
	if from != nil {
		patch["from"] = from
	}
	body, err := json.Marshal(patch)
	if err != nil {
		return fmt.Errorf("encode draft update: %w", err)
	}
	if err := checkRequestSize(body); err != nil {
		return fmt.Errorf("update draft: %w", err)
	}
	u := m.url("/messages/"+url.PathEscape(id), url.Values{"$select": {draftFields}})
	if _, err := m.do(ctx, call{method: http.MethodPatch, url: u, kind: kindMessage, body: body}); err != nil {
		return fmt.Errorf("update draft: %w", err)
	}
	return nil
}

// SendDraft sends a draft (POST /messages/{id}/send, answered 202). Like
// SendMail it is retried only when Graph says the request was not
// processed; a transport error or another 5xx is returned as is, because
// the mail may have gone out.
func (m *MailboxClient) SendDraft(ctx context.Context, id string) error {
	if strings.TrimSpace(id) == "" {
		return fmt.Errorf("send draft: empty id")
	}
	u := m.url("/messages/"+url.PathEscape(id)+"/send", nil)
	if _, err := m.do(ctx, call{method: http.MethodPost, url: u, kind: kindSend, notIdempotent: true}); err != nil {
		return fmt.Errorf("send draft: %w", err)
	}
	return nil
}

// DeleteDraft deletes a draft (DELETE /messages/{id}, 204); an id that is
// already gone is not an error.
func (m *MailboxClient) DeleteDraft(ctx context.Context, id string) error {
	_, err := m.do(ctx, call{method: http.MethodDelete, url: m.url("/messages/"+url.PathEscape(id), nil), kind: kindMessage})
	if err != nil && !errors.Is(err, ErrItemNotFound) {
		return fmt.Errorf("delete draft: %w", err)
	}
	return nil
}

// FindByProperty returns the first message of folder (an id or a
// well-known name such as sentitems or drafts) carrying the extended
// property id with value, or nil when there is none ($filter on
// singleValueExtendedProperties, GDC
// api-reference/v1.0/api/singlevaluelegacyextendedproperty-get.md). The
// property value compares case-insensitively at Graph, so values should be
// unique without regard to case.
func (m *MailboxClient) FindByProperty(ctx context.Context, folder, id, value string) (*Draft, error) {
	esc := func(s string) string { return strings.ReplaceAll(s, "'", "''") }
	q := url.Values{
		"$filter": {"singleValueExtendedProperties/Any(ep: ep/id eq '" + esc(id) + "' and ep/value eq '" + esc(value) + "')"},
		"$select": {draftFields},
		"$top":    {"5"},
	}
	res, err := m.do(ctx, call{method: http.MethodGet, url: m.url("/mailFolders/"+url.PathEscape(folder)+"/messages", q), kind: kindMessage})
	if err != nil {
		return nil, fmt.Errorf("find message by property in %s: %w", folder, err)
	}
	var page struct {
		Value []Draft `json:"value"`
	}
	if err := json.Unmarshal(res.body, &page); err != nil {
		return nil, fmt.Errorf("decode messages of %s: %w", folder, err)
	}
	if len(page.Value) == 0 {
		return nil, nil
	}
	return &page.Value[0], nil
}

func (m *MailboxClient) draftCall(ctx context.Context, what string, cl call) (Draft, error) {
	res, err := m.do(ctx, cl)
	if err != nil {
		return Draft{}, fmt.Errorf("%s: %w", what, err)
	}
	var d Draft
	if err := json.Unmarshal(res.body, &d); err != nil || d.ID == "" {
		return Draft{}, fmt.Errorf("%s: the answer holds no message id (%v)", what, err)
	}
	return d, nil
}
