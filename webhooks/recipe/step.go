package recipe

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"slices"
	"strings"
	"text/template"

	"github.com/m365bridge/m365bridge/webhooks"
	"github.com/m365bridge/m365bridge/webhooks/deliver"
)

// items is what a for_each step repeats over.
func (ru *run) items(kind string) []map[string]any {
	art, _ := ru.d.Data["article"].(map[string]any)
	list, _ := art["attachments"].([]any)
	var out []map[string]any
	for _, it := range list {
		m, _ := it.(map[string]any)
		inline, _ := m["inline"].(bool)
		cid, _ := m["content_id"].(string)
		switch {
		case kind == "files" && inline, kind == "inline" && (!inline || cid == ""):
			continue
		}
		out = append(out, m)
	}
	return out
}

// step runs s (once, or once per item); ok is false when the run ends
// with res.
func (ru *run) step(s step) (res deliver.Result, ok bool) {
	if s.ForEach == "" {
		return ru.request(s)
	}
	lists := map[string][]any{}
	byCID := map[string]map[string]any{}
	for i, it := range ru.items(s.ForEach) {
		ru.d.Item, ru.d.Index = it, i
		vars, res, ok := ru.call(s)
		if !ok {
			return res, false
		}
		cid, _ := it["content_id"].(string)
		for k, v := range vars {
			lists[k] = append(lists[k], v)
			if cid != "" {
				if byCID[k] == nil {
					byCID[k] = map[string]any{}
				}
				byCID[k][strings.Trim(cid, "<>")] = v
			}
		}
	}
	ru.d.Item, ru.d.Index = nil, 0
	for _, k := range slices.Concat(sortedKeys(s.Extract), sortedKeys(s.Match)) {
		if lists[k] == nil {
			lists[k] = []any{} // renders as [] in JSON, not null
		}
		ru.d.Vars[k] = lists[k]
		if m := byCID[k]; m != nil {
			ru.d.Vars[k+"_by_cid"] = m
		} else {
			ru.d.Vars[k+"_by_cid"] = map[string]any{}
		}
	}
	ru.log = append(ru.log, fmt.Sprintf("%s ×%d", s.Name, len(ru.items(s.ForEach))))
	return res, true
}

// request runs a step without for_each.
func (ru *run) request(s step) (deliver.Result, bool) {
	vars, res, ok := ru.call(s)
	if !ok {
		return res, false
	}
	for k, v := range vars {
		ru.d.Vars[k] = v
	}
	if _, set := vars["ticket_id"]; set {
		if res, ok := ru.record(); !ok {
			return res, false
		}
	}
	return res, true
}

// renderFunc renders one of a step's templates against the run's data.
type renderFunc func(t *template.Template) (string, error)

// renderer returns the renderFunc of this run: a nil template renders as
// "", each template runs on a clone with the run's helper functions.
func (ru *run) renderer() renderFunc {
	fm := ru.r.funcs(ru.ctx, ru.ep.Timeout)
	return func(t *template.Template) (string, error) {
		if t == nil {
			return "", nil
		}
		c, err := t.Clone()
		if err != nil {
			return "", err
		}
		var b strings.Builder
		if err := c.Funcs(fm).Execute(&b, ru.d); err != nil {
			return "", err
		}
		return b.String(), nil
	}
}

// fail ends step s with err: transient when an attachment could not be
// fetched or the run was cancelled, permanent otherwise.
func (ru *run) fail(s step, err error) (map[string]any, deliver.Result, bool) {
	err = fmt.Errorf("step %s: %w", s.Name, err)
	if isFetchError(err) || ru.ctx.Err() != nil {
		return nil, transient(err), false
	}
	return nil, permanent(err), false
}

