package m365sim

import (
	"strings"
	"testing"
)

// TestParseMIMELenient: each kind of broken real-world MIME that Exchange
// accepts and converts is accepted and converted (issue 15, item 7).
func TestParseMIMELenient(t *testing.T) {
	sjis := "\x82\xb1\x82\xf1\x82\xc9\x82\xbf\x82\xcd" // こんにちは in Shift_JIS
	jis := "\x1b$B$3$s$K$A$O\x1b(B"                    // こんにちは in ISO-2022-JP
	cases := []struct {
		name, raw           string
		subject, text, html string
		from                string
		attachments         []string // names
	}{
		{name: "multipart without closing boundary",
			raw:  "From: a@example.com\r\nSubject: s\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhello\r\nworld\r\n",
			from: "a@example.com", subject: "s", text: "hello\r\nworld\r\n"},
		{name: "Apple Mail: text, image, text",
			raw:  "From: a@example.com\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nfirst\r\n--b\r\nContent-Type: image/png\r\nContent-Disposition: inline; filename=x.png\r\n\r\nPNG\r\n--b\r\nContent-Type: text/plain\r\n\r\nsecond\r\n--b--\r\n",
			from: "a@example.com", text: "first\r\nsecond", attachments: []string{"x.png"}},
		{name: "header continuation without whitespace",
			raw:  "From: a@example.com\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nbody\r\n--b\r\nContent-Type: application/zip;\r\nname=\"a.zip\"\r\nContent-Disposition: attachment; filename=\"a.zip\"\r\n\r\nzip\r\n--b--\r\n",
			from: "a@example.com", text: "body", attachments: []string{"a.zip"}},
		{name: "message starting with a non-header line",
			raw: "// Not an RFC-822 Document\r\nstill body\r\n", text: "// Not an RFC-822 Document\r\nstill body\r\n"},
		{name: "mbox envelope line and obsolete header syntax",
			raw:  "From a@example.com Mon Jan  1 00:00:00 2024\r\nFrom  : a@example.com\r\nSubject  : hi\r\n\r\nbody\r\n",
			from: "a@example.com", subject: "hi", text: "body\r\n"},
		{name: "undeclared 8-bit Windows-1252",
			raw: "From: a@example.com\r\nSubject: Caf\xe9\r\n\r\nCaf\xe9 cr\xe8me \x80 5\r\n", from: "a@example.com", subject: "Café", text: "Café crème € 5\r\n"},
		{name: "undeclared 8-bit UTF-8",
			raw: "From: a@example.com\r\n\r\nGrüße\r\n", from: "a@example.com", text: "Grüße\r\n"},
		{name: "ISO-2022-JP labelled us-ascii",
			raw: "From: a@example.com\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n" + jis + "\r\n", from: "a@example.com", text: "こんにちは\r\n"},
		{name: "Shift_JIS labelled ISO-2022-JP",
			raw: "From: a@example.com\r\nContent-Type: text/plain; charset=iso-2022-jp\r\n\r\n" + sjis + "\r\n", from: "a@example.com", text: "こんにちは\r\n"},
		{name: "undeclared Shift_JIS",
			raw: "From: a@example.com\r\n\r\n" + sjis + "\r\n", from: "a@example.com", text: "こんにちは\r\n"},
		{name: "encoded word with extra padding",
			raw: "From: =?utf-8?B?WsO2ZQ===?= <a@example.com>\r\nSubject: =?utf-8?B?R3LDvMOfZQ===?=\r\n\r\nx\r\n", from: "a@example.com", subject: "Grüße", text: "x\r\n"},
		{name: "encoded word in an unknown charset",
			raw: "Subject: =?x-unknown?Q?caf=C3=A9?=\r\n\r\nx\r\n", subject: "café", text: "x\r\n"},
		{name: "RFC 2231 file name and an 8-bit file name",
			raw:         "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename*=iso-8859-1''ci%EBle.pdf\r\n\r\n%PDF\r\n--b\r\nContent-Type: application/msword; name=\"\xe7\xae\xa1\xe7\x90\x86.doc\"\r\n\r\ndoc\r\n--b--\r\n",
			attachments: []string{"ciële.pdf", "管理.doc"}},
		{name: "invalid Content-Type is text/plain",
			raw: "Content-Type: <html>\r\n\r\nplain after all\r\n", text: "plain after all\r\n"},
		{name: "comments inside addresses (RFC 5322 A.5)",
			raw: "From: Pete(A wonderful \\) chap) <pete(his account)@silly.test(his host)>\r\n\r\nx\r\n", from: "pete@silly.test", text: "x"},
		{name: "multipart without boundary parameter",
			raw: "Content-Type: multipart/mixed\r\n\r\n--xyz\r\nContent-Type: text/plain\r\n\r\ninside\r\n--xyz--\r\n", text: "inside"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := parseMIME([]byte(c.raw))
			if err != nil {
				t.Fatalf("parseMIME: %v (Exchange accepts this message)", err)
			}
			if m.Subject != c.subject {
				t.Errorf("subject %q, want %q", m.Subject, c.subject)
			}
			from := ""
			if m.From != nil {
				from = m.From.Address
			}
			if from != c.from {
				t.Errorf("from %q, want %q", from, c.from)
			}
			if _, text := m.bodies(); strings.TrimRight(text, "\r\n") != strings.TrimRight(c.text, "\r\n") {
				t.Errorf("text %q, want %q", text, c.text)
			}
			var names []string
			for _, a := range m.Attachments {
				names = append(names, a.Name)
			}
			if strings.Join(names, "|") != strings.Join(c.attachments, "|") {
				t.Errorf("attachments %q, want %q", names, c.attachments)
			}
			if strings.Contains(m.Subject+m.text, "\uFFFD") {
				t.Errorf("U+FFFD in %q / %q", m.Subject, m.text)
			}
		})
	}
}

// TestParseMIMEEmpty: the one message the simulator refuses is an empty
// one, with an error that says so.
func TestParseMIMEEmpty(t *testing.T) {
	if _, err := parseMIME([]byte(" \r\n")); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("parseMIME(blank) = %v, want an error saying it is empty", err)
	}
}
