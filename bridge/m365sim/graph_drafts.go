package m365sim

// Drafts, single-value extended properties and the filing of sent mail:
// what a client that sends exactly once relies on.
//
//   - POST /messages creates a draft in Drafts (GDC api-reference/v1.0/api/
//     user-post-messages.md: "Create a draft of a new message").
//   - A message carries single-value extended properties (MAPI named
//     properties), set on create or PATCH and found again with
//     $filter=singleValueExtendedProperties/Any(ep: ep/id eq '…' and
//     ep/value eq '…') (GDC api-reference/v1.0/api/
//     singlevaluelegacyextendedproperty-get.md and -post-…). Sending keeps
//     them on the Sent Items copy: the way Microsoft's own answer finds a sent
//     mail again ("tag the message with a custom identifier, then find it in
//     Sent Items", jasonjoh in microsoftgraph/microsoft-graph-docs#3766).
//   - The Sent Items copy has no internetMessageHeaders: "internet headers
//     just do not exist on the copy in Sent Items" (jasonjoh,
//     microsoftgraph/microsoft-graph-docs#2716, restated in #12726 and
//     microsoft-graph-docs-contrib#3517).
//   - Sending a draft gives the Sent Items copy a new id, immutable ids
//     included: "The user sends a draft message. The immutable ID of the copy
//     in Sent Items will not be the same immutable ID of the draft message."
//     (GDC concepts/outlook-immutable-id.md, "Lifetime of immutable IDs";
//     the index holds the sentence in the current localized copies, e.g.
//     microsoftgraph/microsoft-graph-docs.pt-BR; issue evidence:
//     microsoftgraph/microsoft-graph-docs#1533, msgraph-sdk-java#731).
//   - Exchange files the Sent Items copy after the send is accepted, not
//     during the request: Options.SentItemsDelay (sim clock) holds the copy
//     back; until then it is in no folder a client can list. The draft leaves
//     Drafts when the send is accepted.

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"time"
)

// extProp is a singleValueLegacyExtendedProperty {id, value}.
type extProp struct {
	ID    string `json:"id"`
	Value string `json:"value"`
}

// extPropKey is the comparison key of an extended property id: the type
// and the property set GUID compare case-insensitively, the Name is
// case-sensitive ("Filtering the string name (Name) in the id of an
// extended property is case-sensitive", GDC
// singlevaluelegacyextendedproperty-get.md).
func extPropKey(id string) string {
	id = strings.Join(strings.Fields(id), " ")
	head, name, ok := strings.Cut(id, " Name ")
	if !ok {
		return strings.ToLower(id)
	}
	return strings.ToLower(head) + " Name " + name
}

// setExtProps stores props on m, replacing values of the same id.
func setExtProps(m *message, props []extProp) *graphError {
	for _, p := range props {
		if len(strings.Fields(p.ID)) < 2 {
			return &graphError{http.StatusBadRequest, "ErrorInvalidProperty",
				"The extended property id '" + p.ID + "' is not of the form '{type} {guid} Name {name}' or '{type} {proptag}'."}
		}
		if m.extProps == nil {
			m.extProps = map[string]extProp{}
		}
		m.extProps[extPropKey(p.ID)] = p
	}
	return nil
}

// reExtFilter is one Any() clause over single-value extended properties,
// the form GDC singlevaluelegacyextendedproperty-get.md documents.
var reExtFilter = regexp.MustCompile(`(?i)^\s*singleValueExtendedProperties/any\(\s*(\w+)\s*:\s*(\w+)/id\s+eq\s+'((?:[^']|'')*)'\s+and\s+(\w+)/value\s+eq\s+'((?:[^']|'')*)'\s*\)\s*$`)

// matchExtProp reports whether m has property id with value; values
// compare case-insensitively ("Filtering the value property of an extended
// property is case-insensitive", ibid.).
func matchExtProp(m *message, id, value string) bool {
	p, ok := m.extProps[extPropKey(id)]
	return ok && strings.EqualFold(p.Value, value)
}

// pendingFiling is a Sent Items copy Exchange has not filed yet.
type pendingFiling struct {
	d       *mailData
	due     time.Time
	content *mimeMessage
	raw     func() []byte
	props   map[string]extProp
	at      time.Time
}

// SetSentItemsDelay changes Options.SentItemsDelay at run time.
func (s *Sim) SetSentItemsDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.graph.sentDelay = d
}

