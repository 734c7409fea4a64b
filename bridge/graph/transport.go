package graph

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/m365bridge/m365bridge/bridge/backoff"
)

// Request kinds: Error.Kind and the kind passed to OnResponse.
const (
	kindFolder     = "folder"
	kindDelta      = "delta"
	kindMessage    = "message"
	kindList       = "messages"
	kindAttachment = "attachment"
	kindMIME       = "mime"
	kindBatch      = "batch"
	kindSend       = "send"
)

// preferImmutableID is sent on every request (GDC outlook-immutable-id.md):
// message ids then survive moves inside the mailbox.
const preferImmutableID = `IdType="ImmutableId"`

// maxErrorBody caps how much of an error response is read.
const maxErrorBody = 64 << 10

// call is one logical request; do retries it.
type call struct {
	method, url, kind string
	body              []byte   // JSON, sent with Content-Type: application/json
	prefer            []string // extra Prefer values, joined after IdType
	// sink, if set, receives a 2xx body as it streams (at most maxBytes).
	sink     io.Writer
	maxBytes int64 // cap on a 2xx body; 0 means Client.MaxResponseBytes
	// onHeader, if set with sink, sees a 2xx answer's headers before its
	// body goes to the sink (a proxy copies Content-Type and -Length).
	onHeader func(http.Header)
	// timeout, if set, replaces Client.RequestTimeout for each attempt
	// (a streamed download of a large file).
	timeout time.Duration
	// no504Retry returns a 504 at once: delta shrinks its page size instead.
	no504Retry bool
	// slots is how many of the mailbox's in-flight slots the call holds
	// (default 1). A $batch holds one per item up to the limit, because
	// Outlook runs up to 4 of its items at once against the mailbox.
	slots int64
	// notIdempotent retries only answers that say the request was not
	// processed (429, 503, a 401 token refresh): never a transport error or
	// another 5xx, after which the request may have taken effect.
	notIdempotent bool
	// lift cuts attachment content out of a 2xx body as it is read
	// (liftChunks): the response's body is then the JSON around it.
	lift bool
}

// response is a 2xx answer; body is empty when the call had a sink.
type response struct {
	status int
	header http.Header
	body   []byte
	lifted lifted // the content cut out of body, for a call with lift
}

// do sends cl, retrying within the Client's bounds, and returns the 2xx
// response or an error: *Error for a Graph answer, ctx's error when the
// caller gave up, or a wrapped transport error after the last retry.
func (m *MailboxClient) do(ctx context.Context, cl call) (*response, error) {
	c := m.c
	if m.mb.Shared && strings.TrimSpace(m.mb.Address) == "" {
		return nil, fmt.Errorf("%s %s: shared mailbox has no address", cl.method, cl.kind)
	}
	if m.tokens == nil {
		return nil, fmt.Errorf("%s %s: mailbox %s has no token source", cl.method, cl.kind, m.mb.Address)
	}
	requestID := newGUID()
	authRetried := false
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			m.count(func(s *counters) { s.retries.Add(1) })
		}
		res, retryable, err := m.attempt(ctx, cl, requestID)
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("%s %s: %w", cl.method, cl.kind, ctx.Err())
			}
			if !retryable || cl.notIdempotent || attempt >= c.MaxRetries {
				return nil, err
			}
			wait := c.backoff(attempt)
			m.log.Info("graph request failed, retrying", slog.String("kind", cl.kind),
				slog.Int("attempt", attempt+1), slog.Duration("wait", wait), slog.String("err", err.Error()))
			if err := c.Sleep(ctx, wait); err != nil {
				return nil, fmt.Errorf("%s %s: %w", cl.method, cl.kind, err)
			}
			continue
		}
		if res.status < 300 {
			return res, nil
		}
		gerr := parseError(res.status, res.header, res.body)
		gerr.Method, gerr.Path, gerr.Kind = cl.method, pathOf(cl.url), cl.kind
		if gerr.ClientRequestID == "" {
			gerr.ClientRequestID = requestID
		}
		ra, hasRA := parseRetryAfter(res.header.Get("Retry-After"), c.Now())
		if hasRA {
			gerr.RetryAfter = ra
		}
		if res.status == http.StatusUnauthorized && !authRetried {
			if inv, ok := m.tokens.(invalidator); ok {
				authRetried = true
				inv.Invalidate()
				m.log.Info("graph refused the access token, retrying once with a fresh one",
					append([]any{slog.String("kind", cl.kind)}, gerr.LogAttrs()...)...)
				continue
			}
		}
		notProcessed := res.status == http.StatusTooManyRequests || res.status == http.StatusServiceUnavailable
		if !retryStatus(res.status) || (res.status == http.StatusGatewayTimeout && cl.no504Retry) ||
			(cl.notIdempotent && !notProcessed) || attempt >= c.MaxRetries {
			return nil, gerr
		}
		wait := c.backoff(attempt)
		if hasRA && notProcessed {
			wait = min(ra, c.MaxRetryAfter)
		}
		m.log.Info("graph answered with a retryable status", append([]any{slog.String("kind", cl.kind),
			slog.Int("attempt", attempt+1), slog.Duration("wait", wait)}, gerr.LogAttrs()...)...)
		if err := c.Sleep(ctx, wait); err != nil {
			return nil, fmt.Errorf("%s %s: %w", cl.method, cl.kind, err)
		}
	}
}

