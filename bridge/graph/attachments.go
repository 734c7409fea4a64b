package graph

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Attachment types as Graph names them in @odata.type.
const (
	FileAttachment      = "#microsoft.graph.fileAttachment"
	ItemAttachment      = "#microsoft.graph.itemAttachment"
	ReferenceAttachment = "#microsoft.graph.referenceAttachment"
)

// Attachment is a message attachment (GDC resources/attachment.md).
// Content is filled for file attachments when Graph returned the content
// (contentBytes, kept as base64: see Content); ContentBytes holds content
// as bytes: what the caller sends, or read from $value. Item attachments
// (an attached mail or event) carry none — read them with WriteAttachment,
// which gives MIME, iCal or vCard.
type Attachment struct {
	ODataType    string   `json:"@odata.type,omitempty"`
	ID           string   `json:"id,omitempty"`
	Name         string   `json:"name,omitempty"`
	ContentType  string   `json:"contentType,omitempty"`
	Size         int64    `json:"size,omitempty"` // bytes, as Graph reports it
	IsInline     bool     `json:"isInline,omitempty"`
	ContentID    string   `json:"contentId,omitempty"` // the cid: of an inline image
	ContentBytes []byte   `json:"contentBytes,omitempty"`
	Content      *Content `json:"-"`
}

// attachmentMetaSelect lists attachments without their content.
const attachmentMetaSelect = "id,name,contentType,size,isInline"

// Attachments lists a message's attachments with their content (Graph
// returns contentBytes for file attachments). Check sizes first with
// AttachmentsMeta when a message may carry large files.
func (m *MailboxClient) Attachments(ctx context.Context, messageID string) ([]Attachment, error) {
	return m.listAttachments(ctx, messageID, nil)
}

// AttachmentsMeta lists a message's attachments without content: id, name,
// type, size and the inline flag.
func (m *MailboxClient) AttachmentsMeta(ctx context.Context, messageID string) ([]Attachment, error) {
	return m.listAttachments(ctx, messageID, url.Values{"$select": {attachmentMetaSelect}})
}

func (m *MailboxClient) listAttachments(ctx context.Context, messageID string, q url.Values) ([]Attachment, error) {
	if strings.TrimSpace(messageID) == "" {
		return nil, fmt.Errorf("list attachments: empty message id")
	}
	next := m.url("/messages/"+url.PathEscape(messageID)+"/attachments", q)
	var out []Attachment
	for page := 0; next != ""; page++ {
		if page >= maxFolderPages {
			return nil, fmt.Errorf("list attachments: more than %d pages; stopping", maxFolderPages)
		}
		if page > 0 {
			if err := m.c.checkLink(next); err != nil {
				return nil, fmt.Errorf("list attachments: %w", err)
			}
		}
		res, err := m.do(ctx, call{method: http.MethodGet, url: next, kind: kindAttachment, lift: true})
		if err != nil {
			return nil, fmt.Errorf("list attachments: %w", err)
		}
		var body struct {
			Value    []Attachment `json:"value"`
			NextLink string       `json:"@odata.nextLink"`
		}
		if err := json.Unmarshal(res.body, &body); err != nil {
			return nil, fmt.Errorf("decode attachments of message %q: %w", messageID, err)
		}
		resolveContent(body.Value, res.lifted)
		out = append(out, body.Value...)
		next = body.NextLink
	}
	return out, nil
}

// AttachmentsOf fetches the attachments (with content) of several messages
// through $batch, 20 messages per call, so a page of mail with attachments
// costs one request per 20 messages instead of one each. It returns the
// attachments by message id and, separately, the messages whose fetch
// failed (a message that is gone matches ErrItemNotFound). err is non-nil
// only when a whole $batch call failed; the messages it covered are then in
// failed too.
func (m *MailboxClient) AttachmentsOf(ctx context.Context, messageIDs []string) (atts map[string][]Attachment, failed map[string]error, err error) {
	return m.attachmentsOf(ctx, messageIDs, "")
}

