package bridge

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/bridge/send"
	"github.com/m365bridge/m365bridge/webhooks"
)

// capturedSend is a signed send request as it went over the wire: what an
// attacker who saw it can send again, under any Idempotency-Key (the
// header is not signed) and to any channel path (nor is the URL).
type capturedSend struct {
	header http.Header
	body   []byte
}

func (rig *sendRig) capture(body any) capturedSend {
	rig.t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		rig.t.Fatal(err)
	}
	req := signed(rig.t, http.MethodPost, "http://x/", rig.sendSecret, time.Now(), b)
	return capturedSend{header: req.Header, body: b}
}

// post sends the captured request to channel's endpoint with key.
func (rig *sendRig) post(c capturedSend, channel, key string) apiAnswer {
	rig.t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+rig.d.PublicAddr()+"/v1/channels/"+channel+"/messages", bytes.NewReader(c.body))
	if err != nil {
		rig.t.Fatal(err)
	}
	req.Header = c.header.Clone()
	req.Header.Set(send.IdempotencyKeyHeader, key)
	return do(rig.t, req)
}

// TestSendReplayUnderNewKeySendsNothing (issue 12 item 2): real requests
// and replays of their captures under new Idempotency-Keys, within the
// signature's 5 minutes and across a daemon restart, send each mail once;
// every replay answers as the original, and a replay to another channel
// is refused.
func TestSendReplayUnderNewKeySendsNothing(t *testing.T) {
	rig := newSendRig(t, nil)
	md := rig.imported("replayed invoice")
	first := rig.capture(map[string]any{"to": []any{"carol@example.com"}, "text": "Paid.", "reply_to_event_id": md.ID})
	second := rig.capture(map[string]any{"to": []any{"carol@example.com"}, "text": "Receipt attached.", "reply_to_event_id": md.ID})

	a1 := rig.post(first, "support", "article-1")
	a2 := rig.post(second, "support", "article-2")
	if a1.status != http.StatusAccepted || a2.status != http.StatusAccepted || a1.send.ID == a2.send.ID {
		t.Fatalf("real requests: %d %s / %d %s, want two 202 with two ids", a1.status, a1.body, a2.status, a2.body)
	}
	replays := []struct {
		c    capturedSend
		key  string
		want apiAnswer
	}{{first, "evil-1", a1}, {first, "evil-2", a1}, {second, "evil-3", a2}}
	for _, r := range replays {
		got := rig.post(r.c, "support", r.key)
		if got.status != http.StatusAccepted || got.send.ID != r.want.send.ID || got.send.IdempotencyKey != r.want.send.IdempotencyKey ||
			got.header.Get("Idempotent-Replayed") != "true" {
			t.Errorf("replay under %s: %d %s, want 202 for the original %s (key %s), marked Idempotent-Replayed",
				r.key, got.status, got.body, r.want.send.ID, r.want.send.IdempotencyKey)
		}
	}
	// The helpdesk retries the first request under its own key with a new
	// signature (a new webhook-id): that retry's capture is just as good
	// to an attacker.
	retry := capturedSend{body: first.body, header: rig.capture(map[string]any{}).header}
	sig, err := webhooks.Sign(rig.sendSecret, retry.header.Get(webhooks.HeaderID), time.Now(), first.body)
	if err != nil {
		t.Fatal(err)
	}
	retry.header.Set(webhooks.HeaderSignature, sig)
	retry.header.Set(webhooks.HeaderTimestamp, fmt.Sprint(time.Now().Unix()))
	if got := rig.post(retry, "support", "article-1"); got.status != http.StatusAccepted || got.send.ID != a1.send.ID {
		t.Fatalf("the helpdesk's retry: %d %s, want 202 for %s", got.status, got.body, a1.send.ID)
	}
	if got := rig.post(retry, "support", "evil-7"); got.status != http.StatusAccepted || got.send.ID != a1.send.ID {
		t.Errorf("the retry's capture under evil-7: %d %s, want 202 for the original %s", got.status, got.body, a1.send.ID)
	}
	rig.waitFinal("support", a1.send.ID)
	rig.waitFinal("support", a2.send.ID)

	// The ids are remembered in the store, not in memory: a restart
	// forgets nothing. Once the rows are final nothing changes them, so a
	// replay's answer must be byte for byte the original key's answer.
	rig.stop()
	rig.start(sendRigOptions())
	for _, r := range []struct {
		c        capturedSend
		key, own string
	}{{first, "evil-4", "article-1"}, {second, "evil-5", "article-2"}} {
		replay := rig.post(r.c, "support", r.key)
		original := rig.post(r.c, "support", r.own)
		if replay.status != original.status || !bytes.Equal(replay.body, original.body) || replay.header.Get("Location") != original.header.Get("Location") {
			t.Errorf("replay under %s after restart: %d %s (Location %s); the original answers %d %s (Location %s)", r.key,
				replay.status, replay.body, replay.header.Get("Location"), original.status, original.body, original.header.Get("Location"))
		}
	}

	// The URL is not signed either: a plain send's capture sent to another
	// channel with the same send secret is refused, not sent from another
	// mailbox.
	if page := rig.connect("sales", "sales@contoso.com"); !strings.HasPrefix(page, "200") {
		t.Fatalf("sales consent page: %.300s", page)
	}
	plain := rig.capture(map[string]any{"to": []any{"dave@example.com"}, "text": "Your order shipped."})
	a3 := rig.post(plain, "support", "article-3")
	if a3.status != http.StatusAccepted {
		t.Fatalf("plain send: %d %s", a3.status, a3.body)
	}
	if got := rig.post(plain, "sales", "evil-6"); got.status != http.StatusConflict || !strings.Contains(got.err, "channel support") {
		t.Errorf("replay to channel sales: %d %s, want 409 naming channel support", got.status, got.body)
	}
	rig.waitFinal("support", a3.send.ID)
	if n := len(rig.sim.Sim.Messages("sales@contoso.com", "Sent Items")); n != 0 {
		t.Errorf("sales's Sent Items hold %d messages, want 0", n)
	}

	for _, a := range []apiAnswer{a1, a2, a3} {
		if n := len(rig.sentWithID("support@contoso.com", a.send.ID)); n != 1 {
			t.Errorf("%d copies of %s sent, want 1", n, a.send.ID)
		}
	}
	if n := len(rig.sim.Sim.Messages("support@contoso.com", "Sent Items")); n != 3 {
		t.Errorf("Sent Items hold %d messages after 3 requests and 7 replays, want 3", n)
	}
	var sent int
	for _, ev := range rig.snapshot() {
		if ev.Type == webhooks.TypeMailSent {
			sent++
		}
	}
	if sent > 3 {
		t.Errorf("%d mail.sent events, want at most 3", sent)
	}
}
