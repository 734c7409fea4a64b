package recipe

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"text/template"
	"time"

	"github.com/m365bridge/m365bridge/webhooks/deliver"
)

// Funcs are the helpers recipe templates have on top of
// deliver.TemplateFuncs (config.RecipeFuncNames lists their names):
//
//	attachment_b64 item      → the attachment's bytes in base64: its
//	                           content_base64, or fetched through its url
//	                           (the bridge's signed link) when the event does
//	                           not carry it; size and sha256 checked
//	marker s                 → "m365b" + 20 hex digits of SHA-256(s): a tag
//	                           that finds what this mail created
//	cids_to_data html list   → html with each "cid:<content_id>" of an
//	                           attachment in list replaced by a data: URI
//	cids_to_urls html map    → html with each "cid:<content_id>" replaced
//	                           by map[content_id] (a for_each step's
//	                           <var>_by_cid)
//	utc layout time          → an RFC 3339 time (such as
//	                           .Data.ticket.created_at) in UTC, formatted
//	                           with a Go layout ("2006-01-02 15:04:05"
//	                           for RT); an error for anything else
func (r *Recipe) funcs(ctx context.Context, timeout time.Duration) template.FuncMap {
	fm := deliver.TemplateFuncs()
	fm["attachment_b64"] = func(item any) (string, error) {
		b, err := r.attachmentBytes(ctx, timeout, item)
		if err != nil {
			return "", err
		}
		return base64.StdEncoding.EncodeToString(b), nil
	}
	fm["marker"] = marker
	fm["cids_to_data"] = func(html string, list any) (string, error) {
		items, _ := list.([]any)
		repl := map[string]string{}
		for _, it := range items {
			m, _ := it.(map[string]any)
			cid := strings.Trim(fmt.Sprint(m["content_id"]), "<>")
			if m["content_id"] == nil || cid == "" {
				continue
			}
			b, err := r.attachmentBytes(ctx, timeout, m)
			if err != nil {
				return "", err
			}
			ct, _ := m["content_type"].(string)
			repl[cid] = "data:" + ct + ";base64," + base64.StdEncoding.EncodeToString(b)
		}
		return replaceCIDs(html, repl), nil
	}
	fm["cids_to_urls"] = func(html string, byCID any) string {
		repl := map[string]string{}
		if m, ok := byCID.(map[string]any); ok {
			for k, v := range m {
				repl[strings.Trim(k, "<>")] = fmt.Sprint(v)
			}
		}
		return replaceCIDs(html, repl)
	}
	fm["utc"] = utc
	return fm
}

func utc(layout string, v any) (string, error) {
	s := fmt.Sprint(v)
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return "", fmt.Errorf("utc: %q is not an RFC 3339 time", s)
	}
	return t.UTC().Format(layout), nil
}

// stubFuncs has every helper's name, for parsing at compile time.
func stubFuncs() template.FuncMap {
	fm := deliver.TemplateFuncs()
	for _, n := range []string{"attachment_b64", "marker", "cids_to_data", "cids_to_urls", "utc"} {
		fm[n] = func(...any) (any, error) { return nil, nil }
	}
	return fm
}

func marker(v any) string {
	sum := sha256.Sum256([]byte(fmt.Sprint(v)))
	return "m365b" + hex.EncodeToString(sum[:10])
}

var cidRef = regexp.MustCompile(`(?i)cid:([^"'\s>)]+)`)

func replaceCIDs(html string, repl map[string]string) string {
	if len(repl) == 0 {
		return html
	}
	return cidRef.ReplaceAllStringFunc(html, func(s string) string {
		if u, ok := repl[s[4:]]; ok {
			return u
		}
		return s
	})
}

// fetchError is a failure to get an attachment's bytes through its link:
// transient (the mailbox or the bridge may answer later).
type fetchError struct{ err error }

func (e fetchError) Error() string { return e.err.Error() }
func (e fetchError) Unwrap() error { return e.err }

// attachmentBytes returns an attachment's content: inline in the event,
// else fetched from its url within timeout, checked against its sha256.
func (r *Recipe) attachmentBytes(ctx context.Context, timeout time.Duration, item any) ([]byte, error) {
	m, ok := item.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("attachment_b64: not an attachment")
	}
	name, _ := m["filename"].(string)
	if s, _ := m["content_base64"].(string); s != "" {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("attachment %q: content_base64: %w", name, err)
		}
		return b, nil
	}
	u, _ := m["url"].(string)
	if u == "" {
		reason, _ := m["reason"].(string)
		return nil, fmt.Errorf("attachment %q is neither in the event nor reachable by a link (%s)", name, reason)
	}
	if timeout <= 0 {
		timeout = deliver.DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("attachment %q: link: %w", name, err)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, fetchError{fmt.Errorf("fetch attachment %q: %w", name, err)}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		err := fmt.Errorf("fetch attachment %q through its link: status %d", name, resp.StatusCode)
		if resp.StatusCode == http.StatusGone || resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusNotFound {
			return nil, err // expired, altered or gone from the mailbox: retrying will not help
		}
		return nil, fetchError{err}
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, r.maxFetch+1))
	if err != nil {
		return nil, fetchError{fmt.Errorf("fetch attachment %q: %w", name, err)}
	}
	if int64(len(b)) > r.maxFetch {
		return nil, fmt.Errorf("attachment %q is larger than the recipe's limit of %d bytes", name, r.maxFetch)
	}
	if want, _ := m["sha256"].(string); want != "" {
		sum := sha256.Sum256(b)
		if !strings.EqualFold(hex.EncodeToString(sum[:]), want) {
			return nil, fetchError{fmt.Errorf("attachment %q: the bytes from the link do not match its sha256", name)}
		}
	}
	return b, nil
}

func isFetchError(err error) bool {
	var fe fetchError
	return errors.As(err, &fe)
}
