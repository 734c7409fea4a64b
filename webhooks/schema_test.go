package webhooks

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"
)

// checker validates a decoded JSON value against the subset of JSON Schema
// that SchemaV1 uses: type, required, properties, additionalProperties,
// enum, const, items, format date-time, $ref into $defs, allOf and if/then.
// It fails on any other keyword, so the schema cannot quietly grow past it.
type checker struct{ root map[string]any }

var knownKeywords = map[string]bool{
	"$schema": true, "$id": true, "title": true, "description": true, "$defs": true,
	"type": true, "required": true, "properties": true, "additionalProperties": true,
	"enum": true, "const": true, "items": true, "format": true, "$ref": true, "allOf": true,
	"if": true, "then": true,
}

func (c checker) check(schema map[string]any, v any, path string) []string {
	var errs []string
	for k := range schema {
		if !knownKeywords[k] {
			errs = append(errs, fmt.Sprintf("%s: schema keyword %q not supported by the test checker", path, k))
		}
	}
	if ref, ok := schema["$ref"].(string); ok {
		name, found := strings.CutPrefix(ref, "#/$defs/")
		def, ok := c.root["$defs"].(map[string]any)[name].(map[string]any)
		if !found || !ok {
			return append(errs, fmt.Sprintf("%s: unresolvable $ref %q", path, ref))
		}
		errs = append(errs, c.check(def, v, path)...)
	}
	if t, ok := schema["type"].(string); ok && !hasType(t, v) {
		return append(errs, fmt.Sprintf("%s: %T is not %s", path, v, t))
	}
	if e, ok := schema["enum"].([]any); ok {
		match := false
		for _, x := range e {
			match = match || reflect.DeepEqual(x, v)
		}
		if !match {
			errs = append(errs, fmt.Sprintf("%s: %v not in enum %v", path, v, e))
		}
	}
	if cst, ok := schema["const"]; ok && !reflect.DeepEqual(cst, v) {
		errs = append(errs, fmt.Sprintf("%s: %v is not %v", path, v, cst))
	}
	if schema["format"] == "date-time" {
		if s, _ := v.(string); s != "" {
			if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
				errs = append(errs, fmt.Sprintf("%s: %q is not a date-time", path, s))
			}
		}
	}
	if obj, ok := v.(map[string]any); ok {
		props, _ := schema["properties"].(map[string]any)
		for _, r := range asSlice(schema["required"]) {
			if _, ok := obj[r.(string)]; !ok {
				errs = append(errs, fmt.Sprintf("%s: required %q missing", path, r))
			}
		}
		for k, val := range obj {
			if ps, ok := props[k].(map[string]any); ok {
				errs = append(errs, c.check(ps, val, path+"."+k)...)
			} else if schema["additionalProperties"] == false {
				errs = append(errs, fmt.Sprintf("%s: property %q not in schema", path, k))
			}
		}
	}
	if arr, ok := v.([]any); ok {
		if items, ok := schema["items"].(map[string]any); ok {
			for i, x := range arr {
				errs = append(errs, c.check(items, x, fmt.Sprintf("%s[%d]", path, i))...)
			}
		}
	}
	for _, sub := range asSlice(schema["allOf"]) {
		errs = append(errs, c.check(sub.(map[string]any), v, path)...)
	}
	if cond, ok := schema["if"].(map[string]any); ok {
		if len(c.check(cond, v, path)) == 0 {
			errs = append(errs, c.check(schema["then"].(map[string]any), v, path)...)
		}
	}
	return errs
}

func asSlice(v any) []any { s, _ := v.([]any); return s }

func hasType(t string, v any) bool {
	switch t {
	case "object":
		_, ok := v.(map[string]any)
		return ok
	case "array":
		_, ok := v.([]any)
		return ok
	case "string":
		_, ok := v.(string)
		return ok
	case "boolean":
		_, ok := v.(bool)
		return ok
	case "integer":
		f, ok := v.(float64)
		return ok && f == float64(int64(f))
	case "number":
		_, ok := v.(float64)
		return ok
	}
	return false
}

func loadSchema(t *testing.T) checker {
	t.Helper()
	var root map[string]any
	if err := json.Unmarshal(SchemaV1, &root); err != nil {
		t.Fatalf("SchemaV1 is not JSON: %v", err)
	}
	return checker{root}
}

