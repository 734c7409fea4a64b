package m365sim

// Lenient MIME reading. Exchange Online accepts any message an SMTP server
// hands it and converts it as best it can ("Exchange accepts all of these",
// issue 15); so does the simulator. What it repairs, and how:
//
//   - Header lines: a leading mbox "From " line and blank-looking lines
//     before the first header are skipped; a header name may be followed by
//     spaces before the colon (RFC 5322 §4.5.3 obsolete syntax); a line
//     without a colon inside the header block continues the previous
//     header, as if it were folded; a message whose first line is not a
//     header has no header at all and all of it is body.
//   - Multipart bodies are split on boundary lines (RFC 2046 §5.1.1) without
//     requiring the closing delimiter: a missing one ends the last part at
//     the end of the message. A multipart without a boundary parameter uses
//     the first "--" line as its boundary; one without any boundary line is
//     read as text.
//   - An invalid Content-Type means text/plain; charset=us-ascii (RFC 2045
//     §5.2); parameters are read one by one, so one bad parameter does not
//     lose the others (a file name with 8-bit bytes, a duplicate, a missing
//     quote); RFC 2231 continuations and charsets are decoded.
//   - Text: the declared charset is used when the bytes fit it; otherwise
//     (undeclared 8-bit, a wrong label) the charset is detected: UTF-8,
//     ISO-2022-JP by its escape sequences, Shift_JIS or EUC-JP when the
//     label is a Japanese one or the text reads as Japanese, else
//     Windows-1252 — never U+FFFD for bytes some charset explains.
//   - Encoded words (RFC 2047) with extra or missing base64 padding, an
//     unknown charset or 8-bit bytes are still decoded.
//
// Each repair is recorded in mimeMessage.Repairs, so a seeding tool can say
// what it had to fix.

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"mime"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/htmlindex"
	"golang.org/x/text/encoding/japanese"
)

// partHeader is a header block in order, values unfolded.
type partHeader []mimeHeader

// Get returns the first value of name (case-insensitive), "" if absent.
func (h partHeader) Get(name string) string {
	for _, x := range h {
		if strings.EqualFold(x.Name, name) {
			return x.Value
		}
	}
	return ""
}

// splitHeader reads the header block of raw leniently and returns it with
// the body that follows the first empty line.
func splitHeader(raw []byte) (h partHeader, body []byte, repairs []string) {
	pos := 0
	for n := 1; pos < len(raw); n++ {
		e := bytes.IndexByte(raw[pos:], '\n')
		next := len(raw)
		if e < 0 {
			e = len(raw)
		} else {
			e += pos
			next = e + 1
		}
		line := strings.TrimRight(string(raw[pos:e]), "\r")
		switch {
		case line == "":
			return h, raw[next:], repairs
		case strings.TrimSpace(line) == "" && len(h) == 0:
			repairs = append(repairs, fmt.Sprintf("header line %d: blank-looking line before the first header skipped", n))
		case line[0] == ' ' || line[0] == '\t':
			if len(h) == 0 {
				if name, value, ok := headerLine(strings.TrimSpace(line)); ok {
					repairs = append(repairs, fmt.Sprintf("header line %d: the first header starts with whitespace", n))
					h = append(h, mimeHeader{Name: name, Value: value})
				} else {
					repairs = append(repairs, fmt.Sprintf("header line %d: continuation without a header skipped", n))
				}
				break
			}
			h[len(h)-1].Value = joinFolded(h[len(h)-1].Value, line)
		default:
			if name, value, ok := headerLine(line); ok {
				h = append(h, mimeHeader{Name: name, Value: value})
				break
			}
			switch {
			case len(h) == 0 && n == 1 && strings.HasPrefix(line, "From "):
				repairs = append(repairs, "header line 1: mbox envelope line (From ...) skipped")
			case len(h) == 0:
				repairs = append(repairs, fmt.Sprintf("header line %d is not a header: the whole message is read as body", n))
				return nil, raw, repairs
			case !brokenFold(h[len(h)-1].Value, line, raw[next:]):
				repairs = append(repairs, fmt.Sprintf("header line %d is not a header: the body starts there", n))
				return h, raw[pos:], repairs
			default:
				repairs = append(repairs, fmt.Sprintf("header line %d has no colon: read as a continuation of %s", n, h[len(h)-1].Name))
				h[len(h)-1].Value = joinFolded(h[len(h)-1].Value, line)
			}
		}
		pos = next
	}
	return h, nil, repairs
}

