package bridge

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/bridge/send"
	"github.com/m365bridge/m365bridge/webhooks"
)

// Acceptance 1: a reply to an imported message leaves from the shared
// mailbox, lands in its Sent Items and threads; a user mailbox sends as the
// user.
func TestSendReplyThroughSharedMailbox(t *testing.T) {
	rig := newSendRig(t, nil)
	md := rig.imported("printer broken")

	a := rig.send("support", "article-1", map[string]any{
		"to": []any{"Carol Customer <carol@example.com>"}, "text": "Turn it off and on again.",
		"reply_to_event_id": md.ID,
	})
	if a.status != http.StatusAccepted || a.send.ID == "" || a.send.Status != "queued" {
		t.Fatalf("POST: %d %s, want 202 with an id, queued", a.status, a.body)
	}
	st := rig.waitFinal("support", a.send.ID)
	if st.Status != "sent" || st.Attempts != 1 || st.InternetMessageID == "" {
		t.Fatalf("status %+v, want sent after 1 attempt with a Message-ID", st)
	}
	sent := rig.sentWithID("support@contoso.com", a.send.ID)
	if len(sent) != 1 {
		t.Fatalf("support Sent Items hold %d copies of the reply, want 1", len(sent))
	}
	refs := headerOf(sent[0], "References")
	for _, tt := range []struct{ name, got, want string }{
		{"sender", strings.ToLower(sent[0].From), "support@contoso.com"},
		{"In-Reply-To", headerOf(sent[0], "In-Reply-To"), md.Article.InternetMessageID},
		{"References", refs, "<thread-start@example.com> " + md.Article.InternetMessageID},
		{"subject", sent[0].Subject, "RE: printer broken"},
		{"Message-ID", sent[0].InternetMessageID, st.InternetMessageID},
	} {
		if tt.got != tt.want {
			t.Errorf("%s = %q, want %q", tt.name, tt.got, tt.want)
		}
	}
	if agent := rig.sim.Sim.Messages("agent@contoso.com", "Sent Items"); len(agent) != 0 {
		t.Errorf("the agent's own Sent Items hold %d messages; the copy belongs to the shared mailbox", len(agent))
	}
	typ, sd := rig.sendEvent(a.send.ID)
	if typ != webhooks.TypeMailSent || sd.InReplyTo != md.Article.InternetMessageID || sd.InternetMessageID != st.InternetMessageID ||
		sd.ReplyToEventID != md.ID || sd.Mailbox.Address != "support@contoso.com" {
		t.Errorf("event %s %+v, want mail.sent answering %s", typ, sd, md.Article.InternetMessageID)
	}
	if v, n := sumSeries(scrape(t, rig.daemonRig), "m365bridge_sends", `channel="support"`, `state="sent"`); n != 1 || v != 1 {
		t.Errorf("m365bridge_sends{channel=support,state=sent} = %v (%d series), want 1", v, n)
	}

	t.Run("by In-Reply-To", func(t *testing.T) {
		md2 := rig.imported("scanner jammed")
		a := rig.send("support", "article-2", map[string]any{"to": []any{map[string]string{"name": "Carol", "address": "carol@example.com"}},
			"subject": "Re: scanner jammed [#42]", "html": "<p>Done.</p>", "in_reply_to": md2.Article.InternetMessageID})
		if st := rig.waitFinal("support", a.send.ID); st.Status != "sent" {
			t.Fatalf("status %+v", st)
		}
		sent := rig.sentWithID("support@contoso.com", a.send.ID)
		if len(sent) != 1 || headerOf(sent[0], "In-Reply-To") != md2.Article.InternetMessageID || sent[0].Subject != "Re: scanner jammed [#42]" {
			t.Errorf("sent %+v, want a threaded reply with the request's subject", sent)
		}
	})

	t.Run("user mailbox", func(t *testing.T) {
		if page := rig.connect("sales", "sales@contoso.com"); !strings.HasPrefix(page, "200") {
			t.Fatalf("sales consent page: %.300s", page)
		}
		a := rig.send("sales", "quote-1", map[string]any{"to": []any{"dave@example.com"}, "cc": []any{"support@contoso.com"},
			"subject": "Your quote", "text": "Attached.", "in_reply_to": "<unknown@example.com>",
			"attachments": []any{map[string]any{"filename": "quote.txt", "content_type": "text/plain", "content_base64": base64.StdEncoding.EncodeToString([]byte("42 EUR"))}}})
		if a.status != http.StatusAccepted {
			t.Fatalf("POST: %d %s", a.status, a.body)
		}
		if st := rig.waitFinal("sales", a.send.ID); st.Status != "sent" {
			t.Fatalf("status %+v", st)
		}
		sent := rig.sentWithID("sales@contoso.com", a.send.ID)
		if len(sent) != 1 || !strings.EqualFold(sent[0].From, "sales@contoso.com") {
			t.Fatalf("sales Sent Items: %+v, want one message from sales@contoso.com", sent)
		}
		if got := headerOf(sent[0], "X-M365Bridge-In-Reply-To"); got != "<unknown@example.com>" {
			t.Errorf("plain send keeps the unknown In-Reply-To as X-M365Bridge-In-Reply-To, got %q", got)
		}
		if got := len(rig.sim.Sim.Messages("support@contoso.com", "Inbox")); got != 1 {
			t.Errorf("the cc'd support inbox holds %d messages, want 1", got)
		}
	})
}

