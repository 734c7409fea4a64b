package m365sim

// MIME to Graph: a message is stored as its original bytes, and this file
// derives what Exchange shows through Graph (subject, address lists, bodies,
// attachments, headers) from them.

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"html"
	"io"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/text/encoding/htmlindex"
)

// mailAddress is one recipient: {"emailAddress":{"name","address"}}.
type mailAddress struct {
	Name    string `json:"name"`
	Address string `json:"address"`
}

// mimeHeader is one top-level header, unfolded, in original order.
type mimeHeader struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// mimeMessage is what Graph shows of a stored MIME message. It never
// changes after creation; per-item state (isRead, folder) lives on message.
type mimeMessage struct {
	Subject    string
	From       *mailAddress
	Sender     *mailAddress
	To         []mailAddress
	Cc         []mailAddress
	Bcc        []mailAddress
	ReplyTo    []mailAddress
	MessageID  string // with angle brackets
	InReplyTo  string
	References []string
	Date       time.Time // zero when the Date header is missing
	Received   time.Time // from the first Received header; zero if none
	Importance string    // low, normal, high
	Headers    partHeader
	// Repairs says what lenient parsing had to fix, for logs.
	Repairs []string

	html, text string
	// lazyBody, when set, renders html and text on demand (generated mail).
	lazyBody func() (html, text string)

	Attachments []*mimeAttachment
}

// mimeAttachment is a file, item (message/rfc822) or reference attachment.
type mimeAttachment struct {
	Kind        string // "file", "item", "reference"
	Name        string
	ContentType string
	ContentID   string // without angle brackets
	IsInline    bool
	Size        int
	data        []byte        // decoded content (item: the embedded message's bytes)
	lazy        func() []byte // renders data on demand (generated mail)
	Item        *mimeMessage  // the embedded message of an item attachment
	SourceURL   string        // reference attachments
}

// bytes returns the decoded attachment content.
func (a *mimeAttachment) bytes() []byte {
	if a.lazy != nil {
		return a.lazy()
	}
	return a.data
}

// bodies returns the html and text forms of the body; one is derived from
// the other when the message carries only one.
func (m *mimeMessage) bodies() (htmlBody, textBody string) {
	h, t := m.html, m.text
	if m.lazyBody != nil {
		h, t = m.lazyBody()
	}
	switch {
	case h == "" && t == "":
		return textToHTML(""), ""
	case h == "":
		return textToHTML(t), t
	case t == "":
		return h, htmlToText(h)
	}
	return h, t
}

// preview is bodyPreview: the first 255 characters of the text body with
// whitespace collapsed.
func (m *mimeMessage) preview() string {
	_, t := m.bodies()
	t = strings.Join(strings.Fields(t), " ")
	if utf8.RuneCountInString(t) > 255 {
		t = string([]rune(t)[:255])
	}
	return t
}

// hasAttachments is false when all attachments are inline.
func (m *mimeMessage) hasAttachments() bool {
	for _, a := range m.Attachments {
		if !a.IsInline {
			return true
		}
	}
	return false
}

// header returns the first header named name (case-insensitive).
func (m *mimeMessage) header(name string) string {
	for _, h := range m.Headers {
		if strings.EqualFold(h.Name, name) {
			return h.Value
		}
	}
	return ""
}

var wordDecoder = &mime.WordDecoder{CharsetReader: charsetReader}

// charsetReader converts any WHATWG-known charset (ISO-2022-JP, Shift_JIS,
// Windows-1252, KOI8-R…) to UTF-8.
func charsetReader(charset string, input io.Reader) (io.Reader, error) {
	enc, err := htmlindex.Get(charset)
	if err != nil {
		return nil, fmt.Errorf("charset %q: %w", charset, err)
	}
	return enc.NewDecoder().Reader(input), nil
}

// toUTF8 decodes text bytes labelled charset; see decodeText.
func toUTF8(charset string, b []byte) string { return decodeText(charset, b) }

