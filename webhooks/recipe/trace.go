package recipe

import (
	"cmp"
	"context"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/m365bridge/m365bridge/webhooks/deliver"
)

// StepTrace is one request a recipe run sent and the helpdesk's answer, as
// `m365bridge deliveries test` prints it: secrets redacted (credential
// headers, secret-looking URL parameters and JSON fields, user info in
// URLs), bodies cut to TraceBodyBytes.
type StepTrace struct {
	Step    string            `json:"step"`
	Method  string            `json:"method"`
	URL     string            `json:"url"`
	Headers map[string]string `json:"headers,omitempty"`
	Body    string            `json:"body,omitempty"`
	// Status is the answer's HTTP status, 0 when there was none (Error
	// says why).
	Status int    `json:"status,omitempty"`
	Answer string `json:"answer,omitempty"`
	Error  string `json:"error,omitempty"`
}

// TraceBodyBytes bounds a traced request or answer body.
const TraceBodyBytes = 2000

type traceKey struct{}

// WithTrace returns a context under which a recipe run calls fn with every
// request it sends (after the answer, or the transport error). The daemon's
// deliveries do not trace; `deliveries test` does.
func WithTrace(ctx context.Context, fn func(StepTrace)) context.Context {
	return context.WithValue(ctx, traceKey{}, fn)
}

func traceFrom(ctx context.Context) func(StepTrace) {
	fn, _ := ctx.Value(traceKey{}).(func(StepTrace))
	return fn
}

// trace reports one request to the run's tracer, if any.
func (ru *run) trace(step string, req *http.Request, body []byte, resp *http.Response, answer []byte, err error) {
	fn := traceFrom(ru.ctx)
	if fn == nil {
		return
	}
	if ru.d.Item != nil { // a for_each step: one request per attachment
		step += "[" + strconv.Itoa(ru.d.Index) + "]"
	}
	t := StepTrace{Step: step, Method: req.Method, URL: RedactTraceURL(req.URL.String()), Headers: map[string]string{}}
	for k := range req.Header {
		t.Headers[k] = redactHeader(k, req.Header.Get(k))
	}
	t.Body = traceBody(req.Header.Get("Content-Type"), body)
	if resp != nil {
		t.Status = resp.StatusCode
		t.Answer = traceBody(resp.Header.Get("Content-Type"), answer)
	}
	if err != nil {
		t.Error = deliver.RedactText(err.Error())
	}
	fn(t)
}

// secretName matches the names of headers, URL parameters and JSON fields
// whose values are credentials.
var secretName = regexp.MustCompile(`(?i)auth|token|secret|password|passwd|api[-_]?key|apikey|signature|^sig$|cookie|session|credential`)

// redactHeader hides a credential header's value, keeping its scheme
// (Basic, Bearer, Token) so an operator sees which kind was sent.
func redactHeader(name, v string) string {
	if !secretName.MatchString(name) {
		return v
	}
	if scheme, _, ok := strings.Cut(v, " "); ok && !strings.ContainsAny(scheme, "=:") {
		return scheme + " [redacted]"
	}
	return "[redacted]"
}

// RedactTraceURL drops a URL's user info and the values of its
// secret-looking query parameters, keeping the rest (a search query is
// what an operator checks).
func RedactTraceURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return deliver.RedactURL(raw)
	}
	u.User = nil
	if u.RawQuery != "" {
		q, err := url.ParseQuery(u.RawQuery)
		if err != nil {
			return deliver.RedactURL(raw)
		}
		changed := false
		for k := range q {
			if secretName.MatchString(k) {
				q[k], changed = []string{"redacted"}, true
			}
		}
		if changed {
			u.RawQuery = q.Encode()
		}
	}
	return u.String()
}

// secretJSONField matches "name": "value" for credential field names.
var secretJSONField = regexp.MustCompile(`(?i)("[^"]*(?:auth|token|secret|password|passwd|api[-_]?key|apikey|credential)[^"]*"\s*:\s*)"(?:[^"\\]|\\.)*"`)

// traceBody shows a text body (JSON, form, text) cut to TraceBodyBytes,
// with credential fields and URL secrets redacted; other bodies (files,
// multipart forms) by their type and size.
func traceBody(contentType string, b []byte) string {
	if len(b) == 0 {
		return ""
	}
	mt, _, _ := mime.ParseMediaType(contentType)
	text := mt == "" || strings.HasPrefix(mt, "text/") || slices.Contains([]string{"application/json", "application/x-www-form-urlencoded", "application/problem+json"}, mt) ||
		strings.HasSuffix(mt, "+json")
	if !text || !utf8.Valid(b) {
		return "(" + cmp.Or(mt, "binary") + ", " + strconv.Itoa(len(b)) + " bytes)"
	}
	s := string(b)
	cut := ""
	if len(s) > TraceBodyBytes {
		s, cut = strings.ToValidUTF8(s[:TraceBodyBytes], ""), "… ("+strconv.Itoa(len(b))+" bytes)"
	}
	s = secretJSONField.ReplaceAllString(s, `$1"[redacted]"`)
	return redactURLsInText(s) + cut
}

// redactURLsInText applies RedactTraceURL to every URL in s.
var urlInTrace = regexp.MustCompile(`(?i)\b[a-z][a-z0-9+.-]*://[^\s"'<>\\]+`)

func redactURLsInText(s string) string {
	return urlInTrace.ReplaceAllStringFunc(s, RedactTraceURL)
}
