package m365sim

// Building MIME: mail the sim creates itself (sendMail, control-API JSON
// injection, the generator) is stored as real RFC 5322 bytes too, so $value
// and the parser see the same thing as for seeded .eml files.

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"time"
)

// outgoingMail is the input of buildMIME.
type outgoingMail struct {
	From      mailAddress
	To        []mailAddress
	Cc        []mailAddress
	Bcc       []mailAddress
	ReplyTo   []mailAddress
	Subject   string
	MessageID string // with angle brackets
	Date      time.Time
	// Extra headers (threading, X-…) written after the standard ones.
	Extra      []mimeHeader
	Importance string
	// HTML says Body is html; the message then carries a derived text
	// alternative as Exchange-sent mail does.
	HTML        bool
	Body        string
	Attachments []outAttachment
}

type outAttachment struct {
	Name, ContentType, ContentID string
	Inline                       bool
	Data                         func() []byte
}

func formatAddress(a mailAddress) string {
	if a.Name == "" || a.Name == a.Address {
		return (&mail.Address{Address: a.Address}).String()
	}
	return (&mail.Address{Name: a.Name, Address: a.Address}).String()
}

func formatAddressList(l []mailAddress) string {
	parts := make([]string, len(l))
	for i, a := range l {
		parts[i] = formatAddress(a)
	}
	return strings.Join(parts, ", ")
}

// boundaryFor is a deterministic multipart boundary, so generated messages
// render to the same bytes every time.
func boundaryFor(seed, kind string) string {
	h := sha256.Sum256([]byte(seed + "/" + kind))
	return "_sim_" + kind + "_" + hex.EncodeToString(h[:12]) + "_"
}

// mimeHeaders returns the top-level headers buildMIME writes, in order.
func (o *outgoingMail) mimeHeaders() []mimeHeader {
	var hs []mimeHeader
	add := func(name, value string) {
		if value != "" {
			hs = append(hs, mimeHeader{Name: name, Value: value})
		}
	}
	add("From", formatAddress(o.From))
	add("To", formatAddressList(o.To))
	add("Cc", formatAddressList(o.Cc))
	add("Bcc", formatAddressList(o.Bcc))
	add("Reply-To", formatAddressList(o.ReplyTo))
	add("Subject", mime.QEncoding.Encode("utf-8", o.Subject))
	if !o.Date.IsZero() {
		add("Date", o.Date.UTC().Format(time.RFC1123Z))
	}
	add("Message-ID", o.MessageID)
	if o.Importance != "" && o.Importance != "normal" {
		add("Importance", o.Importance)
	}
	hs = append(hs, o.Extra...)
	add("MIME-Version", "1.0")
	add("Content-Type", o.topContentType())
	if len(o.Attachments) == 0 && !o.HTML {
		add("Content-Transfer-Encoding", "quoted-printable")
	}
	return hs
}

func (o *outgoingMail) topContentType() string {
	switch {
	case len(o.Attachments) > 0:
		return `multipart/mixed; boundary="` + boundaryFor(o.MessageID, "mixed") + `"`
	case o.HTML:
		return `multipart/alternative; boundary="` + boundaryFor(o.MessageID, "alt") + `"`
	}
	return "text/plain; charset=utf-8"
}

// buildMIME renders the message as CRLF-terminated RFC 5322 bytes.
func buildMIME(o *outgoingMail) []byte {
	var b bytes.Buffer
	for _, h := range o.mimeHeaders() {
		b.WriteString(h.Name + ": " + h.Value + "\r\n")
	}
	b.WriteString("\r\n")
	writeBody := func() {
		if !o.HTML {
			writeQP(&b, o.Body)
			return
		}
		alt := boundaryFor(o.MessageID, "alt")
		b.WriteString("--" + alt + "\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
		writeQP(&b, htmlToText(o.Body))
		b.WriteString("\r\n--" + alt + "\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
		writeQP(&b, o.Body)
		b.WriteString("\r\n--" + alt + "--\r\n")
	}
	if len(o.Attachments) == 0 {
		writeBody()
		return b.Bytes()
	}
	mixed := boundaryFor(o.MessageID, "mixed")
	b.WriteString("--" + mixed + "\r\n")
	if o.HTML {
		b.WriteString(`Content-Type: multipart/alternative; boundary="` + boundaryFor(o.MessageID, "alt") + "\"\r\n\r\n")
	} else {
		b.WriteString("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
	}
	writeBody()
	for _, a := range o.Attachments {
		ct := a.ContentType
		if ct == "" {
			ct = "application/octet-stream"
		}
		disp := "attachment"
		if a.Inline {
			disp = "inline"
		}
		b.WriteString("\r\n--" + mixed + "\r\n")
		b.WriteString("Content-Type: " + mime.FormatMediaType(ct, map[string]string{"name": a.Name}) + "\r\n")
		b.WriteString("Content-Disposition: " + mime.FormatMediaType(disp, map[string]string{"filename": a.Name}) + "\r\n")
		if a.ContentID != "" {
			b.WriteString("Content-ID: <" + a.ContentID + ">\r\n")
		}
		b.WriteString("Content-Transfer-Encoding: base64\r\n\r\n")
		writeBase64Lines(&b, a.Data())
	}
	b.WriteString("\r\n--" + mixed + "--\r\n")
	return b.Bytes()
}

func writeQP(b *bytes.Buffer, s string) {
	w := quotedprintable.NewWriter(b)
	w.Write([]byte(strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\n", "\r\n")))
	w.Close()
}

func writeBase64Lines(b *bytes.Buffer, data []byte) {
	enc := base64.StdEncoding.EncodeToString(data)
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	if enc != "" {
		b.WriteString(enc + "\r\n")
	}
}