// decodeWords decodes RFC 2047 encoded words, leniently when the strict
// decoder refuses (bad padding, unknown charset), and undeclared 8-bit
// bytes by detection.
func decodeWords(s string) string {
	out, err := wordDecoder.DecodeHeader(s)
	if err != nil || reEncodedWord.MatchString(out) {
		out = decodeWordsLenient(s)
	}
	if !utf8.ValidString(out) {
		out = decodeText("", []byte(out))
	}
	return out
}

// parseMIME reads raw RFC 5322 bytes the way Exchange does on delivery:
// leniently (see mime_lenient.go). It fails only on an empty message.
func parseMIME(raw []byte) (*mimeMessage, error) { return parseMIMEDepth(raw, 0) }

// parseMIMEDepth parses a message nested depth levels deep (multipart or
// message/rfc822); parts below maxMIMEDepth are kept as opaque bytes.
func parseMIMEDepth(raw []byte, depth int) (*mimeMessage, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, fmt.Errorf("parse message: it is empty")
	}
	h, body, repairs := splitHeader(raw)
	m := &mimeMessage{Headers: h, Repairs: repairs}
	m.Subject = decodeWords(h.Get("Subject"))
	m.From = firstAddress(h.Get("From"))
	m.Sender = firstAddress(h.Get("Sender"))
	if m.Sender == nil {
		m.Sender = m.From
	}
	m.To = addressList(h.Get("To"))
	m.Cc = addressList(h.Get("Cc"))
	m.Bcc = addressList(h.Get("Bcc"))
	m.ReplyTo = addressList(h.Get("Reply-To"))
	m.MessageID = strings.TrimSpace(h.Get("Message-Id"))
	m.InReplyTo = strings.TrimSpace(h.Get("In-Reply-To"))
	m.References = strings.Fields(h.Get("References"))
	if d, err := mail.ParseDate(h.Get("Date")); err == nil {
		m.Date = d
	}
	if rcv := h.Get("Received"); rcv != "" {
		if i := strings.LastIndex(rcv, ";"); i >= 0 {
			if d, err := mail.ParseDate(strings.TrimSpace(rcv[i+1:])); err == nil {
				m.Received = d
			}
		}
	}
	m.Importance = importanceOf(h.Get("Importance"), h.Get("X-Priority"))
	p := &mimeWalker{m: m}
	p.walk(h, body, depth)
	for _, a := range m.Attachments {
		// Exchange hides (isInline) the attachments the HTML body shows
		// through cid: references; hasAttachments counts the others
		// ("doesn't include inline attachments", message resource,
		// https://learn.microsoft.com/en-us/graph/api/resources/message).
		// An attachment the HTML does not refer to is not inline, even with
		// a Content-ID: Exchange's own MIME writer follows the same rule the
		// other way round ("If the HTML text contains no such reference, the
		// MIME writer SHOULD consider this Attachment object as not inline",
		// [MS-OXCMAIL] learn.microsoft.com/en-us/openspecs/
		// exchange_server_protocols/ms-oxcmail/8f06654e-d262-4d07-befe-2d43c685f82e).
		if a.Kind == "file" && a.ContentID != "" && strings.Contains(m.html, "cid:"+a.ContentID) {
			a.IsInline = true
		}
	}
	return m, nil
}

var addressParser = &mail.AddressParser{WordDecoder: wordDecoder}

func addressList(v string) []mailAddress {
	if strings.TrimSpace(v) == "" {
		return nil
	}
	list, err := addressParser.ParseList(v)
	if err != nil {
		// RFC 5322 §3.2.2 comments may sit anywhere, even inside an
		// address (pete(his account)@silly.test); Go's parser refuses them.
		list, err = addressParser.ParseList(stripComments(v))
	}
	if err != nil {
		v = stripComments(v)
		// Best effort like Exchange: keep whatever looks like an address.
		var out []mailAddress
		for _, part := range strings.Split(v, ",") {
			if a, err := addressParser.Parse(part); err == nil {
				out = append(out, mailAddress{Name: a.Name, Address: a.Address})
			}
		}
		return out
	}
	out := make([]mailAddress, 0, len(list))
	for _, a := range list {
		name := a.Name
		if name == "" {
			name = a.Address
		}
		out = append(out, mailAddress{Name: name, Address: a.Address})
	}
	return out
}

