package graph

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"time"
)

// Message mirrors the Graph message resource (GDC resources/message.md) as
// far as the bridge uses it. Fields Graph did not return (not in $select)
// stay zero. Removed is set on delta entries for messages that left the
// folder ("@removed": {"reason": "deleted"|"changed"}).
type Message struct {
	ID                     string       `json:"id"`
	ChangeKey              string       `json:"changeKey,omitempty"`
	InternetMessageID      string       `json:"internetMessageId,omitempty"`
	Subject                string       `json:"subject,omitempty"`
	From                   *Recipient   `json:"from,omitempty"`
	Sender                 *Recipient   `json:"sender,omitempty"`
	ToRecipients           []Recipient  `json:"toRecipients,omitempty"`
	CcRecipients           []Recipient  `json:"ccRecipients,omitempty"`
	BccRecipients          []Recipient  `json:"bccRecipients,omitempty"`
	ReplyTo                []Recipient  `json:"replyTo,omitempty"`
	ReceivedDateTime       time.Time    `json:"receivedDateTime,omitzero"`
	SentDateTime           time.Time    `json:"sentDateTime,omitzero"`
	Body                   *ItemBody    `json:"body,omitempty"`
	UniqueBody             *ItemBody    `json:"uniqueBody,omitempty"`
	BodyPreview            string       `json:"bodyPreview,omitempty"`
	HasAttachments         bool         `json:"hasAttachments,omitempty"`
	IsRead                 bool         `json:"isRead,omitempty"`
	IsDraft                bool         `json:"isDraft,omitempty"`
	ConversationID         string       `json:"conversationId,omitempty"`
	ParentFolderID         string       `json:"parentFolderId,omitempty"`
	InternetMessageHeaders []Header     `json:"internetMessageHeaders,omitempty"`
	Importance             string       `json:"importance,omitempty"`
	Categories             []string     `json:"categories,omitempty"`
	WebLink                string       `json:"webLink,omitempty"`
	Attachments            []Attachment `json:"attachments,omitempty"` // only with $expand=attachments
	Removed                *Removed     `json:"@removed,omitempty"`
	// TextBody is the body in its text rendition (Prefer:
	// outlook.body-content-type="text"), filled by the caller for a message
	// written as text (TextBodiesOf); it is not a property Graph returns
	// with the message.
	TextBody *ItemBody `json:"-"`
	// Ignored names the properties Graph sent with an unexpected JSON type
	// that the bridge does not need (see tolerantProperties): they were left
	// empty instead of rejecting the whole message. Callers log them.
	Ignored []string `json:"-"`
}

// tolerantProperties are the message properties the bridge does not use to
// build an event or decide a fetch. A value of the wrong type in one of them
// leaves the field empty (and its name in Ignored) instead of rejecting the
// message: Microsoft's own delta sample (microsoft-graph-docs-contrib
// concepts/delta-query-messages.md, "Synchronize messages in the same folder
// in the next round") shows "isRead": "true", a string where the schema
// says Boolean. Every other property is needed (addressing, dates, body,
// threading, attachments) and a wrong type there still rejects the message,
// so nothing the customer sent is silently lost.
var tolerantProperties = map[string]bool{
	"changekey": true, "bodypreview": true, "isread": true, "isdraft": true,
	"parentfolderid": true, "importance": true, "categories": true, "weblink": true,
}

// Recipient is Graph's {"emailAddress":{"name","address"}}.
type Recipient struct {
	EmailAddress EmailAddress `json:"emailAddress"`
}

// EmailAddress is a display name and an SMTP address; either may be empty.
type EmailAddress struct {
	Name    string `json:"name,omitempty"`
	Address string `json:"address,omitempty"`
}

// ItemBody is a message body: ContentType is "html" or "text".
type ItemBody struct {
	ContentType string `json:"contentType"`
	Content     string `json:"content"`
}

// Header is one internet message header, in the order Graph lists them.
type Header struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Removed marks a delta entry for a message that left the folder.
type Removed struct {
	Reason string `json:"reason"` // "deleted" or "changed"
}

// Header returns the first value of the named header (case-insensitive)
// and whether it was present.
func (m *Message) Header(name string) (string, bool) {
	for _, h := range m.InternetMessageHeaders {
		if strings.EqualFold(h.Name, name) {
			return h.Value, true
		}
	}
	return "", false
}

