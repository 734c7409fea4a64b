package mailsync

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/m365bridge/m365bridge/bridge/event"
	"github.com/m365bridge/m365bridge/bridge/graph"
	"github.com/m365bridge/m365bridge/bridge/store"
	"github.com/m365bridge/m365bridge/config"
	"github.com/m365bridge/m365bridge/webhooks"
)

// buildOne fetches what a message still needs (attachments when the delta
// did not carry them, raw MIME when configured) and builds its event, or a
// rejected ledger row. Only a failure of the round (Graph down, ctx over)
// is returned as an error.
func (r *Runner) buildOne(ctx context.Context, src event.Source, m *graph.Message) (built, error) {
	kind := store.KindNew
	if src.Policy.Archived(m.ReceivedDateTime) {
		kind = store.KindArchived
	}
	entry := store.LedgerEntry{
		Channel: r.ch.Name, MessageID: m.ID, InternetMessageID: m.InternetMessageID,
		EventID: eventIDOf(src, m), Kind: kind, ReceivedAt: m.ReceivedDateTime,
	}
	reject := func(reason string) (built, error) {
		entry.State, entry.Reason = store.LedgerRejected, reason
		return built{entry: entry, notice: r.rejectedNotice(src, entry, m.Subject)}, nil
	}
	typ := webhooks.TypeMailReceived
	if kind == store.KindArchived {
		typ = webhooks.TypeMailArchived
	}
	if r.cfg.Takes != nil && !r.cfg.Takes(typ) {
		// Filtered before anything is fetched: the row is rejected, so the
		// after_import action never touches this mail.
		return reject(fmt.Sprintf("filtered: webhook %q does not take %s events (its types in bridge.yaml): not delivered, and the mail stays in the mailbox untouched", r.ch.Webhook, typ))
	}
	if m.HasAttachments && len(m.Attachments) == 0 {
		atts, err := r.cfg.Graph.Attachments(ctx, m.ID)
		switch {
		case errors.Is(err, graph.ErrItemNotFound):
			return built{gone: true, entry: entry}, nil
		case err != nil:
			return built{}, fmt.Errorf("read attachments of %s: %w", m.ID, err)
		}
		m.Attachments = atts
	}
	switch gone, err := r.fetchItems(ctx, m); {
	case err != nil:
		return built{}, err
	case gone:
		return built{gone: true, entry: entry}, nil
	}
	var raw *webhooks.RawMIME
	if r.ch.RawMIME {
		raw = &webhooks.RawMIME{}
		b, err := r.cfg.Graph.MIME(ctx, m.ID, r.ch.MaxAttachmentBytes)
		switch {
		case errors.Is(err, graph.ErrTooLarge):
			raw.Reason = fmt.Sprintf("raw message larger than the channel's max_attachment_bytes (%d)", r.ch.MaxAttachmentBytes)
		case errors.Is(err, graph.ErrItemNotFound):
			return built{gone: true, entry: entry}, nil
		case err != nil:
			return built{}, fmt.Errorf("read MIME of %s: %w", m.ID, err)
		default:
			raw.Included, raw.Size = true, int64(len(b))
			raw.ContentBase64 = base64.StdEncoding.EncodeToString(b)
		}
	}
	typ, d, err := event.MailDataOf(src, m, raw)
	if err != nil {
		return reject(err.Error())
	}
	// Attachment content is no longer needed: let it go before the commit.
	m.Attachments, m.Body, m.TextBody = nil, nil, nil
	body, err := event.EncodeMail(typ, src.Now, d)
	if err != nil {
		return reject(fmt.Errorf("%w: %w", event.ErrUnconvertible, err).Error())
	}
	if int64(len(body)) > r.cfg.MaxEventBytes {
		body, err = event.Fit(typ, src.Now, d, r.cfg.MaxEventBytes)
		if err != nil {
			return reject(err.Error())
		}
	}
	if size := int64(len(body)); size > r.cfg.MaxEventBytes {
		return reject(fmt.Sprintf("the event would be %d bytes, more than the %d byte limit", size, r.cfg.MaxEventBytes))
	}
	entry.State = store.LedgerQueued
	return built{entry: entry, event: &QueuedEvent{
		ID: entry.EventID, Type: typ, Channel: r.ch.Name, Webhook: r.ch.Webhook, Body: body,
	}}, nil
}

// rejectedNotice is the mail.rejected event that tells the helpdesk a
// message could not become a mail event (it stays in the mailbox, listed
// with the reason on the status page). Its id is
// RejectedEventID, distinct from the mail event's, so acknowledging it
// never marks the mail delivered, and stable, so a re-sync reuses it. nil
// (logged) if it cannot be encoded, which only a bug can cause.
func (r *Runner) rejectedNotice(src event.Source, entry store.LedgerEntry, subject string) *QueuedEvent {
	mailboxType := r.ch.Mailbox.Type
	if mailboxType == "" {
		mailboxType = config.MailboxUser
	}
	d := webhooks.RejectedData{
		ID: webhooks.RejectedEventID(src.Tenant, src.Mailbox, entry.MessageID), Version: webhooks.Version,
		Channel: r.ch.Name, Mailbox: webhooks.Mailbox{Type: mailboxType, Address: src.Mailbox},
		Folder: src.Folder, Group: r.ch.Group, GraphID: entry.MessageID, MailEventID: entry.EventID,
		InternetMessageID: entry.InternetMessageID, Subject: subject, ReceivedAt: entry.ReceivedAt, Reason: entry.Reason,
	}
	ev, err := webhooks.NewEvent(webhooks.TypeMailRejected, src.Now, d)
	var body []byte
	if err == nil {
		body, err = event.EncodeEnvelope(ev)
	}
	if err != nil {
		r.log.Error("build mail.rejected event", "message_id", entry.MessageID, "err", err)
		return nil
	}
	return &QueuedEvent{ID: d.ID, Type: ev.Type, Channel: r.ch.Name, Webhook: r.ch.Webhook, Body: body}
}

// eventIDOf is the stable event id of m in src's mailbox.
func eventIDOf(src event.Source, m *graph.Message) string {
	return webhooks.EventID(src.Tenant, src.Mailbox, m.ID)
}
