package mailsync

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/m365bridge/m365bridge/bridge/event"
	"github.com/m365bridge/m365bridge/bridge/graph"
	"github.com/m365bridge/m365bridge/bridge/store"
	"github.com/m365bridge/m365bridge/config"
	"github.com/m365bridge/m365bridge/webhooks"
)

// maxResyncsPerRound bounds full restarts after expired cursors in one
// round, so a Graph that keeps refusing its own links cannot spin forever.
const maxResyncsPerRound = 3

// progressEvery is how often (by the runner's clock) the first import of a
// folder logs its progress: seen of about N, rate and time to go.
const progressEvery = 3 * time.Second

// extrasInFlight is how many attachment/MIME fetches run at once for a page;
// the Graph client's per-mailbox limit (4) applies on top.
const extrasInFlight = 4

// folderRef is the folder a round syncs.
type folderRef struct {
	id, path string
}

// resolveFolder returns the cached folder, or resolves the configured path
// (and caches it) when there is none or the configured path changed.
func (r *Runner) resolveFolder(ctx context.Context, st store.SyncState, force bool) (folderRef, error) {
	if !force && st.FolderID != "" && st.FolderPath == r.ch.Folder {
		return folderRef{id: st.FolderID, path: st.FolderPath}, nil
	}
	f, err := r.cfg.Graph.ResolveFolder(ctx, r.ch.Folder)
	if err != nil {
		return folderRef{}, fmt.Errorf("resolve folder %q: %w", DisplayFolder(r.ch.Folder), err)
	}
	if f.ID != st.FolderID {
		r.log.Info("folder resolved", "folder", DisplayFolder(r.ch.Folder), "folder_id", f.ID)
	}
	if err := r.cfg.DB.SetFolder(ctx, r.ch.Name, r.ch.Folder, f.ID); err != nil {
		return folderRef{}, err
	}
	return folderRef{id: f.ID, path: r.ch.Folder}, nil
}

// decideArchive records the archive decision on the first round.
func (r *Runner) decideArchive(ctx context.Context, st store.SyncState, folder folderRef) (store.SyncState, error) {
	if st.ArchiveMode != "" {
		return st, nil
	}
	f, err := r.cfg.Graph.GetFolder(ctx, folder.id)
	if err != nil {
		return st, fmt.Errorf("count messages in %q: %w", DisplayFolder(r.ch.Folder), err)
	}
	d, err := DecideArchive(r.ch.Archive, f.TotalItemCount, r.cfg.Now())
	if err != nil {
		return st, err
	}
	st, err = r.cfg.DB.DecideArchive(ctx, r.ch.Name, d.Mode, d.Cutoff, d.Reason, int64(f.TotalItemCount))
	if err != nil {
		return st, err
	}
	r.log.Info("archive mode decided", "archive_mode", st.ArchiveMode, "cutoff", st.ArchiveCutoff,
		"messages", f.TotalItemCount, "reason", st.ArchiveReason)
	return st, nil
}

