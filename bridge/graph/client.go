// Package graph is the bridge's Microsoft Graph mail client: folder path
// resolution, per-folder delta paging, message, attachment and MIME reads,
// batched post-import actions ($batch), and sending (sendMail).
//
// One Client is shared by every channel. It promises, for every request:
//
//   - Prefer: IdType="ImmutableId", so message ids survive moves;
//   - a fresh client-request-id GUID and a bounded per-attempt timeout;
//   - at most MaxInFlight (4) requests in flight per mailbox, counted across
//     every MailboxClient of the Client for the same address (Outlook's
//     per-mailbox concurrency limit, DESIGN.md invariant 6); a $batch counts
//     as one request per item, up to 4, since Outlook runs that many of its
//     items at once;
//   - bounded retries: 429 and 503 wait Retry-After (seconds, fractional
//     seconds or an HTTP date, capped at MaxRetryAfter), other 5xx and network
//     errors back off exponentially with jitter, every wait honours ctx;
//   - failures as *Error values that match the package's sentinels
//     (ErrFolderNotFound, ErrAccessDenied, ErrSyncStateNotFound, ...) and
//     that Explain turns into operator guidance.
//
// Tokens, message bodies and full URLs (delta links carry sync state) are
// never logged.
package graph

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"
)

// Defaults for the zero fields of a Client.
const (
	DefaultBaseURL          = "https://graph.microsoft.com"
	DefaultMaxRetries       = 5
	DefaultMaxRetryAfter    = 2 * time.Minute
	DefaultRequestTimeout   = 60 * time.Second
	DefaultMaxInFlight      = 4
	DefaultMaxResponseBytes = 256 << 20
	// defaultBackoffBase and defaultBackoffMax bound the exponential backoff
	// used when the server gives no Retry-After.
	defaultBackoffBase = 500 * time.Millisecond
	defaultBackoffMax  = 30 * time.Second
)

// Client talks to one Graph endpoint on behalf of every channel. Set the
// fields before first use and do not change them afterwards; the zero value
// of each field selects its default. A Client is safe for concurrent use.
type Client struct {
	// BaseURL is the Graph root without the version, e.g.
	// https://graph.microsoft.com or the simulator's http://127.0.0.1:PORT.
	// Paging links are only followed when they point at this scheme and host.
	BaseURL string
	// HTTP sends the requests; default a client keeping up to 64 idle
	// connections to the Graph host. The per-attempt timeout comes from
	// RequestTimeout through the context, so no Timeout is needed here.
	HTTP *http.Client
	// Logger receives retry and throttling notes; default slog.Default().
	Logger *slog.Logger
	// Now is the clock used for HTTP-date Retry-After values.
	Now func() time.Time
	// MaxRetries bounds the retries of one request (attempts = MaxRetries+1).
	// Negative means no retries.
	MaxRetries int
	// MaxRetryAfter caps a server-requested wait (Retry-After) and the
	// backoff between retries.
	MaxRetryAfter time.Duration
	// RequestTimeout bounds one attempt, including reading the body.
	RequestTimeout time.Duration
	// MaxInFlight is the number of concurrent requests per mailbox.
	MaxInFlight int
	// MaxResponseBytes caps a JSON response body held in memory.
	MaxResponseBytes int64
	// Sleep waits d or until ctx is done; tests inject a recorder so retries
	// take no wall time. Default: a timer.
	Sleep func(ctx context.Context, d time.Duration) error
	// OnResponse, if set, is called after every attempt (for metrics): kind
	// is the request kind ("folder", "delta", "message", ...), status is 0
	// for a transport error.
	OnResponse func(method, kind string, status int, dur time.Duration)

	// MailboxBudget is how many requests ($batch items counted one by one)
	// the client sends a mailbox in any 10 minutes (pace.go); default
	// DefaultMailboxBudget, below Graph's documented 10,000.
	MailboxBudget int

	initOnce sync.Once
	semMu    sync.Mutex
	sems     map[string]*semaphore.Weighted
	paces    map[string]*paceWindow
	stats    counters
	chunks   chunkPool // readChunks' buffers, recycled
}