var reParamLine = regexp.MustCompile(`^\s*[A-Za-z0-9_.-]+\*?[0-9]*\*?\s*=`)

// brokenFold tells a folded line that lost its leading whitespace (a
// parameter such as name="x.zip", a value after a trailing ";" or ",", or
// a line followed by more header lines) from the first line of a body
// whose empty separator line is missing.
func brokenFold(prev, line string, rest []byte) bool {
	if reParamLine.MatchString(line) {
		return true
	}
	if p := strings.TrimSpace(prev); strings.HasSuffix(p, ";") || strings.HasSuffix(p, ",") {
		return true
	}
	next, _, _ := bytes.Cut(rest, []byte("\n"))
	nl := strings.TrimRight(string(next), "\r")
	if nl == "" {
		return false
	}
	if nl[0] == ' ' || nl[0] == '\t' {
		return true
	}
	_, _, ok := headerLine(nl)
	return ok
}

func joinFolded(v, line string) string {
	line = strings.TrimSpace(line)
	if v == "" {
		return line
	}
	if line == "" {
		return v
	}
	return v + " " + line
}

// headerLine splits "Name: value"; the name is printable ASCII without
// spaces, optionally followed by spaces before the colon (obsolete syntax).
func headerLine(line string) (name, value string, ok bool) {
	i := strings.IndexByte(line, ':')
	if i <= 0 {
		return "", "", false
	}
	name = strings.TrimRight(line[:i], " \t")
	if name == "" {
		return "", "", false
	}
	for j := 0; j < len(name); j++ {
		if c := name[j]; c <= ' ' || c > '~' {
			return "", "", false
		}
	}
	return name, strings.TrimSpace(line[i+1:]), true
}

// splitMultipart returns the parts of a multipart body between boundary
// lines; closed is false when the closing delimiter is missing (the last
// part then runs to the end). No boundary line at all gives no parts.
func splitMultipart(body []byte, boundary string) (parts [][]byte, closed bool) {
	if boundary == "" {
		boundary = guessBoundary(body)
		if boundary == "" {
			return nil, false
		}
	}
	delim := "--" + boundary
	start := -1 // start of the current part's content
	pos := 0
	for pos < len(body) {
		e := bytes.IndexByte(body[pos:], '\n')
		next := len(body)
		if e < 0 {
			e = len(body)
		} else {
			e += pos
			next = e + 1
		}
		line := strings.TrimRight(string(body[pos:e]), " \t\r")
		if strings.HasPrefix(line, delim) {
			rest := line[len(delim):]
			if rest == "" || rest == "--" {
				if start >= 0 {
					end := pos
					// The line break before a delimiter belongs to it.
					if end > start && body[end-1] == '\n' {
						end--
						if end > start && body[end-1] == '\r' {
							end--
						}
					}
					parts = append(parts, body[start:end])
				}
				if rest == "--" {
					return parts, true
				}
				start = next
			}
		}
		pos = next
	}
	if start >= 0 {
		parts = append(parts, body[start:])
	}
	return parts, false
}

// guessBoundary is the first "--x" line's x, for a multipart without a
// boundary parameter.
func guessBoundary(body []byte) string {
	for _, line := range strings.Split(string(body), "\n") {
		line = strings.TrimRight(line, " \t\r")
		if len(line) > 2 && strings.HasPrefix(line, "--") {
			return strings.TrimSuffix(line[2:], "--")
		}
	}
	return ""
}

// parseContentType reads a Content-Type or Content-Disposition value. An
// unreadable media type is "" (the caller applies RFC 2045 §5.2's default);
// parameters are read one by one when the strict parser gives up.
func parseContentType(v string) (mediaType string, params map[string]string) {
	return parseMediaValue(v, false)
}

// parseDisposition reads a Content-Disposition value: inline, attachment.
func parseDisposition(v string) (disposition string, params map[string]string) {
	return parseMediaValue(v, true)
}

