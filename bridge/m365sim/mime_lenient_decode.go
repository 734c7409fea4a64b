package m365sim

// Lenient decoding of MIME text (see mime_lenient.go for the list of
// repairs): RFC 2231 parameter values, charsets declared or detected, and
// RFC 2047 encoded words with bad padding or unknown charsets.

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/htmlindex"
	"golang.org/x/text/encoding/japanese"
)

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
