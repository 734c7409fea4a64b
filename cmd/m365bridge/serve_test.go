package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for a daemon's logger and a test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// freeAddr returns a loopback address with a port free a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// writeServeConfig writes a minimal valid bridge.yaml for serve tests.
func writeServeConfig(t *testing.T, public, admin string) string {
	t.Helper()
	dir := t.TempDir()
	cfg := fmt.Sprintf(`public_url: http://%[1]s
listen: %[1]s
admin: {listen: %[2]s, token: test-admin-token}
state_dir: %[3]s
log: {level: debug, format: json}
microsoft:
  client_id: 11111111-2222-3333-4444-555555555555
  client_secret: not-a-real-secret
  tenant: contoso.onmicrosoft.com
webhooks:
  - name: helpdesk
    url: http://127.0.0.1:1/hooks
    secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
channels:
  - name: support
    mailbox: {type: shared, address: support@contoso.com}
    group: Support
`, public, admin, filepath.Join(dir, "data"))
	path := filepath.Join(dir, "bridge.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// waitHTTP polls url until it answers 200 or the deadline passes.
func waitHTTP(t *testing.T, url string, done <-chan error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			t.Fatalf("serve exited before it was healthy: %v", err)
		default:
		}
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(20 * time.Millisecond) // pacing: a server can only be asked over HTTP whether it is up; the deadline is the safety net
	}
	t.Fatalf("%s never answered 200", url)
}

func waitLog(t *testing.T, logs *syncBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("log never said %q:\n%s", want, logs.String())
		}
		time.Sleep(10 * time.Millisecond) // pacing: the log is what tells; the deadline is the safety net
	}
}

func TestServeHealthReadyAndGracefulStop(t *testing.T) {
	public, admin := freeAddr(t), freeAddr(t)
	path := writeServeConfig(t, public, admin)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"serve", "--config", path}, &stdout, &stderr) }()

	waitHTTP(t, "http://"+public+"/healthz", done)
	for _, u := range []string{"http://" + public + "/readyz", "http://" + admin + "/readyz"} {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("%s = %d, want 200", u, resp.StatusCode)
		}
	}

	// The FQDN check: public_url reaches this very instance.
	var out, errOut syncBuffer
	if err := run(context.Background(), []string{"check", "--config", path, "--online"}, &out, &errOut); err != nil {
		t.Errorf("check --online against the running daemon: %v\n%s%s", err, out.String(), errOut.String())
	}
	if !strings.Contains(out.String(), "Online check passed") {
		t.Errorf("check --online output:\n%s", out.String())
	}
	// A public_url that leads elsewhere (here: a plain HTTP server) fails with the fix.
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"status":"ok","instance":"someone-else"}`))
	}))
	defer other.Close()
	elsewhere := filepath.Join(t.TempDir(), "elsewhere.yaml")
	b, _ := os.ReadFile(path)
	os.WriteFile(elsewhere, []byte(strings.Replace(string(b), "public_url: http://"+public, "public_url: "+other.URL, 1)), 0o600)
	errOut = syncBuffer{}
	err := run(context.Background(), []string{"check", "--config", elsewhere, "--online"}, &out, &errOut)
	if err == nil || !strings.Contains(errOut.String(), "another m365bridge instance") {
		t.Errorf("check --online with a foreign public_url: err %v, stderr:\n%s", err, errOut.String())
	}

	// With a daemon running, replay goes through its admin API.
	var rout, rerr syncBuffer
	if err := run(context.Background(), []string{"replay", "--config", path, "--id", "msg_nothing"}, &rout, &rerr); err != nil {
		t.Errorf("replay through the daemon: %v\n%s", err, rerr.String())
	}
	if got := rout.String(); !strings.Contains(got, "through the running daemon") || !strings.Contains(got, "nothing to replay") {
		t.Errorf("replay output:\n%s", got)
	}

	rout = syncBuffer{}
	if err := run(context.Background(), []string{"deliveries", "--config", path, "--pause", "helpdesk"}, &rout, &rerr); err != nil {
		t.Errorf("deliveries --pause through the daemon: %v\n%s", err, rerr.String())
	}
	if got := rout.String(); !strings.Contains(got, "endpoint helpdesk is now paused (through the running daemon)") {
		t.Errorf("deliveries --pause output:\n%s", got)
	}

	// A second instance on the same ports fails at startup, clearly.
	var stderr2 syncBuffer
	err = run(context.Background(), []string{"serve", "--config", path}, &stdout, &stderr2)
	if err == nil || !strings.Contains(err.Error(), "already in use") {
		t.Errorf("second instance: err = %v, want an address-in-use startup error", err)
	}

	// SIGHUP re-reads the file: an invalid edit is rejected and logged,
	// then a valid one is applied.
	orig, _ := os.ReadFile(path)
	os.WriteFile(path, append(append([]byte{}, orig...), "oops: 1\n"...), 0o600)
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	waitLog(t, &stderr, "reload rejected")
	os.WriteFile(path, append(orig, `  - name: billing
    mailbox: {type: shared, address: billing@contoso.com}
    group: Billing
`...), 0o600)
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	waitLog(t, &stderr, "configuration reloaded")
	if !strings.Contains(stderr.String(), `channels_added=[billing]`) && !strings.Contains(stderr.String(), `"channels_added":["billing"]`) {
		t.Errorf("reload did not add billing:\n%s", stderr.String())
	}

	cancel() // what SIGTERM does through signal.NotifyContext
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve returned %v after stop, want nil", err)
		}
	case <-time.After(shutdownTimeout + 5*time.Second):
		t.Fatal("serve did not stop within the shutdown timeout")
	}
	if logs := stderr.String(); !strings.Contains(logs, `"msg":"stopped"`) {
		t.Errorf("logs lack the stop line:\n%s", logs)
	}
	if strings.Contains(stderr.String(), "test-admin-token") || strings.Contains(stderr.String(), "not-a-real-secret") {
		t.Error("a secret appeared in the logs")
	}
}