// syncRound pages the delta from the stored cursor to a new deltaLink.
func (r *Runner) syncRound(ctx context.Context) (Stats, error) {
	var stats Stats
	st, err := r.cfg.DB.SyncState(ctx, r.ch.Name)
	if err != nil {
		return stats, err
	}
	folder, err := r.resolveFolder(ctx, st, false)
	if err != nil {
		return stats, err
	}
	if st, err = r.decideArchive(ctx, st, folder); err != nil {
		return stats, err
	}
	src := event.Source{
		Tenant: r.cfg.Tenant, Mailbox: r.mailbox, Channel: r.ch, Folder: DisplayFolder(r.ch.Folder),
		Policy: PolicyFrom(st, r.ch.Archive),
	}
	opts := graph.DeltaOptions{PageSize: r.cfg.PageSize, ExpandAttachments: true}
	cursor := st.DeltaLink
	reresolved := false
	prog := progress{start: r.cfg.Now(), startSeen: st.Seen}
	prog.last = prog.start
	for {
		if err := ctx.Err(); err != nil {
			return stats, err
		}
		ps, err := r.syncPage(ctx, &src, folder.id, cursor, &opts)
		stats.add(ps.stats)
		page := ps.page
		switch {
		case errors.Is(err, graph.ErrSyncStateNotFound) && stats.Resyncs < maxResyncsPerRound:
			// The cursor expired: start over; the ledger drops what was
			// already queued, so nothing is delivered twice.
			r.log.Warn("delta cursor expired; full resync", "err", err)
			if err := r.cfg.DB.ResetCursor(ctx, r.ch.Name); err != nil {
				return stats, err
			}
			stats.Resyncs++
			cursor = ""
			continue
		case errors.Is(err, graph.ErrFolderNotFound) && !reresolved:
			// The cached id may be stale (folder recreated): resolve the
			// path again; a missing folder is a channel error.
			reresolved = true
			nf, rerr := r.resolveFolder(ctx, st, true)
			if rerr != nil {
				return stats, rerr
			}
			if nf.id != folder.id {
				folder, cursor = nf, ""
			}
			continue
		case err != nil:
			return stats, fmt.Errorf("sync %q: %w", DisplayFolder(r.ch.Folder), err)
		}
		if ps.err != nil {
			return stats, ps.err
		}
		if st.InitialDoneAt.IsZero() {
			prog.report(r, st.Seen+int64(stats.Seen), st.ProgressTotal, page.NextLink == "")
		}
		if page.NextLink == "" {
			return stats, nil
		}
		cursor = page.NextLink
	}
}

// pageResult is one page read (page, err: the Delta call) and, when it was
// read, processed (stats, err of the processing).
type pageResult struct {
	page  *graph.DeltaPage
	stats Stats
	err   error
}

// syncPage reads one delta page and commits it while holding one of the
// shared page slots, so that only so many pages (with their attachments)
// are in memory at once across all runners. A Delta failure is returned as
// the error; a processing failure in pageResult.err.
func (r *Runner) syncPage(ctx context.Context, src *event.Source, folderID, cursor string, opts *graph.DeltaOptions) (pageResult, error) {
	if err := r.cfg.PageSlots.Acquire(ctx, 1); err != nil {
		return pageResult{}, err
	}
	defer r.cfg.PageSlots.Release(1)
	page, err := r.cfg.Graph.Delta(ctx, folderID, cursor, *opts)
	if err != nil {
		return pageResult{}, err
	}
	if page.PageSize > 0 {
		opts.PageSize = page.PageSize // keep a size Graph coped with
	}
	for i := range page.Messages {
		if ig := page.Messages[i].Ignored; len(ig) > 0 {
			// Graph sent a property the bridge does not need with the wrong
			// type; it was left empty and the message imports as usual.
			r.log.Info("graph message has properties of an unexpected type; left empty",
				"message_id", page.Messages[i].ID, "properties", ig)
		}
	}
	src.Now = r.cfg.Now()
	if r.cfg.Links != nil {
		src.Link = r.cfg.Links.For(r.ch.Name, r.ch.AttachmentLinkTTL, src.Now)
	}
	stats, perr := r.processPage(ctx, *src, page)
	page.Messages, page.Undecodable = nil, nil // committed: let the page go
	return pageResult{page: page, stats: stats, err: perr}, nil
}

// built is one message's outcome before the page commits.
type built struct {
	entry store.LedgerEntry
	event *QueuedEvent // nil for a rejected message
	// notice is the mail.rejected event of a rejected message.
	notice *QueuedEvent
	// gone: the message left the mailbox folder while it was being read. It
	// gets no ledger row, so if it comes back the delta shows it again and
	// it is imported then.
	gone bool
}

