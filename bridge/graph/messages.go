package graph

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// ListOptions shape ListMessages.
type ListOptions struct {
	// Top is the page size, 1..1000 (Graph's bounds); default 10.
	Top int
	// Select is the $select list; default EventFields().
	Select []string
	// OrderBy is e.g. "receivedDateTime asc" or "receivedDateTime desc".
	OrderBy string
	// ReceivedBefore, if set, keeps messages received strictly before it
	// (and, with OrderBy on receivedDateTime, is the $filter Graph requires
	// to come first).
	ReceivedBefore time.Time
	// Count asks for @odata.count, the number of matching messages.
	Count bool
	// Cursor is a NextLink from an earlier page; the other options are then
	// ignored (they are encoded in the link).
	Cursor string
}

// MessagePage is one page of a folder listing.
type MessagePage struct {
	Messages    []Message
	Undecodable []UndecodableMessage
	NextLink    string
	Count       int // @odata.count; -1 when not asked for or not returned
}

// ListMessages lists one page of a folder's messages, for inspection (the
// oldest and newest message, how many are before a cut-off). Sync uses Delta.
func (m *MailboxClient) ListMessages(ctx context.Context, folderID string, opts ListOptions) (*MessagePage, error) {
	link := opts.Cursor
	if link == "" {
		if strings.TrimSpace(folderID) == "" {
			return nil, fmt.Errorf("list messages: empty folder id")
		}
		if opts.Top < 0 || opts.Top > 1000 {
			return nil, fmt.Errorf("list messages: top %d is outside Graph's 1..1000", opts.Top)
		}
		sel := opts.Select
		if len(sel) == 0 {
			sel = EventFields()
		}
		q := url.Values{"$select": {strings.Join(sel, ",")}}
		if opts.Top > 0 {
			q.Set("$top", fmt.Sprint(opts.Top))
		}
		if opts.OrderBy != "" {
			q.Set("$orderby", opts.OrderBy)
		}
		if !opts.ReceivedBefore.IsZero() {
			q.Set("$filter", "receivedDateTime lt "+opts.ReceivedBefore.UTC().Format(time.RFC3339))
		}
		if opts.Count {
			q.Set("$count", "true")
		}
		link = m.url("/mailFolders/"+url.PathEscape(folderID)+"/messages", q)
	} else if err := m.c.checkLink(link); err != nil {
		return nil, fmt.Errorf("list messages: %w", err)
	}
	res, err := m.do(ctx, call{method: http.MethodGet, url: link, kind: kindList})
	if err != nil {
		return nil, fmt.Errorf("list messages: %w", err)
	}
	var body struct {
		Value    []json.RawMessage `json:"value"`
		NextLink string            `json:"@odata.nextLink"`
		Count    *int              `json:"@odata.count"`
	}
	if err := json.Unmarshal(res.body, &body); err != nil {
		return nil, fmt.Errorf("decode message list: %w", err)
	}
	page := &MessagePage{NextLink: body.NextLink, Count: -1}
	if body.Count != nil {
		page.Count = *body.Count
	}
	page.Messages, page.Undecodable = decodeMessages(body.Value)
	return page, nil
}

// CountMessages returns the number of messages in a folder (its
// totalItemCount), in one small request.
func (m *MailboxClient) CountMessages(ctx context.Context, folderID string) (int, error) {
	f, err := m.GetFolder(ctx, folderID)
	if err != nil {
		return 0, fmt.Errorf("count messages: %w", err)
	}
	return f.TotalItemCount, nil
}

// GetMessage reads one message by id with the given $select (default
// EventFields()) and, if asked, its attachments expanded with content.
// A message that is gone gives an error matching ErrItemNotFound.
func (m *MailboxClient) GetMessage(ctx context.Context, id string, selectFields []string, expandAttachments bool) (*Message, error) {
	if strings.TrimSpace(id) == "" {
		return nil, fmt.Errorf("get message: empty id")
	}
	if len(selectFields) == 0 {
		selectFields = EventFields()
	}
	q := url.Values{"$select": {strings.Join(selectFields, ",")}}
	if expandAttachments {
		q.Set("$expand", "attachments")
	}
	res, err := m.do(ctx, call{method: http.MethodGet, url: m.url("/messages/"+url.PathEscape(id), q), kind: kindMessage})
	if err != nil {
		return nil, fmt.Errorf("get message: %w", err)
	}
	msg, err := DecodeMessage(res.body)
	if err != nil {
		return nil, err
	}
	return &msg, nil
}

// MIME returns the message's raw RFC 822 source (Graph serves it as
// text/plain) from /messages/{id}/$value — the form that works for every
// mailbox, not the mailFolders one. More than maxBytes gives ErrTooLarge.
func (m *MailboxClient) MIME(ctx context.Context, id string, maxBytes int64) ([]byte, error) {
	var buf bytes.Buffer
	if _, err := m.WriteMIME(ctx, id, &buf, maxBytes); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// WriteMIME streams the message's raw source into w, holding one of the
// mailbox's request slots while it does; it returns the bytes written. More
// than maxBytes (> 0 required) gives ErrTooLarge, after exactly maxBytes
// were written.
func (m *MailboxClient) WriteMIME(ctx context.Context, id string, w io.Writer, maxBytes int64) (int64, error) {
	if strings.TrimSpace(id) == "" {
		return 0, fmt.Errorf("get mime: empty message id")
	}
	if maxBytes <= 0 {
		return 0, fmt.Errorf("get mime: maxBytes must be positive")
	}
	cw := &countingWriter{w: w}
	_, err := m.do(ctx, call{method: http.MethodGet, url: m.url("/messages/"+url.PathEscape(id)+"/$value", nil),
		kind: kindMIME, sink: cw, maxBytes: maxBytes})
	if err != nil {
		return cw.n, fmt.Errorf("get mime: %w", err)
	}
	return cw.n, nil
}

// countingWriter counts what passes through; the limit check happens in
// attempt, which reads at most maxBytes+1.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
