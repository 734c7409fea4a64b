package main

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/webhooks"
)

// demoConfig is the repository's bridge.yaml with its loopback ports moved
// to free ones.
func demoConfig(t *testing.T) string {
	t.Helper()
	clearSampleEnv(t)
	b, err := os.ReadFile("../../bridge.yaml")
	if err != nil {
		t.Fatal(err)
	}
	yml := string(b)
	for _, port := range []string{"8365", "8366", "8367", "8369"} {
		yml = strings.ReplaceAll(yml, "127.0.0.1:"+port, freeAddr(t))
	}
	path := filepath.Join(t.TempDir(), "bridge.yaml")
	if err := os.WriteFile(path, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// waitOutput waits until the demo printed want (the demo's own report of
// what happened), or it ended.
func waitOutput(t *testing.T, out, errOut *syncBuffer, done <-chan error, want string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute) // safety net; normally seconds
	for !strings.Contains(out.String(), want) {
		select {
		case err := <-done:
			t.Fatalf("demo ended before %q: %v\nstdout:\n%s\nstderr:\n%s", want, err, out.String(), errOut.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("demo never printed %q\nstdout:\n%s\nstderr:\n%s", want, out.String(), errOut.String())
		}
		time.Sleep(20 * time.Millisecond) // pacing: the demo's output is what tells; the deadline is the safety net
	}
}

// TestDemoExternalReceiverHistoryAndReload is issue 12 item 12: the demo
// delivers to a receiver given by --webhook-url/--webhook-secret (which
// verifies every signature with that secret), waits for a larger history
// by its progress, not a fixed minute, and accepts `m365bridge reload`
// while it runs, keeping its overrides.
func TestDemoExternalReceiverHistoryAndReload(t *testing.T) {
	const history = 400
	secret, _ := webhooks.GenerateSecret()
	var mu sync.Mutex
	mail := map[string]bool{}
	rc := &webhooks.Receiver{Verifier: webhooks.Verifier{Secrets: []string{secret}}}
	rc.OnEvent = func(ctx context.Context, d *webhooks.Delivery) error {
		mu.Lock()
		defer mu.Unlock()
		if strings.HasPrefix(d.Event.Type, "mail.") {
			mail[d.ID] = true
		}
		return nil
	}
	recv := httptest.NewServer(rc)
	defer recv.Close()

	path := demoConfig(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"demo", "--config", path, "--history", "400", "--poll", "300ms", "--pause", "10ms",
			"--webhook-url", recv.URL + "/hooks?token=abc", "--webhook-secret", secret}, &stdout, &stderr)
	}()
	waitOutput(t, &stdout, &stderr, done, "Live pickup:")

	var out, errOut strings.Builder
	if err := run(context.Background(), []string{"reload", "--config", path}, &out, &errOut); err != nil || out.String() != "reloaded\n" || errOut.Len() != 0 {
		t.Errorf("reload against the demo: %v, stdout %q, stderr %q; want reloaded without a warning", err, out.String(), errOut.String())
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("demo after Ctrl-C: %v\n%s", err, stderr.String())
	}
	// history archived support mails + 6 sales + 3 new + 1 live.
	mu.Lock()
	got := len(mail)
	mu.Unlock()
	if want := history + 6 + 3 + 1; got != want {
		t.Errorf("the external receiver verified %d mail events, want %d", got, want)
	}
	o := stdout.String()
	for _, want := range []string{"Delivering to your receiver at " + recv.URL + "/hooks?redacted", "Live pickup: delivered"} {
		if !strings.Contains(o, want) {
			t.Errorf("demo output lacks %q:\n%s", want, o)
		}
	}
	if strings.Contains(o, "token=abc") || strings.Contains(o, secret) {
		t.Errorf("demo output shows the receiver's query or secret:\n%s", o)
	}
}

// TestDemoFlagErrors: half of the receiver flags, or a bad secret, is a
// usage error before anything starts.
func TestDemoFlagErrors(t *testing.T) {
	path := demoConfig(t)
	for _, args := range [][]string{
		{"--webhook-url", "http://127.0.0.1:9/hooks"},
		{"--webhook-url", "http://127.0.0.1:9/hooks", "--webhook-secret", "not-a-secret"},
		{"--webhook-url", "ftp://x", "--webhook-secret", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
		{"--history", "-1"},
	} {
		var out, errOut strings.Builder
		err := run(context.Background(), append([]string{"demo", "--config", path}, args...), &out, &errOut)
		if code := exitCode(err, &errOut); code != 2 {
			t.Errorf("demo %v: exit %d (%v), want 2", args, code, err)
		}
	}
}