// PendingSentItems is how many Sent Items copies wait to be filed.
func (s *Sim) PendingSentItems() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fileDueLocked()
	return len(s.graph.pending)
}

// fileSentLocked files the Sent Items copy of a sent message now or, with a
// delay, once the sim clock reaches it.
func (s *Sim) fileSentLocked(d *mailData, content *mimeMessage, raw func() []byte, props map[string]extProp, now time.Time) {
	p := pendingFiling{d: d, due: now.Add(s.graph.sentDelay), content: content, raw: raw, props: props, at: now}
	if s.graph.sentDelay <= 0 {
		s.fileLocked(p)
		return
	}
	s.graph.pending = append(s.graph.pending, p)
}

func (s *Sim) fileLocked(p pendingFiling) {
	m := p.d.addMessage(p.content, p.raw, p.d.wellKnown["sentitems"], p.at, p.at)
	m.isRead = true
	m.sentCopy = true
	for k, v := range p.props {
		if m.extProps == nil {
			m.extProps = map[string]extProp{}
		}
		m.extProps[k] = v
	}
}

// fileDueLocked files every pending copy whose time has come.
func (s *Sim) fileDueLocked() {
	if len(s.graph.pending) == 0 {
		return
	}
	now := s.now()
	keep := s.graph.pending[:0]
	for _, p := range s.graph.pending {
		if !p.due.After(now) {
			s.fileLocked(p)
		} else {
			keep = append(keep, p)
		}
	}
	s.graph.pending = keep
}

// handleMessageCreate answers POST /messages: 201 with a draft in Drafts
// (GDC user-post-messages.md), extended properties and from included.
func (s *Sim) handleMessageCreate(w http.ResponseWriter, r *http.Request, c *graphCtx) {
	if isMIMERequest(r) {
		// user-post-messages.md example 3: a draft from base64 MIME.
		content, raw, ok := readMIMEBody(w, r)
		if !ok {
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		d := c.storeMIMEDraft(content, raw, s.now())
		writeJSON(w, http.StatusCreated, append(jobj{{"@odata.context", c.messageContext(r)}}, c.messageJSON(d, nil, false)...))
		return
	}
	var in messageIn
	if !readJSONBody(w, r, &in) {
		return
	}
	o, gerr := c.outgoing(&in)
	if gerr != nil {
		writeGraphError(w, r, gerr.status, gerr.code, gerr.msg)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if in.From != nil && in.From.EmailAddress.Address != "" {
		o.From = mailAddress{Name: in.From.EmailAddress.Name, Address: in.From.EmailAddress.Address}
	}
	d, gerr := c.storeDraft(o, s.now())
	if gerr == nil {
		gerr = setExtProps(d, in.SingleValueExtendedProperties)
	}
	if gerr != nil {
		writeGraphError(w, r, gerr.status, gerr.code, gerr.msg)
		return
	}
	writeJSON(w, http.StatusCreated, append(jobj{{"@odata.context", c.messageContext(r)}}, c.messageJSON(d, nil, false)...))
}

// storeDraft saves o as a draft in Drafts.
func (c *graphCtx) storeDraft(o *outgoingMail, now time.Time) (*message, *graphError) {
	o.Date = now
	o.MessageID = "<" + strings.ToLower(strings.TrimRight(c.d.newID("draft"), "=")) + "@" + domainOf(c.mb.Address) + ">"
	raw := buildMIME(o)
	content, err := parseMIME(raw)
	if err != nil {
		return nil, &graphError{http.StatusInternalServerError, "generalException", err.Error()}
	}
	d := c.d.addMessage(content, func() []byte { return raw }, c.d.wellKnown["drafts"], now, now)
	d.isDraft, d.isRead = true, true
	d.deliveryReceipt = new(bool)
	return d, nil
}

// patchExtProps applies "singleValueExtendedProperties" of a PATCH body.
func patchExtProps(m *message, body map[string]json.RawMessage) *graphError {
	raw, ok := body["singleValueExtendedProperties"]
	if !ok {
		return nil
	}
	var props []extProp
	if err := json.Unmarshal(raw, &props); err != nil {
		return &graphError{http.StatusBadRequest, "ErrorInvalidRequest", "singleValueExtendedProperties must be an array of {id, value}."}
	}
	return setExtProps(m, props)
}
