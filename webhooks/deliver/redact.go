package deliver

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// A webhook URL may carry a credential in its query (?token=…) or its user
// info, and Go's HTTP errors quote the URL they failed on. Every text that
// leaves the sender (Result.Excerpt, Result.Err, its log lines) passes
// through RedactText, so the credential reaches no log line, no outbox
// last_error, no API answer and no status page.

// RedactURL returns raw without user info and with its query replaced by
// "redacted"; a URL that does not parse is replaced as a whole.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "[unparsable url]"
	}
	u.User = nil
	if u.RawQuery != "" || u.ForceQuery {
		u.RawQuery, u.ForceQuery = "redacted", false
	}
	u.Fragment, u.RawFragment = "", ""
	return u.String()
}

// urlInText finds absolute URLs in free text, up to a space, quote or
// angle bracket (how Go's url.Error and retryablehttp print them).
var urlInText = regexp.MustCompile(`(?i)\b[a-z][a-z0-9+.-]*://[^\s"'<>` + "`" + `]+`)

// RedactText applies RedactURL to every URL in s. It is idempotent.
func RedactText(s string) string {
	if !strings.Contains(s, "://") {
		return s
	}
	return urlInText.ReplaceAllStringFunc(s, func(m string) string {
		// A URL printed with %q escapes its own quotes; a trailing
		// backslash belongs to the escape, not to the URL.
		trail := ""
		for strings.HasSuffix(m, `\`) {
			m, trail = m[:len(m)-1], `\`+trail
		}
		return RedactURL(m) + trail
	})
}

// redactedError shows its cause's text redacted and still unwraps to it,
// so errors.Is(err, context.DeadlineExceeded) keeps working.
type redactedError struct{ err error }

func (e redactedError) Error() string { return RedactText(e.err.Error()) }
func (e redactedError) Unwrap() error { return e.err }

// redactErr wraps err so that its text is redacted; nil stays nil.
func redactErr(err error) error {
	if err == nil {
		return nil
	}
	var already redactedError
	if errors.As(err, &already) && already.err == err {
		return err
	}
	return redactedError{err}
}

// redactKV redacts every URL in the values of a retryablehttp log call:
// the "url" value and the "error" value alike.
func redactKV(kv []any) []any {
	out := make([]any, len(kv))
	copy(out, kv)
	for i := 1; i < len(out); i += 2 {
		switch v := out[i].(type) {
		case string:
			out[i] = RedactText(v)
		case error:
			out[i] = RedactText(v.Error())
		case fmt.Stringer:
			out[i] = RedactText(v.String())
		}
	}
	return out
}