// AttachmentsMetaOf is AttachmentsOf without content ($select of the
// metadata, as AttachmentsMeta: GDC api/message-list-attachments.md
// supports OData query parameters), so a message's attachment sizes are
// known before any content is read.
func (m *MailboxClient) AttachmentsMetaOf(ctx context.Context, messageIDs []string) (atts map[string][]Attachment, failed map[string]error, err error) {
	return m.attachmentsOf(ctx, messageIDs, "?$select="+attachmentMetaSelect)
}

func (m *MailboxClient) attachmentsOf(ctx context.Context, messageIDs []string, query string) (atts map[string][]Attachment, failed map[string]error, err error) {
	atts, failed = map[string][]Attachment{}, map[string]error{}
	var reqs []BatchRequest
	var order []string
	for _, id := range messageIDs {
		if _, dup := atts[id]; dup || failed[id] != nil {
			continue
		}
		if strings.TrimSpace(id) == "" {
			failed[id] = fmt.Errorf("list attachments: empty message id")
			continue
		}
		atts[id] = nil
		reqs = append(reqs, BatchRequest{ID: strconv.Itoa(len(reqs)), Method: http.MethodGet,
			Path: "/messages/" + url.PathEscape(id) + "/attachments" + query})
		order = append(order, id)
	}
	if len(reqs) == 0 {
		return atts, failed, nil
	}
	resps, berr := m.Batch(ctx, reqs)
	if resps == nil {
		for _, id := range order {
			delete(atts, id)
			failed[id] = fmt.Errorf("list attachments: %w", berr)
		}
		return atts, failed, fmt.Errorf("list attachments: %w", berr)
	}
	for i, r := range resps {
		id := order[i]
		if r.Err != nil {
			delete(atts, id)
			failed[id] = fmt.Errorf("list attachments of message %q: %w", id, r.Err)
			continue
		}
		var body struct {
			Value    []Attachment `json:"value"`
			NextLink string       `json:"@odata.nextLink"`
		}
		if err := json.Unmarshal(r.Body, &body); err != nil {
			delete(atts, id)
			failed[id] = fmt.Errorf("decode attachments of message %q: %w", id, err)
			continue
		}
		resolveContent(body.Value, r.lifted)
		if body.NextLink != "" {
			// Rare: more attachments than one page. Read them all directly.
			list := m.Attachments
			if query != "" {
				list = m.AttachmentsMeta
			}
			all, err := list(ctx, id)
			if err != nil {
				delete(atts, id)
				failed[id] = err
				continue
			}
			body.Value = all
		}
		if body.Value == nil {
			body.Value = []Attachment{}
		}
		atts[id] = body.Value
	}
	if berr != nil {
		return atts, failed, fmt.Errorf("list attachments: %w", berr)
	}
	return atts, failed, nil
}

// WriteAttachment streams one attachment's raw content
// (/attachments/{id}/$value) into w and returns the bytes written. More
// than maxBytes (> 0 required) gives ErrTooLarge after exactly maxBytes
// were written. Reference attachments have no content (Graph answers 405).
func (m *MailboxClient) WriteAttachment(ctx context.Context, messageID, attachmentID string, w io.Writer, maxBytes int64) (int64, error) {
	if strings.TrimSpace(messageID) == "" || strings.TrimSpace(attachmentID) == "" {
		return 0, fmt.Errorf("get attachment: empty message or attachment id")
	}
	if maxBytes <= 0 {
		return 0, fmt.Errorf("get attachment: maxBytes must be positive")
	}
	cw := &countingWriter{w: w}
	u := m.url("/messages/"+url.PathEscape(messageID)+"/attachments/"+url.PathEscape(attachmentID)+"/$value", nil)
	if _, err := m.do(ctx, call{method: http.MethodGet, url: u, kind: kindAttachment, sink: cw, maxBytes: maxBytes}); err != nil {
		return cw.n, fmt.Errorf("get attachment: %w", err)
	}
	return cw.n, nil
}

