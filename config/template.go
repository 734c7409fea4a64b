package config

import "text/template"

// TemplateFuncNames are the helper functions a webhook body template may
// call beyond text/template's built-ins. webhooks/deliver implements them
// (deliver.TemplateFuncs) and executes the templates; config only checks a
// template's syntax, so it needs their names, not their code (config sits
// below deliver and does not import it). A test keeps the two in step.
var TemplateFuncNames = []string{
	"json", "js", "b64", "default", "join", "first", "list", "truncate",
	"lower", "upper", "trim", "replace", "addresses",
}

// ParseTemplate checks a webhook body template's syntax, with every name in
// TemplateFuncNames defined. The result is for checking only: its functions
// are stubs, so deliver.ParseTemplate must build the template that runs.
func ParseTemplate(body string) (*template.Template, error) {
	funcs := make(template.FuncMap, len(TemplateFuncNames))
	for _, n := range TemplateFuncNames {
		funcs[n] = func(...any) any { return nil }
	}
	return template.New("body").Funcs(funcs).Parse(body)
}
