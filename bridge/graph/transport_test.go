package graph

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// sleepRecorder replaces Client.Sleep: it records each wait and returns at
// once, so retry tests take no wall time.
type sleepRecorder struct {
	mu    sync.Mutex
	waits []time.Duration
}

func (s *sleepRecorder) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.waits = append(s.waits, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *sleepRecorder) get() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.waits...)
}

var testNow = time.Date(2026, 11, 26, 20, 0, 0, 0, time.UTC)

func staticToken(tok string) TokenSource {
	return TokenFunc(func(context.Context) (string, error) { return tok, nil })
}

// fakeGraph starts an httptest server running h and a Client against it
// with a recording sleep.
func fakeGraph(t *testing.T, h http.HandlerFunc) (*Client, *sleepRecorder) {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	rec := &sleepRecorder{}
	c := &Client{
		BaseURL: srv.URL, HTTP: srv.Client(), Now: func() time.Time { return testNow },
		Sleep: rec.sleep, Logger: slog.New(slog.DiscardHandler),
	}
	return c, rec
}

func writeEnvelope(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"error":{"code":%q,"message":"test","innerError":{"request-id":"r-%d"}}}`, code, status)
}

func okMessage(w http.ResponseWriter, id string) {
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"id":%q,"subject":"s"}`, id)
}

func TestRetryAfterIsHonoured(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		retryAfter string
		wantWait   time.Duration
	}{
		{"429 seconds", 429, "3", 3 * time.Second},
		{"429 fractional", 429, "2.128", 2128 * time.Millisecond},
		{"429 http date", 429, testNow.Add(45 * time.Second).Format(http.TimeFormat), 45 * time.Second},
		{"429 above the cap", 429, "3600", DefaultMaxRetryAfter},
		{"503 seconds", 503, "7", 7 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls atomic.Int32
			c, rec := fakeGraph(t, func(w http.ResponseWriter, r *http.Request) {
				if calls.Add(1) <= 2 {
					w.Header().Set("Retry-After", tt.retryAfter)
					writeEnvelope(w, tt.status, "TooManyRequests")
					return
				}
				okMessage(w, "m1")
			})
			mc := c.Mailbox(Mailbox{Address: "u@contoso.com"}, staticToken("t.o.k"))
			m, err := mc.GetMessage(context.Background(), "m1", nil, false)
			if err != nil {
				t.Fatal(err)
			}
			if m.ID != "m1" {
				t.Errorf("ID = %q", m.ID)
			}
			if got, want := rec.get(), []time.Duration{tt.wantWait, tt.wantWait}; fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("waits = %v, want %v", got, want)
			}
			st := mc.Stats()
			wantThrottled := int64(0)
			if tt.status == 429 {
				wantThrottled = 2
			}
			if st.Requests != 3 || st.Throttled != wantThrottled || st.Retries != 2 {
				t.Errorf("stats = %+v, want 3 requests, %d throttled, 2 retries", st, wantThrottled)
			}
		})
	}
}

func TestRetriesAreBounded(t *testing.T) {
	tests := []struct {
		name   string
		status int
		want   error
	}{
		{"429", 429, ErrThrottled},
		{"500", 500, nil},
		{"502", 502, nil},
		{"503", 503, nil},
		{"504", 504, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls atomic.Int32
			c, rec := fakeGraph(t, func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				writeEnvelope(w, tt.status, "x")
			})
			c.MaxRetries = 3
			mc := c.Mailbox(Mailbox{Address: "u@contoso.com"}, staticToken("t.o.k"))
			_, err := mc.GetMessage(context.Background(), "m1", nil, false)
			var ge *Error
			if !errors.As(err, &ge) || ge.Status != tt.status || !ge.Temporary() {
				t.Fatalf("err = %v, want a temporary *Error with status %d", err, tt.status)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want Is %v", err, tt.want)
			}
			if got, want := calls.Load(), int32(4); got != want {
				t.Errorf("attempts = %d, want %d", got, want)
			}
			// No Retry-After: exponential backoff with jitter, each wait in
			// [d/2, d] for d = 500ms << attempt.
			waits := rec.get()
			if len(waits) != 3 {
				t.Fatalf("waits = %v, want 3", waits)
			}
			for i, w := range waits {
				d := defaultBackoffBase << i
				if w < d/2 || w > d {
					t.Errorf("wait %d = %v, want within [%v, %v]", i, w, d/2, d)
				}
			}
		})
	}
}

