package deliver

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/webhooks"
)

const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

func TestClassify(t *testing.T) {
	tests := []struct {
		status int
		err    error
		want   Outcome
	}{
		{200, nil, Delivered}, {202, nil, Delivered}, {204, nil, Delivered},
		{301, nil, Transient}, {302, nil, Transient}, {307, nil, Transient},
		{400, nil, Permanent}, {401, nil, Permanent}, {403, nil, Permanent}, {404, nil, Permanent}, {413, nil, Permanent}, {422, nil, Permanent},
		{408, nil, Transient}, {409, nil, Transient}, {425, nil, Transient}, {429, nil, Transient},
		{410, nil, Gone},
		{500, nil, Transient}, {501, nil, Transient}, {502, nil, Transient}, {503, nil, Transient}, {504, nil, Transient},
		{0, errors.New("connection refused"), Transient},
	}
	for _, tt := range tests {
		var resp *http.Response
		if tt.err == nil {
			resp = &http.Response{StatusCode: tt.status}
		}
		if got := Classify(resp, tt.err); got != tt.want {
			t.Errorf("Classify(%d, %v) = %s, want %s", tt.status, tt.err, got, tt.want)
		}
		retry, _ := checkRetry(context.Background(), resp, tt.err)
		if retry != (tt.want == Transient) {
			t.Errorf("checkRetry(%d) = %v, want %v", tt.status, retry, tt.want == Transient)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if retry, _ := checkRetry(ctx, nil, errors.New("x")); retry {
		t.Error("checkRetry retries after the context ended")
	}
}

func TestRetryAfter(t *testing.T) {
	now := Epoch(t)
	tests := []struct {
		header string
		want   time.Duration
	}{
		{"", 0},
		{"120", 2 * time.Minute},
		{"0", 0},
		{"-5", 0},
		{"99999999999999", time.Hour},
		{"7200", time.Hour},
		{now.Add(10 * time.Minute).Format(http.TimeFormat), 10 * time.Minute},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{now.Add(48 * time.Hour).Format(http.TimeFormat), time.Hour},
		{"soon", 0},
	}
	for _, tt := range tests {
		resp := &http.Response{Header: http.Header{}}
		if tt.header != "" {
			resp.Header.Set("Retry-After", tt.header)
		}
		if got := retryAfter(resp, now, time.Hour); got != tt.want {
			t.Errorf("retryAfter(%q) = %s, want %s", tt.header, got, tt.want)
		}
	}
}

func TestSendSignsEveryTryAfresh(t *testing.T) {
	var mu sync.Mutex
	var stamps []string
	var ids []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		stamps = append(stamps, r.Header.Get(webhooks.HeaderTimestamp))
		ids = append(ids, r.Header.Get(webhooks.HeaderID))
		buf := make([]byte, 100)
		n, _ := r.Body.Read(buf)
		clock := func() time.Time {
			ts, _ := strconv.ParseInt(r.Header.Get(webhooks.HeaderTimestamp), 10, 64)
			return time.Unix(ts, 0)
		}
		if err := webhooks.Verify(r.Header, buf[:n], []string{secret}, webhooks.WithNow(clock)); err != nil {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if len(stamps) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	var tick int64
	s := NewSender(SenderOptions{RetryMax: 1, UserAgent: "m365bridge/test", Now: func() time.Time {
		tick += 10
		return time.Unix(1_700_000_000+tick, 0)
	}})
	s.client.RetryWaitMin, s.client.RetryWaitMax = time.Millisecond, time.Millisecond
	res := s.Send(context.Background(), Endpoint{Name: "x", URL: srv.URL, Secrets: []string{secret}}, Message{ID: "msg_1", Body: []byte(`{"a":1}`), Attempt: 1})
	if res.Outcome != Delivered || res.Status != 200 {
		t.Fatalf("Send = %+v, want delivered 200", res)
	}
	if len(stamps) != 2 || stamps[0] == stamps[1] || ids[0] != "msg_1" || ids[1] != "msg_1" {
		t.Errorf("tries carried timestamps %v and ids %v; want two different timestamps, the same id", stamps, ids)
	}
}

func TestSendTimeout(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block }))
	defer srv.Close()
	defer close(block)
	s := NewSender(SenderOptions{})
	res := s.Send(context.Background(), Endpoint{Name: "x", URL: srv.URL, Secrets: []string{secret}, Timeout: 50 * time.Millisecond}, Message{ID: "m", Body: []byte("{}"), Attempt: 1})
	if res.Outcome != Transient || res.Status != 0 || res.Excerpt == "" {
		t.Errorf("Send to a hanging receiver = %+v, want transient with an error excerpt", res)
	}
}

func TestRedactURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://user:pw@helpdesk.example.com/hook?token=s3cret", "https://helpdesk.example.com/hook?redacted"},
		{"https://helpdesk.example.com/hook", "https://helpdesk.example.com/hook"},
		{"https://helpdesk.example.com/hook?", "https://helpdesk.example.com/hook?redacted"},
		{"https://helpdesk.example.com/hook#s3cret", "https://helpdesk.example.com/hook"},
		{"http://h/%zz?token=s3cret", "[unparsable url]"},
	}
	for _, tt := range tests {
		if got := RedactURL(tt.in); got != tt.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestRedactText(t *testing.T) {
	tests := []struct{ in, want string }{
		{`POST https://h.example/hook?token=s3cret giving up after 1 attempt(s): Post "https://h.example/hook?token=s3cret": dial tcp: connection refused`,
			`POST https://h.example/hook?redacted giving up after 1 attempt(s): Post "https://h.example/hook?redacted": dial tcp: connection refused`},
		{`parse "http://h.example/x?token=s3cret\x7f": net/url: invalid control character in URL`,
			`parse "http://h.example/x?redacted": net/url: invalid control character in URL`},
		{`redirect to "https://login.example/?next=s3cret" not followed`, `redirect to "https://login.example/?redacted" not followed`},
		{"no url here: 500 Internal Server Error", "no url here: 500 Internal Server Error"},
	}
	for _, tt := range tests {
		got := RedactText(tt.in)
		if got != tt.want {
			t.Errorf("RedactText(%q)\n = %q\nwant %q", tt.in, got, tt.want)
		}
		if again := RedactText(got); again != got {
			t.Errorf("RedactText is not idempotent: %q then %q", got, again)
		}
	}
}

// TestSendRedactsTransportErrors: the error of a POST that never reached
// the receiver names its URL; Send's Excerpt and Err do not show the
// query's credential, and Err still unwraps to its cause.
func TestSendRedactsTransportErrors(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.URL
	srv.Close() // nothing listens any more: connection refused
	s := NewSender(SenderOptions{})
	res := s.Send(context.Background(), Endpoint{Name: "h", URL: addr + "/hook?token=s3cret", Secrets: []string{secret}}, Message{ID: "m1", Body: []byte("{}"), Attempt: 1})
	if res.Outcome != Transient || res.Err == nil {
		t.Fatalf("Send to a closed port: %v %v, want a transient error", res.Outcome, res.Err)
	}
	for name, text := range map[string]string{"Excerpt": res.Excerpt, "Err": res.Err.Error()} {
		if strings.Contains(text, "s3cret") || !strings.Contains(text, "hook?redacted") {
			t.Errorf("%s = %q, want the URL with its query redacted", name, text)
		}
	}
	var opErr *net.OpError
	if !errors.As(res.Err, &opErr) {
		t.Errorf("Err %v no longer unwraps to its *net.OpError", res.Err)
	}
}

func TestEndpoint(t *testing.T) {
	ep := Endpoint{Name: "h", URL: "https://x.example/hook", Secrets: []string{secret}}.WithDefaults()
	if err := ep.Validate(); err != nil {
		t.Fatal(err)
	}
	for n, want := range map[int]time.Duration{1: 5 * time.Second, 2: 5 * time.Minute, 6: 10 * time.Hour, 7: 10 * time.Hour, 50: 10 * time.Hour} {
		if got := ep.delayAfter(n); got != want {
			t.Errorf("delayAfter(%d) = %s, want %s", n, got, want)
		}
	}
	bad := Endpoint{URL: "ftp://x", Secrets: []string{"nope"}, Schedule: []time.Duration{-1}}
	err := bad.Validate()
	for _, want := range []string{"name is empty", "not an absolute http(s) URL", "secret 1", "negative delay"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate = %v, want it to mention %q", err, want)
		}
	}
	typed := Endpoint{Types: []string{"mail.*", "channel.error"}}
	for typ, want := range map[string]bool{"mail.received": true, "mail.archived": true, "channel.error": true, "channel.auth_failed": false, "webhook.test": false} {
		if got := typed.Accepts(typ); got != want {
			t.Errorf("Accepts(%s) = %v, want %v", typ, got, want)
		}
	}
}
