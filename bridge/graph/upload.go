package graph

// Attachments on a draft: a file whose POST fits Graph's 4 MB request
// limit goes in one POST on the draft's attachments (GDC
// api-reference/v1.0/api/message-post-attachments.md); a larger one, up to
// 150 MB, through an upload session (GDC concepts/outlook-large-attachments.md,
// api-reference/v1.0/api/attachment-createuploadsession.md): createUploadSession
// answers 201 with a pre-authenticated uploadUrl, then the bytes are PUT in
// order in chunks of at most 4 MB with Content-Range: bytes {start}-{end}/{total}
// and NO Authorization header; each PUT is answered 200 with
// nextExpectedRanges until the last, answered 201 Created.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

const (
	// UploadChunkBytes is the size of one upload PUT: the docs ask for "up
	// to 4 MB each time"; 3 MiB stays under either reading of 4 MB. (The
	// 320 KiB-multiple rule of OneDrive upload sessions does not apply to
	// Outlook attachments.)
	UploadChunkBytes = 3 << 20
	// MinUploadSessionBytes is where upload sessions take over from a POST:
	// below it a file's base64 POST fits MaxRequestBytes; Graph refuses a
	// session for a file "smaller than 3 MB"
	// (ErrorAttachmentSizeShouldNotBeLessThanMinimumSize).
	MinUploadSessionBytes = 2_999_000
	// MaxUploadBytes is Graph's limit of one attachment: 150 MB.
	MaxUploadBytes = 150_000_000
	// maxChunkRetries bounds the retries of one chunk whose answer was lost.
	maxChunkRetries = 4
)

// AddAttachment attaches a file to the draft id: in one POST when it is
// small, else through an upload session (see the file comment). A chunk
// whose answer is lost or is a 5xx is sent again from the next byte Graph
// expects, a bounded number of times.
func (m *MailboxClient) AddAttachment(ctx context.Context, id string, a Attachment) error {
	a.ODataType = FileAttachment
	if a.ContentType == "" {
		a.ContentType = "application/octet-stream"
	}
	if len(a.ContentBytes) > MaxUploadBytes {
		return fmt.Errorf("attachment %q is %d bytes; Graph takes at most %d: %w", a.Name, len(a.ContentBytes), MaxUploadBytes, ErrRequestTooLarge)
	}
	if len(a.ContentBytes) < MinUploadSessionBytes {
		body, err := json.Marshal(a)
		if err != nil {
			return fmt.Errorf("encode attachment: %w", err)
		}
		if err := checkRequestSize(body); err != nil {
			return fmt.Errorf("add attachment %q: %w", a.Name, err)
		}
		u := m.url("/messages/"+url.PathEscape(id)+"/attachments", url.Values{"$select": {"id"}})
		if _, err := m.do(ctx, call{method: http.MethodPost, url: u, kind: kindAttachment, body: body, notIdempotent: true}); err != nil {
			return fmt.Errorf("add attachment %q: %w", a.Name, err)
		}
		return nil
	}
	return m.uploadAttachment(ctx, id, a)
}

// uploadSession is the answer of createUploadSession and of each PUT.
type uploadSession struct {
	UploadURL          string   `json:"uploadUrl"`
	NextExpectedRanges []string `json:"nextExpectedRanges"`
}

