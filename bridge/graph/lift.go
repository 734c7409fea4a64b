package graph

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"strings"
)

// liftKey is how Graph writes a file attachment's content in JSON. Text
// written otherwise (whitespace around the colon, escapes in the value) is
// simply not lifted: encoding/json decodes it as usual.
const liftKey = `"contentBytes":"`

// liftMinBytes is the content size from which lifting pays.
const liftMinBytes = 1 << 10

// liftPrefix starts every placeholder liftContent leaves.
const liftPrefix = "m365bridge-lifted:"

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
	return liftChunks([][]byte{body})
}

// liftChunks is liftContent over a response read in chunks (readChunks),
// without joining them first: each lifted value is copied once, from the
// chunks into its string, and only the JSON around the values is copied
// into the buffer returned. With one chunk and nothing to lift, that chunk
// itself is returned.
func liftChunks(chunks [][]byte) ([]byte, lifted) {
	s := newSegments(chunks)
	key := []byte(liftKey)
	if s.index(0, key) < 0 {
		return s.joined(), nil
	}
	var nonce [12]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return s.joined(), nil
	}
	tag := liftPrefix + hex.EncodeToString(nonce[:]) + ":"
	out := make([]byte, 0, 4<<10)
	var cut lifted
	last, pos := 0, 0
	for {
		k := s.index(pos, key)
		if k < 0 {
			break
		}
		start := k + len(key)
		end := s.indexByte(start, '"')
		if end < 0 {
			break
		}
		pos = end + 1
		if end-start < liftMinBytes || s.hasByte(start, end, '\\') || !s.afterObjectStart(k) {
			continue
		}
		if cut == nil {
			cut = lifted{}
		}
		ph := tag + strconv.Itoa(len(cut))
		cut[ph] = s.text(start, end)
		out = s.appendRange(out, last, start)
		out = append(out, ph...)
		last = end
	}
	if cut == nil {
		return s.joined(), nil
	}
	return s.appendRange(out, last, s.total), cut
}

// segments addresses chunks of one byte stream by their offset in the
// stream. Every chunk but the last is at least as long as liftKey, so a
// match of the key spans at most two chunks.
type segments struct {
	chunks [][]byte
	starts []int // starts[i] is the stream offset of chunks[i]
	total  int
}

func newSegments(chunks [][]byte) segments {
	s := segments{chunks: chunks, starts: make([]int, len(chunks))}
	for i, c := range chunks {
		s.starts[i] = s.total
		s.total += len(c)
	}
	return s
}

// locate returns the chunk holding offset p (p < total) and p's place in it.
func (s segments) locate(p int) (int, int) {
	i := len(s.starts) - 1
	for i > 0 && s.starts[i] > p {
		i--
	}
	return i, p - s.starts[i]
}

// index returns the offset of the first pat (shorter than any chunk but
// the last) at or after from, or -1.
func (s segments) index(from int, pat []byte) int {
	if from >= s.total {
		return -1
	}
	i, at := s.locate(from)
	for ; i < len(s.chunks); i, at = i+1, 0 {
		c := s.chunks[i]
		if k := bytes.Index(c[at:], pat); k >= 0 {
			return s.starts[i] + at + k
		}
		if i+1 == len(s.chunks) {
			break
		}
		// A match across the boundary starts in c's last len(pat)-1 bytes.
		edge := max(at, len(c)-len(pat)+1)
		next := s.chunks[i+1]
		seam := append(append([]byte(nil), c[edge:]...), next[:min(len(pat)-1, len(next))]...)
		if k := bytes.Index(seam, pat); k >= 0 {
			return s.starts[i] + edge + k
		}
	}
	return -1
}

// indexByte returns the offset of the first b at or after from, or -1.
func (s segments) indexByte(from int, b byte) int {
	if from >= s.total {
		return -1
	}
	i, at := s.locate(from)
	for ; i < len(s.chunks); i, at = i+1, 0 {
		if k := bytes.IndexByte(s.chunks[i][at:], b); k >= 0 {
			return s.starts[i] + at + k
		}
	}
	return -1
}

// each calls f with the pieces of [from, to) in order.
func (s segments) each(from, to int, f func([]byte)) {
	if from >= to {
		return
	}
	i, at := s.locate(from)
	for n := to - from; n > 0; i, at = i+1, 0 {
		piece := s.chunks[i][at:min(len(s.chunks[i]), at+n)]
		f(piece)
		n -= len(piece)
	}
}

func (s segments) hasByte(from, to int, b byte) (found bool) {
	s.each(from, to, func(p []byte) { found = found || bytes.IndexByte(p, b) >= 0 })
	return found
}

// text returns [from, to) as a string: one copy, of exactly its size.
func (s segments) text(from, to int) string {
	var sb strings.Builder
	sb.Grow(to - from)
	s.each(from, to, func(p []byte) { sb.Write(p) })
	return sb.String()
}

func (s segments) appendRange(dst []byte, from, to int) []byte {
	s.each(from, to, func(p []byte) { dst = append(dst, p...) })
	return dst
}

// joined is the whole stream in one buffer (the chunk itself when there
// is only one).
func (s segments) joined() []byte {
	if len(s.chunks) == 1 {
		return s.chunks[0]
	}
	return s.appendRange(make([]byte, 0, s.total), 0, s.total)
}

// afterObjectStart reports whether the last byte before offset k other
// than JSON whitespace is '{' or ','.
func (s segments) afterObjectStart(k int) bool {
	for p := k - 1; p >= 0; p-- {
		i, at := s.locate(p)
		switch s.chunks[i][at] {
		case ' ', '\t', '\r', '\n':
			continue
		case '{', ',':
			return true
		}
		return false
	}
	return false
}
