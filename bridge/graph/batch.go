package graph

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// MaxBatchSize is Graph's limit of requests in one $batch call.
const MaxBatchSize = 20

// BatchRequest is one request inside a $batch.
type BatchRequest struct {
	// ID correlates the response; unique (case-insensitive) within one
	// Batch call. Empty means the request's index.
	ID     string
	Method string
	// Path is relative to the mailbox root, e.g. "/messages/{id}/move".
	Path    string
	Headers map[string]string
	// Body, when non-nil, is sent as JSON.
	Body any
}

// BatchResponse is the outcome of one BatchRequest after retries.
type BatchResponse struct {
	ID      string
	Status  int // 0 when the item never got an answer
	Headers map[string]string
	Body    json.RawMessage
	// Err is nil for a 2xx; otherwise the item's *Error (matching the
	// sentinels, e.g. ErrItemNotFound) or why it got no answer.
	Err error
	// lifted is the attachment content cut out of Body (liftContent).
	lifted lifted
}

// Batch sends reqs through POST /v1.0/$batch, at most 20 per call (larger
// slices are split), and returns one response per request in the same
// order. Responses are correlated by id, whatever order Graph returns them
// in. Items answered 429 are retried after their Retry-After (capped), items
// answered 5xx after a backoff, only those items and at most MaxRetries
// times. The error is non-nil only when a whole $batch call failed (or ctx
// ended); the items it left unanswered carry that error too.
func (m *MailboxClient) Batch(ctx context.Context, reqs []BatchRequest) ([]BatchResponse, error) {
	out := make([]BatchResponse, len(reqs))
	seen := map[string]bool{}
	for i := range reqs {
		id := reqs[i].ID
		if id == "" {
			id = strconv.Itoa(i)
		}
		key := strings.ToLower(id)
		if seen[key] {
			return nil, fmt.Errorf("batch: duplicate request id %q", id)
		}
		seen[key] = true
		if reqs[i].Method == "" || !strings.HasPrefix(reqs[i].Path, "/") {
			return nil, fmt.Errorf("batch: request %q needs a method and a path starting with /", id)
		}
		out[i].ID = id
	}
	for start := 0; start < len(reqs); start += MaxBatchSize {
		end := min(start+MaxBatchSize, len(reqs))
		if err := m.batchChunk(ctx, reqs[start:end], out[start:end]); err != nil {
			for i := end; i < len(reqs); i++ {
				out[i].Err = fmt.Errorf("batch: not sent: %w", err)
			}
			return out, err
		}
	}
	return out, nil
}

// batchItem and batchReply are the wire shapes of $batch.
type batchItem struct {
	ID      string            `json:"id"`
	Method  string            `json:"method"`
	URL     string            `json:"url"`
	Headers map[string]string `json:"headers,omitempty"`
	Body    any               `json:"body,omitempty"`
}

type batchReply struct {
	ID      string            `json:"id"`
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers"`
	Body    json.RawMessage   `json:"body"`
}

// decodeBatch reads a $batch answer, whose attachment content was lifted
// out of it as it was read (call.lift), before encoding/json scans it: its
// items by lower-cased id.
func decodeBatch(small []byte) (map[string]batchReply, error) {
	var body struct {
		Responses []batchReply `json:"responses"`
	}
	if err := json.Unmarshal(small, &body); err != nil {
		return nil, fmt.Errorf("decode batch response: %w", err)
	}
	byID := make(map[string]batchReply, len(body.Responses))
	for _, r := range body.Responses {
		byID[strings.ToLower(r.ID)] = r
	}
	return byID, nil
}

// batchChunk runs up to 20 requests, retrying the items that failed with a
// retryable status. out[i] answers reqs[i].
func (m *MailboxClient) batchChunk(ctx context.Context, reqs []BatchRequest, out []BatchResponse) error {
	c := m.c
	pending := make([]int, len(reqs))
	for i := range pending {
		pending[i] = i
	}
	for attempt := 0; len(pending) > 0; attempt++ {
		items := m.batchItems(reqs, out, pending)
		payload, err := json.Marshal(map[string]any{"requests": items})
		if err != nil {
			return fmt.Errorf("encode batch: %w", err)
		}
		res, err := m.do(ctx, call{method: http.MethodPost, url: c.BaseURL + "/v1.0/$batch", kind: kindBatch, body: payload,
			slots: int64(len(items)), lift: true})
		if err != nil {
			for _, i := range pending {
				out[i].Err = fmt.Errorf("batch: %w", err)
			}
			return fmt.Errorf("batch: %w", err)
		}
		byID, err := decodeBatch(res.body)
		cut := res.lifted
		res.body, res.lifted = nil, nil
		if err != nil {
			for _, i := range pending {
				out[i].Err = err
			}
			return err
		}
		var retry []int
		var wait time.Duration
		for _, i := range pending {
			r, ok := byID[strings.ToLower(out[i].ID)]
			if !ok {
				out[i].Status, out[i].Err = 0, fmt.Errorf("batch: no response for request %q", out[i].ID)
				retry = append(retry, i)
				wait = max(wait, c.backoff(attempt))
				continue
			}
			out[i].Status, out[i].Headers, out[i].Body, out[i].Err, out[i].lifted = r.Status, r.Headers, r.Body, nil, cut
			if r.Status >= 200 && r.Status < 300 {
				continue
			}
			ge, ra, hasRA := m.itemError(reqs[i], r)
			out[i].Err = ge
			switch {
			case r.Status == http.StatusTooManyRequests:
				m.count(func(s *counters) { s.throttled.Add(1) })
			case r.Status >= 500:
				m.count(func(s *counters) { s.serverErrors.Add(1) })
			}
			if !retryStatus(r.Status) {
				continue
			}
			retry = append(retry, i)
			if hasRA && (r.Status == http.StatusTooManyRequests || r.Status == http.StatusServiceUnavailable) {
				wait = max(wait, min(ra, c.MaxRetryAfter))
			} else {
				wait = max(wait, c.backoff(attempt))
			}
		}
		if len(retry) == 0 || attempt >= c.MaxRetries {
			return nil
		}
		m.log.Info("graph batch items need a retry", slog.Int("items", len(retry)), slog.Int("attempt", attempt+1), slog.Duration("wait", wait))
		if err := c.Sleep(ctx, wait); err != nil {
			for _, i := range retry {
				out[i].Err = fmt.Errorf("batch: %w", err)
			}
			return fmt.Errorf("batch: %w", err)
		}
		m.count(func(s *counters) { s.retries.Add(1) })
		pending = retry
	}
	return nil
}