// Acceptance 2: without Send As the request fails once, with guidance,
// and is not retried.
func TestSendWithoutSendAsFailsWithGuidance(t *testing.T) {
	rig := newSendRig(t, nil)
	md := rig.imported("refund")
	if err := rig.sim.Sim.Delegate("support@contoso.com", "agent@contoso.com", true, false); err != nil {
		t.Fatal(err)
	}
	a := rig.send("support", "article-9", map[string]any{"to": []any{"carol@example.com"}, "text": "Refunded.", "reply_to_event_id": md.ID})
	if a.status != http.StatusAccepted {
		t.Fatalf("POST: %d %s", a.status, a.body)
	}
	st := rig.waitFinal("support", a.send.ID)
	if st.Status != "failed" || st.Code != "ErrorSendAsDenied" || st.Attempts != 1 {
		t.Fatalf("status %+v, want failed with ErrorSendAsDenied after one attempt", st)
	}
	if !strings.Contains(st.Fix, "grant Send As to the signed-in user agent@contoso.com") || !strings.Contains(st.Fix, "Exchange admin center") {
		t.Errorf("fix %q does not say to grant Send As in the Exchange admin center", st.Fix)
	}
	typ, sd := rig.sendEvent(a.send.ID)
	if typ != webhooks.TypeMailSendFailed || sd.Code != "ErrorSendAsDenied" || sd.Fix != st.Fix || sd.Reason == "" {
		t.Errorf("event %s %+v, want mail.send_failed with the guidance", typ, sd)
	}
	if n := len(rig.sim.Sim.Messages("support@contoso.com", "Sent Items")); n != 0 {
		t.Errorf("%d messages in Sent Items, want none", n)
	}
	// Not retried: failed is final in the store (no due query returns it)
	// and Graph saw exactly one send of the draft.
	if got := rig.sim.Sim.Counters().ByKind["sendMail"]; got != 1 {
		t.Errorf("Graph saw %d send requests, want 1", got)
	}
}

