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
	var b textWriter
	skip, pre := 0, 0
	var lists []int // per open list: -1 for <ul>, else the last number used
	type link struct {
		href  string
		start int
	}
	var links []link
	var paras []bool // per open <p>: is it Outlook's one-line MsoNormal
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
					writeSpace(&b.Builder)
				}
				b.WriteString(word)
			}
			if endsWithSpaceRaw(text) {
				writeSpace(&b.Builder)
			}
		case html.StartTagToken, html.SelfClosingTagToken, html.EndTagToken:
			name, hasAttr := z.TagName()
			tag := string(name)
			start, end := tt != html.EndTagToken, tt != html.StartTagToken
			switch {
			case skipTags[tag]:
				if tt == html.StartTagToken {
					skip++
				} else if tt == html.EndTagToken && skip > 0 {
					skip--
				}
			case skip > 0:
			case tag == "br":
				b.WriteByte('\n')
			case tag == "pre":
				b.endParagraph()
				if tt == html.StartTagToken {
					pre++
				} else if tt == html.EndTagToken && pre > 0 {
					pre--
				}
			case tag == "td" || tag == "th":
				if end {
					b.WriteByte('\t')
				}
			case tag == "ul" || tag == "ol":
				if start && tt == html.StartTagToken {
					n := -1
					if tag == "ol" {
						n = 0
						if v, err := strconv.Atoi(attr(z, hasAttr, "start")); err == nil {
							n = v - 1
						}
					}
					lists = append(lists, n)
				} else if tt == html.EndTagToken && len(lists) > 0 {
					lists = lists[:len(lists)-1]
				}
				if len(lists) == 0 {
					b.endParagraph()
				} else {
					b.endLine()
				}
			case tag == "li" && tt == html.StartTagToken:
				b.endLine()
				depth := max(len(lists), 1)
				b.WriteString(strings.Repeat("  ", depth-1))
				if len(lists) > 0 && lists[len(lists)-1] >= 0 {
					lists[len(lists)-1]++
					b.WriteString(strconv.Itoa(lists[len(lists)-1]) + ". ")
				} else {
					b.WriteString("- ")
				}
			case tag == "a":
				if tt == html.StartTagToken {
					links = append(links, link{href: strings.TrimSpace(attr(z, hasAttr, "href")), start: b.Len()})
				} else if tt == html.EndTagToken && len(links) > 0 {
					l := links[len(links)-1]
					links = links[:len(links)-1]
					text := strings.TrimSpace(b.String()[min(l.start, b.Len()):])
					if showHref(l.href, text) {
						writeSpace(&b.Builder)
						b.WriteString("<" + l.href + ">")
					}
				}
			case tag == "img" && start:
				if alt := attr(z, hasAttr, "alt"); alt != "" {
					b.WriteString("[" + alt + "]")
				}
			case tag == "p":
				// Outlook's <p class=MsoNormal> is one line; others are
				// paragraphs. The end tag ends what the start tag opened.
				if tt == html.StartTagToken {
					mso := strings.Contains(strings.ToLower(attr(z, hasAttr, "class")), "msonormal")
					paras = append(paras, mso)
					if mso {
						b.endLine()
						break
					}
				} else if tt == html.EndTagToken && len(paras) > 0 {
					mso := paras[len(paras)-1]
					paras = paras[:len(paras)-1]
					if mso {
						b.endLine()
						break
					}
				}
				b.endParagraph()
			case paraTags[tag]:
				b.endParagraph()
			case lineTags[tag]:
				b.endLine()
			}
		}
	}
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
