package m365sim

// JSON shapes of mailFolder, message and attachment resources (B.2, B.4,
// B.8), in Graph's property order.

import (
	"cmp"
	"crypto/sha256"
	"encoding/base64"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// defaultMessageFields is what a message GET returns without $select.
var defaultMessageFields = []string{
	"createdDateTime", "lastModifiedDateTime", "changeKey", "categories", "receivedDateTime",
	"sentDateTime", "hasAttachments", "internetMessageId", "subject", "bodyPreview", "importance",
	"parentFolderId", "conversationId", "conversationIndex", "isDeliveryReceiptRequested",
	"isReadReceiptRequested", "isRead", "isDraft", "webLink", "inferenceClassification", "body",
	"sender", "from", "toRecipients", "ccRecipients", "bccRecipients", "replyTo", "flag",
}

// messageFieldOrder is the order properties appear in, selected or not:
// the default set with id first, uniqueBody next to body, and
// internetMessageHeaders (only when selected) last.
var messageFieldOrder = []string{
	"id", "createdDateTime", "lastModifiedDateTime", "changeKey", "categories", "receivedDateTime",
	"sentDateTime", "hasAttachments", "internetMessageId", "subject", "bodyPreview", "importance",
	"parentFolderId", "conversationId", "conversationIndex", "isDeliveryReceiptRequested",
	"isReadReceiptRequested", "isRead", "isDraft", "webLink", "inferenceClassification", "body",
	"uniqueBody", "sender", "from", "toRecipients", "ccRecipients", "bccRecipients", "replyTo", "flag",
	"internetMessageHeaders",
}

var messageFieldSet, folderFieldSet = fieldSet(messageFieldOrder), fieldSet(folderFields)

var folderFields = []string{"id", "displayName", "parentFolderId", "childFolderCount", "unreadItemCount", "totalItemCount", "isHidden"}

func fieldSet(fields []string) map[string]string {
	m := map[string]string{}
	for _, f := range fields {
		m[strings.ToLower(f)] = f
	}
	return m
}

func sentTime(m *message) time.Time {
	if !m.content.Date.IsZero() {
		return m.content.Date
	}
	return m.received
}

// messageID is the id the request asked for: immutable or rest.
func (c *graphCtx) messageID(m *message) string {
	if c.pref.immutableID {
		return m.immutableID
	}
	return m.restID
}

func recipient(a *mailAddress) any {
	if a == nil {
		return nil
	}
	return jobj{{"emailAddress", jobj{{"name", a.Name}, {"address", a.Address}}}}
}

func recipients(l []mailAddress) []any {
	out := make([]any, 0, len(l))
	for i := range l {
		out = append(out, recipient(&l[i]))
	}
	return out
}

// messageJSON renders m with the selected fields (nil: default set).
// annotate adds "@odata.type" (delta and collections that carry it).
func (c *graphCtx) messageJSON(m *message, fields []string, annotate bool) jobj {
	want := map[string]bool{}
	if fields == nil {
		fields = defaultMessageFields
	}
	for _, f := range fields {
		want[f] = true
	}
	var o jobj
	if annotate {
		o = append(o, jkv{"@odata.type", "#microsoft.graph.message"})
	}
	o = append(o, jkv{"@odata.etag", `W/"` + m.changeKey() + `"`})
	mc := m.content
	var htmlBody, textBody string
	if want["body"] || want["uniqueBody"] || want["bodyPreview"] {
		htmlBody, textBody = mc.bodies()
	}
	for _, f := range messageFieldOrder {
		if f != "id" && !want[f] {
			continue
		}
		o = append(o, jkv{f, c.messageField(m, f, htmlBody, textBody)})
	}
	return o
}

// messageField is the value of field f of m: its body, addresses, flag or
// headers here, its other properties from messageProperty.
func (c *graphCtx) messageField(m *message, f, htmlBody, textBody string) any {
	mc := m.content
	switch f {
	case "body", "uniqueBody":
		// body and uniqueBody come as HTML unless the request carries
		// Prefer: outlook.body-content-type="text" (GDC api/message-get.md,
		// "Request headers"; also inside a $batch item's own headers, GDC
		// concepts/json-batching.md). For mail written as text the text form is
		// the stored body itself: Exchange returns "text if the stored body is
		// plain text" (EWS UniqueBodyType/BodyType reference), so it is the text
		// as written, which the bridge relies on.
		if c.pref.bodyType == "text" {
			return jobj{{"contentType", "text"}, {"content", textBody}}
		}
		return jobj{{"contentType", "html"}, {"content", htmlBody}}
	case "sender":
		return recipient(mc.Sender)
	case "from":
		return recipient(mc.From)
	case "toRecipients":
		return recipients(mc.To)
	case "ccRecipients":
		return recipients(mc.Cc)
	case "bccRecipients":
		return recipients(mc.Bcc)
	case "replyTo":
		return recipients(mc.ReplyTo)
	case "flag":
		if m.flag != nil {
			return m.flag
		}
		return jobj{{"flagStatus", "notFlagged"}}
	case "internetMessageHeaders":
		hs := make([]any, 0, len(mc.Headers))
		for _, h := range mc.Headers {
			if m.sentCopy {
				break // none on a Sent Items copy (graph_drafts.go)
			}
			hs = append(hs, jobj{{"name", h.Name}, {"value", h.Value}})
		}
		return hs
	}
	return c.messageProperty(m, f, textBody)
}

// messageProperty is the value of property f of m other than its body,
// addresses, flag and headers; nil for a field it does not know.
func (c *graphCtx) messageProperty(m *message, f, textBody string) any {
	mc := m.content
	switch f {
	case "id":
		return c.messageID(m)
	case "createdDateTime":
		return graphTime(m.created)
	case "lastModifiedDateTime":
		return graphTime(m.modified)
	case "changeKey":
		return m.changeKey()
	case "categories":
		return append([]string{}, m.categories...)
	case "receivedDateTime":
		return graphTime(m.received)
	case "sentDateTime":
		return graphTime(sentTime(m))
	case "hasAttachments":
		return mc.hasAttachments()
	case "internetMessageId":
		return mc.MessageID
	case "subject":
		return mc.Subject
	case "bodyPreview":
		return previewOf(textBody)
	case "importance":
		return m.effectiveImportance()
	case "parentFolderId":
		return m.folderID
	case "conversationId":
		return m.conversationID(c.mb.ID)
	case "conversationIndex":
		return m.conversationIndex(c.mb.ID)
	case "isDeliveryReceiptRequested":
		if m.deliveryReceipt != nil {
			return *m.deliveryReceipt
		}
	case "isReadReceiptRequested":
		return mc.header("Disposition-Notification-To") != ""
	case "isRead":
		return m.isRead
	case "isDraft":
		return m.isDraft
	case "webLink":
		return "https://outlook.office365.com/owa/?ItemID=" + url.QueryEscape(c.messageID(m)) + "&exvsurl=1&viewmodel=ReadMessageItem"
	case "inferenceClassification":
		return cmp.Or(m.inference, "focused")
	}
	return nil
}

func previewOf(text string) string {
	t := strings.Join(strings.Fields(text), " ")
	if r := []rune(t); len(r) > 255 {
		t = string(r[:255])
	}
	return t
}

// folderJSON renders a mailFolder (B.2).
func (c *graphCtx) folderJSON(f *folder, fields []string) jobj {
	total, unread, children := c.d.counts(f.id)
	o := jobj{}
	want := map[string]bool{"id": true}
	if fields == nil {
		fields = folderFields
	}
	for _, x := range fields {
		want[x] = true
	}
	for _, x := range folderFields {
		if !want[x] {
			continue
		}
		var v any
		switch x {
		case "id":
			v = f.id
		case "displayName":
			v = f.name
		case "parentFolderId":
			v = f.parentID
		case "childFolderCount":
			v = children
		case "unreadItemCount":
			v = unread
		case "totalItemCount":
			v = total
		case "isHidden":
			v = f.hidden
		}
		o = append(o, jkv{x, v})
	}
	return o
}

// attachmentID is stable for a message across moves.
func attachmentID(m *message, i int) string {
	h := sha256.Sum256([]byte(m.immutableID))
	return "AAMkAGAtt" + base64.URLEncoding.EncodeToString(h[:18]) + "-" + strconv.Itoa(i+1)
}

// attachmentJSON renders an attachment; fields nil means all, and
// withContent adds contentBytes (file) or item (item, when expanded).
func (c *graphCtx) attachmentJSON(m *message, i int, fields []string, withItem bool) jobj {
	a := m.content.Attachments[i]
	want := func(f string) bool {
		if fields == nil {
			return true
		}
		for _, x := range fields {
			if strings.EqualFold(strings.TrimSpace(x), f) {
				return true
			}
		}
		return false
	}
	o := jobj{{"@odata.type", "#microsoft.graph." + a.Kind + "Attachment"}}
	if a.Kind == "file" && fields == nil {
		o = append(o, jkv{"@odata.mediaContentType", a.ContentType})
	}
	o = append(o, jkv{"id", attachmentID(m, i)})
	add := func(k string, v any) {
		if want(k) {
			o = append(o, jkv{k, v})
		}
	}
	add("lastModifiedDateTime", graphTime(m.created))
	add("name", a.Name)
	if a.Kind == "item" {
		add("contentType", nil)
	} else {
		add("contentType", a.ContentType)
	}
	add("size", a.Size)
	add("isInline", a.IsInline)
	switch a.Kind {
	case "file":
		if a.ContentID != "" {
			add("contentId", a.ContentID)
		} else {
			add("contentId", nil)
		}
		add("contentLocation", nil)
		add("contentBytes", base64.StdEncoding.EncodeToString(a.bytes()))
	case "item":
		if withItem && a.Item != nil {
			inner := &message{immutableID: m.immutableID + "-item-" + strconv.Itoa(i), restID: m.restID + "-item-" + strconv.Itoa(i),
				content: a.Item, received: m.received, created: m.created, modified: m.modified, folderID: m.folderID}
			item := c.messageJSON(inner, []string{"subject", "sentDateTime", "receivedDateTime", "body", "from", "toRecipients", "ccRecipients", "internetMessageId", "hasAttachments"}, true)
			o = append(o, jkv{"item", item})
		}
	case "reference":
		add("sourceUrl", a.SourceURL)
	}
	return o
}
