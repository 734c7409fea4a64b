package event

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/m365bridge/m365bridge/config"
	"github.com/m365bridge/m365bridge/webhooks"
)

// Tenant is the tenant that keys event ids: the configured tenant,
// lower-cased. It is a value the operator chose and that does not depend on
// when a channel was connected, so ids stay the same across restarts
// (DESIGN.md invariant 3).
func Tenant(cfg *config.Config) string { return strings.ToLower(cfg.MS.Tenant) }

// EncodeEnvelope returns exactly json.Marshal(ev), without re-validating
// and compacting ev.Data, which webhooks.NewEvent produced with
// json.Marshal: for a message with megabytes of attachments that second
// pass costs more than building the event.
func EncodeEnvelope(ev webhooks.Event) ([]byte, error) {
	typ, err := json.Marshal(ev.Type)
	if err != nil {
		return nil, err
	}
	ts, err := ev.Timestamp.MarshalJSON()
	if err != nil {
		return nil, err
	}
	data := []byte(ev.Data)
	if len(data) == 0 {
		data = []byte("null")
	}
	buf := make([]byte, 0, len(data)+len(typ)+len(ts)+32)
	buf = append(buf, `{"type":`...)
	buf = append(buf, typ...)
	buf = append(buf, `,"timestamp":`...)
	buf = append(buf, ts...)
	buf = append(buf, `,"data":`...)
	buf = append(buf, data...)
	return append(buf, '}'), nil
}

// Fit makes an event that is over limit fit by leaving content out
// instead of rejecting the mail: first the raw MIME (it repeats everything
// else), then attachments' content, largest first, each listed with
// included: false and the reason, until the event fits. It returns the
// encoded envelope, which may still be over limit (huge bodies or
// headers); the caller rejects it then.
func Fit(typ string, now time.Time, d *webhooks.MailData, limit int64) ([]byte, error) {
	encode := func() ([]byte, error) { return EncodeMail(typ, now, d) }
	reason := fmt.Sprintf("left out: the event would exceed the %d byte limit", limit)
	if rm := d.Article.RawMIME; rm != nil && rm.Included {
		rm.Included, rm.ContentBase64, rm.Reason = false, "", reason
		if body, err := encode(); err != nil || int64(len(body)) <= limit {
			return body, err
		}
	}
	order := make([]int, 0, len(d.Article.Attachments))
	for i, a := range d.Article.Attachments {
		if a.Included {
			order = append(order, i)
		}
	}
	sort.SliceStable(order, func(x, y int) bool {
		return len(d.Article.Attachments[order[x]].ContentBase64) > len(d.Article.Attachments[order[y]].ContentBase64)
	})
	for _, i := range order {
		a := &d.Article.Attachments[i]
		a.Included, a.ContentBase64, a.Reason = false, "", reason
		if a.URL != "" {
			a.Reason += ": fetch it from url"
		}
		if body, err := encode(); err != nil || int64(len(body)) <= limit {
			return body, err
		}
	}
	return encode()
}
