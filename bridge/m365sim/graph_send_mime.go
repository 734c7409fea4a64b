package m365sim

// Mail in MIME format: the base64 MIME bodies (text/plain) that sendMail,
// POST /messages, createReply and reply take instead of the JSON message of
// graph_send.go, and how such mail is submitted or stored as a draft.

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// isMIMERequest reports a text/plain body: base64 MIME, which sendMail,
// POST /messages, createReply and reply take instead of JSON (GDC
// user-sendmail.md, user-post-messages.md example 3,
// message-createreply.md example 2, message-reply.md: "Use application/json
// for a JSON object and text/plain for MIME content").
func isMIMERequest(r *http.Request) bool {
	ct, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";")
	return strings.EqualFold(strings.TrimSpace(ct), "text/plain")
}

// readMIMEBody decodes a base64 MIME body. Bad base64 is the documented
// 400 ErrorMimeContentInvalidBase64String "Invalid base64 string for MIME
// content." (the same pages); MIME that does not parse gets the sim's own
// wording. Decoding is strict: a truncated sample is refused.
func readMIMEBody(w http.ResponseWriter, r *http.Request) (*mimeMessage, []byte, bool) {
	b, ok := readBody(w, r)
	if !ok {
		return nil, nil, false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(string(b)), ""))
	if err != nil || len(raw) == 0 {
		writeGraphError(w, r, http.StatusBadRequest, "ErrorMimeContentInvalidBase64String", "Invalid base64 string for MIME content.")
		return nil, nil, false
	}
	content, err := parseMIME(raw)
	if err != nil {
		writeGraphError(w, r, http.StatusBadRequest, "ErrorMimeContentConversionFailed", "The MIME content could not be converted: "+err.Error())
		return nil, nil, false
	}
	return content, raw, true
}

// checkMIMERecipients answers 400 for a MIME message to send without
// recipients or with too many.
func checkMIMERecipients(w http.ResponseWriter, r *http.Request, content *mimeMessage) bool {
	n := len(content.To) + len(content.Cc) + len(content.Bcc)
	switch {
	case n == 0:
		writeGraphError(w, r, http.StatusBadRequest, "ErrorInvalidRecipients", "At least one recipient is required, but none were found.")
		return false
	case n > maxRecipients:
		writeGraphError(w, r, http.StatusBadRequest, "ErrorInvalidRecipients", fmt.Sprintf("The message has %d recipients; at most %d are allowed in to, cc and bcc together.", n, maxRecipients))
		return false
	}
	return true
}

// sendMIME sends a base64 MIME sendMail body as is and saves it to Sent
// Items.
func (s *Sim) sendMIME(w http.ResponseWriter, r *http.Request, c *graphCtx) {
	content, raw, ok := readMIMEBody(w, r)
	if !ok || !checkMIMERecipients(w, r, content) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.submitRawLocked(c, content, raw); err != nil {
		writeGraphError(w, r, http.StatusInternalServerError, "generalException", "Cannot submit message: "+err.Error())
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// submitRawLocked files raw MIME in Sent Items and delivers it, without
// Bcc, to the sim mailboxes among its recipients.
func (s *Sim) submitRawLocked(c *graphCtx, content *mimeMessage, raw []byte) error {
	now := s.now()
	s.fileSentLocked(c.d, content, func() []byte { return raw }, nil, now)
	delivered := map[string]bool{}
	var draw []byte
	for _, a := range append(append(append([]mailAddress{}, content.To...), content.Cc...), content.Bcc...) {
		mb := s.mailboxes[strings.ToLower(a.Address)]
		if mb == nil || !mb.Enabled || delivered[mb.ID] {
			continue
		}
		delivered[mb.ID] = true
		if draw == nil {
			draw = withoutHeader(raw, "Bcc")
		}
		dc, err := parseMIME(draw)
		if err != nil {
			return err
		}
		b := draw
		mb.data.addMessage(dc, func() []byte { return b }, mb.data.wellKnown["inbox"], now, now)
	}
	return nil
}

// storeMIMEDraft saves decoded MIME as is as a draft in Drafts (POST
// /messages or createReply with text/plain): the sim adds no header, so a
// MIME reply threads only by the In-Reply-To and References it carries.
func (c *graphCtx) storeMIMEDraft(content *mimeMessage, raw []byte, now time.Time) *message {
	d := c.d.addMessage(content, func() []byte { return raw }, c.d.wellKnown["drafts"], now, now)
	d.isDraft, d.isRead = true, true
	return d
}

// withoutHeader returns raw without the named header field (and its folded
// continuation lines) in the top-level header block.
func withoutHeader(raw []byte, name string) []byte {
	out := make([]byte, 0, len(raw))
	rest := raw
	skipping := false
	for len(rest) > 0 {
		line := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line = rest[:i+1]
		}
		rest = rest[len(line):]
		if t := bytes.TrimRight(line, "\r\n"); len(t) == 0 {
			out = append(out, line...)
			return append(out, rest...) // end of the header block
		}
		if line[0] == ' ' || line[0] == '\t' {
			if !skipping {
				out = append(out, line...)
			}
			continue
		}
		field, _, _ := bytes.Cut(line, []byte(":"))
		skipping = strings.EqualFold(strings.TrimSpace(string(field)), name)
		if !skipping {
			out = append(out, line...)
		}
	}
	return out
}
