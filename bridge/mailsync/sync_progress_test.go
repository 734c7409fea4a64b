package mailsync

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/bridge/graph"
	"github.com/m365bridge/m365bridge/bridge/m365sim"
	"github.com/m365bridge/m365bridge/config"
)

// TestFirstImportLogsProgress: a long first import says how far it is —
// seen of about N, rate and time to go — every few seconds of the runner's
// clock, and once more at the end. The clock is injected: each reading
// moves it on, so the test waits for nothing.
func TestFirstImportLogsProgress(t *testing.T) {
	h := newHarness(t, m365sim.Options{})
	const n = 400
	for i := range n {
		h.inject(simSupport, m365sim.NewMessage{Folder: "Inbox/Support", Subject: fmt.Sprintf("question %d", i),
			From: "carol@example.com", Body: "hello", Received: time.Now().Add(-time.Duration(n-i) * time.Minute)})
	}
	var (
		mu    sync.Mutex
		clock = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	)
	now := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		clock = clock.Add(time.Second)
		return clock
	}
	logs := &lockedBuffer{}
	ch := testChannel("support", config.MailboxShared, simSupport, "Inbox/Support")
	tok := h.token
	r := NewRunner(RunnerConfig{
		Channel: ch, Tenant: h.tenant, DB: h.db, PageSize: 25, Now: now,
		Graph:  h.client.Mailbox(graph.Mailbox{Shared: true, Address: simSupport}, graph.TokenFunc(func(context.Context) (string, error) { return tok, nil })),
		Auth:   func(context.Context) (bool, error) { return true, nil },
		Logger: slog.New(slog.NewJSONHandler(logs, nil)),
	})
	if _, err := r.SyncOnce(context.Background()); err != nil {
		t.Fatal(err)
	}

	type line struct {
		Msg       string `json:"msg"`
		Seen      int64  `json:"seen"`
		OfAbout   int64  `json:"of_about"`
		PerSecond string `json:"per_second"`
		ETA       string `json:"eta"`
		Page      string `json:"page"`
		Time      string `json:"time"`
	}
	var lines []line
	for _, raw := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var l line
		if json.Unmarshal([]byte(raw), &l) == nil && l.Msg == "initial import" {
			lines = append(lines, l)
		}
	}
	if len(lines) < 3 {
		t.Fatalf("%d progress lines, want several over %d messages in pages of 25:\n%s", len(lines), n, logs)
	}
	for i, l := range lines[:len(lines)-1] {
		if l.OfAbout != n || l.PerSecond == "" || l.ETA == "" || l.Seen <= 0 || l.Seen >= n {
			t.Errorf("progress line %d = %+v, want seen of about %d with a rate and an ETA", i, l, n)
		}
		if i > 0 && l.Seen <= lines[i-1].Seen {
			t.Errorf("progress went backwards: %d after %d", l.Seen, lines[i-1].Seen)
		}
	}
	if last := lines[len(lines)-1]; last.Seen != n || last.Page != "last" {
		t.Errorf("last progress line = %+v, want all %d seen", last, n)
	}
}
