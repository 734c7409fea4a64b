package store

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/webhooks"
	"github.com/m365bridge/m365bridge/webhooks/deliver"
)

// lockedBuffer is a log sink the dispatcher's goroutines share.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestDispatcherKeepsARowWithADamagedBody: the real dispatcher over the
// SQLite outbox, one row's spooled body corrupted on disk. The other
// channel's events are delivered; the damaged row stays pending, never
// attempted, rejected or dropped, with the file in its last_error and in
// the log; the dispatcher runs on and stops cleanly.
func TestDispatcherKeepsARowWithADamagedBody(t *testing.T) {
	ctx := context.Background()
	db := backends[0].open(t)
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	event := func(id, channel string) OutboxEvent {
		ev, err := webhooks.NewEvent(webhooks.TypeWebhookTest, db.Now(), webhooks.TestData{ID: id, Version: 1, Message: "spool"})
		if err != nil {
			t.Fatal(err)
		}
		body, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		return OutboxEvent{EventID: id, Endpoint: "helpdesk", Channel: channel, Type: ev.Type, Body: body}
	}
	if err := db.Enqueue(ctx, event("msg_bad", "c1"), event("msg_good1", "c2"), event("msg_good2", "c2")); err != nil {
		t.Fatal(err)
	}
	var seg string
	var off int64
	var num int64
	if err := db.read.QueryRow(`SELECT b.segment, b.seg_offset FROM event_bodies b JOIN outbox o ON o.seq = b.seq WHERE o.event_id = 'msg_bad'`).Scan(&num, &off); err != nil {
		t.Fatal(err)
	}
	seg = db.spool.path(num)
	f, err := os.OpenFile(seg, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("#"), off+3); err != nil {
		t.Fatal(err)
	}
	f.Close()

	delivered := make(chan string, 3)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := webhooks.Verify(r.Header, body, []string{secret}); err != nil {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusNoContent)
		delivered <- r.Header.Get("webhook-id")
	}))
	defer srv.Close()
	var logged lockedBuffer
	d, err := deliver.New(db.Outbox(), []deliver.Endpoint{{Name: "helpdesk", URL: srv.URL, Secrets: []string{secret}, Concurrency: 1,
		MaxAttempts: 3, MaxAge: time.Hour, Retention: time.Hour, Timeout: time.Minute}},
		deliver.Options{Logger: slog.New(slog.NewTextHandler(&logged, nil))})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- d.Run(runCtx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("dispatcher: %v", err)
		}
	}()
	for range 2 {
		select {
		case id := <-delivered:
			if id == "msg_bad" {
				t.Fatal("the damaged body was sent")
			}
		case <-time.After(time.Minute): // a safety net far above the milliseconds this takes
			t.Fatal("the other channel's events were not delivered")
		}
	}
	var bad deliver.Row
	for deadline := time.Now().Add(time.Minute); ; {
		rows, err := db.Outbox().List(ctx, deliver.Filter{IDs: []string{"msg_bad"}})
		if err != nil || len(rows) != 1 {
			t.Fatalf("List: %v, %v", rows, err)
		}
		if bad = rows[0]; bad.LastError != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the damaged body was never recorded on its row")
		}
		time.Sleep(10 * time.Millisecond) // polling the row: the dispatcher has no signal for a failed body read
	}
	if bad.State != deliver.StatePending || bad.Attempts != 0 || !strings.Contains(bad.LastError, seg) || !strings.Contains(bad.LastError, "CRC-32C") {
		t.Errorf("damaged row: state %s, %d attempts, last_error %q; want pending, unattempted, naming %s and the checksum", bad.State, bad.Attempts, bad.LastError, seg)
	}
	if log := logged.String(); !strings.Contains(log, "read event body") || !strings.Contains(log, seg) {
		t.Errorf("log does not report the damaged body and its file:\n%s", log)
	}
}