// processPage turns a page's unknown messages into events and commits
// ledger rows, outbox rows and the cursor in one transaction.
func (r *Runner) processPage(ctx context.Context, src event.Source, page *graph.DeltaPage) (Stats, error) {
	stats := Stats{Pages: 1}
	var fresh []*graph.Message
	ids := make([]string, 0, len(page.Messages))
	inPage := map[string]bool{}
	for i := range page.Messages {
		m := &page.Messages[i]
		if m.Removed != nil {
			stats.Removed++
			r.log.Debug("message left the folder", "message_id", m.ID, "removed", m.Removed.Reason)
			continue
		}
		stats.Seen++
		if inPage[m.ID] {
			stats.Known++
			continue
		}
		inPage[m.ID] = true
		ids = append(ids, m.ID)
		fresh = append(fresh, m)
	}
	for _, u := range page.Undecodable {
		stats.Seen++
		if u.ID == "" || inPage[u.ID] {
			r.log.Error("undecodable message without an id in a delta page; it stays in the mailbox", "err", u.Err)
			continue
		}
		inPage[u.ID] = true
		ids = append(ids, u.ID)
	}
	known, err := r.cfg.DB.LedgerKnownTx(ctx, nil, r.ch.Name, ids)
	if err != nil {
		return stats, err
	}
	todo := fresh[:0]
	for _, m := range fresh {
		if known[m.ID] {
			stats.Known++
			continue
		}
		todo = append(todo, m)
	}
	gone, err := r.fetchAttachments(ctx, todo)
	if err != nil {
		return stats, err
	}
	goneText, err := r.fetchTextBodies(ctx, todo, gone)
	if err != nil {
		return stats, err
	}
	for id := range goneText {
		gone[id] = true
	}
	results := make([]built, len(todo))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(extrasInFlight)
	for i, m := range todo {
		g.Go(func() error {
			if gone[m.ID] {
				results[i] = built{gone: true, entry: store.LedgerEntry{MessageID: m.ID}}
				return nil
			}
			b, err := r.buildOneSafe(gctx, src, m)
			results[i] = b
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return stats, err
	}
	for _, u := range page.Undecodable {
		if u.ID == "" || known[u.ID] {
			continue
		}
		b := built{entry: store.LedgerEntry{
			Channel: r.ch.Name, MessageID: u.ID, EventID: webhooks.EventID(src.Tenant, src.Mailbox, u.ID),
			State: store.LedgerRejected, Kind: store.KindNew, Reason: "undecodable Graph message: " + u.Err.Error(),
		}}
		b.notice = r.rejectedNotice(src, b.entry, "")
		results = append(results, b)
	}

	if r.cfg.Takes != nil && !r.cfg.Takes(webhooks.TypeMailRejected) {
		for i := range results {
			results[i].notice = nil // the webhook's types filter leaves it out
		}
	}
	var counts store.PageCounts
	err = r.cfg.DB.Tx(ctx, func(tx *sql.Tx) error {
		counts = store.PageCounts{Seen: int64(stats.Seen)}
		for i := range results {
			b := &results[i]
			if b.gone {
				continue
			}
			added, err := r.cfg.DB.InsertLedgerTx(ctx, tx, b.entry)
			if err != nil {
				return err
			}
			if !added {
				continue // another round got there first
			}
			if b.event == nil {
				counts.Rejected++
				if b.notice != nil {
					if err := r.cfg.Enqueue(ctx, tx, *b.notice); err != nil {
						return enqueueErr(b.notice.ID, err)
					}
				}
				continue
			}
			if err := r.cfg.Enqueue(ctx, tx, *b.event); err != nil {
				return enqueueErr(b.event.ID, err)
			}
			if b.entry.Kind == store.KindArchived {
				counts.Archived++
			} else {
				counts.New++
			}
		}
		return r.cfg.DB.AdvanceCursorTx(ctx, tx, r.ch.Name, page.Cursor(), counts, page.DeltaLink != "")
	})
	if err != nil {
		return stats, fmt.Errorf("commit delta page: %w", err)
	}
	stats.Archived, stats.New, stats.Rejected = int(counts.Archived), int(counts.New), int(counts.Rejected)
	stats.Queued = stats.Archived + stats.New
	for _, b := range results {
		if b.gone {
			r.log.Info("message left the folder while it was read; skipped until it is back", "message_id", b.entry.MessageID)
		} else if b.event == nil {
			r.log.Warn("message rejected; it stays in the mailbox", "message_id", b.entry.MessageID,
				"event_id", b.entry.EventID, "reason", b.entry.Reason)
		}
	}
	if stats.Queued > 0 && r.cfg.Wake != nil {
		r.cfg.Wake()
	}
	return stats, nil
}

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
// through $batch (20 messages per request) and stores them on the
// messages. It returns the messages that vanished meanwhile; any other
// failure fails the round (the next round retries from the cursor).
func (r *Runner) fetchAttachments(ctx context.Context, msgs []*graph.Message) (map[string]bool, error) {
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
	atts, failed, err := r.cfg.Graph.AttachmentsOf(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("read attachments: %w", err)
	}
	gone := map[string]bool{}
	for id, ferr := range failed {
		if !errors.Is(ferr, graph.ErrItemNotFound) {
			return nil, fmt.Errorf("read attachments: %w", ferr)
		}
		gone[id] = true
	}
	for id, a := range atts {
		byID[id].Attachments = a
		byID[id].HasAttachments = false // read: buildOne must not fetch again
	}
	return gone, nil
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
		if at.ODataType != graph.ItemAttachment || at.ContentBytes != nil || at.ID == "" {
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
	ev, d, err := event.BuildMailEvent(src, m, raw)
	if err != nil {
		return reject(err.Error())
	}
	// Attachment content is no longer needed: let it go before the commit.
	m.Attachments, m.Body, m.TextBody = nil, nil, nil
	body, err := event.EncodeEnvelope(ev)
	if err != nil {
		return reject(err.Error())
	}
	if int64(len(body)) > r.cfg.MaxEventBytes {
		body, err = event.Fit(ev.Type, src.Now, d, r.cfg.MaxEventBytes)
		if err != nil {
			return reject(err.Error())
		}
	}
	if size := int64(len(body)); size > r.cfg.MaxEventBytes {
		return reject(fmt.Sprintf("the event would be %d bytes, more than the %d byte limit", size, r.cfg.MaxEventBytes))
	}
	entry.State = store.LedgerQueued
	return built{entry: entry, event: &QueuedEvent{
		ID: entry.EventID, Type: ev.Type, Channel: r.ch.Name, Webhook: r.ch.Webhook, Body: body,
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

// progress paces the first import's progress lines.
type progress struct {
	start, last time.Time
	startSeen   int64
}

// report logs "initial import" when progressEvery passed since the last
// line, and always at the end: seen of about total, the rate of this round
// and, while there is more, the estimated time to go.
func (p *progress) report(r *Runner, seen, total int64, done bool) {
	now := r.cfg.Now()
	if !done && now.Sub(p.last) < progressEvery {
		return
	}
	p.last = now
	elapsed := now.Sub(p.start)
	attrs := []any{"seen", seen, "of_about", total, "elapsed", elapsed.Round(time.Second).String()}
	if secs := elapsed.Seconds(); secs > 0 {
		rate := float64(seen-p.startSeen) / secs
		attrs = append(attrs, "per_second", fmt.Sprintf("%.1f", rate))
		if left := total - seen; !done && left > 0 && rate > 0 {
			attrs = append(attrs, "eta", (time.Duration(float64(left)/rate) * time.Second).Round(time.Second).String())
		}
	}
	if done {
		attrs = append(attrs, "page", "last")
	}
	r.log.Info("initial import", attrs...)
}
