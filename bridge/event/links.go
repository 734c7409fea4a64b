package event

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// AttachmentLinkPath is where the public listener serves attachment links.
const AttachmentLinkPath = "/v1/attachments"

// Errors of a link that is refused before Graph is asked.
var (
	// ErrLinkInvalid: a parameter is missing, or the signature does not
	// match (the link was altered, or signed with another state dir's key).
	ErrLinkInvalid = errors.New("attachment link invalid")
	// ErrLinkExpired: the signature is good, but expires is past.
	ErrLinkExpired = errors.New("attachment link expired")
)

// AttachmentLinks signs and checks attachment links (DESIGN.md invariant
// 8: bytes above the inline limit are reachable through a signed,
// expiring link). A link names the channel, the message's immutable Graph
// id, the attachment id, the file name to serve it under and its expiry,
// all covered by an HMAC-SHA256 under the state dir's link key
// (store.LoadLinkKey), so it survives restarts and needs no database row.
type AttachmentLinks struct {
	key  []byte
	base string // public_url without a trailing slash
	now  func() time.Time
}

// NewAttachmentLinks makes links under publicURL, signed with key (32
// bytes), checked against now.
func NewAttachmentLinks(key []byte, publicURL string, now func() time.Time) *AttachmentLinks {
	return &AttachmentLinks{key: key, base: strings.TrimRight(publicURL, "/"), now: now}
}

// LinkTarget is what a link points at.
type LinkTarget struct {
	Channel, Message, Attachment, Name string
	Expires                            time.Time
}

// For is a channel's event.Source.Link: links that expire ttl after built,
// the time the event is built.
func (l *AttachmentLinks) For(channel string, ttl time.Duration, built time.Time) LinkFunc {
	return func(messageID, attachmentID, filename string) (string, time.Time) {
		t := LinkTarget{Channel: channel, Message: messageID, Attachment: attachmentID, Name: filename,
			Expires: built.Add(ttl).UTC().Truncate(time.Second)}
		return l.url(t), t.Expires
	}
}

func (l *AttachmentLinks) url(t LinkTarget) string {
	q := url.Values{}
	q.Set("channel", t.Channel)
	q.Set("message", t.Message)
	q.Set("attachment", t.Attachment)
	q.Set("name", t.Name)
	q.Set("expires", strconv.FormatInt(t.Expires.Unix(), 10))
	q.Set("sig", base64.RawURLEncoding.EncodeToString(l.sign(t)))
	return l.base + AttachmentLinkPath + "?" + q.Encode()
}

// sign is the HMAC of the link's fields, each length-prefixed so that no
// two different links share an input.
func (l *AttachmentLinks) sign(t LinkTarget) []byte {
	mac := hmac.New(sha256.New, l.key)
	var n [binary.MaxVarintLen64]byte
	for _, f := range []string{"m365bridge attachment link v1", t.Channel, t.Message, t.Attachment, t.Name, strconv.FormatInt(t.Expires.Unix(), 10)} {
		mac.Write(n[:binary.PutUvarint(n[:], uint64(len(f)))])
		mac.Write([]byte(f))
	}
	return mac.Sum(nil)
}

// Check verifies a link's query: the signature in constant time first,
// then the expiry against the daemon's clock. The errors wrap
// ErrLinkInvalid or ErrLinkExpired and say what is wrong.
func (l *AttachmentLinks) Check(q url.Values) (LinkTarget, error) {
	for _, k := range []string{"channel", "message", "attachment", "expires", "sig"} {
		if q.Get(k) == "" {
			return LinkTarget{}, fmt.Errorf("%w: parameter %q is missing; use the url of the event's attachment as is", ErrLinkInvalid, k)
		}
	}
	exp, err := strconv.ParseInt(q.Get("expires"), 10, 64)
	if err != nil {
		return LinkTarget{}, fmt.Errorf("%w: expires is not a Unix time; use the url of the event's attachment as is", ErrLinkInvalid)
	}
	t := LinkTarget{Channel: q.Get("channel"), Message: q.Get("message"), Attachment: q.Get("attachment"),
		Name: q.Get("name"), Expires: time.Unix(exp, 0).UTC()}
	sig, err := base64.RawURLEncoding.DecodeString(q.Get("sig"))
	if err != nil || !hmac.Equal(sig, l.sign(t)) {
		return LinkTarget{}, fmt.Errorf("%w: the signature does not match (the link was altered, or another bridge signed it); use the url of the event's attachment as is", ErrLinkInvalid)
	}
	if !l.now().Before(t.Expires) {
		return LinkTarget{}, fmt.Errorf("%w at %s: a link works for its channel's attachment_link_ttl after the event was built; fetch attachments when the event arrives", ErrLinkExpired, t.Expires.Format(time.RFC3339))
	}
	return t, nil
}
