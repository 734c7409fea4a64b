package bridge

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/bridge/m365sim"
)

// Issue 14, item 1: the send's first attempt times out after Exchange
// accepted it, and the simulator is configured as real Exchange is: the
// Sent Items copy carries no internet headers and is filed 30 s (sim
// clock) after the send. Exactly one mail must reach Sent Items. A check
// by header finds nothing and sends again; the check by extended property
// sees the draft left Drafts and waits for the copy.
func TestSendTimeoutAfterAcceptFiledLateSendsOnce(t *testing.T) {
	rig := newSendRig(t, nil)
	md := rig.imported("late filing")
	const support = "support@contoso.com"
	rig.sim.Sim.SetSentItemsDelay(30 * time.Second)
	// The send call (draft send, or a direct reply) takes effect and its
	// answer is lost.
	for _, path := range []string{"**/send", "**/reply"} {
		if _, err := rig.sim.Sim.AddFault(m365sim.FaultRule{Method: http.MethodPost, Path: path, Mailbox: support, DropAfter: true, Count: 1}); err != nil {
			t.Fatal(err)
		}
	}
	a := rig.send("support", "article-late", map[string]any{"to": []any{"carol@example.com"}, "text": "Answer.", "reply_to_event_id": md.ID})
	if a.status != http.StatusAccepted {
		t.Fatalf("POST: %d %s", a.status, a.body)
	}
	// Wait until the bridge has looked at the mailbox after the lost answer
	// (a message list after the dropped request), then let Exchange file.
	deadline := time.Now().Add(30 * time.Second)
	var listsAtDrop int
	for dropped := false; ; {
		c := rig.sim.Sim.Counters()
		if !dropped && c.ByStatus["dropped"] > 0 {
			dropped, listsAtDrop = true, c.ByKind["message.list"]
		} else if dropped && c.ByKind["message.list"] > listsAtDrop {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the bridge never looked at the mailbox after the lost answer (counters %+v)\nlogs:\n%s", c, rig.logs)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n := len(rig.sim.Sim.Messages(support, "Sent Items")); n != 0 {
		t.Fatalf("%d copies filed before the 30 s; the sim should hold them back", n)
	}
	rig.sim.Sim.Advance(30 * time.Second)
	st := rig.waitFinal("support", a.send.ID)
	rig.sim.Sim.Advance(time.Minute) // file anything a second send left pending
	var copies []m365sim.MessageInfo
	for _, mi := range rig.sim.Sim.Messages(support, "Sent Items") {
		if strings.Contains(mi.Subject, "late filing") {
			copies = append(copies, mi)
		}
	}
	if len(copies) != 1 || st.Status != "sent" {
		t.Fatalf("%d copies in Sent Items, status %s (%+v); want exactly 1, sent\nlogs:\n%s", len(copies), st.Status, st, rig.logs)
	}
	if st.InternetMessageID != copies[0].InternetMessageID {
		t.Errorf("internet_message_id %q, want the Sent Items copy's %q", st.InternetMessageID, copies[0].InternetMessageID)
	}
}

// Issue 14, item 5: a 25 MB attachment goes through the bridge's send API
// and reaches Sent Items through an upload session.
func TestSendAPI25MBAttachmentUploadSession(t *testing.T) {
	rig := newSendRig(t, nil)
	md := rig.imported("big file")
	size := 25_000_000
	if raceEnabled {
		size = 4_000_000 // still over 3 MB: an upload session (see race_test.go)
	}
	data := bytes.Repeat([]byte("m365bridge-25MB."), size/16)
	a := rig.send("support", "article-big", map[string]any{"to": []any{"carol@example.com"}, "text": "The logs.", "reply_to_event_id": md.ID,
		"attachments": []any{map[string]any{"filename": "logs.bin", "content_base64": base64.StdEncoding.EncodeToString(data)}}})
	if a.status != http.StatusAccepted {
		t.Fatalf("POST 25 MB: %d %.300s", a.status, a.body)
	}
	st := rig.waitFinal("support", a.send.ID)
	if st.Status != "sent" {
		t.Fatalf("status %+v, want sent\nlogs:\n%s", st, rig.logs)
	}
	sent := rig.sentWithID("support@contoso.com", a.send.ID)
	if len(sent) != 1 || len(sent[0].Attachments) != 1 {
		t.Fatalf("Sent Items: %+v", sent)
	}
	sum := sha256.Sum256(data)
	if got := sent[0].Attachments[0]; got.Name != "logs.bin" || got.SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("attachment %s, %d bytes: not the bytes sent", got.Name, got.Size)
	}
	if n := rig.sim.Sim.Counters().ByKind["attachment.create"]; n != 1 {
		t.Errorf("%d attachment create calls, want 1 createUploadSession", n)
	}
}

// A sent draft whose copy never reaches Sent Items within Filing ends as
// failed "unverified" with a fix, and is never sent a second time: at most
// once, even when Exchange files later than the bridge waits.
func TestSendFilingTimeoutIsUnverifiedNotResent(t *testing.T) {
	rig := newSendRig(t, nil)
	rig.stop()
	opts := sendRigOptions()
	opts.Filing = 300 * time.Millisecond
	rig.start(opts)
	md := rig.imported("never filed")
	const support = "support@contoso.com"
	rig.sim.Sim.SetSentItemsDelay(time.Hour)
	if _, err := rig.sim.Sim.AddFault(m365sim.FaultRule{Method: http.MethodPost, Path: "**/send", Mailbox: support, DropAfter: true, Count: 1}); err != nil {
		t.Fatal(err)
	}
	a := rig.send("support", "article-unfiled", map[string]any{"to": []any{"carol@example.com"}, "text": "Answer.", "reply_to_event_id": md.ID})
	if a.status != http.StatusAccepted {
		t.Fatalf("POST: %d %s", a.status, a.body)
	}
	st := rig.waitFinal("support", a.send.ID)
	if st.Status != "failed" || st.Code != "unverified" || !strings.Contains(st.Fix, "Sent Items") {
		t.Fatalf("status %+v, want failed unverified with a fix that says to look in Sent Items", st)
	}
	if n := rig.sim.Sim.Counters().ByKind["sendMail"]; n != 1 {
		t.Errorf("Graph saw %d sends, want 1", n)
	}
	rig.sim.Sim.Advance(time.Hour)
	if n := len(rig.sentWithID(support, a.send.ID)); n != 1 {
		t.Errorf("%d copies in Sent Items once Exchange filed, want 1", n)
	}
}
