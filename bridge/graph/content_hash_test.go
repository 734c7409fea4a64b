package graph

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
)

// contentByStream is newContent as it was before it decoded block by
// block: base64.NewDecoder over the whole text. The reference.
func contentByStream(text string) *Content {
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
		c.Err = err
		return c
	}
	c.Base64, c.Size, c.SHA256 = base64.StdEncoding.EncodeToString(b), int64(len(b)), sha256.Sum256(b)
	return c
}

// TestContentHashedAsByTheStreamDecoder: for base64 texts around the
// block size, with line breaks, non-zero pad bits, padding in the middle
// (also where a block ends), a short tail or a stray byte, newContent
// gives the text, size, digest and validity the stream decoder gave.
func TestContentHashedAsByTheStreamDecoder(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 17))
	enc := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return base64.StdEncoding.EncodeToString(b)
	}
	texts := []string{"", "aGk=", "aGl=", "QQ==", "QQ==QUJD", "Q===", "aGk", "aGVsbG8g\r\nd29ybGQ="}
	var midPad []string
	for _, n := range []int{hashBlock / 4 * 3, hashBlock/4*3 - 1, hashBlock/4*3 + 1, 2 * hashBlock / 4 * 3, 100_000} {
		s := enc(n)
		texts = append(texts, s,
			s[:len(s)-1], // not whole quads
			s[:hashBlock/2]+"\r\n"+s[hashBlock/2:], // a line break
		)
		if len(s) > hashBlock+9 {
			texts = append(texts, s[:hashBlock+8]+"*"+s[hashBlock+9:]) // a stray byte in the second block
			midPad = append(midPad, s[:hashBlock-4]+"QQ=="+s[hashBlock:])
		}
	}
	for _, text := range texts {
		got, want := newContent(text), contentByStream(text)
		if got.Base64 != want.Base64 || got.Size != want.Size || got.SHA256 != want.SHA256 || (got.Err == nil) != (want.Err == nil) {
			t.Errorf("text of %d bytes (%.12q…): size %d, err %v, base64 same %v; want size %d, err %v",
				len(text), text, got.Size, got.Err, got.Base64 == want.Base64, want.Size, want.Err)
		}
	}
	// Padding in the middle where the stream decoder's read ended: it
	// accepted that text as canonical (each read decoded alone), while
	// base64.StdEncoding.DecodeString, and so any receiver, refuses it.
	// It is not base64: the attachment is listed with the reason.
	for _, text := range midPad {
		if c := newContent(text); !errors.Is(c.Err, ErrBadContent) || c.Base64 != "" {
			t.Errorf("text of %d bytes with padding in the middle: err %v; want ErrBadContent", len(text), c.Err)
		}
		if _, err := base64.StdEncoding.DecodeString(text); err == nil {
			t.Errorf("DecodeString accepts padding in the middle")
		}
	}
}
