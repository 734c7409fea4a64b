package main

import (
	"context"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/m365bridge/m365bridge/webhooks"
)

// TestDeliveriesTestThroughDaemon is issue 12 item 10 from the command
// line against `serve` run from its file: the daemon signs a webhook.test
// that the receiver verifies with the configured secret, and the command
// prints the receiver's answer; a refusing receiver exits 1 with its
// answer; without a daemon it says so.
func TestDeliveriesTestThroughDaemon(t *testing.T) {
	var mu sync.Mutex
	var got []string
	refuse := false
	rc := &webhooks.Receiver{Verifier: webhooks.Verifier{Secrets: []string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}}}
	rc.OnEvent = func(ctx context.Context, d *webhooks.Delivery) error {
		mu.Lock()
		defer mu.Unlock()
		if refuse {
			return &webhooks.StatusError{Code: 422, Err: errString("unknown event type")}
		}
		got = append(got, d.Event.Type+" "+d.ID)
		return nil
	}
	recv := httptest.NewServer(rc)
	defer recv.Close()

	public, admin := freeAddr(t), freeAddr(t)
	path := writeServeConfig(t, public, admin)
	yml, _ := os.ReadFile(path)
	if err := os.WriteFile(path, []byte(strings.Replace(string(yml), "http://127.0.0.1:1/hooks", recv.URL+"/hooks", 1)), 0o600); err != nil {
		t.Fatal(err)
	}

	var out, errOut strings.Builder
	err := run(context.Background(), []string{"deliveries", "test", "--config", path, "helpdesk"}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "running daemon") {
		t.Errorf("without a daemon: err = %v, want one saying it needs the running daemon", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var sout, serr syncBuffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"serve", "--config", path}, &sout, &serr) }()
	waitHTTP(t, "http://"+public+"/healthz", done)

	out.Reset()
	if err := run(context.Background(), []string{"deliveries", "test", "--config", path, "helpdesk"}, &out, &errOut); err != nil {
		t.Fatalf("deliveries test: %v\n%s%s", err, out.String(), errOut.String())
	}
	mu.Lock()
	if len(got) != 1 || !strings.HasPrefix(got[0], "webhook.test evt_") || !strings.Contains(out.String(), strings.TrimPrefix(got[0], "webhook.test ")) {
		t.Errorf("receiver got %v; command printed:\n%s", got, out.String())
	}
	refuse = true
	mu.Unlock()
	if !strings.Contains(out.String(), "answer:   HTTP 204") || !strings.Contains(out.String(), "(delivered)") {
		t.Errorf("output lacks the receiver's answer:\n%s", out.String())
	}

	out.Reset()
	errOut.Reset()
	err = run(context.Background(), []string{"deliveries", "test", "--config", path, "helpdesk"}, &out, &errOut)
	if exitCode(err, &errOut) != 1 || !strings.Contains(out.String(), "HTTP 422") || !strings.Contains(out.String(), "unknown event type") {
		t.Errorf("refused test: err %v, output:\n%s%s", err, out.String(), errOut.String())
	}
	err = run(context.Background(), []string{"deliveries", "test", "--config", path, "nope"}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "no webhook nope") {
		t.Errorf("unknown webhook: err = %v", err)
	}
	cancel()
	<-done
}

type errString string

func (e errString) Error() string { return string(e) }
