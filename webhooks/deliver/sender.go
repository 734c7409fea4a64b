package deliver

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/m365bridge/m365bridge/webhooks"
)

// AttemptHeader carries the attempt number (1 for the first try).
const AttemptHeader = "X-M365Bridge-Attempt"

// EventTypeHeader carries the event type, for receivers that route on it.
const EventTypeHeader = "X-M365Bridge-Event"

// Outcome classifies one attempt.
type Outcome int

// Outcomes.
const (
	Delivered Outcome = iota // 2xx
	Transient                // retry later: network error, 5xx, 3xx, 408, 409, 425, 429
	Permanent                // any other 4xx: the receiver refuses this event
	Gone                     // 410: the endpoint is gone; disable it
)

func (o Outcome) String() string {
	return [...]string{"delivered", "transient", "permanent", "gone"}[o]
}

// Classify maps a response (or a transport error, resp nil) to an outcome.
// 3xx is a failure: redirects are never followed.
func Classify(resp *http.Response, err error) Outcome {
	if err != nil || resp == nil {
		return Transient
	}
	switch c := resp.StatusCode; {
	case c >= 200 && c < 300:
		return Delivered
	case c == http.StatusGone:
		return Gone
	case c == http.StatusRequestTimeout, c == http.StatusConflict, c == http.StatusTooEarly, c == http.StatusTooManyRequests:
		return Transient
	case c >= 400 && c < 500:
		return Permanent
	default:
		return Transient
	}
}

// checkRetry is retryablehttp's CheckRetry: retry transient outcomes only,
// never after the caller's context ended.
func checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	return Classify(resp, err) == Transient, nil
}

// Result is what one Send observed.
type Result struct {
	Outcome Outcome
	Status  int // 0 when no response came
	// RetryAfter is the receiver's Retry-After, already capped; 0 if none.
	RetryAfter time.Duration
	// Excerpt is the start of the response body or the error text, at
	// most ExcerptBytes, for the operator.
	Excerpt string
	Err     error
}

// ExcerptBytes caps Result.Excerpt.
const ExcerptBytes = 1024

// Message is one attempt's content.
type Message struct {
	ID      string // webhook-id: the event id
	Type    string
	Body    []byte // exactly what is sent and signed
	Attempt int
}

// Sender POSTs signed messages. It is safe for concurrent use.
type Sender struct {
	client        *retryablehttp.Client
	userAgent     string
	retryAfterCap time.Duration
	now           func() time.Time
}

// SenderOptions configures NewSender.
type SenderOptions struct {
	// HTTPClient is used for the requests; its redirect policy is replaced
	// (redirects are never followed). Nil: a pooled client.
	HTTPClient *http.Client
	Logger     *slog.Logger
	// UserAgent, e.g. "m365bridge/1.2.3".
	UserAgent string
	// RetryMax is how many quick in-process retries follow a transient
	// failure before the durable schedule takes over; default 0.
	RetryMax int
	// RetryAfterCap bounds an honoured Retry-After; default 1 h.
	RetryAfterCap time.Duration
	Now           func() time.Time
}

// DefaultRetryAfterCap bounds Retry-After.
const DefaultRetryAfterCap = time.Hour