// batchItems are the $batch items of the pending requests, each with the
// immutable-id preference and a JSON content type when it has a body.
func (m *MailboxClient) batchItems(reqs []BatchRequest, out []BatchResponse, pending []int) []batchItem {
	items := make([]batchItem, 0, len(pending))
	for _, i := range pending {
		r := reqs[i]
		h := map[string]string{"Prefer": preferImmutableID}
		for k, v := range r.Headers {
			h[k] = v
		}
		if r.Body != nil {
			if _, ok := h["Content-Type"]; !ok {
				h["Content-Type"] = "application/json"
			}
		}
		items = append(items, batchItem{ID: out[i].ID, Method: r.Method, URL: m.root + r.Path, Headers: h, Body: r.Body})
	}
	return items
}

// itemError is the *Error of a failed $batch item, with its Retry-After
// when it sent one.
func (m *MailboxClient) itemError(req BatchRequest, r batchReply) (ge *Error, retryAfter time.Duration, hasRetryAfter bool) {
	h := http.Header{}
	for k, v := range r.Headers {
		h.Set(k, v)
	}
	ge = parseError(r.Status, h, r.Body)
	ge.Method, ge.Path, ge.Kind = req.Method, pathOf(m.root+req.Path), kindMessage
	retryAfter, hasRetryAfter = parseRetryAfter(h.Get("Retry-After"), m.c.Now())
	if hasRetryAfter {
		ge.RetryAfter = retryAfter
	}
	return ge, retryAfter, hasRetryAfter
}

// MarkRead marks messages read ({"isRead": true}) in batches of 20. The
// result has one entry per distinct id: nil when done — including a message
// that no longer exists, which is logged as already gone — otherwise the
// item's error (retryable ones were retried within the client's bounds).
func (m *MailboxClient) MarkRead(ctx context.Context, ids []string) map[string]error {
	return m.postAction(ctx, "mark read", ids, func(id string) BatchRequest {
		return BatchRequest{Method: http.MethodPatch, Path: "/messages/" + url.PathEscape(id), Body: map[string]bool{"isRead": true}}
	})
}

// Move moves messages to destFolderID (a folder id or a well-known name such
// as "deleteditems") in batches of 20. Results as for MarkRead: a message
// that is gone (404) counts as done. With immutable ids a moved message
// keeps its id.
func (m *MailboxClient) Move(ctx context.Context, ids []string, destFolderID string) map[string]error {
	if strings.TrimSpace(destFolderID) == "" {
		res := make(map[string]error, len(ids))
		for _, id := range ids {
			res[id] = fmt.Errorf("move message: empty destination folder")
		}
		return res
	}
	return m.postAction(ctx, "move", ids, func(id string) BatchRequest {
		return BatchRequest{Method: http.MethodPost, Path: "/messages/" + url.PathEscape(id) + "/move",
			Body: map[string]string{"destinationId": destFolderID}}
	})
}

// postAction runs one request per distinct id through Batch and folds the
// outcome into a map, treating 404 as already done.
func (m *MailboxClient) postAction(ctx context.Context, action string, ids []string, build func(id string) BatchRequest) map[string]error {
	result := make(map[string]error, len(ids))
	var reqs []BatchRequest
	var order []string
	for _, id := range ids {
		if _, dup := result[id]; dup {
			continue
		}
		result[id] = nil
		if strings.TrimSpace(id) == "" {
			result[id] = fmt.Errorf("%s message: empty id", action)
			continue
		}
		r := build(id)
		r.ID = strconv.Itoa(len(reqs))
		reqs = append(reqs, r)
		order = append(order, id)
	}
	if len(reqs) == 0 {
		return result
	}
	resps, err := m.Batch(ctx, reqs)
	if err != nil && resps == nil {
		for _, id := range order {
			result[id] = fmt.Errorf("%s message: %w", action, err)
		}
		return result
	}
	for i, r := range resps {
		id := order[i]
		switch {
		case r.Err == nil:
			result[id] = nil
		case errors.Is(r.Err, ErrItemNotFound):
			m.log.Info("message already gone; post-import action treated as done",
				slog.String("action", action), slog.String("message_id", id))
			result[id] = nil
		default:
			result[id] = fmt.Errorf("%s message: %w", action, r.Err)
		}
	}
	return result
}
