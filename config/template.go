package config

import (
	"encoding/json"
	"strings"
	"text/template"
)

// TemplateFuncs are the functions a webhook body template may call, beyond
// text/template's built-ins. The deliverer must execute templates with the
// same set that ParseTemplate checks them against.
//
//	json     the value as JSON (strings quoted and escaped): {"title": {{json .Ticket.Title}}}
//	lower    lower-cases a string
//	upper    upper-cases a string
//	trim     removes leading and trailing white space
//	join     joins a list of strings: {{join ", " .Tags}}
func TemplateFuncs() template.FuncMap {
	return template.FuncMap{
		"json": func(v any) (string, error) {
			b, err := json.Marshal(v)
			return string(b), err
		},
		"lower": strings.ToLower,
		"upper": strings.ToUpper,
		"trim":  strings.TrimSpace,
		"join":  func(sep string, items []string) string { return strings.Join(items, sep) },
	}
}

// ParseTemplate parses a webhook body template with TemplateFuncs.
func ParseTemplate(body string) (*template.Template, error) {
	return template.New("body").Option("missingkey=error").Funcs(TemplateFuncs()).Parse(body)
}