// NewSender builds a Sender over go-retryablehttp.
func NewSender(o SenderOptions) *Sender {
	hc := &http.Client{}
	if o.HTTPClient != nil {
		c := *o.HTTPClient
		hc = &c
	}
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.RetryAfterCap <= 0 {
		o.RetryAfterCap = DefaultRetryAfterCap
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.UserAgent == "" {
		o.UserAgent = "m365bridge"
	}
	s := &Sender{userAgent: o.UserAgent, retryAfterCap: o.RetryAfterCap, now: o.Now}
	s.client = &retryablehttp.Client{
		HTTPClient:   hc,
		Logger:       slogLeveled{o.Logger.With("component", "webhook_sender")},
		RetryWaitMin: time.Second,
		RetryWaitMax: 30 * time.Second,
		RetryMax:     o.RetryMax,
		CheckRetry:   checkRetry,
		Backoff: func(lo, hi time.Duration, n int, resp *http.Response) time.Duration {
			if d := retryAfter(resp, s.now(), s.retryAfterCap); d > 0 {
				return min(d, hi)
			}
			return retryablehttp.DefaultBackoff(lo, hi, n, nil)
		},
		ErrorHandler: retryablehttp.PassthroughErrorHandler,
		PrepareRetry: func(r *http.Request) error {
			if sign, ok := r.Context().Value(signerKey{}).(func(*http.Request) error); ok {
				return sign(r)
			}
			return nil
		},
	}
	return s
}

type signerKey struct{}

// Send POSTs m to ep once (plus RetryMax quick retries), signing every try
// afresh: a new webhook-timestamp, the same webhook-id. Every URL in the
// result's Excerpt and Err is redacted (see RedactText): the endpoint URL
// may carry a credential, and Go's errors quote it.
func (s *Sender) Send(ctx context.Context, ep Endpoint, m Message) Result {
	r := s.send(ctx, ep, m)
	r.Excerpt, r.Err = RedactText(r.Excerpt), redactErr(r.Err)
	return r
}

func (s *Sender) send(ctx context.Context, ep Endpoint, m Message) Result {
	ep = ep.WithDefaults()
	ctx, cancel := context.WithTimeout(ctx, ep.Timeout*time.Duration(1+s.client.RetryMax))
	defer cancel()
	sign := func(r *http.Request) error {
		now := s.now()
		sig, err := webhooks.SignAll(ep.Secrets, m.ID, now, m.Body)
		if err != nil {
			return err
		}
		r.Header.Set(webhooks.HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
		r.Header.Set(webhooks.HeaderSignature, sig)
		return nil
	}
	// PrepareRetry finds the signer in the context to re-sign each retry.
	ctx = context.WithValue(ctx, signerKey{}, sign)
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodPost, ep.URL, m.Body)
	if err != nil {
		return Result{Outcome: Permanent, Excerpt: excerpt(err.Error()), Err: fmt.Errorf("build request: %w", err)}
	}
	for k, v := range ep.Headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", ep.ContentType)
	req.Header.Set("User-Agent", s.userAgent)
	req.Header.Set(webhooks.HeaderID, m.ID)
	req.Header.Set(AttemptHeader, strconv.Itoa(m.Attempt))
	if m.Type != "" {
		req.Header.Set(EventTypeHeader, m.Type)
	}
	if err := sign(req.Request); err != nil {
		return Result{Outcome: Permanent, Excerpt: excerpt(err.Error()), Err: fmt.Errorf("sign request: %w", err)}
	}
	resp, err := s.client.Do(req)
	if err != nil {
		if resp != nil {
			resp.Body.Close()
		}
		return Result{Outcome: Transient, Excerpt: excerpt(err.Error()), Err: fmt.Errorf("post to %s: %w", ep.Name, err)}
	}
	defer resp.Body.Close()
	head, _ := io.ReadAll(io.LimitReader(resp.Body, ExcerptBytes))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // let the connection be reused
	r := Result{Outcome: Classify(resp, nil), Status: resp.StatusCode, Excerpt: excerpt(string(head))}
	if r.Outcome == Transient {
		r.RetryAfter = retryAfter(resp, s.now(), s.retryAfterCap)
	}
	if r.Outcome != Delivered {
		if r.Excerpt == "" {
			r.Excerpt = resp.Status
		}
		if loc := resp.Header.Get("Location"); resp.StatusCode >= 300 && resp.StatusCode < 400 {
			r.Excerpt = excerpt(fmt.Sprintf("redirect to %q not followed: fix the endpoint URL", loc))
		}
		r.Err = fmt.Errorf("post to %s: status %d", ep.Name, resp.StatusCode)
	}
	return r
}

// retryAfter reads Retry-After (seconds or an HTTP date) on 429 and 503 or
// any other response that carries it, capped at limit; 0 when absent.
func retryAfter(resp *http.Response, now time.Time, limit time.Duration) time.Duration {
	if resp == nil {
		return 0
	}
	v := strings.TrimSpace(resp.Header.Get("Retry-After"))
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		if secs > int64(limit/time.Second) {
			return limit
		}
		d = time.Duration(secs) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	if d <= 0 {
		return 0
	}
	return min(d, limit)
}

// excerpt trims s to ExcerptBytes on a rune boundary.
func excerpt(s string) string {
	s = strings.TrimSpace(s)
	if len(s) <= ExcerptBytes {
		return s
	}
	cut := ExcerptBytes
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// slogLeveled adapts slog to retryablehttp.LeveledLogger. Its per-request
// chatter goes to debug; it never sees bodies or signatures.
type slogLeveled struct{ l *slog.Logger }

func (a slogLeveled) Error(msg string, kv ...any) { a.l.Error(msg, redactKV(kv)...) }
func (a slogLeveled) Info(msg string, kv ...any)  { a.l.Debug(msg, redactKV(kv)...) }
func (a slogLeveled) Debug(msg string, kv ...any) { a.l.Debug(msg, redactKV(kv)...) }
func (a slogLeveled) Warn(msg string, kv ...any)  { a.l.Warn(msg, redactKV(kv)...) }

var _ retryablehttp.LeveledLogger = slogLeveled{}
