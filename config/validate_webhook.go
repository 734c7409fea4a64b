package config

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"sort"
	"strings"
)

func (v *validator) webhook(p string, w *Webhook) {
	v.name(p+".name", w.Name, "webhook")
	u, err := url.Parse(w.URL)
	switch {
	case w.URL == "":
		v.fail(p+".url", "required, but not set", "the helpdesk endpoint events are POSTed to, such as https://helpdesk.example.com/hooks/m365")
	case err != nil || !u.IsAbs() || u.Host == "" || u.Opaque != "" || (u.Scheme != "http" && u.Scheme != "https"):
		v.fail(p+".url", fmt.Sprintf("%q is not an absolute http(s) URL", w.URL), "write it as https://helpdesk.example.com/hooks/m365")
	case u.Scheme == "http" && !isLoopback(u.Hostname()):
		v.warn(p+".url", "events are sent over plain http to a host that is not loopback")
	}
	secrets := w.AllSecrets()
	if len(secrets) == 0 && w.Recipe == nil {
		v.fail(p+".secret", "a signing secret is required", "secret: ${HELPDESK_WEBHOOK_SECRET}, a whsec_ value shared with the receiver")
	}
	if !w.Secret.IsZero() {
		v.whsec(p+".secret", w.Secret)
	}
	for i, s := range w.Secrets {
		v.whsec(fmt.Sprintf("%s.secrets[%d]", p, i), s)
	}
	headers := make([]string, 0, len(w.Headers))
	for name := range w.Headers {
		headers = append(headers, name)
	}
	sort.Strings(headers)
	for _, name := range headers {
		val := w.Headers[name]
		hp := p + ".headers." + name
		lower := strings.ToLower(name)
		switch {
		case !headerPattern.MatchString(name):
			v.fail(hp, fmt.Sprintf("%q is not a valid header name", name), "letters, digits and - such as X-Api-Key")
		case strings.HasPrefix(lower, "webhook-") || lower == "content-length" || lower == "host":
			v.fail(hp, fmt.Sprintf("header %s is set by the bridge", name), "remove it")
		case lower == "content-type":
			v.fail(hp, "Content-Type is set by the bridge", "with a template, set template.content_type")
		case val.IsZero():
			v.fail(hp, "the header value is empty", "")
		case strings.ContainsAny(val.Value(), "\r\n"):
			v.fail(hp, "the header value contains a line break", "")
		}
	}
	for i, t := range w.Types {
		if strings.TrimSpace(t) == "" || strings.ContainsAny(t, " \t") {
			v.fail(fmt.Sprintf("%s.types[%d]", p, i), fmt.Sprintf("%q is not an event type", t), "such as mail.received or mail.archived")
		}
	}
	v.positive(p+".timeout", w.Timeout)
	v.positive(p+".max_age", w.MaxAge)
	v.positive(p+".retention", w.Retention)
	for i, d := range w.Schedule {
		if d <= 0 {
			v.fail(fmt.Sprintf("%s.schedule[%d]", p, i), "a retry delay must be more than zero",
				"the first attempt is always immediate; schedule lists the waits before each retry, such as [5s, 5m, 30m]")
		}
	}
	if w.MaxAttempts < 1 {
		v.fail(p+".max_attempts", fmt.Sprintf("max_attempts must be at least 1, not %d", w.MaxAttempts), fmt.Sprintf("default %d", DefaultMaxAttempts))
	}
	if w.Concurrency < 1 {
		v.fail(p+".concurrency", fmt.Sprintf("concurrency must be at least 1, not %d", w.Concurrency), "1 keeps events in order")
	}
	if w.Template != nil {
		v.template(p+".template", w.Template)
	}
	if w.Recipe != nil {
		if w.Template != nil {
			v.fail(p+".recipe", "a webhook has either a template or a recipe", "a recipe's steps carry their own bodies: remove template")
		}
		v.recipe(p+".recipe", w.Recipe)
		if w.Concurrency > 1 {
			v.warn(p+".concurrency", "a recipe with concurrency above 1 may deliver a reply before the mail it answers, which then opens a ticket of its own; keep 1")
		}
	}
}

// whsec checks a Standard Webhooks secret without ever printing it.
func (v *validator) whsec(path string, s Secret) {
	b64, ok := strings.CutPrefix(s.Value(), "whsec_")
	const hint = "a Standard Webhooks secret is whsec_ followed by base64 of 24 to 64 random bytes; make one with: echo whsec_$(openssl rand -base64 32)"
	if !ok {
		v.fail(path, "the secret does not start with whsec_", hint)
		return
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		raw, err = base64.RawStdEncoding.DecodeString(b64)
	}
	switch {
	case err != nil:
		v.fail(path, "the part after whsec_ is not valid base64", hint)
	case len(raw) < 24 || len(raw) > 64:
		v.fail(path, "the secret must decode to 24 to 64 bytes", hint)
	default:
		v.literalSecret(path, s)
	}
}

// literalSecret warns about a secret written into the file itself.
func (v *validator) literalSecret(path string, s Secret) {
	if s.Ref == "literal" {
		v.warn(path, "the secret is written in the file; prefer ${VAR} or file:/path so the file can be shared")
	}
}

func (v *validator) template(p string, t *Template) {
	switch {
	case t.Body != "" && t.File != "":
		v.fail(p, "template has both body and file", "keep one")
		return
	case t.Body == "" && t.File == "":
		v.fail(p, "template needs a body or a file", "body: a text/template inline, or file: path/to/template")
		return
	}
	body := t.Body
	if t.File != "" {
		path := t.File // Parse made it relative to the config file
		b, err := v.env.ReadFile(path)
		if err != nil {
			v.fail(p+".file", fmt.Sprintf("cannot read template file %s: %s", path, reason(err)), "relative paths are relative to the config file's directory")
			return
		}
		body = string(b)
	}
	if _, err := ParseTemplate(body); err != nil {
		v.fail(p, fmt.Sprintf("the template does not parse: %s", strings.TrimPrefix(err.Error(), "template: body:")), "see text/template syntax; the data is the event")
	}
	if strings.TrimSpace(t.ContentType) == "" {
		v.fail(p+".content_type", "must not be empty", "such as application/json")
	}
}
