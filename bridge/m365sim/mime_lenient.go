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
	"fmt"
	"mime"
	"regexp"
	"strings"
	"unicode/utf8"
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
	continued := map[string]map[int]rfc2231Piece{}
	for _, f := range fields[1:] {
		readParam(f, params, continued)
	}
	for base, ps := range continued {
		if _, dup := params[base]; !dup {
			params[base] = joinContinued(ps)
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

// rfc2231Piece is one numbered section of an RFC 2231 continued parameter
// (name*0, name*1*, …); encoded when the section is percent-encoded.
type rfc2231Piece struct {
	val     string
	encoded bool
}

// readParam reads one "name=value" field of a media value into params, or
// into continued when it is a numbered RFC 2231 section; a field without
// "=" is skipped and the first of duplicate names wins.
func readParam(f string, params map[string]string, continued map[string]map[int]rfc2231Piece) {
	k, val, ok := strings.Cut(f, "=")
	if !ok {
		return
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
				continued[base] = map[int]rfc2231Piece{}
			}
			continued[base][n] = rfc2231Piece{val, encoded}
			return
		}
	}
	if encoded {
		val = decode2231(val, true)
	}
	if _, dup := params[k]; !dup {
		params[k] = val
	}
}

// joinContinued joins the sections of an RFC 2231 continued parameter in
// order (up to the first missing number), percent-decoding the encoded
// ones, and decodes the result in the charset the first section names.
func joinContinued(ps map[int]rfc2231Piece) string {
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
	return decodeText(charset, []byte(b.String()))
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
