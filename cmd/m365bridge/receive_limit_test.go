package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/webhooks"
)

// TestReceiveTakesTheLargestEvent: `m365bridge receive` takes an event of
// webhooks.MaxEventBytes, the largest the bridge builds (it answered 413
// above 32 MiB, which dead-letters the event).
func TestReceiveTakesTheLargestEvent(t *testing.T) {
	if raceEnabled {
		t.Skip("a 64 MiB body takes tens of seconds under the race detector; run without -race")
	}
	ctx, cancel := context.WithCancel(context.Background())
	out := newLineBuffer()
	done := make(chan error, 1)
	go func() {
		done <- runReceive(ctx, []string{"--listen", "127.0.0.1:0", "--secret", cliSecret}, out, io.Discard)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("receive: %v", err)
		}
	}()
	url := out.waitFor(t, regexp.MustCompile(`listening on (http://\S+)`))[1]

	head := []byte(`{"type":"mail.received","timestamp":"2026-11-26T20:00:00Z","data":{"id":"msg_big","version":1,"channel":"support","pad":"`)
	tail := []byte(`"}}`)
	body := make([]byte, 0, webhooks.MaxEventBytes)
	body = append(body, head...)
	body = append(body, bytes.Repeat([]byte{'a'}, webhooks.MaxEventBytes-len(head)-len(tail))...)
	body = append(body, tail...)
	now := time.Now()
	sig, err := webhooks.Sign(cliSecret, "msg_big", now, body)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set(webhooks.HeaderID, "msg_big")
	req.Header.Set(webhooks.HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	req.Header.Set(webhooks.HeaderSignature, sig)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("a %d-byte event: %d %.200s, want 204", len(body), resp.StatusCode, b)
	}
	out.waitFor(t, regexp.MustCompile(`mail\.received msg_big channel=support .*signature ok\n`))
}
