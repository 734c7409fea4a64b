package mailsync

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/m365bridge/m365bridge/bridge/graph"
	"github.com/m365bridge/m365bridge/bridge/m365sim"
	"github.com/m365bridge/m365bridge/config"
	"github.com/m365bridge/m365bridge/webhooks"
)

// contentReads records which attachment content the runner read, and how.
type contentReads struct {
	MailboxAPI
	mu       sync.Mutex
	largest  int64 // the largest content that came in a JSON response
	listed   []string
	streamed int
}

func (c *contentReads) note(atts []graph.Attachment) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, a := range atts {
		if a.Content != nil {
			c.largest = max(c.largest, a.Content.Size)
		}
	}
}

func (c *contentReads) AttachmentsOf(ctx context.Context, ids []string) (map[string][]graph.Attachment, map[string]error, error) {
	atts, failed, err := c.MailboxAPI.AttachmentsOf(ctx, ids)
	c.mu.Lock()
	c.listed = append(c.listed, ids...)
	c.mu.Unlock()
	for _, a := range atts {
		c.note(a)
	}
	return atts, failed, err
}

func (c *contentReads) AttachmentsByID(ctx context.Context, id string, attIDs []string) ([]graph.Attachment, error) {
	atts, err := c.MailboxAPI.AttachmentsByID(ctx, id, attIDs)
	c.note(atts)
	return atts, err
}

func (c *contentReads) StreamAttachment(ctx context.Context, id, attID string, w io.Writer, h func(http.Header)) (int64, error) {
	c.mu.Lock()
	c.streamed++
	c.mu.Unlock()
	return c.MailboxAPI.StreamAttachment(ctx, id, attID, w, h)
}

// TestLargeAttachmentsAreNotReadWithTheList: attachment sizes are listed
// first; a file over max_attachment_bytes is never part of a JSON answer
// (it is streamed into its SHA-256), while the same message's other files
// and inline image are read with their content, and a message of small
// files is read through the list as before. The events carry what they
// carried when everything was read whole: the large file listed with its
// size and digest, the others inline with their content id.
func TestLargeAttachmentsAreNotReadWithTheList(t *testing.T) {
	h := newHarness(t, m365sim.Options{})
	const limit = 256 << 10
	big := strings.Repeat("0123456789abcdef", (2<<20)/16) // 2 MiB
	heavy := h.inject(simSupport, m365sim.NewMessage{Folder: "Inbox/Support", Subject: "heavy", From: "Carol <carol@example.com>",
		Body: `<p>logo <img src="cid:logo@x"></p>`, HTML: true,
		Attachments: []m365sim.NewAttachment{
			{Name: "big.bin", ContentType: "application/octet-stream", Content: big},
			{Name: "note.txt", ContentType: "text/plain", Content: "a small note"},
			{Name: "logo.png", ContentType: "image/png", Content: "PNG...", ContentID: "logo@x", Inline: true},
		}})
	light := h.inject(simSupport, m365sim.NewMessage{Folder: "Inbox/Support", Subject: "light", From: "Dan <dan@example.com>", Body: "b",
		Attachments: []m365sim.NewAttachment{{Name: "a.txt", ContentType: "text/plain", Content: "hello"}}})

	ch := testChannel("support", config.MailboxShared, simSupport, "Inbox/Support")
	ch.MaxAttachmentBytes = limit
	r := h.runner(ch)
	reads := &contentReads{MailboxAPI: r.cfg.Graph}
	r.cfg.Graph = reads
	h.syncOnce(r)

	if reads.largest > limit || reads.streamed != 1 {
		t.Errorf("largest content read as JSON %d bytes (limit %d), %d streamed; want none over the limit, one streamed", reads.largest, limit, reads.streamed)
	}
	if fmt.Sprint(reads.listed) != fmt.Sprint([]string{light.ImmutableID}) {
		t.Errorf("lists read with content: %v, want only the light message's", reads.listed)
	}
	if n := h.deliver(context.Background()); n != 2 {
		t.Fatalf("delivered %d, want 2", n)
	}
	ev := h.rec.events[h.eventID(simSupport, heavy.ImmutableID)]
	byName := map[string]webhooks.Attachment{}
	for _, a := range ev.Article.Attachments {
		byName[a.Filename] = a
	}
	sum := sha256.Sum256([]byte(big))
	if b := byName["big.bin"]; b.Included || b.Size != int64(len(big)) || b.SHA256 != hex.EncodeToString(sum[:]) || !strings.Contains(b.Reason, "max_attachment_bytes") {
		t.Errorf("big.bin listed as %+v; want its size, digest and the reason, no content", b)
	}
	if n := byName["note.txt"]; !n.Included || n.ContentBase64 != base64.StdEncoding.EncodeToString([]byte("a small note")) {
		t.Errorf("note.txt listed as %+v", n)
	}
	if l := byName["logo.png"]; !l.Included || !l.Inline || l.ContentID != "logo@x" {
		t.Errorf("logo.png listed as %+v", l)
	}
	if a := h.rec.events[h.eventID(simSupport, light.ImmutableID)].Article.Attachments; len(a) != 1 || !a[0].Included {
		t.Errorf("light message's attachments %+v", a)
	}
}
