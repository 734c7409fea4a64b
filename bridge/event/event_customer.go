package event

import (
	"mime"
	"net/mail"
	"regexp"
	"strings"

	"github.com/m365bridge/m365bridge/bridge/graph"
	"github.com/m365bridge/m365bridge/webhooks"
)

// customer is who a ticket is for and where that came from.
type customer struct {
	addr   webhooks.Address
	source string // "from", "sender", "reply_to", "return_path", "header:<Name>", "none"
	raw    string // the raw From (else Sender) header when source is "none"
}

// customerOf picks the ticket's customer the way a helpdesk's own mail
// channel does, and never fails: Graph's from, sender and replyTo, then the
// Return-Path header, then the From, Sender and Reply-To headers read
// leniently (an 8-bit display name makes Exchange give up on the whole
// header, the address inside <> is still good), then the first address in
// any other header that names a person rather than a recipient or a
// message. When nothing parses (a bare "MAILER-DAEMON (Mail Delivery
// System)", no From at all), the address is empty and source is "none":
// the event still goes out, flagged, with the raw header for the receiver.
//
// Graph documents from and sender as recipient objects (GDC
// resources/message.md) and says nothing of a missing or unparseable From
// header, so the bridge assumes either may be null (other Graph clients
// met null from in practice: EvotecIT/Mailozaurr#184 "support a null sender
// for Graph"), or carry a name with an empty address, and relies on
// neither.
func customerOf(msg *graph.Message, mailbox string) customer {
	for _, c := range []struct {
		r      *graph.Recipient
		source string
	}{{msg.From, "from"}, {msg.Sender, "sender"}} {
		if c.r != nil && strings.TrimSpace(c.r.EmailAddress.Address) != "" {
			return customer{addr: address(c.r), source: c.source}
		}
	}
	for i := range msg.ReplyTo {
		if strings.TrimSpace(msg.ReplyTo[i].EmailAddress.Address) != "" {
			return customer{addr: address(&msg.ReplyTo[i]), source: "reply_to"}
		}
	}
	if v, ok := msg.Header("Return-Path"); ok {
		if a, ok := lenientAddress(v); ok {
			return customer{addr: a, source: "return_path"}
		}
	}
	for _, name := range []string{"From", "Sender", "Reply-To"} {
		if v, ok := msg.Header(name); ok {
			if a, ok := lenientAddress(v); ok {
				return customer{addr: a, source: "header:" + name}
			}
		}
	}
	for _, h := range msg.InternetMessageHeaders {
		if notPersonHeader(h.Name) {
			continue
		}
		if a, ok := strictAddress(h.Value); ok && !strings.EqualFold(a.Address, mailbox) {
			return customer{addr: a, source: "header:" + h.Name}
		}
	}
	c := customer{source: "none"}
	for _, name := range []string{"From", "Sender"} {
		if v, ok := msg.Header(name); ok && strings.TrimSpace(v) != "" {
			c.raw = strings.TrimSpace(v)
			break
		}
	}
	switch {
	case msg.From != nil && strings.TrimSpace(msg.From.EmailAddress.Name) != "":
		c.addr.Name = strings.TrimSpace(msg.From.EmailAddress.Name)
	case msg.Sender != nil && strings.TrimSpace(msg.Sender.EmailAddress.Name) != "":
		c.addr.Name = strings.TrimSpace(msg.Sender.EmailAddress.Name)
	default:
		c.addr.Name = c.raw
	}
	return c
}

// notPersonHeader names the headers whose addresses are not a sender's:
// recipients (the mailbox itself, mostly), message ids and trace lines.
func notPersonHeader(name string) bool {
	n := strings.ToLower(name)
	switch n {
	case "to", "cc", "bcc", "delivered-to", "x-original-to", "envelope-to", "apparently-to", "resent-to",
		"resent-cc", "resent-bcc", "received", "in-reply-to", "references", "content-id", "list-id",
		"list-unsubscribe", "list-post", "list-help", "list-subscribe", "list-owner", "list-archive",
		"return-path", "from", "sender", "reply-to":
		return true
	}
	return strings.Contains(n, "message-id") || strings.HasPrefix(n, "x-ms-") || strings.HasPrefix(n, "arc-") ||
		strings.Contains(n, "dkim") || strings.Contains(n, "authentication-results")
}

// angleAddr finds <local@domain> inside a header value.
var angleAddr = regexp.MustCompile(`<([^<>@\s:"]+@[^<>@\s"]+\.[^<>@\s"]+)>`)

// bareAddr is a header value that is one addr-spec and nothing else.
var bareAddr = regexp.MustCompile(`^[^<>@\s:"(),;]+@[^<>@\s"(),;]+\.[^<>@\s"(),;]+$`)

// lenientAddress reads an address from a From-like header that may not
// parse: RFC 5322 first, then an address in angle brackets, then a bare
// addr-spec. "<>" (a bounce's Return-Path) is no address.
func lenientAddress(v string) (webhooks.Address, bool) {
	if a, ok := strictAddress(v); ok {
		return a, true
	}
	if m := angleAddr.FindStringSubmatchIndex(v); m != nil {
		name := strings.Trim(strings.TrimSpace(v[:m[0]]), `"`)
		return webhooks.Address{Name: decodeHeaderWords(name), Address: v[m[2]:m[3]]}, true
	}
	if s := strings.TrimSpace(v); bareAddr.MatchString(s) {
		return webhooks.Address{Address: s}, true
	}
	return webhooks.Address{}, false
}

var (
	wordDecoder  = new(mime.WordDecoder)
	headerParser = &mail.AddressParser{WordDecoder: wordDecoder}
)

// strictAddress parses v as an RFC 5322 address list and returns its first
// address.
func strictAddress(v string) (webhooks.Address, bool) {
	v = strings.TrimSpace(v)
	if v == "" || v == "<>" {
		return webhooks.Address{}, false
	}
	list, err := headerParser.ParseList(v)
	if err != nil || len(list) == 0 || !strings.Contains(list[0].Address, "@") {
		return webhooks.Address{}, false
	}
	return webhooks.Address{Name: list[0].Name, Address: list[0].Address}, true
}

// decodeHeaderWords decodes RFC 2047 words in a display name, leaving it
// as is when they do not decode.
func decodeHeaderWords(s string) string {
	if d, err := wordDecoder.DecodeHeader(s); err == nil {
		return d
	}
	return s
}
