package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/webhooks"
)

// lineBuffer is a concurrency-safe writer whose lines a test can wait for.
type lineBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
}

func newLineBuffer() *lineBuffer { return &lineBuffer{changed: make(chan struct{}, 1)} }

func (b *lineBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.buf.Write(p)
	select {
	case b.changed <- struct{}{}:
	default:
	}
	return n, err
}

func (b *lineBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor returns the first match of re, waiting up to 10 s for it.
func (b *lineBuffer) waitFor(t *testing.T, re *regexp.Regexp) []string {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		if m := re.FindStringSubmatch(b.String()); m != nil {
			return m
		}
		select {
		case <-b.changed:
		case <-deadline:
			t.Fatalf("output never matched %s:\n%s", re, b.String())
		}
	}
}

func TestReceiveCommand(t *testing.T) {
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

	post := func(id, body, secret string) (int, string) {
		now := time.Now()
		sig, err := webhooks.Sign(secret, id, now, []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
		req.Header.Set(webhooks.HeaderID, id)
		req.Header.Set(webhooks.HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
		req.Header.Set(webhooks.HeaderSignature, sig)
		req.Header.Set("X-M365Bridge-Attempt", "1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	mail := `{"type":"mail.archived","timestamp":"2026-11-26T20:00:00Z","data":{"id":"msg_r1","version":1,"channel":"support","archive":true,"article":{"subject":"Old printer","from":{"address":"alice@example.org"}}}}`

	if code, _ := post("msg_r1", mail, cliSecret); code != http.StatusNoContent {
		t.Errorf("valid event: %d, want 204", code)
	}
	out.waitFor(t, regexp.MustCompile(`mail\.archived msg_r1 channel=support from=alice@example\.org subject="Old printer" archive=true attempt=1 signature ok\n`))
	if code, _ := post("msg_r1", mail, cliSecret); code != http.StatusNoContent {
		t.Errorf("duplicate: %d, want 204", code)
	}
	out.waitFor(t, regexp.MustCompile(`msg_r1 .* signature ok duplicate\n`))
	if code, text := post("msg_r2", mail, "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"); code != http.StatusUnauthorized || !strings.Contains(text, "no matching signature") {
		t.Errorf("wrong secret: %d %q, want 401 with the reason", code, text)
	}
	out.waitFor(t, regexp.MustCompile(`REJECTED 401 POST /hooks/m365: no matching signature`))
	if code, _ := post("msg_r3", `{"type":`, cliSecret); code != http.StatusBadRequest {
		t.Errorf("malformed JSON: %d, want 400", code)
	}
}

func TestReceiveFlags(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"--secret", "not-a-secret"},
		{"--secret", cliSecret, "--fail-rate", "2"},
	} {
		err := runReceive(context.Background(), args, io.Discard, io.Discard)
		if _, ok := err.(usageError); !ok {
			t.Errorf("receive %v: %v, want a usage error", args, err)
		}
	}
}
