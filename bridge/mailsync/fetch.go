package mailsync

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/m365bridge/m365bridge/bridge/event"
	"github.com/m365bridge/m365bridge/bridge/graph"
	"github.com/m365bridge/m365bridge/bridge/membudget"
)

// needsAttachments reports whether a message's attachments must be read:
// it has some, or its HTML refers to inline images (hasAttachments is
// false when all attachments are inline), and the delta did not carry them.
func needsAttachments(m *graph.Message) bool {
	if len(m.Attachments) > 0 {
		return false
	}
	return m.HasAttachments || (m.Body != nil && strings.Contains(m.Body.Content, "cid:"))
}

// fetchAttachments reads the attachments of the messages that need them
// and stores them on the messages: first their list without content
// (sizes; one $batch per 20 messages), then, once the page's claim on the
// byte budget has grown by what that content weighs (from base), the
// content: through $batch for messages whose files are all within the
// channel's max_attachment_bytes (readContent), one by one for the others
// (readLarge). It returns the messages that vanished meanwhile; any other
// failure fails the round (the next round retries from the cursor).
func (r *Runner) fetchAttachments(ctx context.Context, msgs []*graph.Message, claim *membudget.Claim, base int64) (map[string]bool, error) {
	var ids []string
	byID := map[string]*graph.Message{}
	for _, m := range msgs {
		if needsAttachments(m) {
			ids = append(ids, m.ID)
			byID[m.ID] = m
		}
	}
	if len(ids) == 0 {
		return map[string]bool{}, nil
	}
	meta, failed, err := r.cfg.Graph.AttachmentsMetaOf(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("list attachments: %w", err)
	}
	gone, err := goneOrFail(failed)
	if err != nil {
		return nil, err
	}
	var small, large []string
	var want int64
	for _, id := range ids {
		atts, ok := meta[id]
		if !ok {
			continue
		}
		size, over := r.contentToRead(atts)
		want += size
		if over {
			large = append(large, id)
		} else {
			small = append(small, id)
		}
	}
	// Claimed before any content is read: base64 is 4/3 of the bytes.
	if err := claim.Grow(ctx, base+buildCopies*want*4/3); err != nil {
		return nil, err
	}
	if err := r.readContent(ctx, small, meta, byID, gone); err != nil {
		return nil, err
	}
	for _, id := range large {
		atts, vanished, err := r.readLarge(ctx, id, meta[id])
		switch {
		case err != nil:
			return nil, err
		case vanished:
			gone[id] = true
			continue
		}
		byID[id].Attachments, byID[id].HasAttachments = atts, false
	}
	return gone, nil
}

// goneOrFail sorts per-message failures: a message that is gone is
// returned as gone, any other failure is the round's.
func goneOrFail(failed map[string]error) (map[string]bool, error) {
	gone := map[string]bool{}
	for id, ferr := range failed {
		if !errors.Is(ferr, graph.ErrItemNotFound) {
			return nil, fmt.Errorf("read attachments: %w", ferr)
		}
		gone[id] = true
	}
	return gone, nil
}

// readContent reads the attachments, with content, of messages whose files
// are all within max_attachment_bytes, in $batch calls of at most 20
// messages and contentBatchBytes of content (as Graph reports sizes), so
// that no one response holds a page's worth of large files.
func (r *Runner) readContent(ctx context.Context, ids []string, meta map[string][]graph.Attachment, byID map[string]*graph.Message, gone map[string]bool) error {
	for len(ids) > 0 {
		n, sum := 0, int64(0)
		for n < len(ids) && n < graph.MaxBatchSize {
			size, _ := r.contentToRead(meta[ids[n]])
			if n > 0 && sum+size > contentBatchBytes {
				break
			}
			sum += size
			n++
		}
		atts, failed, err := r.cfg.Graph.AttachmentsOf(ctx, ids[:n])
		if err != nil {
			return fmt.Errorf("read attachments: %w", err)
		}
		vanished, err := goneOrFail(failed)
		if err != nil {
			return err
		}
		for id := range vanished {
			gone[id] = true
		}
		for id, a := range atts {
			byID[id].Attachments = a
			byID[id].HasAttachments = false // read: buildOne must not fetch again
		}
		ids = ids[n:]
	}
	return nil
}

// fetchTextBodies reads the text rendition of the page's messages written
// as text, through $batch (TextBodiesOf: one request per 20 such
// messages, none for a page of HTML mail), and keeps it on the message. It
// returns the messages that vanished meanwhile; any other failure fails
// the round.
func (r *Runner) fetchTextBodies(ctx context.Context, msgs []*graph.Message, gone map[string]bool) (map[string]bool, error) {
	var ids []string
	byID := map[string]*graph.Message{}
	for _, m := range msgs {
		if !gone[m.ID] && event.WrittenAsText(m) {
			ids = append(ids, m.ID)
			byID[m.ID] = m
		}
	}
	if len(ids) == 0 {
		return nil, nil
	}
	bodies, failed, err := r.cfg.Graph.TextBodiesOf(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("read text bodies: %w", err)
	}
	vanished := map[string]bool{}
	for id, ferr := range failed {
		var ge *graph.Error
		switch {
		case errors.Is(ferr, graph.ErrItemNotFound):
			vanished[id] = true
		case errors.As(ferr, &ge) && !ge.Temporary():
			// Graph will not give this text rendition: the message goes
			// out with its HTML and the text derived from it, rather than
			// holding up the channel.
			r.log.Warn("text body not available; using the HTML body", "message_id", id, "err", ferr)
		default:
			return nil, fmt.Errorf("read text bodies: %w", ferr)
		}
	}
	for id, b := range bodies {
		byID[id].TextBody = b
	}
	return vanished, nil
}

// fetchItems reads the MIME of a message's item attachments (an attached
// mail: a forward, the returned message of a bounce) from
// /attachments/{id}/$value, so it travels as a message/rfc822 file. Graph
// never returns an item's content with the attachment list. One larger
// than the channel's max_attachment_bytes is listed with that reason. It
// reports whether the message vanished; other Graph failures are the
// round's.
func (r *Runner) fetchItems(ctx context.Context, m *graph.Message) (gone bool, err error) {
	for i := range m.Attachments {
		at := &m.Attachments[i]
		if at.ODataType != graph.ItemAttachment || at.ContentBytes != nil || at.Content != nil || at.ID == "" {
			continue
		}
		limit := r.ch.MaxAttachmentBytes
		if limit <= 0 {
			at.Size = max(at.Size, 1) // listed as larger than the limit
			continue
		}
		b, err := r.cfg.Graph.AttachmentContent(ctx, m.ID, at.ID, limit)
		var ge *graph.Error
		switch {
		case errors.Is(err, graph.ErrTooLarge):
			at.Size = max(at.Size, limit+1)
		case errors.Is(err, graph.ErrItemNotFound):
			return true, nil
		case errors.As(err, &ge) && !ge.Temporary():
			// Graph cannot give this item (e.g. an unsupported kind): it
			// is listed without content, with the reason.
			r.log.Warn("attached item has no readable content", "message_id", m.ID, "err", err)
		case err != nil:
			return false, fmt.Errorf("read attached item of %s: %w", m.ID, err)
		default:
			at.ContentBytes = b
		}
	}
	return false, nil
}
