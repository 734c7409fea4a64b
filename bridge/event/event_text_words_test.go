package event

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// wordsByFields is how htmlConverter.text collapsed whitespace before it
// worked on the tokenizer's bytes without allocating: the reference the
// byte loop must match.
func wordsByFields(b *strings.Builder, text string) {
	isSpaceRune := func(r rune) bool { return r < 0x80 && isSpace(byte(r)) }
	for i, word := range strings.FieldsFunc(" "+text+" ", isSpaceRune) {
		if i > 0 || (text != "" && isSpace(text[0])) {
			writeSpace(b)
		}
		b.WriteString(word)
	}
	if text != "" && isSpace(text[len(text)-1]) {
		writeSpace(b)
	}
}

// TestTextTokensCollapseAsBefore: for random runs of ASCII whitespace,
// words, non-ASCII spaces (no-break, em space) and invalid UTF-8, written
// after random text, htmlConverter.text writes what the strings.FieldsFunc
// version wrote.
func TestTextTokensCollapseAsBefore(t *testing.T) {
	parts := []string{" ", "\t", "\n", "\r", "\f", "  ", "word", "x", "\u00a0", "\u2003", "\xff", "\xe2\x80", "é", ""}
	rng := rand.New(rand.NewPCG(17, 2026))
	for range 20000 {
		var before, text strings.Builder
		for range rng.IntN(4) {
			before.WriteString(parts[rng.IntN(len(parts))])
		}
		for range rng.IntN(8) {
			text.WriteString(parts[rng.IntN(len(parts))])
		}
		var c htmlConverter
		c.b.WriteString(before.String())
		c.text([]byte(text.String()))
		var want strings.Builder
		want.WriteString(before.String())
		wordsByFields(&want, text.String())
		if got := c.b.String(); got != want.String() {
			t.Fatalf("after %q, text(%q) wrote %q, want %q", before.String(), text.String(), got, want.String())
		}
	}
}
