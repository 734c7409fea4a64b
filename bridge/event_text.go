package bridge

import (
	"strings"

	"golang.org/x/net/html"
)

// blockTags end a line of text when they open or close.
var blockTags = map[string]bool{
	"p": true, "div": true, "tr": true, "ul": true, "ol": true, "table": true,
	"h1": true, "h2": true, "h3": true, "h4": true, "h5": true, "h6": true, "blockquote": true,
	"pre": true, "hr": true, "section": true, "article": true, "header": true, "footer": true,
	"address": true, "dl": true, "dt": true, "dd": true, "title": true,
}

// skipTags contribute no text at all.
var skipTags = map[string]bool{"script": true, "style": true, "head": true, "template": true, "noscript": true}

// HTMLToText derives a plain-text body from an HTML one: tags are dropped,
// entities decoded, <br> and block elements become line breaks, runs of
// spaces collapse (except inside <pre>), and at most one blank line is kept
// between paragraphs. It never fails: broken HTML gives its best reading.
func HTMLToText(s string) string {
	z := html.NewTokenizer(strings.NewReader(s))
	var b strings.Builder
	skip, pre := 0, 0
	newline := func() { b.WriteByte('\n') }
	for {
		tt := z.Next()
		switch tt {
		case html.ErrorToken:
			return tidyText(b.String())
		case html.TextToken:
			if skip > 0 {
				continue
			}
			text := string(z.Text())
			if pre > 0 {
				b.WriteString(text)
				continue
			}
			// Collapse every whitespace run to one space, and never put a
			// space at the start of a line or after another space.
			for i, word := range strings.FieldsFunc(" "+text+" ", isSpaceRune) {
				if i > 0 || startsWithSpace(text) {
					writeSpace(&b)
				}
				b.WriteString(word)
			}
			if endsWithSpaceRaw(text) {
				writeSpace(&b)
			}
		case html.StartTagToken, html.SelfClosingTagToken, html.EndTagToken:
			name, _ := z.TagName()
			tag := string(name)
			switch {
			case skipTags[tag]:
				if tt == html.StartTagToken {
					skip++
				} else if tt == html.EndTagToken && skip > 0 {
					skip--
				}
			case tag == "br":
				newline()
			case tag == "pre":
				if tt == html.StartTagToken {
					pre++
				} else if tt == html.EndTagToken && pre > 0 {
					pre--
				}
				newline()
			case tag == "td" || tag == "th":
				if tt == html.EndTagToken {
					b.WriteByte('\t')
				}
			case tag == "li" && tt == html.StartTagToken:
				newline()
				b.WriteString("- ")
			case tag == "img" && tt != html.EndTagToken:
				if alt := attr(z, "alt"); alt != "" {
					b.WriteString("[" + alt + "]")
				}
			case blockTags[tag]:
				newline()
			}
		}
	}
}

func attr(z *html.Tokenizer, key string) string {
	for {
		k, v, more := z.TagAttr()
		if string(k) == key {
			return string(v)
		}
		if !more {
			return ""
		}
	}
}

func startsWithSpace(s string) bool { return s != "" && isSpace(s[0]) }

func endsWithSpaceRaw(s string) bool { return s != "" && isSpace(s[len(s)-1]) }

func isSpaceRune(r rune) bool { return r < 0x80 && isSpace(byte(r)) }

// writeSpace adds one space unless the text is at a line start or already
// ends in a space.
func writeSpace(b *strings.Builder) {
	s := b.String()
	if s == "" || s[len(s)-1] == ' ' || s[len(s)-1] == '\n' {
		return
	}
	b.WriteByte(' ')
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' }

// tidyText trims trailing spaces on each line, drops leading and trailing
// blank lines and keeps at most one blank line in a row.
func tidyText(s string) string {
	lines := strings.Split(strings.ReplaceAll(s, "\u00a0", " "), "\n")
	out := make([]string, 0, len(lines))
	blank := 0
	for _, l := range lines {
		l = strings.TrimRight(l, " \t")
		if l == "" {
			blank++
			if blank > 1 || len(out) == 0 {
				continue
			}
		} else {
			blank = 0
		}
		out = append(out, l)
	}
	for len(out) > 0 && out[len(out)-1] == "" {
		out = out[:len(out)-1]
	}
	return strings.Join(out, "\n")
}