// sampleMail fills every field, so the schema sees each one.
func sampleMail(archive bool) MailData {
	at := time.Date(2026, 10, 1, 8, 30, 0, 0, time.UTC)
	from := Address{Name: "Alice Customer", Address: "alice@example.org"}
	state := "new"
	if archive {
		state = "closed"
	}
	return MailData{
		ID: EventID("contoso.onmicrosoft.com", "support@contoso.com", "AAMk-1"), Version: Version,
		Channel: "support", Mailbox: Mailbox{Type: "shared", Address: "support@contoso.com"},
		Folder: "Inbox/Support", Group: "Support L1", Archive: archive, Tags: []string{"m365", "archive"},
		Ticket: Ticket{Title: "Printer on fire", State: state, CreatedAt: at, Customer: from, SuppressAutomations: archive,
			CustomerSource: "none", CustomerUnresolved: true, CustomerRaw: "MAILER-DAEMON (Mail Delivery System)"},
		Article: Article{
			InternetMessageID: "<abc@example.org>", InReplyTo: "<prev@example.org>", References: []string{"<first@example.org>", "<prev@example.org>"},
			ConversationID: "AAQk-conv", GraphID: "AAMk-1", From: from, Sender: &from,
			ReplyTo: []Address{from}, To: []Address{{Address: "support@contoso.com"}}, Cc: []Address{{Name: "Bob", Address: "bob@example.org"}},
			Subject: "Printer on fire", SentAt: at.Add(-time.Minute), ReceivedAt: at,
			BodyType: "html", BodyHTML: "<p>Help</p>", BodyText: "Help", AutoSubmitted: true, AutoSubmittedReason: "Auto-Submitted: auto-replied",
			Headers: []Header{{Name: "X-Mailer", Value: "Outlook"}},
			Attachments: []Attachment{
				{Filename: "logo.png", ContentType: "image/png", Size: 3, ContentID: "logo@x", Inline: true, Included: true, ContentBase64: "AAEC"},
				{Filename: "big.zip", ContentType: "application/zip", Size: 50 << 20, Included: false, Reason: "too_large",
					URL: "https://bridge.example.com/v1/attachments?channel=support&sig=x", ExpiresAt: &at,
					SHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"},
				{Filename: "Your order.eml", ContentType: "message/rfc822", Size: 3, Included: true, ContentBase64: "AAEC", Item: true},
			},
			RawMIME: &RawMIME{Included: true, Size: 3, ContentBase64: "AAEC", Reason: ""},
		},
	}
}

// sampleEvents is one event of each type, every field set.
func sampleEvents(t *testing.T) map[string]Event {
	at := time.Date(2026, 11, 26, 20, 0, 0, 0, time.UTC)
	mb := &Mailbox{Type: "user", Address: "agent@contoso.com"}
	ch := func(state string) ChannelData {
		return ChannelData{ID: NewID("evt"), Version: Version, Channel: "support", Mailbox: mb, State: state,
			Code: "AADSTS700082", Reason: "refresh token expired after 90 days of inactivity", Fix: "sign in again at /connect/support"}
	}
	send := SendData{ID: NewID("snd"), Version: Version, Channel: "support", Mailbox: *mb, RequestID: "r-1",
		InternetMessageID: "<r1@contoso.com>", InReplyTo: "<abc@example.org>", To: []Address{{Address: "alice@example.org"}},
		Subject: "Re: Printer", Code: "ErrorSendAsDenied", Reason: "no Send As right"}
	data := map[string]any{
		TypeMailReceived: sampleMail(false),
		TypeMailArchived: sampleMail(true),
		TypeMailRejected: RejectedData{ID: RejectedEventID("t", "support@contoso.com", "AAMk-2"), Version: Version, Channel: "support",
			Mailbox: Mailbox{Type: "shared", Address: "support@contoso.com"}, Folder: "Inbox", Group: "Support L1", GraphID: "AAMk-2",
			MailEventID: EventID("t", "support@contoso.com", "AAMk-2"), InternetMessageID: "<x@example.org>", Subject: "?",
			ReceivedAt: at, Reason: "undecodable Graph message"},
		TypeChannelAuthFailed:   ch("auth_failed"),
		TypeChannelAuthRestored: ch("ok"),
		TypeChannelError:        ch("error"),
		TypeChannelRestored:     ch("active"),
		TypeMailSent:            send,
		TypeMailSendFailed:      send,
		TypeWebhookTest:         TestData{ID: NewID("evt"), Version: Version, Message: "hello from m365bridge"},
	}
	out := map[string]Event{}
	for _, typ := range Types {
		d, ok := data[typ]
		if !ok {
			t.Fatalf("no sample for event type %s", typ)
		}
		ev, err := NewEvent(typ, at, d)
		if err != nil {
			t.Fatal(err)
		}
		out[typ] = ev
	}
	return out
}

func TestSchemaAcceptsEveryType(t *testing.T) {
	c := loadSchema(t)
	for typ, ev := range sampleEvents(t) {
		t.Run(typ, func(t *testing.T) {
			raw, err := json.Marshal(ev)
			if err != nil {
				t.Fatal(err)
			}
			var v any
			if err := json.Unmarshal(raw, &v); err != nil {
				t.Fatal(err)
			}
			for _, e := range c.check(c.root, v, "$") {
				t.Error(e)
			}
		})
	}
}

func TestSchemaRejects(t *testing.T) {
	c := loadSchema(t)
	ev := sampleEvents(t)[TypeMailReceived]
	raw, _ := json.Marshal(ev)
	mutate := func(f func(m map[string]any)) any {
		var v map[string]any
		json.Unmarshal(raw, &v)
		f(v)
		return v
	}
	data := func(m map[string]any) map[string]any { return m["data"].(map[string]any) }
	tests := []struct {
		name string
		v    any
	}{
		{"unknown type", mutate(func(m map[string]any) { m["type"] = "mail.exploded" })},
		{"bad timestamp", mutate(func(m map[string]any) { m["timestamp"] = "yesterday" })},
		{"unknown data field", mutate(func(m map[string]any) { data(m)["surprise"] = 1 })},
		{"missing article", mutate(func(m map[string]any) { delete(data(m), "article") })},
		{"version 2", mutate(func(m map[string]any) { data(m)["version"] = 2 })},
		{"mailbox type", mutate(func(m map[string]any) { data(m)["mailbox"].(map[string]any)["type"] = "room" })},
		{"attachment size as string", mutate(func(m map[string]any) {
			data(m)["article"].(map[string]any)["attachments"].([]any)[0].(map[string]any)["size"] = "3"
		})},
		{"channel data under a mail type", mutate(func(m map[string]any) {
			m["data"] = map[string]any{"id": "x", "version": 1, "channel": "c", "state": "ok"}
		})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if errs := c.check(c.root, tt.v, "$"); len(errs) == 0 {
				t.Error("schema accepted it")
			}
		})
	}
}

