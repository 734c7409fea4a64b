package graph

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
)

// Page sizes for delta (Prefer: odata.maxpagesize).
const (
	DefaultDeltaPageSize = 100
	minDeltaPageSize     = 10
)

// EventFields is the $select a ticket event needs: addressing, threading
// headers, both dates, the body, and what decides further fetches
// (hasAttachments). It is the default for Delta, GetMessage and
// ListMessages.
func EventFields() []string {
	return []string{
		"id", "changeKey", "internetMessageId", "subject", "from", "sender", "toRecipients",
		"ccRecipients", "bccRecipients", "replyTo", "receivedDateTime", "sentDateTime", "body",
		"bodyPreview", "hasAttachments", "isRead", "isDraft", "conversationId", "parentFolderId",
		"internetMessageHeaders", "importance", "categories",
	}
}

// DeltaOptions shape the first request of a delta round; later pages carry
// them inside their links.
type DeltaOptions struct {
	// PageSize is the odata.maxpagesize preference (default 100). It is
	// halved (down to 10) when Graph answers 504.
	PageSize int
	// Select is the $select list; default EventFields().
	Select []string
	// ExpandAttachments adds $expand=attachments, so attachments (with their
	// content) come with the messages instead of one request each.
	ExpandAttachments bool
}

// DeltaPage is one page of a folder's delta. Exactly one of NextLink (more
// pages follow: call Delta again with it) and DeltaLink (the round is done:
// store it as the cursor for the next round) is set.
type DeltaPage struct {
	Messages    []Message
	Undecodable []UndecodableMessage
	NextLink    string
	DeltaLink   string
	// PageSize is the page size used, smaller than asked after a 504.
	PageSize int
}

// Cursor is the link to continue from: NextLink or, at the end of a round,
// DeltaLink.
func (p *DeltaPage) Cursor() string {
	if p.NextLink != "" {
		return p.NextLink
	}
	return p.DeltaLink
}

// Delta fetches one page of the folder's message delta. With an empty
// cursor it starts a full round (every message in the folder); otherwise
// cursor must be a nextLink or deltaLink returned earlier, which is followed
// as is after checking it points at the Graph host. An expired cursor gives
// an error matching ErrSyncStateNotFound: start again with an empty cursor.
// A folder that is gone gives ErrFolderNotFound.
func (m *MailboxClient) Delta(ctx context.Context, folderID, cursor string, opts DeltaOptions) (*DeltaPage, error) {
	link := cursor
	if link == "" {
		if strings.TrimSpace(folderID) == "" {
			return nil, fmt.Errorf("delta: empty folder id")
		}
		sel := opts.Select
		if len(sel) == 0 {
			sel = EventFields()
		}
		q := url.Values{"$select": {strings.Join(sel, ",")}}
		if opts.ExpandAttachments {
			q.Set("$expand", "attachments")
		}
		link = m.url("/mailFolders/"+url.PathEscape(folderID)+"/messages/delta", q)
	} else if err := m.c.checkLink(link); err != nil {
		return nil, fmt.Errorf("delta: %w", err)
	}
	size := opts.PageSize
	if size <= 0 {
		size = DefaultDeltaPageSize
	}
	var res *response
	for {
		var err error
		res, err = m.do(ctx, call{
			method: http.MethodGet, url: link, kind: kindDelta,
			prefer:     []string{fmt.Sprintf("odata.maxpagesize=%d", size)},
			no504Retry: size > minDeltaPageSize,
		})
		var ge *Error
		if errors.As(err, &ge) && ge.Status == http.StatusGatewayTimeout && size > minDeltaPageSize {
			// Large pages with full bodies time out: ask for fewer.
			size = max(size/2, minDeltaPageSize)
			m.log.Info("graph delta timed out, shrinking the page", slog.Int("page_size", size))
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("delta: %w", err)
		}
		break
	}
	var body struct {
		Value     []json.RawMessage `json:"value"`
		NextLink  string            `json:"@odata.nextLink"`
		DeltaLink string            `json:"@odata.deltaLink"`
	}
	if err := json.Unmarshal(res.body, &body); err != nil {
		return nil, fmt.Errorf("decode delta page: %w", err)
	}
	if body.NextLink == "" && body.DeltaLink == "" {
		return nil, fmt.Errorf("decode delta page: neither @odata.nextLink nor @odata.deltaLink in the response")
	}
	page := &DeltaPage{NextLink: body.NextLink, DeltaLink: body.DeltaLink, PageSize: size}
	page.Messages, page.Undecodable = decodeMessages(body.Value)
	return page, nil
}