func (m *MailboxClient) uploadAttachment(ctx context.Context, id string, a Attachment) error {
	item := map[string]any{"attachmentType": "file", "name": a.Name, "size": len(a.ContentBytes), "contentType": a.ContentType}
	if a.IsInline {
		item["isInline"] = true
		item["contentId"] = a.ContentID
	}
	body, err := json.Marshal(map[string]any{"AttachmentItem": item})
	if err != nil {
		return fmt.Errorf("encode upload session: %w", err)
	}
	u := m.url("/messages/"+url.PathEscape(id)+"/attachments/createUploadSession", nil)
	res, err := m.do(ctx, call{method: http.MethodPost, url: u, kind: kindAttachment, body: body, notIdempotent: true})
	if err != nil {
		return fmt.Errorf("create upload session for %q: %w", a.Name, err)
	}
	var us uploadSession
	if err := json.Unmarshal(res.body, &us); err != nil || us.UploadURL == "" {
		return fmt.Errorf("create upload session for %q: no uploadUrl in the answer (%v)", a.Name, err)
	}
	if err := m.checkUploadURL(us.UploadURL); err != nil {
		return fmt.Errorf("upload %q: %w", a.Name, err)
	}
	data, total := a.ContentBytes, int64(len(a.ContentBytes))
	next, failures := int64(0), 0
	for {
		end := min(next+UploadChunkBytes, total) - 1
		status, ranges, err := m.putChunk(ctx, us.UploadURL, data[next:end+1], next, end, total)
		switch {
		case ctx.Err() != nil:
			return fmt.Errorf("upload %q: %w", a.Name, ctx.Err())
		case err == nil && status == http.StatusCreated:
			return nil
		case err == nil && (status == http.StatusOK || status == http.StatusRequestedRangeNotSatisfiable) && len(ranges) > 0:
			n, perr := rangeStart(ranges[0])
			if perr != nil || n >= total {
				return fmt.Errorf("upload %q: Graph expects %q next after byte %d of %d", a.Name, ranges[0], end, total)
			}
			if n <= next {
				failures++
			} else {
				failures = 0
			}
			next = n
		case status >= 400 && status < 500:
			return fmt.Errorf("upload %q at byte %d: %w", a.Name, next, err)
		default:
			// The answer is lost or Graph failed: send the chunk again; the
			// bytes Graph already has are skipped (nextExpectedRanges of the
			// next answer).
			failures++
			if err == nil {
				err = fmt.Errorf("status %d", status)
			}
			if failures > maxChunkRetries {
				return fmt.Errorf("upload %q at byte %d: %w", a.Name, next, err)
			}
			if serr := m.c.Sleep(ctx, m.c.backoff(failures-1)); serr != nil {
				return fmt.Errorf("upload %q: %w", a.Name, serr)
			}
		}
		if failures > maxChunkRetries {
			return fmt.Errorf("upload %q at byte %d: no progress after %d tries", a.Name, next, failures)
		}
	}
}

// checkUploadURL refuses an upload URL that is not https, unless the Graph
// base itself is plain http (the simulator): the URL carries its own token.
func (m *MailboxClient) checkUploadURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("the upload URL %q is not an absolute URL", raw)
	}
	base, _ := url.Parse(m.c.BaseURL)
	if u.Scheme != "https" && !(u.Scheme == "http" && base != nil && base.Scheme == "http") {
		return fmt.Errorf("the upload URL is %s, not https", u.Scheme)
	}
	return nil
}

// putChunk PUTs bytes start..end of total to the pre-authenticated upload
// URL: no Authorization header (the docs say not to send one), one of the
// mailbox's in-flight slots held.
func (m *MailboxClient) putChunk(ctx context.Context, uploadURL string, chunk []byte, start, end, total int64) (int, []string, error) {
	if err := m.sem.Acquire(ctx, 1); err != nil {
		return 0, nil, err
	}
	defer m.sem.Release(1)
	actx, cancel := context.WithTimeout(ctx, m.c.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPut, uploadURL, bytes.NewReader(chunk))
	if err != nil {
		return 0, nil, fmt.Errorf("build upload request: %w", err)
	}
	req.ContentLength = int64(len(chunk))
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, end, total))
	resp, err := m.c.HTTP.Do(req)
	m.count(func(s *counters) { s.requests.Add(1) })
	if err != nil {
		return 0, nil, redactURLError(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var us uploadSession
	json.Unmarshal(b, &us)
	if resp.StatusCode >= 400 && resp.StatusCode != http.StatusRequestedRangeNotSatisfiable && resp.StatusCode < 500 {
		return resp.StatusCode, nil, parseError(resp.StatusCode, resp.Header, b)
	}
	return resp.StatusCode, us.NextExpectedRanges, nil
}

// rangeStart reads the start of a nextExpectedRanges entry ("N" or "N-M").
func rangeStart(r string) (int64, error) {
	s, _, _ := strings.Cut(r, "-")
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n < 0 {
		return 0, errors.New("bad range")
	}
	return n, nil
}