// call sends one request of s and returns the variables it extracted.
func (ru *run) call(s step) (map[string]any, deliver.Result, bool) {
	r := ru.r
	render := ru.renderer()
	rawURL, err := render(s.url)
	if err != nil {
		return ru.fail(s, fmt.Errorf("render url: %w", err))
	}
	target, err := resolveURL(r.base, strings.TrimSpace(rawURL))
	if err != nil {
		return ru.fail(s, fmt.Errorf("url: %w", err))
	}
	body, contentType, err := ru.body(s, render)
	if err != nil {
		return ru.fail(s, err)
	}
	ctx, cancel := context.WithTimeout(ru.ctx, ru.ep.Timeout)
	defer cancel()
	req, err := ru.newRequest(ctx, s, target, body, contentType, render)
	if err != nil {
		return ru.fail(s, err)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		ru.trace(s.Name, req, body, nil, nil, err)
		return nil, deliver.Answer("step "+s.Name, nil, nil, err, r.opts.Now(), r.opts.RetryAfterCap), false
	}
	defer resp.Body.Close()
	answer, rerr := io.ReadAll(io.LimitReader(resp.Body, r.opts.MaxAnswerBytes))
	ru.trace(s.Name, req, body, resp, answer, rerr)
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return ru.answered(s, resp, answer, rerr, render)
}

// body builds the request body of s and its content type: the item's
// attachment bytes, or the rendered body (checked as JSON when the type
// says JSON, turned into a form when it is multipart/form-data). An error
// names the phase that failed.
func (ru *run) body(s step, render renderFunc) ([]byte, string, error) {
	contentType := s.ContentType
	switch {
	case s.BodyAttachment:
		body, err := ru.r.attachmentBytes(ru.ctx, ru.ep.Timeout, ru.d.Item)
		if err != nil {
			return nil, "", fmt.Errorf("attachment: %w", err)
		}
		if contentType == "" {
			contentType, _ = ru.d.Item["content_type"].(string)
		}
		return body, contentType, nil
	case s.body != nil:
		text, err := render(s.body)
		if err != nil {
			return nil, "", fmt.Errorf("render body: %w", err)
		}
		if strings.Contains(strings.ToLower(contentType), "json") && !json.Valid([]byte(text)) {
			return nil, "", fmt.Errorf("render body: output is not valid JSON (use the json helper for values): %s", deliver.RedactText(clip(text)))
		}
		body := []byte(text)
		if mt, _, _ := mime.ParseMediaType(contentType); mt == "multipart/form-data" {
			if body, contentType, err = ru.form(text); err != nil {
				return nil, "", fmt.Errorf("build the form: %w", err)
			}
		}
		return body, contentType, nil
	}
	return nil, contentType, nil
}

// newRequest builds the HTTP request of s to target: the endpoint's
// headers, then the step's rendered headers, then the bridge's own. An
// error names the phase that failed.
func (ru *run) newRequest(ctx context.Context, s step, target string, body []byte, contentType string, render renderFunc) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, s.Method, target, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	for k, v := range ru.ep.Headers {
		req.Header.Set(k, v)
	}
	for k, t := range s.headers {
		v, err := render(t)
		if err != nil {
			return nil, fmt.Errorf("render header %s: %w", k, err)
		}
		req.Header.Set(k, v)
	}
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", ru.r.opts.UserAgent)
	req.Header.Set(webhooks.HeaderID, ru.row.EventID)
	return req, nil
}

