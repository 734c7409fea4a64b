package event

import (
	"strconv"
	"strings"

	"github.com/m365bridge/m365bridge/bridge/graph"
	"golang.org/x/net/html"
)

// lineTags end a line when they open or close; paraTags also leave a
// blank line around them (Outlook's <p class=MsoNormal> is one line, not
// a paragraph: its margins are zero).
var lineTags = map[string]bool{
	"div": true, "tr": true, "dt": true, "dd": true, "title": true, "section": true, "article": true,
	"header": true, "footer": true, "address": true, "dl": true, "li": true, "center": true,
}

var paraTags = map[string]bool{
	"p": true, "ul": true, "ol": true, "table": true, "h1": true, "h2": true, "h3": true, "h4": true,
	"h5": true, "h6": true, "blockquote": true, "pre": true, "hr": true,
}

// skipTags contribute no text at all.
var skipTags = map[string]bool{"script": true, "style": true, "head": true, "template": true, "noscript": true}

// textWriter builds the plain text and knows where its line stands.
type textWriter struct{ strings.Builder }

func (w *textWriter) last(n int) string {
	s := w.String()
	return s[max(0, len(s)-n):]
}

// endLine starts a new line unless the text is at a line start.
func (w *textWriter) endLine() {
	if w.Len() > 0 && w.last(1) != "\n" {
		w.WriteByte('\n')
	}
}

// endParagraph leaves one blank line unless there is one already.
func (w *textWriter) endParagraph() {
	w.endLine()
	if w.Len() > 0 && w.last(2) != "\n\n" {
		w.WriteByte('\n')
	}
}

// htmlToText derives a faithful plain-text body from an HTML one, as a
// mail client shows it: tags are dropped and entities decoded; <br> and
// line-level blocks (div, li, tr) end a line, paragraphs, headings, lists
// and quotes are set apart by a blank line (Outlook's zero-margin
// <p class=MsoNormal> is one line); list items start with "- " or their
// number, indented by nesting; a link whose text is not its target is
// followed by the target in <>; runs of spaces collapse except inside
// <pre>; at most one blank line is kept in a row. It never fails: broken
// HTML gives its best reading.
func htmlToText(s string) string {
	z := html.NewTokenizer(strings.NewReader(s))
	var c htmlConverter
	for {
		switch tt := z.Next(); tt {
		case html.ErrorToken:
			return tidyText(c.b.String())
		case html.TextToken:
			c.text(z.Text())
		case html.StartTagToken, html.SelfClosingTagToken, html.EndTagToken:
			c.tag(z, tt)
		}
	}
}

// htmlConverter is htmlToText's state between tokens.
type htmlConverter struct {
	b         textWriter
	skip, pre int
	lists     []int // per open list: -1 for <ul>, else the last number used
	links     []htmlLink
	paras     []bool // per open <p>: is it Outlook's one-line MsoNormal
}

// htmlLink is an open <a>: its target and where its text starts.
type htmlLink struct {
	href  string
	start int
}

// text writes a text token (the tokenizer's bytes: written, never kept).
func (c *htmlConverter) text(text []byte) {
	if c.skip > 0 {
		return
	}
	if c.pre > 0 {
		c.b.Write(text)
		return
	}
	// Collapse every whitespace run to one space, and never put a
	// space at the start of a line or after another space.
	lead := len(text) > 0 && isSpace(text[0])
	for i, words := 0, 0; i < len(text); words++ {
		for i < len(text) && isSpace(text[i]) {
			i++
		}
		if i == len(text) {
			break
		}
		start := i
		for i < len(text) && !isSpace(text[i]) {
			i++
		}
		if words > 0 || lead {
			writeSpace(&c.b.Builder)
		}
		c.b.Write(text[start:i])
	}
	if len(text) > 0 && isSpace(text[len(text)-1]) {
		writeSpace(&c.b.Builder)
	}
}

// tag applies a start, end or self-closing tag.
func (c *htmlConverter) tag(z *html.Tokenizer, tt html.TokenType) {
	name, hasAttr := z.TagName()
	tag := string(name)
	start, end := tt != html.EndTagToken, tt != html.StartTagToken
	switch {
	case skipTags[tag]:
		if tt == html.StartTagToken {
			c.skip++
		} else if tt == html.EndTagToken && c.skip > 0 {
			c.skip--
		}
	case c.skip > 0:
	case tag == "br":
		c.b.WriteByte('\n')
	case tag == "pre":
		c.b.endParagraph()
		if tt == html.StartTagToken {
			c.pre++
		} else if tt == html.EndTagToken && c.pre > 0 {
			c.pre--
		}
	case tag == "td" || tag == "th":
		if end {
			c.b.WriteByte('\t')
		}
	case tag == "ul" || tag == "ol":
		c.list(z, tt, tag, hasAttr, start)
	case tag == "li" && tt == html.StartTagToken:
		c.b.endLine()
		depth := max(len(c.lists), 1)
		c.b.WriteString(strings.Repeat("  ", depth-1))
		if len(c.lists) > 0 && c.lists[len(c.lists)-1] >= 0 {
			c.lists[len(c.lists)-1]++
			c.b.WriteString(strconv.Itoa(c.lists[len(c.lists)-1]) + ". ")
		} else {
			c.b.WriteString("- ")
		}
	case tag == "a":
		c.anchor(z, tt, hasAttr)
	case tag == "img" && start:
		if alt := attr(z, hasAttr, "alt"); alt != "" {
			c.b.WriteString("[" + alt + "]")
		}
	case tag == "p":
		c.para(z, tt, hasAttr)
	case paraTags[tag]:
		c.b.endParagraph()
	case lineTags[tag]:
		c.b.endLine()
	}
}