func parseMediaValue(v string, isDisposition bool) (mediaType string, params map[string]string) {
	// Go's parser drops RFC 2231 values in charsets other than UTF-8 and
	// US-ASCII; those go through the lenient reader below.
	if mt, p, err := mime.ParseMediaType(v); err == nil && !strings.Contains(v, "*=") {
		for k, x := range p {
			if !utf8.ValidString(x) {
				p[k] = decodeText("", []byte(x))
			}
		}
		return mt, p
	}
	params = map[string]string{}
	fields := splitParams(v)
	if len(fields) == 0 {
		return "", params
	}
	mt := strings.ToLower(strings.TrimSpace(fields[0]))
	if i := strings.IndexAny(mt, " \t"); i >= 0 {
		mt = mt[:i]
	}
	type piece struct {
		val     string
		encoded bool
	}
	continued := map[string]map[int]piece{}
	for _, f := range fields[1:] {
		k, val, ok := strings.Cut(f, "=")
		if !ok {
			continue
		}
		k = strings.ToLower(strings.TrimSpace(k))
		val = strings.TrimSpace(val)
		if len(val) >= 2 && val[0] == '"' && val[len(val)-1] == '"' {
			val = strings.ReplaceAll(strings.ReplaceAll(val[1:len(val)-1], `\"`, `"`), `\\`, `\`)
		} else {
			val = strings.Trim(val, `"`)
		}
		encoded := strings.HasSuffix(k, "*")
		k = strings.TrimSuffix(k, "*")
		if base, idx, ok := strings.Cut(k, "*"); ok {
			n := 0
			if _, err := fmt.Sscanf(idx, "%d", &n); err == nil {
				if continued[base] == nil {
					continued[base] = map[int]piece{}
				}
				continued[base][n] = piece{val, encoded}
				continue
			}
		}
		if encoded {
			val = decode2231(val, true)
		}
		if _, dup := params[k]; !dup {
			params[k] = val
		}
	}
	for base, ps := range continued {
		var b strings.Builder
		charset := ""
		for i := 0; ; i++ {
			p, ok := ps[i]
			if !ok {
				break
			}
			s := p.val
			if p.encoded {
				if i == 0 {
					if parts := strings.SplitN(s, "'", 3); len(parts) == 3 {
						charset, s = parts[0], parts[2]
					}
				}
				s = string(percentDecode(s))
			}
			b.WriteString(s)
		}
		if _, dup := params[base]; !dup {
			params[base] = decodeText(charset, []byte(b.String()))
		}
	}
	for k, x := range params {
		if !utf8.ValidString(x) {
			params[k] = decodeText("", []byte(x))
		}
	}
	if isDisposition {
		return mt, params
	}
	if strings.Count(mt, "/") != 1 || strings.HasPrefix(mt, "/") || strings.HasSuffix(mt, "/") {
		return "", params
	}
	return mt, params
}

// splitParams splits on semicolons outside quotes.
func splitParams(v string) []string {
	var out []string
	var cur strings.Builder
	inQuote := false
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '\\' && inQuote && i+1 < len(v):
			cur.WriteByte(c)
			i++
			cur.WriteByte(v[i])
			continue
		case c == '"':
			inQuote = !inQuote
		case c == ';' && !inQuote:
			out = append(out, cur.String())
			cur.Reset()
			continue
		}
		cur.WriteByte(c)
	}
	if s := cur.String(); strings.TrimSpace(s) != "" || len(out) == 0 {
		out = append(out, s)
	}
	return out
}

// decode2231 decodes charset'lang'%xx (RFC 2231 §4).
func decode2231(v string, withCharset bool) string {
	charset := ""
	if withCharset {
		if parts := strings.SplitN(v, "'", 3); len(parts) == 3 {
			charset, v = parts[0], parts[2]
		}
	}
	return decodeText(charset, percentDecode(v))
}

func percentDecode(s string) []byte {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			if b, err := hex.DecodeString(s[i+1 : i+3]); err == nil {
				out = append(out, b[0])
				i += 2
				continue
			}
		}
		out = append(out, s[i])
	}
	return out
}

