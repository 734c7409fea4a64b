package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/webhooks"
)

const cliSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// capture builds what `nc -l` would print for a signed request.
func capture(t *testing.T, at time.Time, body string, withRequestLine bool, eol string) string {
	t.Helper()
	sig, err := webhooks.Sign(cliSecret, "msg_cli", at, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	lines := []string{
		"Host: 127.0.0.1:8367",
		"Content-Type: application/json",
		"Content-Length: " + strconv.Itoa(len(body)),
		"webhook-id: msg_cli",
		"webhook-timestamp: " + strconv.FormatInt(at.Unix(), 10),
		"webhook-signature: " + sig,
	}
	if withRequestLine {
		lines = append([]string{"POST /hooks/m365 HTTP/1.1"}, lines...)
	}
	return strings.Join(lines, eol) + eol + eol + body
}

func runVerifyOn(t *testing.T, captured string, extra ...string) (string, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "req.txt")
	if err := os.WriteFile(path, []byte(captured), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	err := runVerify(context.Background(), append([]string{"--secret", cliSecret, "--in", path}, extra...), &out, &errOut)
	return out.String() + errOut.String(), err
}

func TestVerifyCommand(t *testing.T) {
	body := `{"type":"webhook.test","timestamp":"2026-11-26T20:00:00Z","data":{"id":"msg_cli","version":1,"message":"hi"}}`
	now := time.Now()
	old := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name     string
		captured string
		extra    []string
		wantErr  string
	}{
		{"nc capture, CRLF", capture(t, now, body, true, "\r\n"), nil, ""},
		{"headers only, LF", capture(t, now, body, false, "\n"), nil, ""},
		{"trailing newline after the body", capture(t, now, body, true, "\r\n") + "\n", nil, ""},
		{"old capture checked as of its time", capture(t, old, body, true, "\r\n"), []string{"--at", old.Add(time.Minute).Format(time.RFC3339)}, ""},
		{"old capture", capture(t, old, body, true, "\r\n"), nil, "too old"},
		{"tampered body", strings.Replace(capture(t, now, body, true, "\r\n"), `"hi"`, `"ho"`, 1), nil, "no matching signature"},
		{"missing signature", strings.Replace(capture(t, now, body, true, "\r\n"), "webhook-signature", "x-signature", 1), nil, "missing"},
		{"no blank line", "POST / HTTP/1.1\r\nwebhook-id: x\r\n", nil, "no blank line"},
		{"truncated", strings.TrimSuffix(capture(t, now, body, true, "\r\n"), "}"), nil, "truncated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := runVerifyOn(t, tt.captured, tt.extra...)
			if tt.wantErr == "" {
				if err != nil || !strings.Contains(out, "signature ok: webhook-id msg_cli") || !strings.Contains(out, "event webhook.test") {
					t.Errorf("got %v, output %q; want signature ok", err, out)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("got %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
	if _, err := runVerifyOn(t, "x", "--at", "someday"); err == nil {
		t.Error("--at someday: no error")
	}
}

func TestVerifyChunked(t *testing.T) {
	body := `{"type":"webhook.test","data":{"id":"msg_cli"}}`
	at := time.Now()
	sig, _ := webhooks.Sign(cliSecret, "msg_cli", at, []byte(body))
	captured := "POST /h HTTP/1.1\r\nTransfer-Encoding: chunked\r\nwebhook-id: msg_cli\r\nwebhook-timestamp: " +
		strconv.FormatInt(at.Unix(), 10) + "\r\nwebhook-signature: " + sig + "\r\n\r\n" +
		strconv.FormatInt(int64(len(body[:10])), 16) + "\r\n" + body[:10] + "\r\n" +
		strconv.FormatInt(int64(len(body[10:])), 16) + "\r\n" + body[10:] + "\r\n0\r\n\r\n"
	if out, err := runVerifyOn(t, captured); err != nil {
		t.Errorf("chunked capture: %v %s", err, out)
	}
}