// UnmarshalJSON decodes a Graph message tolerantly: unknown fields are
// ignored, null is the zero value, dates are accepted with or without a zone
// (Graph's are UTC) and with any fraction of a second, and a value of the
// wrong type in a property of tolerantProperties is dropped (named in
// Ignored) instead of failing the message.
func (m *Message) UnmarshalJSON(b []byte) error {
	if m.decodeStrict(b) == nil {
		return nil
	}
	return m.decodeByProperty(b)
}

// decodeStrict is the fast path: the whole object at once.
func (m *Message) decodeStrict(b []byte) error {
	type plain Message
	var raw struct {
		*plain
		ReceivedDateTime *string `json:"receivedDateTime"`
		SentDateTime     *string `json:"sentDateTime"`
	}
	*m = Message{}
	raw.plain = (*plain)(m)
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	var err error
	if m.ReceivedDateTime, err = parseGraphTime("receivedDateTime", raw.ReceivedDateTime); err != nil {
		return err
	}
	if m.SentDateTime, err = parseGraphTime("sentDateTime", raw.SentDateTime); err != nil {
		return err
	}
	return nil
}

// decodeByProperty decodes one property at a time, so the property that
// failed the fast path is known: a tolerant one is left empty, any other
// fails the message with its name in the error.
func (m *Message) decodeByProperty(b []byte) error {
	var props map[string]json.RawMessage
	if err := json.Unmarshal(b, &props); err != nil {
		return err
	}
	// encoding/json matches keys case-insensitively; so does this.
	lower := make(map[string]json.RawMessage, len(props))
	for k, v := range props {
		if _, dup := lower[strings.ToLower(k)]; !dup {
			lower[strings.ToLower(k)] = v
		}
	}
	*m = Message{}
	rv := reflect.ValueOf(m).Elem()
	rt := rv.Type()
	for i := range rt.NumField() {
		name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		raw, ok := lower[strings.ToLower(name)]
		if !ok {
			continue
		}
		var err error
		switch f := rv.Field(i).Addr().Interface().(type) {
		case *time.Time:
			var s *string
			if err = json.Unmarshal(raw, &s); err == nil {
				*f, err = parseGraphTime(name, s)
			} else {
				err = fmt.Errorf("%s: %w", name, err)
			}
		default:
			if err = json.Unmarshal(raw, f); err != nil {
				err = fmt.Errorf("%s: %w", name, err)
			}
		}
		if err == nil {
			continue
		}
		if !tolerantProperties[strings.ToLower(name)] {
			return err
		}
		rv.Field(i).SetZero()
		m.Ignored = append(m.Ignored, name)
	}
	return nil
}

// parseGraphTime reads an ISO 8601 date-time; a missing zone means UTC.
func parseGraphTime(field string, s *string) (time.Time, error) {
	if s == nil || *s == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999"} {
		if t, err := time.Parse(layout, *s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%s %q is not an ISO 8601 date-time", field, *s)
}

// UndecodableMessage is a collection entry that is not a readable message:
// the caller records it (rejected, with Err as the reason) instead of
// crashing or dropping it silently. ID is empty when even the id was
// unreadable.
type UndecodableMessage struct {
	ID  string
	Err error
}

// decodeMessages decodes a collection's entries one by one so one odd
// message does not take the page down with it.
func decodeMessages(raw []json.RawMessage) (ok []Message, bad []UndecodableMessage) {
	ok = make([]Message, 0, len(raw))
	for _, r := range raw {
		msg, err := DecodeMessage(r)
		if err != nil {
			bad = append(bad, UndecodableMessage{ID: msg.ID, Err: err})
			continue
		}
		ok = append(ok, msg)
	}
	return ok, bad
}

// DecodeMessage decodes one Graph message object. On error the returned
// Message carries at least the id when it could be read. It calls
// UnmarshalJSON itself: json.Unmarshal would first scan b to validate it,
// and UnmarshalJSON's own json.Unmarshal scans it again.
func DecodeMessage(b []byte) (Message, error) {
	var m Message
	if err := m.UnmarshalJSON(b); err != nil {
		var idOnly struct {
			ID any `json:"id"`
		}
		_ = json.Unmarshal(b, &idOnly)
		id, _ := idOnly.ID.(string)
		return Message{ID: id}, fmt.Errorf("decode message %q: %w", id, err)
	}
	if m.ID == "" {
		return m, fmt.Errorf("decode message: no id")
	}
	return m, nil
}