func TestNoRetryOnClientErrors(t *testing.T) {
	var calls atomic.Int32
	c, rec := fakeGraph(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		writeEnvelope(w, 404, "ErrorItemNotFound")
	})
	mc := c.Mailbox(Mailbox{Address: "u@contoso.com"}, staticToken("t.o.k"))
	_, err := mc.GetMessage(context.Background(), "gone", nil, false)
	if !errors.Is(err, ErrItemNotFound) {
		t.Errorf("err = %v, want ErrItemNotFound", err)
	}
	if calls.Load() != 1 || len(rec.get()) != 0 {
		t.Errorf("attempts %d waits %v, want 1 and none", calls.Load(), rec.get())
	}
}

func TestNetworkErrorsAreRetried(t *testing.T) {
	var calls atomic.Int32
	c, rec := fakeGraph(t, func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close() // drop the connection without an answer
			}
			return
		}
		okMessage(w, "m1")
	})
	mc := c.Mailbox(Mailbox{Address: "u@contoso.com"}, staticToken("t.o.k"))
	if _, err := mc.GetMessage(context.Background(), "m1", nil, false); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 2 || len(rec.get()) != 1 {
		t.Errorf("attempts %d waits %v, want 2 and one", calls.Load(), rec.get())
	}
}

func TestAttemptTimeoutIsRetried(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	var calls atomic.Int32
	c, _ := fakeGraph(t, func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			select { // hang until the client gives up on this attempt
			case <-r.Context().Done():
			case <-release:
			}
			return
		}
		okMessage(w, "m1")
	})
	c.RequestTimeout = 500 * time.Millisecond
	mc := c.Mailbox(Mailbox{Address: "u@contoso.com"}, staticToken("t.o.k"))
	if _, err := mc.GetMessage(context.Background(), "m1", nil, false); err != nil {
		t.Fatal(err)
	}
	// The first attempt hangs and is abandoned; on a loaded machine a later
	// one may time out too, so expect at least two.
	if got := calls.Load(); got < 2 {
		t.Errorf("attempts = %d, want at least 2", got)
	}
}

func TestContextCancelStopsWaiting(t *testing.T) {
	c, _ := fakeGraph(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "60")
		writeEnvelope(w, 429, "TooManyRequests")
	})
	c.Sleep = nil // the real timer
	mc := c.Mailbox(Mailbox{Address: "u@contoso.com"}, staticToken("t.o.k"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := mc.GetMessage(ctx, "m1", nil, false)
		done <- err
	}()
	// Cancel once the first 429 is counted: the client is then waiting.
	deadline := time.Now().Add(10 * time.Second)
	for mc.Stats().Throttled == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond) // pacing of a look at the client's counters, which cannot push; the deadline is the safety net
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the retry wait ignored the cancelled context")
	}
}

type refreshingTokens struct {
	mu          sync.Mutex
	gen         int
	invalidated int
}

func (r *refreshingTokens) Token(context.Context) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return fmt.Sprintf("tok.%d.x", r.gen), nil
}

func (r *refreshingTokens) Invalidate() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.gen++
	r.invalidated++
}