// TestSchemaMatchesGoTypes pins the schema to the Go types both ways: every
// JSON field of each data type is a schema property, every schema property
// is a Go field, and exactly the fields without omitempty are required.
func TestSchemaMatchesGoTypes(t *testing.T) {
	c := loadSchema(t)
	defs := c.root["$defs"].(map[string]any)
	type pin struct {
		def string // a $defs name, or a path to an inline object
		typ reflect.Type
	}
	pairs := []pin{
		{"mail", reflect.TypeOf(MailData{})}, {"ticket", reflect.TypeOf(Ticket{})}, {"article", reflect.TypeOf(Article{})},
		{"attachment", reflect.TypeOf(Attachment{})}, {"address", reflect.TypeOf(Address{})}, {"mailbox", reflect.TypeOf(Mailbox{})},
		{"channel", reflect.TypeOf(ChannelData{})}, {"rejected", reflect.TypeOf(RejectedData{})}, {"send", reflect.TypeOf(SendData{})}, {"test", reflect.TypeOf(TestData{})},
	}
	article := defs["article"].(map[string]any)["properties"].(map[string]any)
	inline := map[string]map[string]any{
		"article.raw_mime":      article["raw_mime"].(map[string]any),
		"article.headers.items": article["headers"].(map[string]any)["items"].(map[string]any),
	}
	pairs = append(pairs, pin{"article.raw_mime", reflect.TypeOf(RawMIME{})}, pin{"article.headers.items", reflect.TypeOf(Header{})})
	for _, p := range pairs {
		t.Run(p.def, func(t *testing.T) {
			def, ok := defs[p.def].(map[string]any)
			if !ok {
				def = inline[p.def]
			}
			props := def["properties"].(map[string]any)
			var goFields, goRequired []string
			for i := 0; i < p.typ.NumField(); i++ {
				name, opts, _ := strings.Cut(p.typ.Field(i).Tag.Get("json"), ",")
				goFields = append(goFields, name)
				if !strings.Contains(opts, "omitempty") {
					goRequired = append(goRequired, name)
				}
			}
			var schemaFields, schemaRequired []string
			for k := range props {
				schemaFields = append(schemaFields, k)
			}
			for _, r := range asSlice(def["required"]) {
				schemaRequired = append(schemaRequired, r.(string))
			}
			sort.Strings(goFields)
			sort.Strings(goRequired)
			sort.Strings(schemaFields)
			sort.Strings(schemaRequired)
			if got, want := strings.Join(schemaFields, ","), strings.Join(goFields, ","); got != want {
				t.Errorf("schema properties %s, Go fields %s", got, want)
			}
			if got, want := strings.Join(schemaRequired, ","), strings.Join(goRequired, ","); got != want {
				t.Errorf("schema required %s, Go non-omitempty fields %s", got, want)
			}
			if def["additionalProperties"] != false {
				t.Error("additionalProperties is not false")
			}
		})
	}
	// The envelope's type enum is exactly Types.
	enum := c.root["properties"].(map[string]any)["type"].(map[string]any)["enum"].([]any)
	var got []string
	for _, e := range enum {
		got = append(got, e.(string))
	}
	if strings.Join(got, ",") != strings.Join(Types, ",") {
		t.Errorf("schema type enum %v, Types %v", got, Types)
	}
}
