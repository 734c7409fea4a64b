package graph

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/bridge/m365sim"
)

// fakeClock is a settable clock for the sim.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

// The exactly-once building blocks against a sim that behaves like
// Exchange: a reply draft tagged with an extended property, a 25 MB
// attachment through an upload session, the draft sent by id, its Sent
// Items copy filed 30 s later (sim clock) with a new id, no internet
// headers, and the property kept.
func TestSimDraftUploadSendAndFindByProperty(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}
	srv, c, _ := startSim(t, m365sim.Options{Now: clock.Now, SentItemsDelay: 30 * time.Second}, nil)
	ctx := context.Background()
	orig, err := srv.Sim.InjectMessage(support, m365sim.NewMessage{Folder: "Inbox", Subject: "logs attached?",
		From: "Carol <carol@example.com>", Body: "help", MessageID: "<q9@example.com>"})
	if err != nil {
		t.Fatal(err)
	}
	shared := c.Mailbox(Mailbox{Shared: true, Address: support}, tokensFor(t, srv, agent))
	prop := NamedStringProperty("{8c4e7c1a-5b0e-4d55-9b7e-2f6a1d3c9e42}", "TestSendId")
	props := []ExtendedProperty{{ID: prop, Value: "snd_25mb"}}

	d, err := shared.CreateReplyDraft(ctx, orig.ImmutableID, props)
	if err != nil {
		t.Fatal(err)
	}
	from := &Recipient{EmailAddress: EmailAddress{Address: support}}
	if err := shared.UpdateDraft(ctx, d.ID, OutgoingMessage{Body: &ItemBody{ContentType: "text", Content: "here"}, ToRecipients: to("carol@example.com")}, from); err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), 25_000_000/16)
	if err := shared.AddAttachment(ctx, d.ID, Attachment{Name: "logs.bin", ContentType: "application/octet-stream", ContentBytes: big}); err != nil {
		t.Fatalf("upload 25 MB: %v", err)
	}
	if err := shared.AddAttachment(ctx, d.ID, Attachment{Name: "small.txt", ContentBytes: []byte("small")}); err != nil {
		t.Fatalf("small attachment: %v", err)
	}
	if got, err := shared.FindByProperty(ctx, "drafts", prop, "snd_25mb"); err != nil || got == nil || got.ID != d.ID {
		t.Fatalf("draft by property: %+v, %v; want %s", got, err, d.ID)
	}
	if got, err := shared.FindByProperty(ctx, "drafts", prop, "snd_other"); err != nil || got != nil {
		t.Fatalf("another value: %+v, %v; want nothing", got, err)
	}
	if err := shared.SendDraft(ctx, d.ID); err != nil {
		t.Fatal(err)
	}
	for _, folder := range []string{"drafts", "sentitems"} {
		if got, err := shared.FindByProperty(ctx, folder, prop, "snd_25mb"); err != nil || got != nil {
			t.Fatalf("%s right after the send: %+v, %v; want nothing (the draft left, the copy is not filed yet)", folder, got, err)
		}
	}
	clock.mu.Lock()
	clock.t = clock.t.Add(30 * time.Second)
	clock.mu.Unlock()
	sent, err := shared.FindByProperty(ctx, "sentitems", prop, "snd_25mb")
	if err != nil || sent == nil {
		t.Fatalf("Sent Items after the filing delay: %+v, %v", sent, err)
	}
	if sent.ID == d.ID {
		t.Errorf("the Sent Items copy kept the draft's id %s; Exchange gives it a new one", d.ID)
	}
	if sent.InternetMessageID != d.InternetMessageID {
		t.Errorf("internetMessageId %q, want the draft's %q", sent.InternetMessageID, d.InternetMessageID)
	}
	m, err := shared.GetMessage(ctx, sent.ID, []string{"internetMessageHeaders"}, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.InternetMessageHeaders) != 0 {
		t.Errorf("the Sent Items copy shows internet headers %v; Exchange shows none", m.InternetMessageHeaders)
	}
	infos := srv.Sim.Messages(support, "Sent Items")
	if len(infos) != 1 || len(infos[0].Attachments) != 2 {
		t.Fatalf("Sent Items: %+v", infos)
	}
	sum := sha256.Sum256(big)
	if a := infos[0].Attachments[0]; a.Name != "logs.bin" || a.SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("attachment %s (%d bytes) does not match what was uploaded", a.Name, a.Size)
	}
}

// lossyUploads forwards every request; the answer of the n-th upload PUT
// is replaced by a transport error after the sim has taken the bytes. It
// also records whether any upload PUT carried an Authorization header.
type lossyUploads struct {
	base   http.RoundTripper
	loseAt int

	mu       sync.Mutex
	puts     int
	withAuth int
}

func (l *lossyUploads) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method != http.MethodPut || !strings.Contains(r.URL.Path, "/AttachmentSessions(") {
		return l.base.RoundTrip(r)
	}
	l.mu.Lock()
	l.puts++
	n := l.puts
	if r.Header.Get("Authorization") != "" {
		l.withAuth++
	}
	l.mu.Unlock()
	resp, err := l.base.RoundTrip(r)
	if err == nil && n == l.loseAt {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return nil, errors.New("connection reset (test: the answer was lost)")
	}
	return resp, err
}

// An upload whose chunk answer is lost resumes: the chunk is sent again,
// the bytes the session already has are skipped, and the file arrives
// whole. No upload PUT carries the Graph token.
func TestSimUploadResumesAfterLostChunkAnswer(t *testing.T) {
	srv, c, _ := startSim(t, m365sim.Options{}, nil)
	lossy := &lossyUploads{base: http.DefaultTransport, loseAt: 2}
	c.HTTP = &http.Client{Transport: lossy}
	ctx := context.Background()
	user := c.Mailbox(Mailbox{Address: agent}, tokensFor(t, srv, agent))
	d, err := user.CreateDraft(ctx, OutgoingMessage{Subject: "big", Body: &ItemBody{ContentType: "text", Content: "x"}, ToRecipients: to("carol@example.com")}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("resumable-upload"), 10_000_000/16) // 4 chunks of 3 MiB
	if err := user.AddAttachment(ctx, d.ID, Attachment{Name: "r.bin", ContentBytes: data}); err != nil {
		t.Fatalf("upload with a lost answer: %v", err)
	}
	if lossy.puts != 5 || lossy.withAuth != 0 {
		t.Errorf("%d PUTs (%d with Authorization); want 5 (4 chunks, one sent twice), none with Authorization", lossy.puts, lossy.withAuth)
	}
	drafts := srv.Sim.Messages(agent, "Drafts")
	sum := sha256.Sum256(data)
	if len(drafts) != 1 || len(drafts[0].Attachments) != 1 || drafts[0].Attachments[0].SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("draft attachments %+v; want r.bin whole", drafts)
	}
	t.Run("under 3 MB is a POST", func(t *testing.T) {
		before := lossy.puts
		if err := user.AddAttachment(ctx, d.ID, Attachment{Name: "s.bin", ContentBytes: bytes.Repeat([]byte{1}, 2_000_000)}); err != nil {
			t.Fatal(err)
		}
		if lossy.puts != before {
			t.Errorf("a 2 MB file went through an upload session")
		}
	})
}
