package m365sim

// Sending (B.11): sendMail, reply and createReply. Sent mail is real MIME
// (so $value works and threading headers survive), saved to the sending
// mailbox's Sent Items, and delivered to the Inbox of every recipient that
// is a mailbox of this sim.

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// maxRecipients is the to+cc+bcc limit of a message.
const maxRecipients = 500

// maxCustomHeaders is how many internetMessageHeaders Graph takes on one
// message. Graph answers more with 400 InvalidInternetMessageHeaderCollection
// "Maximum number of headers in one message should be less than or equal to
// 5." The docs only show two custom headers (GDC api-reference/v1.0/api/
// user-sendmail.md, example 2); the limit, code and text are issue evidence:
// a captured Graph answer quoted in GNOME evolution-ews
// (src/Microsoft365/camel/camel-m365-folder.c), and the same limit in other
// Graph senders' tests.
const maxCustomHeaders = 5

type recipientIn struct {
	EmailAddress struct {
		Name    string `json:"name"`
		Address string `json:"address"`
	} `json:"emailAddress"`
}

type messageIn struct {
	Subject string `json:"subject"`
	Body    *struct {
		ContentType string `json:"contentType"`
		Content     string `json:"content"`
	} `json:"body"`
	From                   *recipientIn    `json:"from"`
	ToRecipients           []recipientIn   `json:"toRecipients"`
	CcRecipients           []recipientIn   `json:"ccRecipients"`
	BccRecipients          []recipientIn   `json:"bccRecipients"`
	ReplyTo                []recipientIn   `json:"replyTo"`
	Importance             string          `json:"importance"`
	InternetMessageHeaders []MessageHeader `json:"internetMessageHeaders"`
	// SingleValueExtendedProperties are set on the message (graph_drafts.go).
	SingleValueExtendedProperties []extProp `json:"singleValueExtendedProperties"`
	Attachments                   []struct {
		Name         string `json:"name"`
		ContentType  string `json:"contentType"`
		ContentBytes string `json:"contentBytes"`
		ContentID    string `json:"contentId"`
		IsInline     bool   `json:"isInline"`
	} `json:"attachments"`
}

func toAddresses(in []recipientIn) []mailAddress {
	out := make([]mailAddress, 0, len(in))
	for _, r := range in {
		out = append(out, mailAddress{Name: r.EmailAddress.Name, Address: r.EmailAddress.Address})
	}
	return out
}

// outgoing turns a Graph message into MIME fields sent as mailbox mb.
func (c *graphCtx) outgoing(in *messageIn) (*outgoingMail, *graphError) {
	o := &outgoingMail{
		From: mailAddress{Name: c.mb.DisplayName, Address: c.mb.Address},
		To:   toAddresses(in.ToRecipients), Cc: toAddresses(in.CcRecipients), Bcc: toAddresses(in.BccRecipients),
		ReplyTo: toAddresses(in.ReplyTo), Subject: in.Subject, Importance: strings.ToLower(in.Importance),
	}
	if n := len(o.To) + len(o.Cc) + len(o.Bcc); n > maxRecipients {
		return nil, &graphError{http.StatusBadRequest, "ErrorInvalidRecipients", fmt.Sprintf("The message has %d recipients; at most %d are allowed in to, cc and bcc together.", n, maxRecipients)}
	}
	for _, a := range append(append(append([]mailAddress{}, o.To...), o.Cc...), o.Bcc...) {
		if !strings.Contains(a.Address, "@") {
			return nil, &graphError{http.StatusBadRequest, "ErrorInvalidRecipients", "At least one recipient is not valid., Recipient '" + a.Address + "' is not resolved. All recipients must be resolved before a message can be submitted."}
		}
	}
	if in.Body != nil {
		o.Body = in.Body.Content
		o.HTML = strings.EqualFold(in.Body.ContentType, "html")
	}
	if n := len(in.InternetMessageHeaders); n > maxCustomHeaders {
		return nil, &graphError{http.StatusBadRequest, "InvalidInternetMessageHeaderCollection",
			"Maximum number of headers in one message should be less than or equal to 5."}
	}
	for _, h := range in.InternetMessageHeaders {
		o.Extra = append(o.Extra, mimeHeader(h))
	}
	for _, a := range in.Attachments {
		data, err := base64.StdEncoding.DecodeString(a.ContentBytes)
		if err != nil {
			return nil, &graphError{http.StatusBadRequest, "ErrorInvalidRequest", "Attachment '" + a.Name + "' has contentBytes that are not base64."}
		}
		o.Attachments = append(o.Attachments, outAttachment{Name: a.Name, ContentType: a.ContentType, ContentID: a.ContentID, Inline: a.IsInline, Data: func() []byte { return data }})
	}
	return o, nil
}