// Mailbox says whose mailbox a MailboxClient reads. A user mailbox is
// reached through /me (the signed-in user's own); a shared mailbox through
// /users/{address}. Address is also the key of the per-mailbox concurrency
// limit, so set it for user mailboxes too (the user's UPN).
type Mailbox struct {
	Shared  bool
	Address string
}

// TokenSource yields a bearer access token for the mailbox's signed-in user.
// If it also implements Invalidate(), a 401 InvalidAuthenticationToken makes
// the client call Invalidate and retry once with a fresh token.
type TokenSource interface {
	Token(ctx context.Context) (string, error)
}

// invalidator is the optional half of TokenSource.
type invalidator interface{ Invalidate() }

// TokenFunc adapts a function to TokenSource.
type TokenFunc func(ctx context.Context) (string, error)

// Token calls f.
func (f TokenFunc) Token(ctx context.Context) (string, error) { return f(ctx) }

// MailboxClient is a Client bound to one mailbox and its token source. It is
// cheap; make one per channel. Safe for concurrent use.
type MailboxClient struct {
	c      *Client
	mb     Mailbox
	tokens TokenSource
	root   string // "/me" or "/users/{escaped}", relative to /v1.0
	key    string // lower-cased address, the semaphore key
	sem    *semaphore.Weighted
	window *paceWindow // the mailbox's request budget
	log    *slog.Logger
	stats  counters
}

// Stats are request counters since the Client or MailboxClient was made.
type Stats struct {
	Requests     int64 // HTTP attempts sent, including retries and $batch calls
	Throttled    int64 // 429 answers, including 429 items inside $batch
	ServerErrors int64 // 5xx answers
	Retries      int64 // attempts that were retries
}

type counters struct {
	requests, throttled, serverErrors, retries atomic.Int64
}

func (c *counters) snapshot() Stats {
	return Stats{Requests: c.requests.Load(), Throttled: c.throttled.Load(),
		ServerErrors: c.serverErrors.Load(), Retries: c.retries.Load()}
}

// Stats returns the Client-wide counters (all mailboxes).
func (c *Client) Stats() Stats { return c.stats.snapshot() }

// Stats returns this MailboxClient's counters.
func (m *MailboxClient) Stats() Stats { return m.stats.snapshot() }

// Mailbox returns a handle for one mailbox. Every handle for the same
// address (case-insensitive) shares one in-flight limit.
func (c *Client) Mailbox(m Mailbox, tokens TokenSource) *MailboxClient {
	c.init()
	key := strings.ToLower(strings.TrimSpace(m.Address))
	if key == "" {
		key = "me"
	}
	root := "/me"
	if m.Shared {
		root = "/users/" + escapeUser(strings.TrimSpace(m.Address))
	}
	kind := "user"
	if m.Shared {
		kind = "shared"
	}
	return &MailboxClient{
		c: c, mb: m, tokens: tokens, root: root, key: key, sem: c.semaphore(key), window: c.paceWindow(key),
		log: c.Logger.With(slog.String("mailbox", m.Address), slog.String("mailbox_type", kind)),
	}
}

// Mailbox returns the mailbox this handle reads.
func (m *MailboxClient) Mailbox() Mailbox { return m.mb }

// Root is the mailbox's path below the version root, "/me" or
// "/users/{address}": the prefix of relative URLs inside $batch.
func (m *MailboxClient) Root() string { return m.root }

// escapeUser escapes a UPN for a /users/{upn} path segment. A UPN that
// starts with '$' must be written /users('$x@y') (GDC user-get.md).
func escapeUser(addr string) string {
	esc := url.PathEscape(addr)
	if strings.HasPrefix(addr, "$") {
		return "('" + strings.ReplaceAll(esc, "'", "''") + "')"
	}
	return esc
}

