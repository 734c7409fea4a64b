package graph

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Content is a file attachment's content as Graph sent it in contentBytes:
// the base64 text, kept as it came (an event carries base64 too, so
// decoding and re-encoding it would only cost time and two more copies),
// with the decoded size and SHA-256, computed in one streaming pass.
type Content struct {
	// Base64 is the content in standard base64 with padding, exactly as
	// base64.StdEncoding.EncodeToString of the decoded bytes would give it.
	Base64 string
	// Size is the decoded length in bytes.
	Size int64
	// SHA256 is the digest of the decoded bytes.
	SHA256 [sha256.Size]byte
	// Err is why Graph's text is not valid base64 (then Base64 is empty).
	Err error
	// ref is liftContent's placeholder until resolveContent replaces it.
	ref string
}

// ErrBadContent marks attachment content that is not valid base64.
var ErrBadContent = errors.New("attachment content is not valid base64")

// newContent checks Graph's base64 text in one pass that decodes into a
// hash (no decoded copy). Text in canonical form (no line breaks, zero pad
// bits) is kept as it is; other text that decodes (Go's decoder skips line
// breaks, as encoding/json did when contentBytes was decoded into []byte)
// is re-encoded canonically, so the event carries the same bytes either
// way. Text that does not decode gives a Content with Err.
func newContent(text string) *Content {
	c := &Content{}
	h := sha256.New()
	n, err := io.Copy(h, base64.NewDecoder(base64.StdEncoding.Strict(), strings.NewReader(text)))
	if err == nil && strings.IndexByte(text, '\n') < 0 && strings.IndexByte(text, '\r') < 0 && len(text)%4 == 0 {
		c.Base64, c.Size = text, n
		h.Sum(c.SHA256[:0])
		return c
	}
	b, err := base64.StdEncoding.DecodeString(text)
	if err != nil {
		c.Err = fmt.Errorf("%w: %w", ErrBadContent, err)
		return c
	}
	c.Base64, c.Size, c.SHA256 = base64.StdEncoding.EncodeToString(b), int64(len(b)), sha256.Sum256(b)
	return c
}

// UnmarshalJSON reads an attachment as Graph sends it, keeping
// contentBytes as Content (base64 text) instead of decoding it into
// ContentBytes, which stays for content the caller has as bytes (a $value
// read, an attachment to send).
func (a *Attachment) UnmarshalJSON(b []byte) error {
	type plain Attachment // the fields, without this method
	var w struct {
		plain
		ContentBytes *string `json:"contentBytes"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*a = Attachment(w.plain)
	a.ContentBytes = nil
	switch {
	case w.ContentBytes == nil:
	case strings.HasPrefix(*w.ContentBytes, liftPrefix):
		// Until resolveContent puts the content back, it is not there.
		a.Content = &Content{ref: *w.ContentBytes, Err: fmt.Errorf("%w: content not resolved", ErrBadContent)}
	default:
		a.Content = newContent(*w.ContentBytes)
	}
	return nil
}

// Bytes returns the decoded content: ContentBytes when set, else Content
// decoded; nil when the attachment carries none (or it is not valid).
func (a *Attachment) Bytes() []byte {
	if a.ContentBytes != nil || a.Content == nil || a.Content.Err != nil {
		return a.ContentBytes
	}
	b, _ := base64.StdEncoding.DecodeString(a.Content.Base64)
	return b
}

// liftKey is how Graph writes a file attachment's content in JSON. Text
// written otherwise (whitespace around the colon, escapes in the value) is
// simply not lifted: encoding/json decodes it as usual.
const liftKey = `"contentBytes":"`

// liftMinBytes is the content size from which lifting pays.
const liftMinBytes = 1 << 10

// lifted holds the contentBytes strings cut out of a Graph response before
// encoding/json read it, by the placeholder left in their place.
type lifted map[string]string

// liftContent cuts the contentBytes values of at least liftMinBytes out
// of a JSON response and puts a placeholder (tag and index; it contains
// ':', so it is never valid base64) in their place: encoding/json then
// scans a few bytes instead of megabytes, several times over ($batch
// responses are decoded twice). A value is cut only where it is certainly a
// key's value: the key follows '{' or ',' (a quote there cannot be inside a
// string), and the value has no backslash (it ends at the next quote).
// Attachment.UnmarshalJSON keeps the placeholder and resolveContent puts
// the content back.
func liftContent(body []byte) ([]byte, lifted) {
	if !bytes.Contains(body, []byte(liftKey)) {
		return body, nil
	}
	var nonce [12]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return body, nil
	}
	tag := liftPrefix + hex.EncodeToString(nonce[:]) + ":"
	out := make([]byte, 0, 4<<10)
	var cut lifted
	last, pos := 0, 0
	for {
		k := bytes.Index(body[pos:], []byte(liftKey))
		if k < 0 {
			break
		}
		k += pos
		start := k + len(liftKey)
		end := bytes.IndexByte(body[start:], '"')
		if end < 0 {
			break
		}
		end += start
		pos = end + 1
		val := body[start:end]
		if len(val) < liftMinBytes || bytes.IndexByte(val, '\\') >= 0 || !afterObjectStart(body[:k]) {
			continue
		}
		if cut == nil {
			cut = lifted{}
		}
		ph := tag + strconv.Itoa(len(cut))
		cut[ph] = string(val)
		out = append(out, body[last:start]...)
		out = append(out, ph...)
		last = end
	}
	if cut == nil {
		return body, nil
	}
	return append(out, body[last:]...), cut
}

// liftPrefix starts every placeholder liftContent leaves.
const liftPrefix = "m365bridge-lifted:"

// afterObjectStart reports whether the last byte of b other than JSON
// whitespace is '{' or ','.
func afterObjectStart(b []byte) bool {
	for i := len(b) - 1; i >= 0; i-- {
		switch b[i] {
		case ' ', '\t', '\r', '\n':
			continue
		case '{', ',':
			return true
		}
		return false
	}
	return false
}

// resolveContent puts lifted content back on attachments decoded from a
// response liftContent cut it out of.
func resolveContent(atts []Attachment, cut lifted) {
	for i := range atts {
		c := atts[i].Content
		if c == nil || c.ref == "" {
			continue
		}
		if text, ok := cut[c.ref]; ok {
			atts[i].Content = newContent(text)
		} else {
			atts[i].Content = &Content{Err: fmt.Errorf("%w: content not resolved", ErrBadContent)}
		}
	}
}