func TestUnauthorizedRefreshesOnce(t *testing.T) {
	t.Run("fresh token works", func(t *testing.T) {
		c, _ := fakeGraph(t, func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer tok.1.x" {
				writeEnvelope(w, 401, "InvalidAuthenticationToken")
				return
			}
			okMessage(w, "m1")
		})
		ts := &refreshingTokens{}
		if _, err := c.Mailbox(Mailbox{Address: "u@x"}, ts).GetMessage(context.Background(), "m1", nil, false); err != nil {
			t.Fatal(err)
		}
		if ts.invalidated != 1 {
			t.Errorf("invalidated %d times, want 1", ts.invalidated)
		}
	})
	t.Run("still refused", func(t *testing.T) {
		var calls atomic.Int32
		c, _ := fakeGraph(t, func(w http.ResponseWriter, r *http.Request) {
			calls.Add(1)
			writeEnvelope(w, 401, "InvalidAuthenticationToken")
		})
		ts := &refreshingTokens{}
		_, err := c.Mailbox(Mailbox{Address: "u@x"}, ts).GetMessage(context.Background(), "m1", nil, false)
		if !errors.Is(err, ErrUnauthorized) {
			t.Errorf("err = %v, want ErrUnauthorized", err)
		}
		if calls.Load() != 2 || ts.invalidated != 1 {
			t.Errorf("attempts %d invalidations %d, want 2 and 1", calls.Load(), ts.invalidated)
		}
	})
	t.Run("token source error", func(t *testing.T) {
		c, _ := fakeGraph(t, func(w http.ResponseWriter, r *http.Request) { okMessage(w, "m1") })
		boom := errors.New("refresh token revoked")
		ts := TokenFunc(func(context.Context) (string, error) { return "", boom })
		_, err := c.Mailbox(Mailbox{Address: "u@x"}, ts).GetMessage(context.Background(), "m1", nil, false)
		if !errors.Is(err, boom) {
			t.Errorf("err = %v, want the token source's error", err)
		}
	})
}

var guidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestRequestHeadersAndPaths(t *testing.T) {
	var mu sync.Mutex
	var got []*http.Request
	c, _ := fakeGraph(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Clone(context.Background()))
		mu.Unlock()
		okMessage(w, "m1")
	})
	ctx := context.Background()
	if _, err := c.Mailbox(Mailbox{Address: "me@x"}, staticToken("a.b.c")).GetMessage(ctx, "m1", []string{"id", "subject"}, true); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Mailbox(Mailbox{Shared: true, Address: "Help Desk#1@contoso.com"}, staticToken("a.b.c")).GetMessage(ctx, "m/1", nil, false); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("%d requests", len(got))
	}
	for _, r := range got {
		if p := r.Header.Get("Prefer"); !strings.Contains(p, `IdType="ImmutableId"`) {
			t.Errorf("Prefer = %q, want IdType=\"ImmutableId\"", p)
		}
		if id := r.Header.Get("client-request-id"); !guidRE.MatchString(id) {
			t.Errorf("client-request-id = %q, want a GUID", id)
		}
		if a := r.Header.Get("Authorization"); a != "Bearer a.b.c" {
			t.Errorf("Authorization = %q", a)
		}
	}
	if got, want := got[0].URL.RequestURI(), "/v1.0/me/messages/m1?$expand=attachments&$select=id,subject"; got != want {
		t.Errorf("user request = %s, want %s", got, want)
	}
	if got, want := got[1].URL.EscapedPath(), "/v1.0/users/Help%20Desk%231@contoso.com/messages/m%2F1"; got != want {
		t.Errorf("shared path = %s, want %s", got, want)
	}
}

