package deliver

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"text/template"
	"time"
)

// TemplateData is what a request template sees: the decoded event. Data
// is the event's data object as generic JSON (maps, slices, strings,
// float64 numbers, bools), so fields are reached by their JSON names:
// {{.Data.article.subject}}, {{.Data.ticket.customer.address}}.
type TemplateData struct {
	ID        string // the event id, also sent as webhook-id
	Type      string
	Timestamp time.Time
	Data      map[string]any
	// Event is the whole event JSON, for templates that wrap it.
	Event string
}

// TemplateFuncs are the helpers available in request templates, on top of
// text/template's builtins:
//
//	json   v        → v as JSON ("quoted string", number, object…)
//	js     s        → s escaped for the inside of a JSON string (no quotes)
//	b64    s        → standard base64 of s
//	default d v     → v, or d when v is empty
//	join   sep list → list items joined by sep
//	first  list     → the first item, or nothing
//	list   a b …    → a list of its arguments
//	truncate n s    → s cut to at most n characters
//	lower, upper, trim, replace old new s
//	addresses list  → "Name <addr>, …" from a list of {name,address}
func TemplateFuncs() template.FuncMap {
	return template.FuncMap{
		"json": jsonText,
		"js": func(v any) (string, error) {
			s, err := jsonText(fmt.Sprint(deref(v)))
			if err != nil {
				return "", err
			}
			return s[1 : len(s)-1], nil
		},
		"b64": func(v any) string {
			if b, ok := v.([]byte); ok {
				return base64.StdEncoding.EncodeToString(b)
			}
			return base64.StdEncoding.EncodeToString([]byte(fmt.Sprint(deref(v))))
		},
		"default": func(d, v any) any {
			if empty(v) {
				return d
			}
			return v
		},
		"join": func(sep string, list any) string {
			items, _ := list.([]any)
			parts := make([]string, 0, len(items))
			for _, it := range items {
				parts = append(parts, fmt.Sprint(it))
			}
			return strings.Join(parts, sep)
		},
		"first": func(list any) any {
			if items, ok := list.([]any); ok && len(items) > 0 {
				return items[0]
			}
			return nil
		},
		"truncate": func(n int, v any) string {
			r := []rune(fmt.Sprint(deref(v)))
			if len(r) > n {
				r = r[:n]
			}
			return string(r)
		},
		"list":    func(v ...any) []any { return v },
		"lower":   strings.ToLower,
		"upper":   strings.ToUpper,
		"trim":    strings.TrimSpace,
		"replace": func(old, new, s string) string { return strings.ReplaceAll(s, old, new) },
		"addresses": func(list any) string {
			items, _ := list.([]any)
			var parts []string
			for _, it := range items {
				m, _ := it.(map[string]any)
				name, _ := m["name"].(string)
				addr, _ := m["address"].(string)
				if name != "" {
					parts = append(parts, fmt.Sprintf("%s <%s>", name, addr))
				} else if addr != "" {
					parts = append(parts, addr)
				}
			}
			return strings.Join(parts, ", ")
		},
	}
}

// jsonText encodes v as JSON without HTML escaping (bodies are not HTML).
func jsonText(v any) (string, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "", err
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}

func deref(v any) any {
	if v == nil {
		return ""
	}
	return v
}

func empty(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case string:
		return x == ""
	case bool:
		return !x
	case float64:
		return x == 0
	case []any:
		return len(x) == 0
	case map[string]any:
		return len(x) == 0
	}
	return false
}

// ParseTemplate parses a request-body template with TemplateFuncs. A
// missing map key renders as nothing rather than "<no value>".
func ParseTemplate(name, text string) (*template.Template, error) {
	t, err := template.New(name).Option("missingkey=zero").Funcs(TemplateFuncs()).Parse(text)
	if err != nil {
		return nil, fmt.Errorf("parse template %s: %w", name, err)
	}
	return t, nil
}

// Render produces the request body of event for ep: the event itself, or
// ep.Template's output. A JSON content type must render valid JSON. An
// error here is permanent for this event (the row becomes rejected).
func Render(ep Endpoint, event []byte) ([]byte, error) {
	if ep.Template == nil {
		return event, nil
	}
	var env struct {
		Type      string         `json:"type"`
		Timestamp time.Time      `json:"timestamp"`
		Data      map[string]any `json:"data"`
	}
	if err := json.Unmarshal(event, &env); err != nil {
		return nil, fmt.Errorf("decode event for template: %w", err)
	}
	id, _ := env.Data["id"].(string)
	var b bytes.Buffer
	err := ep.Template.Execute(&b, TemplateData{ID: id, Type: env.Type, Timestamp: env.Timestamp, Data: env.Data, Event: string(event)})
	if err != nil {
		return nil, fmt.Errorf("render template: %w", err)
	}
	if strings.Contains(strings.ToLower(ep.ContentType), "json") && !json.Valid(b.Bytes()) {
		return nil, fmt.Errorf("render template: output is not valid JSON (use the json helper for values): %s", excerpt(b.String()))
	}
	return b.Bytes(), nil
}

// ZammadTicketTemplate renders a Zammad POST /api/v1/tickets body: the
// group from the channel, the customer guessed from the sender's address,
// the message as the first email article with its attachments, and the
// archive state. Pair it with the header Authorization: Token token=….
// Headers are per webhook, not per event, and a channel sends all its mail
// (mail.received and mail.archived) to its one webhook: to treat archived
// mail differently, branch on .Data.archive in a copy of the template.
const ZammadTicketTemplate = `{{- $a := .Data.article -}}
{
  "title": {{json (default "(no subject)" .Data.ticket.title)}},
  "group": {{json .Data.group}},
  "customer_id": {{json (printf "guess:%s" .Data.ticket.customer.address)}},
  "state": {{json .Data.ticket.state}},
  "article": {
    "type": "email",
    "sender": "Customer",
    "internal": false,
    "from": {{json (addresses (list $a.from))}},
    "to": {{json (addresses $a.to)}},
    "cc": {{json (addresses $a.cc)}},
    "subject": {{json $a.subject}},
    "message_id": {{json $a.internet_message_id}},
    "in_reply_to": {{json $a.in_reply_to}},
    {{- if $a.body_html}}
    "content_type": "text/html",
    "body": {{json $a.body_html}},
    {{- else}}
    "content_type": "text/plain",
    "body": {{json $a.body_text}},
    {{- end}}
    "attachments": [
      {{- $n := 0}}{{range $a.attachments}}{{if .included}}{{if $n}},{{end}}{{$n = 1}}
      {"filename": {{json .filename}}, "data": {{json .content_base64}}, "mime-type": {{json .content_type}}}
      {{- end}}{{end}}
    ]
  }
}`

// FormTemplate renders an application/x-www-form-urlencoded body, for
// receivers that take form posts (use ContentType
// application/x-www-form-urlencoded).
const FormTemplate = `type={{urlquery .Type}}&id={{urlquery .ID}}&subject={{urlquery .Data.article.subject}}&from={{urlquery .Data.article.from.address}}&archive={{.Data.archive}}&text={{urlquery .Data.article.body_text}}`
