package graph

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
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
	if size, sum, ok := hashCanonical(text); ok {
		c.Base64, c.Size, c.SHA256 = text, size, sum
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

// hashBlock is how much base64 text hashCanonical decodes at a time (a
// whole number of 4-character quads).
const hashBlock = 32 << 10

// hashCanonical returns the decoded size and SHA-256 of text if it is
// canonical base64: whole quads, no line breaks, padding only at the end,
// zero pad bits (Strict). It decodes block by block into one buffer: with
// no line breaks to filter, base64.NewDecoder's reader only adds copies.
// Padding is allowed only at the end of the whole text, so decoding the
// blocks alone accepts exactly what decoding the text at once accepts.
func hashCanonical(text string) (int64, [sha256.Size]byte, bool) {
	var sum [sha256.Size]byte
	if len(text)%4 != 0 || strings.IndexByte(text, '\n') >= 0 || strings.IndexByte(text, '\r') >= 0 {
		return 0, sum, false
	}
	if pad := strings.IndexByte(text, '='); pad >= 0 && pad < len(text)-2 {
		return 0, sum, false
	}
	h := sha256.New()
	buf := make([]byte, hashBlock+hashBlock/4*3)
	src, dst := buf[:hashBlock], buf[hashBlock:]
	enc := base64.StdEncoding.Strict()
	var size int64
	for len(text) > 0 {
		n := copy(src, text)
		k, err := enc.Decode(dst, src[:n])
		if err != nil {
			return 0, sum, false
		}
		h.Write(dst[:k])
		size += int64(k)
		text = text[n:]
	}
	h.Sum(sum[:0])
	return size, sum, true
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
