package web

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
)

func startServer(t *testing.T, opts Options) *Server {
	t.Helper()
	if opts.PublicAddr == "" {
		opts.PublicAddr = "127.0.0.1:0"
	}
	if opts.AdminAddr == "" {
		opts.AdminAddr = "127.0.0.1:0"
	}
	s := New(opts)
	if err := s.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Close(ctx)
	})
	return s
}

func get(t *testing.T, url string, header http.Header) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestHealthAndReadiness(t *testing.T) {
	var readyErr error
	s := startServer(t, Options{InstanceID: "nonce-1", Ready: func(context.Context) error { return readyErr }})
	for _, addr := range []string{s.PublicAddr(), s.AdminAddr()} {
		code, body := get(t, "http://"+addr+"/healthz", nil)
		var h map[string]string
		json.Unmarshal([]byte(body), &h)
		if code != 200 || h["instance"] != "nonce-1" {
			t.Errorf("%s /healthz = %d %s, want 200 with the instance nonce", addr, code, body)
		}
		if code, _ := get(t, "http://"+addr+"/readyz", nil); code != 200 {
			t.Errorf("%s /readyz = %d, want 200", addr, code)
		}
	}
	readyErr = errors.New("ping database: disk I/O error")
	code, body := get(t, "http://"+s.PublicAddr()+"/readyz", nil)
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "disk I/O error") {
		t.Errorf("/readyz when not ready = %d %s, want 503 naming the cause", code, body)
	}
}

func TestBusyPortIsAStartupError(t *testing.T) {
	first := startServer(t, Options{})
	second := New(Options{PublicAddr: first.PublicAddr(), AdminAddr: "127.0.0.1:0"})
	err := second.Start()
	if err == nil {
		second.Close(context.Background())
		t.Fatal("second Start on a busy port succeeded")
	}
	if !strings.Contains(err.Error(), "already in use") || !strings.Contains(err.Error(), "listen") {
		t.Errorf("err = %q, want it to say the address is in use and which key to change", err)
	}
	// The admin port of a failed start must not stay bound.
	third := New(Options{PublicAddr: "127.0.0.1:0", AdminAddr: first.AdminAddr()})
	if err := third.Start(); err == nil {
		third.Close(context.Background())
		t.Fatal("admin port clash not detected")
	}
}

func TestAdminAuth(t *testing.T) {
	s := startServer(t, Options{AdminToken: "s3cret"})
	s.Admin.GET("/api/ping", func(c echo.Context) error { return c.String(200, "pong") })
	url := "http://" + s.AdminAddr() + "/api/ping"
	if code, _ := get(t, url, nil); code != http.StatusUnauthorized {
		t.Errorf("no token: %d, want 401", code)
	}
	if code, _ := get(t, url, http.Header{"Authorization": {"Bearer wrong"}}); code != http.StatusUnauthorized {
		t.Errorf("wrong token: %d, want 401", code)
	}
	if code, body := get(t, url, http.Header{"Authorization": {"Bearer s3cret"}}); code != 200 || body != "pong" {
		t.Errorf("right token: %d %q, want 200 pong", code, body)
	}
	// The cookie carries a session id, never the token itself.
	if code, _ := get(t, url, http.Header{"Cookie": {AdminCookie + "=s3cret"}}); code != http.StatusUnauthorized {
		t.Errorf("the raw token as cookie: %d, want 401", code)
	}
	if code, _ := get(t, "http://"+s.AdminAddr()+"/healthz", nil); code != 200 {
		t.Errorf("healthz needs no token: got %d", code)
	}
}

// TestCloseIsIdempotentAndWaitsForRequests: a request in flight when Close
// begins is held open across it and still gets its answer; meanwhile the
// listener takes no new connection, and Close returns only after the
// request finished.
func TestCloseIsIdempotentAndWaitsForRequests(t *testing.T) {
	s := New(Options{PublicAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0"})
	started := make(chan struct{})
	release := make(chan struct{})
	var finished atomic.Bool
	s.Public.GET("/slow", func(c echo.Context) error {
		close(started)
		<-release
		finished.Store(true)
		return c.String(200, "done")
	})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	addr := s.PublicAddr()
	// The test signal that Close has begun: net/http runs these hooks once
	// Shutdown has closed the listeners.
	shutting := make(chan struct{})
	s.publicSrv.RegisterOnShutdown(func() { close(shutting) })

	result := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + addr + "/slow")
		if err != nil {
			result <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		result <- string(b)
	}()
	<-started
	type closeResult struct {
		err           error
		afterFinished bool // the held request had finished when Close returned
	}
	closed := make(chan closeResult, 1)
	go func() {
		err := s.Close(context.Background())
		closed <- closeResult{err, finished.Load()}
	}()
	select {
	case <-shutting:
	case r := <-closed:
		t.Fatalf("Close returned (%v) while a request was held, without shutting down gracefully", r.err)
	case <-time.After(10 * time.Second): // safety net; shutdown begins at once
		t.Fatal("Close never began shutting down")
	}
	// Close is under way and the request is still held.
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Error("the listener still accepts connections while closing")
	}
	select {
	case r := <-closed:
		t.Fatalf("Close returned (%v) while a request was still held", r.err)
	default:
	}
	close(release)
	if got := <-result; got != "done" {
		t.Errorf("in-flight request got %q, want done", got)
	}
	r := <-closed
	if r.err != nil {
		t.Errorf("Close: %v", r.err)
	}
	if !r.afterFinished {
		t.Error("Close returned before the held request finished")
	}
	if err := s.Close(context.Background()); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
