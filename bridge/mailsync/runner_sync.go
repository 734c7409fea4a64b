package mailsync

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/m365bridge/m365bridge/bridge/event"
	"github.com/m365bridge/m365bridge/bridge/graph"
	"github.com/m365bridge/m365bridge/bridge/membudget"
	"github.com/m365bridge/m365bridge/bridge/store"
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
		r.reportFolder(st.FolderID)
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
	r.reportFolder(f.ID)
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
		Policy: policyFrom(st, r.ch.Archive),
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
		// Held back before the page is read, not before it commits: a
		// waiting runner holds no page slot, no memory and no cursor.
		if err := r.holdBack(ctx); err != nil {
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
	claim, err := r.cfg.Memory.Claim(ctx, pageReserveBytes)
	if err != nil {
		return pageResult{}, err
	}
	defer claim.Release()
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
	stats, perr := r.processPage(ctx, *src, page, claim)
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
func (r *Runner) processPage(ctx context.Context, src event.Source, page *graph.DeltaPage, claim *membudget.Claim) (Stats, error) {
	stats, fresh, ids := r.sortPage(page)
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
	results, err := r.buildAll(ctx, src, todo, claim)
	if err != nil {
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
	counts, err := r.commitPage(ctx, page, results, stats.Seen)
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

// sortPage counts a page's removals and repeats and returns its messages
// seen for the first time in the page, and the ids to look up in the
// ledger (undecodable messages' included).
func (r *Runner) sortPage(page *graph.DeltaPage) (stats Stats, fresh []*graph.Message, ids []string) {
	stats = Stats{Pages: 1}
	ids = make([]string, 0, len(page.Messages))
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
	return stats, fresh, ids
}

// buildAll reads what the page's new messages still need ($batch for
// attachments and text bodies) and builds their events, extrasInFlight at
// a time. A message that vanished meanwhile is marked gone.
func (r *Runner) buildAll(ctx context.Context, src event.Source, todo []*graph.Message, claim *membudget.Claim) ([]built, error) {
	// What the delta carried is weighed before more is read, then again
	// with the attachments and text bodies, before events are built.
	var carried int64
	for _, m := range todo {
		carried += weigh(m)
	}
	if err := claim.Grow(ctx, pageReserveBytes+carried); err != nil {
		return nil, err
	}
	gone, err := r.fetchAttachments(ctx, todo, claim, pageReserveBytes+carried)
	if err != nil {
		return nil, err
	}
	goneText, err := r.fetchTextBodies(ctx, todo, gone)
	if err != nil {
		return nil, err
	}
	for id := range goneText {
		gone[id] = true
	}
	var read int64
	for _, m := range todo {
		read += weigh(m)
	}
	if err := claim.Grow(ctx, pageReserveBytes+buildCopies*read); err != nil {
		return nil, err
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
		return nil, err
	}
	return results, nil
}

// commitPage writes the page's ledger rows, outbox rows and cursor in one
// transaction (DESIGN.md invariant 4) and returns what it counted.
func (r *Runner) commitPage(ctx context.Context, page *graph.DeltaPage, results []built, seen int) (store.PageCounts, error) {
	var counts store.PageCounts
	err := r.cfg.DB.Tx(ctx, func(tx *sql.Tx) error {
		counts = store.PageCounts{Seen: int64(seen)}
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
	return counts, err
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
