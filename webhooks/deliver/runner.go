package deliver

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Runner delivers one row by its own means instead of one signed POST: a
// delivery recipe (webhooks/recipe) that talks to a helpdesk's REST API in
// several steps. The dispatcher calls Run once per attempt, after the
// attempt is committed, and records the Result exactly as it records a
// POST's: Delivered acknowledges the row (and so, through the queue's
// hooks, lets the mailbox post-action run), Permanent rejects it,
// Transient retries it on the endpoint's schedule (RetryAfter honoured).
//
// A Runner must make a re-run safe: the dispatcher runs a row again after
// a crash or a lost answer, and the helpdesk may already hold what an
// earlier run created. Excerpt and Err must carry no secret.
type Runner interface {
	Run(ctx context.Context, ep Endpoint, row Row, attempt int) Result
}

// Answer classifies a response whose body starts with head (at most
// ExcerptBytes are kept), the way Send does: the outcome, the capped
// Retry-After of a transient answer, a redacted excerpt and an error for
// anything but 2xx. what names the request in the error ("post to
// helpdesk", "step create"). A nil resp is a transport error err.
func Answer(what string, resp *http.Response, head []byte, err error, now time.Time, retryAfterCap time.Duration) Result {
	if retryAfterCap <= 0 {
		retryAfterCap = DefaultRetryAfterCap
	}
	if err != nil || resp == nil {
		if err == nil {
			err = fmt.Errorf("no response")
		}
		return Result{Outcome: Transient, Excerpt: RedactText(excerpt(err.Error())), Err: redactErr(fmt.Errorf("%s: %w", what, err))}
	}
	r := Result{Outcome: Classify(resp, nil), Status: resp.StatusCode, Excerpt: excerpt(string(head))}
	if r.Outcome == Transient {
		r.RetryAfter = retryAfter(resp, now, retryAfterCap)
	}
	if r.Outcome != Delivered {
		if r.Excerpt == "" {
			r.Excerpt = resp.Status
		}
		if loc := resp.Header.Get("Location"); resp.StatusCode >= 300 && resp.StatusCode < 400 {
			r.Excerpt = excerpt(fmt.Sprintf("redirect to %q not followed: fix the URL", loc))
		}
		r.Err = fmt.Errorf("%s: status %d", what, resp.StatusCode)
	}
	r.Excerpt, r.Err = RedactText(r.Excerpt), redactErr(r.Err)
	return r
}

// ReadHead reads up to limit bytes of body and drains (a bounded part of)
// the rest so the connection can be reused.
func ReadHead(body io.Reader, limit int64) []byte {
	head, _ := io.ReadAll(io.LimitReader(body, limit))
	io.Copy(io.Discard, io.LimitReader(body, 64<<10))
	return head
}

// TicketLink is one entry of the ticket map: the helpdesk ticket a
// delivered mail belongs to, per webhook (helpdesk) and channel.
type TicketLink struct {
	Webhook        string
	Channel        string
	MessageID      string // the mail's Internet Message-ID
	ConversationID string // Graph conversationId; may be empty
	TicketID       string
	EventID        string
	RecordedAt     time.Time
}

// TicketMap remembers which ticket each mail produced, so that a reply
// finds its ticket. bridge/store implements it on SQLite.
type TicketMap interface {
	// FindTicket returns the ticket of the first of messageIDs it knows
	// (nearest ancestor first), else the latest of conversationID, else "".
	FindTicket(ctx context.Context, webhook, channel string, messageIDs []string, conversationID string) (string, error)
	// RecordTicket stores l, committed before it returns; recording a
	// message id again replaces its ticket.
	RecordTicket(ctx context.Context, l TicketLink) error
	// ForgetTickets drops webhook's entries recorded before before and
	// returns how many went.
	ForgetTickets(ctx context.Context, webhook string, before time.Time) (int64, error)
}
