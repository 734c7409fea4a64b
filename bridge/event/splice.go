package event

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	"github.com/m365bridge/m365bridge/webhooks"
)

// spliceMinBytes is the content size from which EncodeMail copies content
// into the envelope instead of letting encoding/json encode it.
const spliceMinBytes = 4 << 10

// EncodeMail returns the envelope of a mail event of type typ at now with
// data d: byte for byte EncodeEnvelope(webhooks.NewEvent(typ, now, d)),
// encoded once into a buffer of the right size. Attachment and raw MIME
// content (base64, which JSON carries verbatim) is encoded as a short
// placeholder, then copied into place, so its megabytes are neither scanned
// by encoding/json nor copied through its growing buffers. d is restored
// before EncodeMail returns.
func EncodeMail(typ string, now time.Time, d *webhooks.MailData) ([]byte, error) {
	var big []*string
	for i := range d.Article.Attachments {
		if s := &d.Article.Attachments[i].ContentBase64; spliceable(*s) {
			big = append(big, s)
		}
	}
	if rm := d.Article.RawMIME; rm != nil && spliceable(rm.ContentBase64) {
		big = append(big, &rm.ContentBase64)
	}
	if len(big) == 0 {
		ev, err := webhooks.NewEvent(typ, now, d)
		if err != nil {
			return nil, err
		}
		return EncodeEnvelope(ev)
	}
	// A random tag: no content of the mail can collide with it.
	var nonce [16]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return nil, fmt.Errorf("encode event: %w", err)
	}
	tag := "m365bridge-content-" + hex.EncodeToString(nonce[:]) + "-"
	saved := make([]string, len(big))
	total := 0
	for i, s := range big {
		saved[i] = *s
		*s = fmt.Sprintf("%s%06d", tag, i)
		total += len(saved[i]) - len(*s)
	}
	ev, err := webhooks.NewEvent(typ, now, d)
	for i, s := range big {
		*s = saved[i]
	}
	if err != nil {
		return nil, err
	}
	small, err := EncodeEnvelope(ev)
	if err != nil {
		return nil, err
	}
	type spot struct{ at, i int }
	spots := make([]spot, len(big))
	for i := range big {
		at := bytes.Index(small, fmt.Appendf(nil, "%s%06d", tag, i))
		if at < 0 {
			return nil, fmt.Errorf("encode event: content placeholder %d not found", i)
		}
		spots[i] = spot{at, i}
	}
	slices.SortFunc(spots, func(a, b spot) int { return a.at - b.at })
	out := make([]byte, 0, len(small)+total)
	last := 0
	for _, sp := range spots {
		out = append(out, small[last:sp.at]...)
		out = append(out, saved[sp.i]...)
		last = sp.at + len(tag) + 6
	}
	return append(out, small[last:]...), nil
}

// spliceable reports whether s is large enough to be worth splicing and
// is made of bytes encoding/json writes as they are (the base64 alphabet:
// no quote, backslash, control character or HTML-escaped <, >, &).
func spliceable(s string) bool {
	if len(s) < spliceMinBytes {
		return false
	}
	var ok [256]bool // a table: twice as fast as comparisons on megabytes
	for _, c := range "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=" {
		ok[c] = true
	}
	bad := false
	for i := 0; i < len(s); i++ {
		if !ok[s[i]] {
			bad = true
		}
	}
	return !bad
}