// answered judges the helpdesk's answer to a request of s (its status, or
// an accepted status) and extracts the step's variables from its body.
func (ru *run) answered(s step, resp *http.Response, answer []byte, rerr error, render renderFunc) (map[string]any, deliver.Result, bool) {
	r := ru.r
	what := "step " + s.Name
	head := answer[:min(len(answer), deliver.ExcerptBytes)]
	res := deliver.Answer(what, resp, head, nil, r.opts.Now(), r.opts.RetryAfterCap)
	accepted := slices.Contains(s.Accept, resp.StatusCode)
	if res.Outcome != deliver.Delivered && !accepted {
		res.Excerpt = deliver.RedactText(clip(what + ": " + res.Excerpt))
		return nil, res, false
	}
	if rerr != nil {
		return nil, transient(fmt.Errorf("%s: read the answer: %w", what, rerr)), false
	}
	if r.opts.AfterStep != nil {
		if err := r.opts.AfterStep(s.Name); err != nil {
			return nil, transient(fmt.Errorf("%s: %w", what, err)), false
		}
	}
	vars := map[string]any{}
	if len(s.Extract)+len(s.Match) == 0 {
		return vars, res, true
	}
	var doc any
	if !accepted && len(bytes.TrimSpace(answer)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(answer))
		dec.UseNumber()
		if err := dec.Decode(&doc); err != nil {
			// The request succeeded but its answer cannot be read: running
			// it again could create a second ticket; the operator decides.
			return nil, permanent(fmt.Errorf("%s: answered %d with a body that is not JSON (%v): %s", what, resp.StatusCode, err, deliver.RedactText(clip(string(head))))), false
		}
	}
	if err := ru.extractVars(s, doc, vars, render); err != nil {
		return ru.fail(s, err)
	}
	ru.log = append(ru.log, fmt.Sprintf("%s %d", s.Name, resp.StatusCode))
	r.log.Debug("recipe step done", "event_id", ru.row.EventID, "step", s.Name, "status", resp.StatusCode)
	return vars, res, true
}

// extractVars fills vars from the answer doc with the step's extract
// paths and match rules.
func (ru *run) extractVars(s step, doc any, vars map[string]any, render renderFunc) error {
	for name, p := range s.Extract {
		if v := extract(doc, p); v != "" || ru.d.Item != nil {
			vars[name] = v // in a for_each step every item has its entry
		}
	}
	for name, m := range s.Match {
		want, err := render(s.equals[name])
		if err != nil {
			return fmt.Errorf("render match %s: %w", name, err)
		}
		v := matchValue(doc, m, want)
		if v == "" && m.Select != "" && ru.d.Item == nil {
			continue // like extract: a pick that finds nothing keeps what the variable had
		}
		vars[name] = v
	}
	return nil
}

// form builds a multipart/form-data body from a rendered JSON object:
// field → value or list of values; "@field" → attachments, files or inline
// (the event's attachments of that kind, one file part each, their bytes
// fetched through their link when not in the event).
func (ru *run) form(text string) ([]byte, string, error) {
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	var fields map[string]any
	if err := dec.Decode(&fields); err != nil {
		return nil, "", fmt.Errorf("a multipart/form-data body must render a JSON object of fields (use the json helper for values): %w", err)
	}
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for _, name := range sortedKeys(fields) {
		v := fields[name]
		if file, ok := strings.CutPrefix(name, "@"); ok {
			kind, _ := v.(string)
			if !slices.Contains([]string{"attachments", "files", "inline"}, kind) {
				return nil, "", fmt.Errorf("field %q: a file field takes attachments, files or inline, not %v", name, v)
			}
			for _, it := range ru.items(kind) {
				b, err := ru.r.attachmentBytes(ru.ctx, ru.ep.Timeout, it)
				if err != nil {
					return nil, "", err
				}
				fn, _ := it["filename"].(string)
				ct, _ := it["content_type"].(string)
				h := textproto.MIMEHeader{}
				h.Set("Content-Disposition", mime.FormatMediaType("form-data", map[string]string{"name": file, "filename": cmp.Or(fn, "attachment")}))
				h.Set("Content-Type", cmp.Or(ct, "application/octet-stream"))
				pw, err := w.CreatePart(h)
				if err != nil {
					return nil, "", err
				}
				pw.Write(b)
			}
			continue
		}
		list, isList := v.([]any)
		if !isList {
			list = []any{v}
		}
		for _, x := range list {
			if x == nil {
				continue
			}
			if _, nested := x.(map[string]any); nested {
				return nil, "", fmt.Errorf("field %q: values are text, numbers or lists of them (write nested fields as name[key])", name)
			}
			w.WriteField(name, fmt.Sprint(x))
		}
	}
	if err := w.Close(); err != nil {
		return nil, "", err
	}
	return buf.Bytes(), w.FormDataContentType(), nil
}
