package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDemoToLivePickup drives the README's first command in-process, on the
// repository's own bridge.yaml with its five loopback ports moved to free
// ones, to the live-pickup step, then stops it as Ctrl-C would.
func TestDemoToLivePickup(t *testing.T) {
	b, err := os.ReadFile("../../bridge.yaml")
	if err != nil {
		t.Fatal(err)
	}
	yml := string(b)
	for _, port := range []string{"8365", "8366", "8367", "8369"} {
		free := freeAddr(t)
		yml = strings.ReplaceAll(yml, "127.0.0.1:"+port, free)
	}
	path := filepath.Join(t.TempDir(), "bridge.yaml")
	if err := os.WriteFile(path, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"demo", "--config", path, "--history", "8", "--poll", "300ms", "--pause", "10ms"}, &stdout, &stderr)
	}()
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(stdout.String(), "Live pickup:") {
		select {
		case err := <-done:
			t.Fatalf("demo ended early: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no live pickup within a minute\nstdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
		}
		time.Sleep(20 * time.Millisecond) // pacing: the demo's output is what tells; the deadline is the safety net
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("demo after Ctrl-C: %v", err)
	}
	out := stdout.String()
	for _, want := range []string{
		`Channel "support" connected.`, `Channel "sales" connected.`,
		"mail.archived", "channel=support", "archive=true", "mail.received",
		`subject="Re: Cannot log in after password reset"`, `subject="URGENT: shop checkout returns error 500"`,
		"signature ok", "Status page: http://",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q\n%s", want, out)
		}
	}
	if strings.Contains(out, "REJECTED") {
		t.Errorf("the receiver rejected a request:\n%s", out)
	}
	// 8 archived support mails + 6 sales (4 before the cut-off) + 3 new + 1 live.
	if got := strings.Count(out, " mail.archived msg_"); got != 12 {
		t.Errorf("%d mail.archived lines, want 12\n%s", got, out)
	}
	if got := strings.Count(out, " mail.received msg_"); got != 6 {
		t.Errorf("%d mail.received lines, want 6\n%s", got, out)
	}
}