func TestForeignLinksAreRefused(t *testing.T) {
	var calls atomic.Int32
	c, _ := fakeGraph(t, func(w http.ResponseWriter, r *http.Request) { calls.Add(1) })
	mc := c.Mailbox(Mailbox{Address: "u@x"}, staticToken("a.b.c"))
	for _, link := range []string{
		"https://evil.example.com/v1.0/me/mailFolders/x/messages/delta?$deltatoken=abc",
		strings.Replace(c.BaseURL, "http://", "https://", 1) + "/v1.0/me/messages/delta",
		c.BaseURL + "/beta/me/messages/delta",
		"::not a url",
	} {
		_, err := mc.Delta(context.Background(), "f", link, DeltaOptions{})
		if err == nil {
			t.Errorf("Delta(%q) succeeded, want an error", link)
		}
		_, err = mc.ListMessages(context.Background(), "f", ListOptions{Cursor: link})
		if err == nil {
			t.Errorf("ListMessages(%q) succeeded, want an error", link)
		}
	}
	if calls.Load() != 0 {
		t.Errorf("%d requests went out, want 0", calls.Load())
	}
}

func TestDeltaShrinksPageOn504(t *testing.T) {
	var mu sync.Mutex
	var sizes []string
	c, rec := fakeGraph(t, func(w http.ResponseWriter, r *http.Request) {
		p := r.Header.Get("Prefer")
		mu.Lock()
		sizes = append(sizes, p)
		mu.Unlock()
		if !strings.Contains(p, "odata.maxpagesize=25") {
			writeEnvelope(w, 504, "")
			return
		}
		fmt.Fprintf(w, `{"value":[{"id":"a"}],"@odata.deltaLink":"%s/v1.0/me/mailFolders/f/messages/delta?$deltatoken=t1"}`, "http://"+r.Host)
	})
	page, err := c.Mailbox(Mailbox{Address: "u@x"}, staticToken("a.b.c")).Delta(context.Background(), "f", "", DeltaOptions{PageSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`IdType="ImmutableId", odata.maxpagesize=100`,
		`IdType="ImmutableId", odata.maxpagesize=50`,
		`IdType="ImmutableId", odata.maxpagesize=25`,
	}
	if fmt.Sprint(sizes) != fmt.Sprint(want) {
		t.Errorf("Prefer headers = %q, want %q", sizes, want)
	}
	if page.PageSize != 25 || page.DeltaLink == "" || len(page.Messages) != 1 || len(rec.get()) != 0 {
		t.Errorf("page = %+v, waits %v", page, rec.get())
	}
}

func TestSizeCaps(t *testing.T) {
	body := strings.Repeat("x", 1000)
	c, _ := fakeGraph(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, body)
	})
	mc := c.Mailbox(Mailbox{Address: "u@x"}, staticToken("a.b.c"))
	ctx := context.Background()
	if got, err := mc.MIME(ctx, "m1", 1000); err != nil || string(got) != body {
		t.Errorf("MIME at the cap: %d bytes, %v", len(got), err)
	}
	if _, err := mc.MIME(ctx, "m1", 999); !errors.Is(err, ErrTooLarge) {
		t.Errorf("MIME over the cap: %v, want ErrTooLarge", err)
	}
	var sb strings.Builder
	n, err := mc.WriteAttachment(ctx, "m1", "a1", &sb, 10)
	if !errors.Is(err, ErrTooLarge) || n != 10 || sb.Len() != 10 {
		t.Errorf("WriteAttachment over the cap: n=%d len=%d err=%v, want 10, 10, ErrTooLarge", n, sb.Len(), err)
	}
}

func TestMisconfiguredMailbox(t *testing.T) {
	c, _ := fakeGraph(t, func(w http.ResponseWriter, r *http.Request) { t.Error("no request expected") })
	ctx := context.Background()
	if _, err := c.Mailbox(Mailbox{Shared: true}, staticToken("a.b.c")).GetFolder(ctx, "inbox"); err == nil ||
		!strings.Contains(err.Error(), "no address") {
		t.Errorf("shared mailbox without address: %v", err)
	}
	if _, err := c.Mailbox(Mailbox{Address: "u@x"}, nil).GetFolder(ctx, "inbox"); err == nil ||
		!strings.Contains(err.Error(), "no token source") {
		t.Errorf("nil token source: %v", err)
	}
}