// decodeText turns text bytes labelled charset into UTF-8, detecting the
// charset when the label is missing or does not fit the bytes.
func decodeText(charset string, b []byte) string {
	cs := strings.ToLower(strings.Trim(strings.TrimSpace(charset), `"'`))
	if hasJISEscapes(b) && isSevenBit(b) {
		// ISO-2022-JP announces itself; labels on it are often wrong.
		if s, ok := decodeWith(japanese.ISO2022JP, b); ok {
			return s
		}
	}
	switch cs {
	case "", "us-ascii", "ascii", "utf-8", "utf8", "unknown-8bit", "x-unknown", "default":
	case "iso-8859-1", "iso_8859-1", "latin1", "l1", "iso8859-1":
		// The label's own charset; WHATWG (htmlindex) would read it as
		// Windows-1252.
		if s, ok := decodeWith(charmap.ISO8859_1, b); ok {
			return s
		}
	default:
		if enc, err := htmlindex.Get(cs); err == nil {
			if s, ok := decodeWith(enc, b); ok {
				return s
			}
		}
	}
	if utf8.Valid(b) {
		return string(b)
	}
	japaneseLabel := strings.Contains(cs, "jis") || strings.Contains(cs, "jp") || strings.Contains(cs, "932")
	for _, enc := range []encoding.Encoding{japanese.ShiftJIS, japanese.EUCJP} {
		if s, ok := decodeWith(enc, b); ok && (japaneseLabel || readsAsJapanese(s)) {
			return s
		}
	}
	s, _ := decodeWith(charmap.Windows1252, b)
	return strings.ToValidUTF8(s, "\uFFFD")
}

// decodeWith decodes b; ok is false when the decoder had to substitute
// U+FFFD for bytes b does not hold as U+FFFD already.
func decodeWith(enc encoding.Encoding, b []byte) (string, bool) {
	out, err := enc.NewDecoder().Bytes(b)
	if err != nil {
		return "", false
	}
	if bytes.Count(out, []byte("\uFFFD")) > bytes.Count(b, []byte("\uFFFD")) {
		return string(out), false
	}
	return string(out), true
}

func isSevenBit(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}

func hasJISEscapes(b []byte) bool {
	return bytes.Contains(b, []byte("\x1b$B")) || bytes.Contains(b, []byte("\x1b$@")) || bytes.Contains(b, []byte("\x1b(J"))
}

// readsAsJapanese: most non-ASCII letters are kana or CJK ideographs.
func readsAsJapanese(s string) bool {
	jp, other := 0, 0
	for _, r := range s {
		switch {
		case r < 0x80:
		case unicode.In(r, unicode.Hiragana, unicode.Katakana, unicode.Han) || (r >= 0x3000 && r <= 0x303f) || (r >= 0xff00 && r <= 0xffef):
			jp++
		default:
			other++
		}
	}
	return jp > 0 && jp >= 4*other
}

var reEncodedWord = regexp.MustCompile(`=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=`)

// decodeWordsLenient decodes RFC 2047 encoded words one by one, tolerating
// bad padding and unknown charsets; whitespace between two encoded words
// is dropped (RFC 2047 §6.2).
func decodeWordsLenient(s string) string {
	var b strings.Builder
	last := 0
	prevWord := false
	for _, m := range reEncodedWord.FindAllStringSubmatchIndex(s, -1) {
		between := s[last:m[0]]
		if !(prevWord && strings.TrimSpace(between) == "") {
			b.WriteString(between)
		}
		charset, enc, text := s[m[2]:m[3]], s[m[4]:m[5]], s[m[6]:m[7]]
		if i := strings.IndexByte(charset, '*'); i >= 0 {
			charset = charset[:i] // RFC 2231 language suffix
		}
		var raw []byte
		if enc == "b" || enc == "B" {
			raw = lenientBase64([]byte(text))
		} else {
			raw = qDecode(text)
		}
		b.WriteString(decodeText(charset, raw))
		last, prevWord = m[1], true
	}
	b.WriteString(s[last:])
	return b.String()
}

func qDecode(s string) []byte {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '_':
			out = append(out, ' ')
		case c == '=' && i+2 < len(s):
			if x, err := hex.DecodeString(s[i+1 : i+3]); err == nil {
				out = append(out, x[0])
				i += 2
				continue
			}
			out = append(out, c)
		default:
			out = append(out, c)
		}
	}
	return out
}

// lenientBase64 decodes base64 ignoring whitespace and characters outside
// the alphabet; it stops at padding that ends a quantum (what follows is
// not part of the data, e.g. an unrecognised boundary line), and drops a
// trailing partial quantum.
func lenientBase64(b []byte) []byte {
	clean := make([]byte, 0, len(b))
	for _, c := range b {
		if (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/' {
			clean = append(clean, c)
		} else if c == '=' && len(clean)%4 >= 2 {
			break
		}
	}
	if len(clean)%4 == 1 {
		clean = clean[:len(clean)-1] // six bits make no byte
	}
	out := make([]byte, base64.RawStdEncoding.DecodedLen(len(clean)))
	n, _ := base64.RawStdEncoding.Decode(out, clean)
	return out[:n]
}