// stripComments removes parenthesised comments outside quoted strings, and
// group syntax ("Friends: a@x, b@y;" is its members).
func stripComments(v string) string {
	var b strings.Builder
	depth, quoted := 0, false
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '\\' && i+1 < len(v):
			if depth == 0 {
				b.WriteByte(c)
				b.WriteByte(v[i+1])
			}
			i++
			continue
		case c == '"' && depth == 0:
			quoted = !quoted
		case c == '(' && !quoted:
			depth++
			continue
		case c == ')' && !quoted && depth > 0:
			depth--
			continue
		}
		if depth == 0 {
			cur := b.String()
			if k := strings.LastIndexByte(cur, ','); k >= 0 {
				cur = cur[k:]
			}
			switch {
			case !quoted && c == ';', !quoted && c == ':' && !strings.ContainsAny(cur, "<@"):
				b.WriteByte(',') // a group's end, or its name
				continue
			}
			b.WriteByte(c)
		}
	}
	var parts []string
	for _, p := range strings.Split(b.String(), ",") {
		p = strings.TrimSpace(p)
		if p != "" && strings.Contains(p, "@") {
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, ", ")
}

func firstAddress(v string) *mailAddress {
	l := addressList(v)
	if len(l) == 0 {
		return nil
	}
	return &l[0]
}

func importanceOf(importance, priority string) string {
	switch strings.ToLower(strings.TrimSpace(importance)) {
	case "high":
		return "high"
	case "low":
		return "low"
	}
	p := strings.TrimSpace(priority)
	switch {
	case strings.HasPrefix(p, "1"), strings.HasPrefix(p, "2"):
		return "high"
	case strings.HasPrefix(p, "4"), strings.HasPrefix(p, "5"):
		return "low"
	}
	return "normal"
}

type headerGetter interface{ Get(string) string }

type mimeWalker struct{ m *mimeMessage }

const maxMIMEDepth = 20

func (p *mimeWalker) walk(h headerGetter, body []byte, depth int) {
	ct := h.Get("Content-Type")
	if ct == "" {
		ct = "text/plain; charset=us-ascii"
	}
	mediaType, params := parseContentType(ct)
	if mediaType == "" {
		// RFC 2045 §5.2: a syntactically invalid Content-Type means
		// text/plain; charset=us-ascii.
		mediaType = "text/plain"
		p.m.Repairs = append(p.m.Repairs, fmt.Sprintf("Content-Type %q is invalid: read as text/plain", ct))
	}
	if strings.HasPrefix(mediaType, "multipart/") && depth < maxMIMEDepth {
		parts, closed := splitMultipart(body, params["boundary"])
		if parts != nil {
			if !closed {
				p.m.Repairs = append(p.m.Repairs, mediaType+" without its closing boundary: the last part ends with the message")
			}
			for _, part := range parts {
				ph, pb, repairs := splitHeader(part)
				p.m.Repairs = append(p.m.Repairs, repairs...)
				p.walk(ph, pb, depth+1)
			}
			return
		}
		// No boundary line at all: keep the body as text.
		p.m.Repairs = append(p.m.Repairs, mediaType+" without any boundary line: read as text")
		mediaType, params = "text/plain", map[string]string{"charset": params["charset"]}
	}
	disp, dparams := parseDisposition(h.Get("Content-Disposition"))
	name := dparams["filename"]
	if name == "" {
		name = params["name"]
	}
	name = strings.TrimSpace(decodeWords(name))
	data := decodeTransfer(h.Get("Content-Transfer-Encoding"), body)
	cid := strings.Trim(strings.TrimSpace(h.Get("Content-Id")), "<>")

	switch {
	case mediaType == "message/rfc822":
		a := &mimeAttachment{Kind: "item", Name: name, ContentType: mediaType, Size: len(data), data: data}
		if depth < maxMIMEDepth {
			if inner, err := parseMIMEDepth(data, depth+1); err == nil {
				a.Item = inner
				if a.Name == "" {
					a.Name = inner.Subject
				}
			}
		}
		p.m.Attachments = append(p.m.Attachments, a)
	case (mediaType == "text/plain" || mediaType == "text/html") && disp != "attachment" && name == "":
		// Every inline text part is body, in order: Apple Mail sends
		// text, image, text in one multipart/mixed.
		text := toUTF8(params["charset"], data)
		if mediaType == "text/html" {
			p.m.html = appendBody(p.m.html, text)
		} else {
			p.m.text = appendBody(p.m.text, text)
		}
	default:
		if name == "" {
			name = "attachment"
		}
		p.m.Attachments = append(p.m.Attachments, &mimeAttachment{
			Kind: "file", Name: name, ContentType: mediaType, ContentID: cid, Size: len(data), data: data,
		})
	}
}