func (c *Client) init() {
	c.initOnce.Do(func() {
		if c.BaseURL == "" {
			c.BaseURL = DefaultBaseURL
		}
		c.BaseURL = strings.TrimSuffix(strings.TrimSuffix(c.BaseURL, "/"), "/v1.0")
		if c.HTTP == nil {
			// DefaultTransport keeps only 2 idle connections per host; with
			// 4 requests per mailbox and many mailboxes on one Graph host
			// that would mean a new TLS handshake for most requests.
			c.HTTP = http.DefaultClient
			if dt, ok := http.DefaultTransport.(*http.Transport); ok {
				tr := dt.Clone()
				tr.MaxIdleConnsPerHost = 64
				c.HTTP = &http.Client{Transport: tr}
			}
		}
		if c.Logger == nil {
			c.Logger = slog.Default()
		}
		if c.Now == nil {
			c.Now = time.Now
		}
		if c.MaxRetries == 0 {
			c.MaxRetries = DefaultMaxRetries
		} else if c.MaxRetries < 0 {
			c.MaxRetries = 0
		}
		if c.MaxRetryAfter <= 0 {
			c.MaxRetryAfter = DefaultMaxRetryAfter
		}
		if c.RequestTimeout <= 0 {
			c.RequestTimeout = DefaultRequestTimeout
		}
		if c.MaxInFlight <= 0 {
			c.MaxInFlight = DefaultMaxInFlight
		}
		if c.MaxResponseBytes <= 0 {
			c.MaxResponseBytes = DefaultMaxResponseBytes
		}
		if c.Sleep == nil {
			c.Sleep = sleepCtx
		}
		if c.MailboxBudget <= 0 {
			c.MailboxBudget = DefaultMailboxBudget
		}
		c.sems = map[string]*semaphore.Weighted{}
		c.paces = map[string]*paceWindow{}
	})
}

// semaphore returns the shared in-flight limiter for a mailbox key.
func (c *Client) semaphore(key string) *semaphore.Weighted {
	c.semMu.Lock()
	defer c.semMu.Unlock()
	s := c.sems[key]
	if s == nil {
		s = semaphore.NewWeighted(int64(c.MaxInFlight))
		c.sems[key] = s
	}
	return s
}

// sleepCtx waits d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// newGUID returns a random version-4 GUID for client-request-id.
func newGUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return fmt.Sprintf("%s-%s-%s-%s-%s", h[0:8], h[8:12], h[12:16], h[16:20], h[20:32])
}

// url builds an absolute URL for a path relative to the mailbox root.
func (m *MailboxClient) url(rel string, q url.Values) string {
	u := m.c.BaseURL + "/v1.0" + m.root + rel
	if len(q) > 0 {
		u += "?" + encodeQuery(q)
	}
	return u
}

// encodeQuery encodes OData query options keeping '$' and ',' literal, as
// Graph's own links do (url.Values.Encode would write %24select), and spaces
// as %20 rather than '+'.
func encodeQuery(q url.Values) string {
	return strings.NewReplacer("%24", "$", "%2C", ",", "+", "%20").Replace(q.Encode())
}

// checkLink verifies a paging link (nextLink/deltaLink) points at the
// configured Graph scheme and host, so the bearer token never leaves it.
func (c *Client) checkLink(link string) error {
	u, err := url.Parse(link)
	if err != nil {
		return fmt.Errorf("parse paging link: %w", err)
	}
	base, err := url.Parse(c.BaseURL)
	if err != nil {
		return fmt.Errorf("parse graph base url %q: %w", c.BaseURL, err)
	}
	if !strings.EqualFold(u.Scheme, base.Scheme) || !strings.EqualFold(u.Host, base.Host) {
		return fmt.Errorf("%w: %s://%s is not %s://%s", ErrForeignLink, u.Scheme, u.Host, base.Scheme, base.Host)
	}
	if !strings.HasPrefix(u.Path, "/v1.0/") {
		return fmt.Errorf("%w: path %q is not under /v1.0/", ErrForeignLink, u.Path)
	}
	return nil
}