// submitLocked stores and delivers a message built from o.
func (s *Sim) submitLocked(c *graphCtx, o *outgoingMail, saveToSent bool, props map[string]extProp) error {
	now := s.now()
	o.Date = now
	if o.MessageID == "" {
		// A sent draft keeps the Message-ID it was given when created.
		o.MessageID = fmt.Sprintf("<%s@%s>", strings.ToLower(strings.TrimRight(c.d.newID("sent"), "=")), domainOf(c.mb.Address))
	}
	raw := buildMIME(o)
	content, err := parseMIME(raw)
	if err != nil {
		return err
	}
	if saveToSent {
		s.fileSentLocked(c.d, content, func() []byte { return raw }, props, now)
	}
	// Deliver to sim mailboxes among the recipients, without Bcc.
	delivered := map[string]bool{}
	deliverCopy := *o
	deliverCopy.Bcc = nil
	var draw []byte
	for _, a := range append(append(append([]mailAddress{}, o.To...), o.Cc...), o.Bcc...) {
		mb := s.mailboxes[strings.ToLower(a.Address)]
		if mb == nil || !mb.Enabled || delivered[mb.ID] {
			continue
		}
		delivered[mb.ID] = true
		if draw == nil {
			draw = buildMIME(&deliverCopy)
		}
		dc, err := parseMIME(draw)
		if err != nil {
			return err
		}
		b := draw
		mb.data.addMessage(dc, func() []byte { return b }, mb.data.wellKnown["inbox"], now, now)
	}
	return nil
}

