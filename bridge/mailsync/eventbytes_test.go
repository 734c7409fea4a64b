package mailsync

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/bridge/graph"
	"github.com/m365bridge/m365bridge/bridge/m365sim"
	"github.com/m365bridge/m365bridge/bridge/store"
	"github.com/m365bridge/m365bridge/config"
	"github.com/m365bridge/m365bridge/webhooks"
)

// decodedAttachments gives the runner attachments as the bridge read them
// before Graph's base64 was kept as it came: decoded into ContentBytes,
// with no Content. It is the reference of TestCorpusEventBytesUnchanged.
type decodedAttachments struct{ MailboxAPI }

func decoded(atts []graph.Attachment) []graph.Attachment {
	for i := range atts {
		if atts[i].Content != nil {
			atts[i].ContentBytes, atts[i].Content = atts[i].Bytes(), nil
		}
	}
	return atts
}

func (d decodedAttachments) Attachments(ctx context.Context, id string) ([]graph.Attachment, error) {
	atts, err := d.MailboxAPI.Attachments(ctx, id)
	return decoded(atts), err
}

func (d decodedAttachments) AttachmentsOf(ctx context.Context, ids []string) (map[string][]graph.Attachment, map[string]error, error) {
	atts, failed, err := d.MailboxAPI.AttachmentsOf(ctx, ids)
	for id := range atts {
		atts[id] = decoded(atts[id])
	}
	return atts, failed, err
}

// TestCorpusEventBytesUnchanged pins that keeping Graph's base64 as the
// event's (and encoding the event once, EncodeMail) changes no event byte:
// every message of the real-mail corpus is imported twice from the same
// simulator, once as the runner reads it and once with attachments decoded
// to bytes as before, into two stores; each event's data must be the same
// bytes under the same event id, and re-encoding it the old way
// (json.Marshal of webhooks.NewEvent) must give those bytes too.
func TestCorpusEventBytesUnchanged(t *testing.T) {
	entries, err := os.ReadDir(corpusDir)
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, m365sim.Options{})
	const folder = "Inbox/Corpus"
	for _, e := range entries {
		if filepath.Ext(e.Name()) != ".eml" {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(corpusDir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.sim.Sim.InjectMail(simSupport, folder, raw); err != nil {
			t.Fatalf("%s: %v", e.Name(), err)
		}
	}
	ch := testChannel("corpus", config.MailboxShared, simSupport, folder)
	ch.Archive.Mode = config.ArchiveOff
	ch.MaxAttachmentBytes = 16 << 20 // every attachment inline
	h.syncOnce(h.runner(ch))

	refDB, err := store.Open(context.Background(), filepath.Join(t.TempDir(), store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { refDB.Close() })
	// The reference runner is bound to its own store from the start (its
	// enqueue writes through the store it was made with).
	rc := h.runnerConfig(ch)
	rc.DB, rc.Graph = refDB, decodedAttachments{rc.Graph}
	h.syncOnce(NewRunner(rc))

	got, want := outboxData(t, h.db), outboxData(t, refDB)
	if len(got) < 150 || len(got) != len(want) {
		t.Fatalf("%d events, reference %d; want the same, at least 150", len(got), len(want))
	}
	withContent := 0
	for id, w := range want {
		g, ok := got[id]
		switch {
		case !ok:
			t.Errorf("event %s: only in the reference", id)
		case !bytes.Equal(g.data, w.data):
			t.Errorf("event %s: data differs from the reference (%d vs %d bytes)", id, len(g.data), len(w.data))
		case bytes.Contains(g.data, []byte(`"content_base64":"`)):
			withContent++
		}
		var md webhooks.MailData
		if err := json.Unmarshal(g.data, &md); err != nil {
			t.Fatalf("event %s: %v", id, err)
		}
		ev, err := webhooks.NewEvent(g.typ, g.ts, &md)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(ev.Data, g.data) {
			t.Errorf("event %s: re-encoding its data with json.Marshal gives other bytes", id)
		}
	}
	t.Logf("%d events carry attachment content", withContent)
	if withContent < 20 {
		t.Errorf("%d events carry attachment content; the corpus should give at least 20", withContent)
	}
}

// outboxData is each outbox event's envelope (type, timestamp and data
// bytes as stored), by event id.
func outboxData(t *testing.T, db *store.DB) map[string]eventParts {
	t.Helper()
	rows, err := db.Outbox().List(context.Background(), deliverFilterAll())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]eventParts{}
	for _, row := range rows {
		var ev webhooks.Event
		if err := json.Unmarshal(row.Body, &ev); err != nil {
			t.Fatalf("event %s: %v", row.EventID, err)
		}
		out[row.EventID] = eventParts{typ: ev.Type, ts: ev.Timestamp, data: ev.Data}
	}
	return out
}

type eventParts struct {
	typ  string
	ts   time.Time
	data []byte
}