// list opens or closes a <ul> or <ol>.
func (c *htmlConverter) list(z *html.Tokenizer, tt html.TokenType, tag string, hasAttr, start bool) {
	if start && tt == html.StartTagToken {
		n := -1
		if tag == "ol" {
			n = 0
			if v, err := strconv.Atoi(attr(z, hasAttr, "start")); err == nil {
				n = v - 1
			}
		}
		c.lists = append(c.lists, n)
	} else if tt == html.EndTagToken && len(c.lists) > 0 {
		c.lists = c.lists[:len(c.lists)-1]
	}
	if len(c.lists) == 0 {
		c.b.endParagraph()
	} else {
		c.b.endLine()
	}
}

// anchor opens an <a>, or closes one and writes its target when it adds
// something to the text.
func (c *htmlConverter) anchor(z *html.Tokenizer, tt html.TokenType, hasAttr bool) {
	if tt == html.StartTagToken {
		c.links = append(c.links, htmlLink{href: strings.TrimSpace(attr(z, hasAttr, "href")), start: c.b.Len()})
	} else if tt == html.EndTagToken && len(c.links) > 0 {
		l := c.links[len(c.links)-1]
		c.links = c.links[:len(c.links)-1]
		text := strings.TrimSpace(c.b.String()[min(l.start, c.b.Len()):])
		if showHref(l.href, text) {
			writeSpace(&c.b.Builder)
			c.b.WriteString("<" + l.href + ">")
		}
	}
}

// para opens or closes a <p>.
func (c *htmlConverter) para(z *html.Tokenizer, tt html.TokenType, hasAttr bool) {
	// Outlook's <p class=MsoNormal> is one line; others are
	// paragraphs. The end tag ends what the start tag opened.
	if tt == html.StartTagToken {
		mso := strings.Contains(strings.ToLower(attr(z, hasAttr, "class")), "msonormal")
		c.paras = append(c.paras, mso)
		if mso {
			c.b.endLine()
			return
		}
	} else if tt == html.EndTagToken && len(c.paras) > 0 {
		mso := c.paras[len(c.paras)-1]
		c.paras = c.paras[:len(c.paras)-1]
		if mso {
			c.b.endLine()
			return
		}
	}
	c.b.endParagraph()
}

// showHref reports whether a link's target adds something to its text:
// not for anchors, scripts and inline images, nor when the text already is
// the target (or the mailto address).
func showHref(href, text string) bool {
	h := strings.ToLower(href)
	if href == "" || strings.HasPrefix(h, "#") || strings.HasPrefix(h, "javascript:") || strings.HasPrefix(h, "cid:") {
		return false
	}
	t := strings.ToLower(strings.TrimSpace(text))
	bare := strings.TrimPrefix(strings.TrimPrefix(h, "mailto:"), "tel:")
	return t != h && t != bare && strings.TrimSuffix(t, "/") != strings.TrimSuffix(bare, "/") &&
		strings.TrimSuffix(t, "/") != strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(h, "https://"), "http://"), "/")
}

func attr(z *html.Tokenizer, hasAttr bool, key string) string {
	for hasAttr {
		k, v, more := z.TagAttr()
		if string(k) == key {
			return string(v)
		}
		hasAttr = more
	}
	return ""
}

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

// WrittenAsText reports whether a message was written as plain text, from
// what the delta already carries (no request): its top-level Content-Type
// header is text/plain, or Exchange's HTML rendition is the one it makes of
// a text body, the text inside <div class="PlainText"> (observed Exchange
// output, not documented; the simulator renders text mail the same way).
// That covers text mail with attachments and text bounces, whose top-level
// type is multipart. A report whose readable part is HTML (Exchange's own
// NDRs) stays HTML.
func WrittenAsText(m *graph.Message) bool {
	if m.Body == nil {
		return false
	}
	if strings.EqualFold(m.Body.ContentType, "text") {
		return false // already the text rendition: nothing to fetch
	}
	if ct, ok := m.Header("Content-Type"); ok && mediaType(ct) == "text/plain" {
		return true
	}
	return strings.Contains(m.Body.Content, `class="PlainText"`)
}