// handleSendMail answers POST /sendMail {message, saveToSentItems}: 202.
// With Content-Type text/plain the body is a whole MIME message in base64
// (GDC api-reference/v1.0/api/user-sendmail.md, "Request headers" and
// example 4); it is sent as is and saved to Sent Items.
func (s *Sim) handleSendMail(w http.ResponseWriter, r *http.Request, c *graphCtx) {
	if ct, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";"); strings.EqualFold(strings.TrimSpace(ct), "text/plain") {
		s.sendMIME(w, r, c)
		return
	}
	var body struct {
		Message         *messageIn `json:"message"`
		SaveToSentItems *bool      `json:"saveToSentItems"`
	}
	if !readJSONBody(w, r, &body) {
		return
	}
	if body.Message == nil {
		writeGraphError(w, r, http.StatusBadRequest, "ErrorInvalidRequest", "The message property is required.")
		return
	}
	if len(body.Message.ToRecipients)+len(body.Message.CcRecipients)+len(body.Message.BccRecipients) == 0 {
		writeGraphError(w, r, http.StatusBadRequest, "ErrorInvalidRecipients", "At least one recipient is required, but none were found.")
		return
	}
	o, gerr := c.outgoing(body.Message)
	if gerr != nil {
		writeGraphError(w, r, gerr.status, gerr.code, gerr.msg)
		return
	}
	s.mu.Lock()
	err := s.submitLocked(c, o, body.SaveToSentItems == nil || *body.SaveToSentItems, propsOf(body.Message))
	s.mu.Unlock()
	if err != nil {
		writeGraphError(w, r, http.StatusInternalServerError, "generalException", "Cannot submit message: "+err.Error())
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// replyTo builds a reply to m: to its Reply-To (or From), "RE: subject",
// In-Reply-To and References set.
func (c *graphCtx) replyTo(m *message, comment string, in *messageIn) (*outgoingMail, *graphError) {
	if in == nil {
		in = &messageIn{}
	}
	if comment != "" && in.Body != nil {
		// GDC message-reply.md and message-createreply.md: "Specify either a
		// comment or the body property of the message parameter. Specifying
		// both will return an HTTP 400 Bad Request error." (the code is the
		// sim's: the pages give none).
		return nil, &graphError{http.StatusBadRequest, "ErrorInvalidRequest", "Specify either a comment or the body property of the message parameter, not both."}
	}
	o, gerr := c.outgoing(in)
	if gerr != nil {
		return nil, gerr
	}
	if len(o.To) == 0 {
		o.To = append([]mailAddress(nil), m.content.ReplyTo...)
		if len(o.To) == 0 && m.content.From != nil {
			o.To = []mailAddress{*m.content.From}
		}
	}
	if o.Subject == "" {
		o.Subject = "RE: " + m.content.Subject
	}
	if in.Body == nil {
		h, _ := m.content.bodies()
		o.HTML = true
		o.Body = "<html><body><div>" + comment + "</div><hr><div>" + h + "</div></body></html>"
	}
	if id := m.content.MessageID; id != "" {
		refs := strings.TrimSpace(strings.Join(append(append([]string{}, m.content.References...), id), " "))
		o.Extra = append(o.Extra, mimeHeader{"In-Reply-To", id}, mimeHeader{"References", refs})
	}
	return o, nil
}

type replyBody struct {
	Comment string     `json:"comment"`
	Message *messageIn `json:"message"`
}

// handleReply answers POST /messages/{id}/reply: 202, sent at once.
func (s *Sim) handleReply(w http.ResponseWriter, r *http.Request, c *graphCtx) {
	if isMIMERequest(r) {
		content, raw, ok := readMIMEBody(w, r)
		if !ok || !checkMIMERecipients(w, r, content) {
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if c.lookupMessage(w, r) == nil {
			return
		}
		if err := s.submitRawLocked(c, content, raw); err != nil {
			writeGraphError(w, r, http.StatusInternalServerError, "generalException", "Cannot submit message: "+err.Error())
			return
		}
		w.WriteHeader(http.StatusAccepted)
		return
	}
	var body replyBody
	if !readJSONBody(w, r, &body) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m := c.lookupMessage(w, r)
	if m == nil {
		return
	}
	o, gerr := c.replyTo(m, body.Comment, body.Message)
	if gerr != nil {
		writeGraphError(w, r, gerr.status, gerr.code, gerr.msg)
		return
	}
	if err := s.submitLocked(c, o, true, propsOf(body.Message)); err != nil {
		writeGraphError(w, r, http.StatusInternalServerError, "generalException", "Cannot submit message: "+err.Error())
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// handleCreateReply answers POST /messages/{id}/createReply: 201 with a
// draft in Drafts.
func (s *Sim) handleCreateReply(w http.ResponseWriter, r *http.Request, c *graphCtx) {
	if isMIMERequest(r) {
		content, raw, ok := readMIMEBody(w, r)
		if !ok {
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if c.lookupMessage(w, r) == nil {
			return
		}
		d := c.storeMIMEDraft(content, raw, s.now())
		writeJSON(w, http.StatusCreated, append(jobj{{"@odata.context", c.messageContext(r)}}, c.messageJSON(d, nil, false)...))
		return
	}
	var body replyBody
	if r.ContentLength != 0 && !readJSONBody(w, r, &body) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m := c.lookupMessage(w, r)
	if m == nil {
		return
	}
	o, gerr := c.replyTo(m, body.Comment, body.Message)
	if gerr != nil {
		writeGraphError(w, r, gerr.status, gerr.code, gerr.msg)
		return
	}
	d, gerr := c.storeDraft(o, s.now())
	if gerr == nil && body.Message != nil {
		gerr = setExtProps(d, body.Message.SingleValueExtendedProperties)
	}
	if gerr != nil {
		writeGraphError(w, r, gerr.status, gerr.code, gerr.msg)
		return
	}
	writeJSON(w, http.StatusCreated, append(jobj{{"@odata.context", c.messageContext(r)}}, c.messageJSON(d, nil, false)...))
}

// draftMail turns a stored draft back into MIME fields.
func draftMail(m *message) *outgoingMail {
	mc := m.content
	o := &outgoingMail{To: mc.To, Cc: mc.Cc, Bcc: mc.Bcc, ReplyTo: mc.ReplyTo, Subject: mc.Subject,
		MessageID: mc.MessageID, Date: mc.Date, Importance: mc.Importance, HTML: true}
	if mc.From != nil {
		o.From = *mc.From
	}
	o.Body, _ = mc.bodies()
	for _, h := range mc.Headers {
		switch strings.ToLower(h.Name) {
		case "in-reply-to", "references":
			o.Extra = append(o.Extra, h)
		default:
			if strings.HasPrefix(strings.ToLower(h.Name), "x-") {
				o.Extra = append(o.Extra, h)
			}
		}
	}
	for _, a := range mc.Attachments {
		if a.Kind == "file" {
			a := a
			o.Attachments = append(o.Attachments, outAttachment{Name: a.Name, ContentType: a.ContentType, ContentID: a.ContentID, Inline: a.IsInline, Data: a.bytes})
		}
	}
	return o
}

// patchDraft applies subject, body and recipient changes to a draft by
// rebuilding its MIME.
func (c *graphCtx) patchDraft(m *message, body map[string]json.RawMessage) *graphError {
	var in messageIn
	b, _ := json.Marshal(body)
	if err := json.Unmarshal(b, &in); err != nil {
		return &graphError{http.StatusBadRequest, "ErrorInvalidRequest", "The draft update is not a valid message: " + err.Error()}
	}
	o := draftMail(m)
	if _, ok := body["subject"]; ok {
		o.Subject = in.Subject
	}
	if in.Body != nil {
		o.Body, o.HTML = in.Body.Content, strings.EqualFold(in.Body.ContentType, "html")
	}
	for key, dst := range map[string]*[]mailAddress{"toRecipients": &o.To, "ccRecipients": &o.Cc, "bccRecipients": &o.Bcc, "replyTo": &o.ReplyTo} {
		if _, ok := body[key]; ok {
			var list []recipientIn
			json.Unmarshal(body[key], &list)
			*dst = toAddresses(list)
		}
	}
	if n := len(o.To) + len(o.Cc) + len(o.Bcc); n > maxRecipients {
		return &graphError{http.StatusBadRequest, "ErrorInvalidRecipients", fmt.Sprintf("The message has %d recipients; at most %d are allowed in to, cc and bcc together.", n, maxRecipients)}
	}
	raw := buildMIME(o)
	content, err := parseMIME(raw)
	if err != nil {
		return &graphError{http.StatusInternalServerError, "generalException", err.Error()}
	}
	m.content, m.raw = content, func() []byte { return raw }
	return nil
}

// handleSendDraft answers POST /messages/{id}/send: 202; the draft leaves
// Drafts for Sent Items and is delivered.
func (s *Sim) handleSendDraft(w http.ResponseWriter, r *http.Request, c *graphCtx) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := c.lookupMessage(w, r)
	if m == nil {
		return
	}
	if !m.isDraft {
		writeGraphError(w, r, http.StatusBadRequest, "ErrorInvalidRequest", "Only a draft can be sent; this message was already sent or received.")
		return
	}
	o := draftMail(m)
	if len(o.To)+len(o.Cc)+len(o.Bcc) == 0 {
		writeGraphError(w, r, http.StatusBadRequest, "ErrorInvalidRecipients", "At least one recipient is required, but none were found.")
		return
	}
	o.From = mailAddress{Name: c.mb.DisplayName, Address: c.mb.Address}
	// The draft leaves Drafts now; its Sent Items copy is a new item (new
	// ids, immutable included) that keeps the extended properties and is
	// filed after Options.SentItemsDelay (graph_drafts.go).
	if err := s.submitLocked(c, o, true, m.extProps); err != nil {
		writeGraphError(w, r, http.StatusInternalServerError, "generalException", "Cannot submit message: "+err.Error())
		return
	}
	c.d.purge(m)
	w.WriteHeader(http.StatusAccepted)
}

// handleTranslateIDs answers POST /translateExchangeIds (B.9): rest ids to
// immutable ids and back, up to 1,000 per call.
func (s *Sim) handleTranslateIDs(w http.ResponseWriter, r *http.Request, c *graphCtx) {
	var body struct {
		InputIDs     []string `json:"inputIds"`
		SourceIDType string   `json:"sourceIdType"`
		TargetIDType string   `json:"targetIdType"`
	}
	if !readJSONBody(w, r, &body) {
		return
	}
	if len(body.InputIDs) == 0 || len(body.InputIDs) > 1000 {
		writeGraphError(w, r, http.StatusBadRequest, "ErrorInvalidRequest", "inputIds must hold 1 to 1,000 ids.")
		return
	}
	types := map[string]bool{"restid": true, "restimmutableentryid": true}
	if !types[strings.ToLower(body.SourceIDType)] || !types[strings.ToLower(body.TargetIDType)] {
		writeGraphError(w, r, http.StatusBadRequest, "ErrorInvalidRequest", "The sim translates only between restId and restImmutableEntryId.")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []any{}
	for _, id := range body.InputIDs {
		m := c.d.find(id)
		if m == nil {
			out = append(out, jobj{{"sourceId", id}, {"errorDetails", jobj{{"code", "ErrorItemNotFound"}, {"message", msgItemNotFound}}}})
			continue
		}
		target := m.restID
		if strings.EqualFold(body.TargetIDType, "restImmutableEntryId") {
			target = m.immutableID
		}
		out = append(out, jobj{{"sourceId", id}, {"targetId", target}})
	}
	writeJSON(w, http.StatusOK, jobj{{"@odata.context", c.base + "/$metadata#Collection(microsoft.graph.convertIdResult)"}, {"value", out}})
}

// propsOf collects a message body's extended properties (nil: none).
func propsOf(in *messageIn) map[string]extProp {
	if in == nil || len(in.SingleValueExtendedProperties) == 0 {
		return nil
	}
	var m message
	if setExtProps(&m, in.SingleValueExtendedProperties) != nil {
		return nil
	}
	return m.extProps
}