// StreamTimeout bounds one streamed attachment download (StreamAttachment):
// long enough for Outlook's largest attachments (150 MB) over a slow
// receiver, short enough that a stalled one gives its mailbox slot back.
const StreamTimeout = 30 * time.Minute

// MaxStreamBytes caps a streamed attachment: above Outlook's 150 MB limit
// for one attachment, so only a misbehaving server reaches it.
const MaxStreamBytes = 1 << 30

// StreamAttachment copies one attachment's raw content
// (/attachments/{id}/$value: a file's bytes, an attached item's MIME,
// iCalendar or vCard; GDC api/attachment-get.md, "Get the raw contents of
// a file or item attachment") into w as it arrives, without holding it in
// memory, and returns the bytes written. onHeader (may be nil) sees Graph's
// answer headers (Content-Type, Content-Length when sent) before the first
// byte is written; after a failure with nothing written it may be called
// again for a retry. An attempt may take up to StreamTimeout.
func (m *MailboxClient) StreamAttachment(ctx context.Context, messageID, attachmentID string, w io.Writer, onHeader func(http.Header)) (int64, error) {
	if strings.TrimSpace(messageID) == "" || strings.TrimSpace(attachmentID) == "" {
		return 0, fmt.Errorf("get attachment: empty message or attachment id")
	}
	cw := &countingWriter{w: w}
	u := m.url("/messages/"+url.PathEscape(messageID)+"/attachments/"+url.PathEscape(attachmentID)+"/$value", nil)
	if _, err := m.do(ctx, call{method: http.MethodGet, url: u, kind: kindAttachment, sink: cw,
		maxBytes: MaxStreamBytes, onHeader: onHeader, timeout: StreamTimeout}); err != nil {
		return cw.n, fmt.Errorf("get attachment: %w", err)
	}
	return cw.n, nil
}

// AttachmentContent returns one attachment's raw content
// (/attachments/{id}/$value): a file's bytes, or for an item attachment its
// MIME (an attached message), iCalendar (an event) or vCard (a contact) —
// GDC api/attachment-get.md, "Get the raw contents of a file or item
// attachment", and concepts/outlook-get-mime-message.md ("If the message is
// attached to an Outlook item ..., you can append a $value segment to a
// get-attachment operation"). More than maxBytes gives ErrTooLarge.
func (m *MailboxClient) AttachmentContent(ctx context.Context, messageID, attachmentID string, maxBytes int64) ([]byte, error) {
	var buf bytes.Buffer
	if _, err := m.WriteAttachment(ctx, messageID, attachmentID, &buf, maxBytes); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// AttachmentsByID reads some of one message's attachments, with content,
// through $batch (GET /messages/{id}/attachments/{attachment id}, GDC
// api/attachment-get.md), 20 per call: for a message whose other
// attachments are too large to read with the list. It returns them in the
// order asked; err is non-nil when an attachment could not be read (a
// message that is gone matches ErrItemNotFound).
func (m *MailboxClient) AttachmentsByID(ctx context.Context, messageID string, attachmentIDs []string) ([]Attachment, error) {
	if strings.TrimSpace(messageID) == "" {
		return nil, fmt.Errorf("get attachments: empty message id")
	}
	reqs := make([]BatchRequest, len(attachmentIDs))
	for i, id := range attachmentIDs {
		reqs[i] = BatchRequest{Method: http.MethodGet,
			Path: "/messages/" + url.PathEscape(messageID) + "/attachments/" + url.PathEscape(id)}
	}
	resps, err := m.Batch(ctx, reqs)
	if err != nil {
		return nil, fmt.Errorf("get attachments of message %q: %w", messageID, err)
	}
	out := make([]Attachment, len(resps))
	for i, r := range resps {
		if r.Err != nil {
			return nil, fmt.Errorf("get attachment of message %q: %w", messageID, r.Err)
		}
		if err := json.Unmarshal(r.Body, &out[i]); err != nil {
			return nil, fmt.Errorf("decode attachment of message %q: %w", messageID, err)
		}
		resolveContent(out[i:i+1], r.lifted)
	}
	return out, nil
}
