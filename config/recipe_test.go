package config

import (
	"strings"
	"testing"
)

// TestRecipeErrorsAllAtOnce: a recipe with a mistake in every step is
// reported whole, each error at its line with the field path and a hint.
func TestRecipeErrorsAllAtOnce(t *testing.T) {
	base := readTestdata(t, "valid.yaml")
	recipe := `    recipe:
      subject_pattern: '\[Ticket#\d+\]'
      steps:
        - name: find
          method: get
          url: '/search?q={{.Data.article.subject'
          extract: {ticket_id: 'tickets..id'}
        - name: create
          when: {set: [tikcet_id], sender_domain: [not a domain]}
          method: POST
          url: /api/v1/tickets
          body: '{}'
          headers: {Authorization: x}
          accept: [200]
        - name: create
          skip: nothing
          method: POST
        - name: upload
          method: POST
          url: /uploads
          body_attachment: true
        - name: pick
          method: GET
          url: /list
          match:
            both: {path: id, equals: x, contains: y}
            lost: {path: id, equals: x, select: id}
            bad: {each: 'a..b', path: id, contains: x}
`
	doc := strings.Replace(base, "    secret: ${HELPDESK_WEBHOOK_SECRET}\n", "    secret: ${HELPDESK_WEBHOOK_SECRET}\n"+recipe, 1)
	_, err := Parse([]byte(doc), "bridge.yaml", baseEnv())
	es := asErrors(t, err)
	want := []struct{ path, msg, hint, at string }{
		{"webhooks[0].recipe.subject_pattern", "no group", "parentheses", "subject_pattern:"},
		{"webhooks[0].recipe.steps[0].method", `method "get"`, "capitals", "method: get"},
		{"webhooks[0].recipe.steps[0].url", "does not parse", "", "url: '/search"},
		{"webhooks[0].recipe.steps[0].extract.ticket_id", "not a key", "tickets.0.id", "extract:"},
		{"webhooks[0].recipe.steps[1].when.set[0]", `"tikcet_id" is not set by any earlier step`, `did you mean "ticket_id"?`, "when:"},
		{"webhooks[0].recipe.steps[1].when.sender_domain[0]", "not a domain", "example.com", "when:"},
		{"webhooks[0].recipe.steps[1].content_type", "needs content_type", "application/json", ""},
		{"webhooks[0].recipe.steps[1].headers.Authorization", "credentials go in the webhook's headers", "webhooks[].headers", "headers:"},
		{"webhooks[0].recipe.steps[1].accept[0]", "not a non-2xx", "404", "accept:"},
		{"webhooks[0].recipe.steps[2].name", `duplicate step name "create"`, "steps[1]", ""},
		{"webhooks[0].recipe.steps[2].skip", "sends nothing", "remove method", "skip:"},
		{"webhooks[0].recipe.steps[3].body_attachment", "needs for_each", "for_each", "body_attachment:"},
		{"webhooks[0].recipe.steps[4].match.both.contains", "equals or contains, not both", "remove one", ""},
		{"webhooks[0].recipe.steps[4].match.lost.select", "needs each", "such as *", ""},
		{"webhooks[0].recipe.steps[4].match.bad.each", "not a key", "tickets.*", ""},
	}
	for _, w := range want {
		var got *Error
		for _, e := range es {
			if e.Path == w.path && strings.Contains(e.Msg, w.msg) {
				got = e
			}
		}
		if got == nil {
			t.Errorf("no error %s: %s; got:\n%v", w.path, w.msg, es)
			continue
		}
		if !strings.Contains(got.Hint, w.hint) {
			t.Errorf("%s: hint %q, want it to contain %q", w.path, got.Hint, w.hint)
		}
		if w.at != "" && got.Line != lineOf(t, doc, w.at) {
			t.Errorf("%s: line %d, want %d (%s)", w.path, got.Line, lineOf(t, doc, w.at), w.at)
		}
	}
}

// TestRecipeNeedsNoSecret: a webhook with a recipe talks to an API with
// its own credentials; it needs no whsec_ secret, and takes no template.
func TestRecipeNeedsNoSecret(t *testing.T) {
	base := readTestdata(t, "valid.yaml")
	doc := strings.Replace(base, "    secret: ${HELPDESK_WEBHOOK_SECRET}\n", `    recipe:
      steps:
        - {name: create, method: POST, url: /tickets, content_type: application/json, body: '{}'}
`, 1)
	if _, err := Parse([]byte(doc), "bridge.yaml", baseEnv()); err != nil {
		t.Fatalf("a recipe webhook without a secret: %v", err)
	}
	doc = strings.Replace(doc, "    recipe:\n", "    template: {body: '{}'}\n    recipe:\n", 1)
	_, err := Parse([]byte(doc), "bridge.yaml", baseEnv())
	if err == nil || !strings.Contains(err.Error(), "either a template or a recipe") {
		t.Errorf("template and recipe together: %v", err)
	}
}