// Acceptance 3: a replayed Idempotency-Key sends once; bad requests get a
// 4xx that says what is wrong.
func TestSendIdempotencyAndRejections(t *testing.T) {
	rig := newSendRig(t, nil)
	md := rig.imported("invoice")
	body := map[string]any{"to": []any{"carol@example.com"}, "text": "Paid.", "reply_to_event_id": md.ID}

	first := rig.send("support", "article-7", body)
	again := rig.send("support", "article-7", body)
	if first.status != http.StatusAccepted || again.status != http.StatusAccepted || again.send.ID != first.send.ID {
		t.Fatalf("first %d %s, replay %d %s: want the same id twice", first.status, first.body, again.status, again.body)
	}
	if again.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("the replay is not marked Idempotent-Replayed")
	}
	rig.waitFinal("support", first.send.ID)
	late := rig.send("support", "article-7", body)
	if late.send.ID != first.send.ID || late.send.Status != "sent" {
		t.Errorf("replay after sending: %s, want the original id, sent", late.body)
	}
	if n := len(rig.sentWithID("support@contoso.com", first.send.ID)); n != 1 {
		t.Errorf("%d copies sent, want 1", n)
	}

	url := "http://" + rig.d.PublicAddr() + "/v1/channels/support/messages"
	post := func(secret string, ts time.Time, key string, b []byte) apiAnswer {
		req := signed(t, http.MethodPost, url, secret, ts, b)
		if key != "" {
			req.Header.Set(send.IdempotencyKeyHeader, key)
		}
		return do(t, req)
	}
	valid := []byte(`{"to":["carol@example.com"],"text":"x"}`)
	otherSecret, _ := webhooks.GenerateSecret()
	many := make([]string, 501)
	for i := range many {
		many[i] = fmt.Sprintf("r%d@example.com", i)
	}
	big := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{'a'}, send.MaxAttachmentBytes+1))
	tests := []struct {
		name       string
		answer     func() apiAnswer
		wantStatus int
		wantMsg    string
	}{
		{"other body same key", func() apiAnswer {
			return rig.send("support", "article-7", map[string]any{"to": []any{"carol@example.com"}, "text": "Different."})
		}, 422, "different body"},
		{"bad signature", func() apiAnswer { return post(otherSecret, time.Now(), "k-sig", valid) }, 401, "no matching signature"},
		{"unsigned", func() apiAnswer {
			req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(valid))
			return do(t, req)
		}, 401, "webhook-id"},
		{"old timestamp", func() apiAnswer { return post(rig.sendSecret, time.Now().Add(-10*time.Minute), "k-old", valid) }, 401, "too old"},
		{"unknown channel", func() apiAnswer { return rig.send("nope", "k-ch", body) }, 404, `no channel "nope"`},
		{"malformed JSON", func() apiAnswer { return post(rig.sendSecret, time.Now(), "k-json", []byte(`{"to": [`)) }, 400, "malformed JSON"},
		{"unknown field", func() apiAnswer {
			return post(rig.sendSecret, time.Now(), "k-field", []byte(`{"too":["a@b.c"],"text":"x"}`))
		}, 400, `unknown field "too"`},
		{"no idempotency key", func() apiAnswer { return post(rig.sendSecret, time.Now(), "", valid) }, 400, "Idempotency-Key"},
		{"no recipient", func() apiAnswer { return rig.send("support", "k-none", map[string]any{"text": "x"}) }, 422, "no recipient"},
		{"too many recipients", func() apiAnswer { return rig.send("support", "k-many", map[string]any{"to": many, "text": "x"}) }, 422, "at most 500"},
		{"no body", func() apiAnswer { return rig.send("support", "k-body", map[string]any{"to": []any{"a@example.com"}}) }, 422, "no body"},
		{"bad address", func() apiAnswer {
			return rig.send("support", "k-addr", map[string]any{"to": []any{map[string]string{"address": "carol"}}, "text": "x"})
		}, 422, `"carol" is not a mail address`},
		{"attachment over 35 MB", func() apiAnswer {
			return rig.send("support", "k-big", map[string]any{"to": []any{"a@example.com"}, "text": "x",
				"attachments": []any{map[string]any{"filename": "big.bin", "content_base64": big}}})
		}, 413, "at most 35000000 bytes of attachments"},
		{"attachments over 35 MB in total", func() apiAnswer {
			half := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{'a'}, send.MaxAttachmentsTotal/2+100_000))
			return rig.send("support", "k-total", map[string]any{"to": []any{"a@example.com"}, "text": "x",
				"attachments": []any{map[string]any{"filename": "a.bin", "content_base64": half}, map[string]any{"filename": "b.bin", "content_base64": half}}})
		}, 413, "the attachments total"},
		{"body over the request limit", func() apiAnswer {
			return post(rig.sendSecret, time.Now(), "k-huge", bytes.Repeat([]byte{' '}, send.MaxBodyBytes+1))
		}, 413, "request body is over"},
		{"unknown event", func() apiAnswer {
			return rig.send("support", "k-evt", map[string]any{"to": []any{"a@example.com"}, "text": "x", "reply_to_event_id": "msg_nothere"})
		}, 422, "imported no message"},
		{"not connected", func() apiAnswer { return rig.send("quiet", "k-quiet", body) }, 409, "not connected"},
		{"status of an unknown id", func() apiAnswer { return rig.status("support", "snd_nothere") }, 404, "no send request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := tt.answer()
			if a.status != tt.wantStatus || !strings.Contains(a.err, tt.wantMsg) {
				t.Errorf("got %d %q, want %d with %q", a.status, a.err, tt.wantStatus, tt.wantMsg)
			}
		})
	}
	if n := len(rig.sim.Sim.Messages("support@contoso.com", "Sent Items")); n != 1 {
		t.Errorf("Sent Items hold %d messages after the rejected requests, want 1", n)
	}
}
