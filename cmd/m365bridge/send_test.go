package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/m365bridge/m365bridge/webhooks"
)

const sendTestSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

func writeSendConfig(t *testing.T, listen string) string {
	t.Helper()
	dir := t.TempDir()
	cfg := fmt.Sprintf(`public_url: http://%[1]s
listen: %[1]s
state_dir: %[2]s
microsoft:
  client_id: 11111111-2222-3333-4444-555555555555
  client_secret: not-a-real-secret
  tenant: contoso.onmicrosoft.com
webhooks:
  - name: helpdesk
    url: http://127.0.0.1:1/hooks
    secret: %[3]s
channels:
  - name: support
    mailbox: {type: shared, address: support@contoso.com}
    send: {secret: %[3]s}
  - name: sales
    mailbox: {type: user}
`, listen, filepath.Join(dir, "data"), sendTestSecret)
	path := filepath.Join(dir, "bridge.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// fakeSendDaemon verifies every request's signature as the daemon does,
// accepts one send and reports it queued once, then with outcome.
func fakeSendDaemon(t *testing.T, outcome string) (*httptest.Server, *[]map[string]any) {
	var mu sync.Mutex
	var bodies []map[string]any
	polls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if err := webhooks.Verify(r.Header, b, []string{sendTestSecret}); err != nil {
			w.WriteHeader(http.StatusUnauthorized)
			json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
			return
		}
		mu.Lock()
		defer mu.Unlock()
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/v1/channels/support/messages":
			if r.Header.Get("Idempotency-Key") == "" {
				w.WriteHeader(http.StatusBadRequest)
				json.NewEncoder(w).Encode(map[string]string{"error": "no key"})
				return
			}
			var m map[string]any
			json.Unmarshal(b, &m)
			bodies = append(bodies, m)
			w.WriteHeader(http.StatusAccepted)
			json.NewEncoder(w).Encode(map[string]any{"id": "snd_1", "status": "queued"})
		case r.Method == http.MethodGet && r.URL.Path == "/v1/channels/support/messages/snd_1":
			polls++
			ans := map[string]any{"id": "snd_1", "status": "sending", "attempts": 1}
			if polls > 1 {
				ans["status"] = outcome
				ans["internet_message_id"] = "<m@contoso.com>"
				ans["code"], ans["reason"], ans["fix"] = "ErrorSendAsDenied", "no Send As", "grant Send As"
			}
			json.NewEncoder(w).Encode(ans)
		default:
			w.WriteHeader(http.StatusNotFound)
			json.NewEncoder(w).Encode(map[string]string{"error": "no route"})
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &bodies
}

func TestSendCommand(t *testing.T) {
	t.Run("sent", func(t *testing.T) {
		srv, bodies := fakeSendDaemon(t, "sent")
		path := writeSendConfig(t, strings.TrimPrefix(srv.URL, "http://"))
		code, out, errOut := runCLI(t, "send", "support", "--config", path, "--to", "Carol <carol@example.com>", "--to", "dave@example.com",
			"--subject", "Test", "--text", "hello", "--reply-to-event", "msg_1")
		if code != 0 || !strings.Contains(out, "accepted snd_1") || !strings.Contains(out, "sent <m@contoso.com>") {
			t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
		}
		got := (*bodies)[0]
		if to, _ := got["to"].([]any); len(to) != 2 || got["subject"] != "Test" || got["text"] != "hello" || got["reply_to_event_id"] != "msg_1" {
			t.Errorf("request body %v", got)
		}
		if _, ok := got["html"]; ok {
			t.Errorf("empty --html was sent: %v", got)
		}
	})
	t.Run("failed", func(t *testing.T) {
		srv, _ := fakeSendDaemon(t, "failed")
		path := writeSendConfig(t, strings.TrimPrefix(srv.URL, "http://"))
		code, _, errOut := runCLI(t, "send", "support", "--config", path, "--to", "carol@example.com", "--text", "hello")
		if code != 1 || !strings.Contains(errOut, "ErrorSendAsDenied") || !strings.Contains(errOut, "fix: grant Send As") {
			t.Errorf("exit %d, stderr %q; want 1 with the guidance", code, errOut)
		}
	})
	t.Run("no wait", func(t *testing.T) {
		srv, _ := fakeSendDaemon(t, "sent")
		path := writeSendConfig(t, strings.TrimPrefix(srv.URL, "http://"))
		code, out, _ := runCLI(t, "send", "support", "--config", path, "--to", "carol@example.com", "--html", "<p>x</p>", "--no-wait", "--key", "k-1")
		if code != 0 || !strings.Contains(out, "Idempotency-Key k-1") || strings.Contains(out, "sent <") {
			t.Errorf("exit %d, stdout %q", code, out)
		}
	})
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"no channel", []string{"send", "--to", "a@b.c", "--text", "x"}, "exactly one CHANNEL"},
		{"no recipient", []string{"send", "support", "--text", "x"}, "--to"},
		{"no body", []string{"send", "support", "--to", "a@b.c"}, "--text or --html"},
		{"unknown channel", []string{"send", "nope", "--to", "a@b.c", "--text", "x"}, `no channel "nope"`},
		{"sending not enabled", []string{"send", "sales", "--to", "a@b.c", "--text", "x"}, "add a send: section"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := writeSendConfig(t, "127.0.0.1:1")
			code, _, errOut := runCLI(t, append(tt.args, "--config", path)...)
			if code == 0 || !strings.Contains(errOut, tt.want) {
				t.Errorf("exit %d, stderr %q; want an error mentioning %q", code, errOut, tt.want)
			}
		})
	}
}
