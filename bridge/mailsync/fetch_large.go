package mailsync

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/m365bridge/m365bridge/bridge/graph"
)

// contentBatchBytes caps the attachment content one $batch read asks for
// (by Graph's sizes), so that one response is a bounded share of the byte
// budget: a page of four 40 MiB files is not one 213 MiB answer.
const contentBatchBytes = 16 << 20

// hasContent reports whether a listed attachment has content to read with
// the list: a file (item attachments are read from $value by fetchItems,
// reference attachments have none).
func hasContent(a *graph.Attachment) bool {
	return a.ODataType != graph.ItemAttachment && a.ODataType != graph.ReferenceAttachment
}

// contentToRead is the content of atts (listed without it) that will be
// read, by Graph's sizes, and whether one of them is larger than the
// channel's max_attachment_bytes (those are not read with the list:
// readLarge).
func (r *Runner) contentToRead(atts []graph.Attachment) (size int64, over bool) {
	for i := range atts {
		if !hasContent(&atts[i]) {
			continue
		}
		if atts[i].Size > r.ch.MaxAttachmentBytes {
			over = true
			continue
		}
		size += atts[i].Size
	}
	return size, over
}

// readLarge reads the attachments of a message that has a file larger than
// max_attachment_bytes (meta: its list without content). Files within the
// limit are read with their content ($batch of single gets); a larger
// file's raw content is streamed into SHA-256 and never held: it is listed
// with its size and digest, as when it was read whole. Graph's size counts
// a little more than the content, so a file whose content turns out to be
// within the limit is then read whole. It reports whether the message
// vanished; other Graph failures are the round's.
func (r *Runner) readLarge(ctx context.Context, messageID string, meta []graph.Attachment) ([]graph.Attachment, bool, error) {
	atts := append([]graph.Attachment(nil), meta...)
	limit := r.ch.MaxAttachmentBytes
	var ids []string
	var at []int
	for i := range atts {
		if hasContent(&atts[i]) && atts[i].Size <= limit {
			ids, at = append(ids, atts[i].ID), append(at, i)
		}
	}
	if len(ids) > 0 {
		got, err := r.cfg.Graph.AttachmentsByID(ctx, messageID, ids)
		switch {
		case errors.Is(err, graph.ErrItemNotFound):
			return nil, true, nil
		case err != nil:
			return nil, false, fmt.Errorf("read attachments of %s: %w", messageID, err)
		}
		for k, i := range at {
			atts[i] = got[k]
		}
	}
	for i := range atts {
		a := &atts[i]
		if !hasContent(a) || a.Size <= limit {
			continue
		}
		h := sha256.New()
		n, err := r.cfg.Graph.StreamAttachment(ctx, messageID, a.ID, h, nil)
		switch {
		case errors.Is(err, graph.ErrItemNotFound):
			return nil, true, nil
		case err != nil:
			return nil, false, fmt.Errorf("read attachment of %s: %w", messageID, err)
		case n > limit:
			a.Content = &graph.Content{Size: n}
			h.Sum(a.Content.SHA256[:0])
			continue
		}
		b, err := r.cfg.Graph.AttachmentContent(ctx, messageID, a.ID, max(limit, 1))
		switch {
		case errors.Is(err, graph.ErrItemNotFound):
			return nil, true, nil
		case err != nil:
			return nil, false, fmt.Errorf("read attachment of %s: %w", messageID, err)
		}
		a.ContentBytes = b
	}
	return atts, false, nil
}