// appendBody joins body parts, with a line break between them when the
// first does not end with one.
func appendBody(body, part string) string {
	if body != "" && !strings.HasSuffix(body, "\n") {
		body += "\r\n"
	}
	return body + part
}

func decodeTransfer(cte string, body []byte) []byte {
	switch strings.ToLower(strings.TrimSpace(cte)) {
	case "base64":
		clean := bytes.Map(func(r rune) rune {
			if r == '\r' || r == '\n' || r == ' ' || r == '\t' {
				return -1
			}
			return r
		}, body)
		// Room for either decoding: the padded one's DecodedLen is 0 for
		// a 3-character part, which the unpadded retry then overran.
		out := make([]byte, base64.RawStdEncoding.DecodedLen(len(clean)))
		n, err := base64.StdEncoding.Decode(out, clean)
		if err != nil {
			// Extra characters, padding in the middle, a cut-off end.
			return lenientBase64(clean)
		}
		return out[:n]
	case "quoted-printable":
		out, err := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(body)))
		if err != nil {
			return body
		}
		return out
	}
	return body
}

var (
	reDropBlocks = regexp.MustCompile(`(?is)<(head|style|script)[^>]*>.*?</(head|style|script)>`)
	reLineBreaks = regexp.MustCompile(`(?i)<br\s*/?>|</(p|div|tr|li|h[1-6])>`)
	reTags       = regexp.MustCompile(`(?s)<[^>]*>`)
	reBlankRuns  = regexp.MustCompile(`\n{3,}`)
)

// htmlToText derives a text body from html, as Exchange does for
// outlook.body-content-type="text".
func htmlToText(h string) string {
	t := reDropBlocks.ReplaceAllString(h, "")
	t = reLineBreaks.ReplaceAllString(t, "\n")
	t = reTags.ReplaceAllString(t, "")
	t = html.UnescapeString(t)
	lines := strings.Split(strings.ReplaceAll(t, "\r\n", "\n"), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " \t")
	}
	t = reBlankRuns.ReplaceAllString(strings.Join(lines, "\n"), "\n\n")
	return strings.TrimSpace(t)
}

// textToHTML wraps a plain-text body the way Exchange renders it as html.
func textToHTML(t string) string {
	esc := strings.ReplaceAll(html.EscapeString(strings.ReplaceAll(t, "\r\n", "\n")), "\n", "<br>\r\n")
	return "<html><head>\r\n<meta http-equiv=\"Content-Type\" content=\"text/html; charset=utf-8\">\r\n</head>\r\n<body>\r\n<div class=\"PlainText\">" + esc + "</div>\r\n</body>\r\n</html>\r\n"
}