// admit waits until cl fits the mailbox's request budget (pace.go) and
// holds its in-flight slots; release gives the slots back.
func (m *MailboxClient) admit(ctx context.Context, cl call) (release func(), err error) {
	if err := m.pace(ctx, max(cl.slots, 1)); err != nil {
		return nil, fmt.Errorf("wait for the mailbox's request budget: %w", err)
	}
	slots := min(max(cl.slots, 1), int64(m.c.MaxInFlight))
	if err := m.sem.Acquire(ctx, slots); err != nil {
		return nil, fmt.Errorf("wait for a request slot: %w", err)
	}
	return func() { m.sem.Release(slots) }, nil
}

// attempt sends cl once while holding one of the mailbox's in-flight slots.
// retryable reports whether a transport error may be retried.
func (m *MailboxClient) attempt(ctx context.Context, cl call, requestID string) (res *response, retryable bool, err error) {
	c := m.c
	token, err := m.tokens.Token(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("get access token: %w", err)
	}
	release, err := m.admit(ctx, cl)
	if err != nil {
		return nil, false, err
	}
	defer release()

	timeout := c.RequestTimeout
	if cl.timeout > 0 {
		timeout = cl.timeout
	}
	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := cl.request(actx, token, requestID)
	if err != nil {
		return nil, false, err
	}

	start := time.Now()
	resp, err := c.HTTP.Do(req)
	m.count(func(s *counters) { s.requests.Add(1) })
	if err != nil {
		c.report(cl, 0, time.Since(start))
		return nil, true, fmt.Errorf("%s %s %s: %w", cl.method, cl.kind, pathOf(cl.url), redactURLError(err))
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		m.count(func(s *counters) { s.throttled.Add(1) })
	case resp.StatusCode >= 500:
		m.count(func(s *counters) { s.serverErrors.Add(1) })
	}
	res = &response{status: resp.StatusCode, header: resp.Header}
	if resp.StatusCode >= 300 {
		res.body, err = io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		c.report(cl, resp.StatusCode, time.Since(start))
		if err != nil && len(res.body) == 0 {
			return nil, true, fmt.Errorf("read %s error response: %w", cl.kind, err)
		}
		return res, false, nil
	}
	limit := cl.maxBytes
	if limit <= 0 {
		limit = c.MaxResponseBytes
	}
	if cl.sink != nil {
		if cl.onHeader != nil {
			cl.onHeader(resp.Header)
		}
		n, err := io.Copy(cl.sink, io.LimitReader(resp.Body, limit))
		if err == nil && n == limit {
			// The sink holds exactly the cap; one more byte means too large.
			if extra, _ := io.ReadFull(resp.Body, make([]byte, 1)); extra > 0 {
				c.report(cl, resp.StatusCode, time.Since(start))
				return nil, false, fmt.Errorf("read %s: %w: more than %d bytes", cl.kind, ErrTooLarge, limit)
			}
		}
		c.report(cl, resp.StatusCode, time.Since(start))
		switch {
		case err != nil:
			// Bytes already went to the sink: a retry would duplicate them.
			return nil, n == 0, fmt.Errorf("read %s: %w", cl.kind, err)
		}
		return res, false, nil
	}
	return c.readJSON(cl, resp, res, limit, start)
}

// request is cl's HTTP request with the bearer token, the immutable-id
// preference and the client request id.
func (cl call) request(ctx context.Context, token, requestID string) (*http.Request, error) {
	var body io.Reader
	if cl.body != nil {
		body = bytes.NewReader(cl.body)
	}
	req, err := http.NewRequestWithContext(ctx, cl.method, cl.url, body)
	if err != nil {
		return nil, fmt.Errorf("build %s request: %w", cl.kind, err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Prefer", strings.Join(append([]string{preferImmutableID}, cl.prefer...), ", "))
	req.Header.Set("client-request-id", requestID)
	req.Header.Set("return-client-request-id", "true")
	if cl.sink == nil {
		req.Header.Set("Accept", "application/json")
	}
	if cl.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req, nil
}

// count applies f to both the mailbox's and the client's counters.
func (m *MailboxClient) count(f func(*counters)) {
	f(&m.stats)
	f(&m.c.stats)
}

func (c *Client) report(cl call, status int, d time.Duration) {
	if c.OnResponse != nil {
		c.OnResponse(cl.method, cl.kind, status, d)
	}
}

// retryStatus reports which statuses are retried: throttling and transient
// server errors.
func retryStatus(status int) bool {
	switch status {
	case http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// backoff is the wait before retry number attempt+1 when the server gave no
// Retry-After: exponential from 500 ms, capped at min(30 s, MaxRetryAfter),
// with "equal jitter" (half fixed, half random) so clients spread out.
func (c *Client) backoff(attempt int) time.Duration {
	return backoff.EqualJitter(backoff.Exponential(defaultBackoffBase, min(defaultBackoffMax, c.MaxRetryAfter), attempt+1), nil)
}

// parseRetryAfter reads a Retry-After value: delay seconds (Graph sends
// integers, older docs show fractions such as 2.128) or an HTTP date, which
// is turned into a delay from now (never negative). ok is false when the
// header is absent or unreadable.
func parseRetryAfter(v string, now time.Time) (d time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseFloat(v, 64); err == nil {
		if math.IsNaN(secs) || math.IsInf(secs, 0) || secs < 0 {
			return 0, false
		}
		if secs > float64(math.MaxInt64/int64(time.Second)) {
			return time.Duration(math.MaxInt64), true
		}
		return time.Duration(secs * float64(time.Second)), true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(t.Sub(now), 0), true
}

// pathOf is a URL's path without query or fragment: safe to log and to put
// in errors (delta tokens live in the query).
func pathOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable url)"
	}
	return u.Path
}

// redactURLError strips the URL (and so any delta token in its query) from
// a *url.Error, keeping the operation and cause.
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}
