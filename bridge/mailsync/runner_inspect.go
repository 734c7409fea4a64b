package mailsync

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/m365bridge/m365bridge/bridge/event"
	"github.com/m365bridge/m365bridge/bridge/graph"
	"github.com/m365bridge/m365bridge/bridge/store"
	"github.com/m365bridge/m365bridge/config"
)

// Lister is the extra Graph read Inspect needs; *graph.MailboxClient
// implements it.
type Lister interface {
	ListMessages(ctx context.Context, folderID string, opts graph.ListOptions) (*graph.MessagePage, error)
}

// Inspection is what a channel's first sync would do — the seed's archive
// dialog, for a terminal: how much mail the folder holds, its date range,
// and how many messages archive mode would import as archived and as new.
type Inspection struct {
	Channel  string    `json:"channel"`
	Mailbox  string    `json:"mailbox"`
	Folder   string    `json:"folder"`
	FolderID string    `json:"folder_id"`
	Messages int       `json:"messages"`
	Oldest   time.Time `json:"oldest,omitzero"`
	Newest   time.Time `json:"newest,omitzero"`
	// ArchiveSetting is archive.mode as configured; Decision is what is in
	// force: recorded by an earlier sync (Recorded) or what a sync now
	// would decide.
	ArchiveSetting string          `json:"archive_setting"`
	Decision       ArchiveDecision `json:"decision"`
	Recorded       bool            `json:"recorded"`
	ArchiveState   string          `json:"archive_state"`
	WouldArchive   int             `json:"would_archive"`
	WouldNew       int             `json:"would_new"`
	// Imported is how many messages the ledger already holds.
	Imported int `json:"imported"`
}

// Inspect reads the channel's folder and reports what a sync would do,
// without writing anything (store or mailbox). It costs four small Graph
// requests at most: folder, oldest, newest, count before the cut-off.
func Inspect(ctx context.Context, api MailboxAPI, lister Lister, db *store.DB, ch config.Channel, now time.Time) (Inspection, error) {
	in := Inspection{Channel: ch.Name, Mailbox: ch.Mailbox.Address, Folder: DisplayFolder(ch.Folder), ArchiveSetting: ch.Archive.Mode}
	if in.ArchiveSetting == "" {
		in.ArchiveSetting = config.DefaultArchiveMode
	}
	in.ArchiveState = ch.Archive.State
	if in.ArchiveState == "" {
		in.ArchiveState = config.DefaultArchiveState
	}
	f, err := api.ResolveFolder(ctx, ch.Folder)
	if err != nil {
		return in, fmt.Errorf("resolve folder %q: %w", in.Folder, err)
	}
	in.FolderID, in.Messages = f.ID, f.TotalItemCount
	if f.Path != "" {
		in.Folder = f.Path
	}
	sel := []string{"id", "receivedDateTime"}
	for _, o := range []struct {
		order string
		dst   *time.Time
	}{{"receivedDateTime asc", &in.Oldest}, {"receivedDateTime desc", &in.Newest}} {
		p, err := lister.ListMessages(ctx, f.ID, graph.ListOptions{Top: 1, Select: sel, OrderBy: o.order})
		if err != nil {
			return in, fmt.Errorf("list messages of %q: %w", in.Folder, err)
		}
		if len(p.Messages) > 0 {
			*o.dst = p.Messages[0].ReceivedDateTime
		}
	}
	st, err := db.SyncState(ctx, ch.Name)
	if err != nil {
		return in, err
	}
	if st.ArchiveMode != "" {
		in.Recorded = true
		in.Decision = ArchiveDecision{Mode: st.ArchiveMode, Cutoff: st.ArchiveCutoff, Reason: st.ArchiveReason}
	} else if in.Decision, err = DecideArchive(ch.Archive, in.Messages, now); err != nil {
		return in, err
	}
	switch {
	case in.Decision.Mode != store.ArchiveDecidedOn:
		in.WouldNew = in.Messages
	case !in.Newest.IsZero() && in.Newest.Before(in.Decision.Cutoff):
		in.WouldArchive = in.Messages // everything is older than the cut-off
	case !in.Oldest.IsZero() && !in.Oldest.Before(in.Decision.Cutoff):
		in.WouldNew = in.Messages
	default:
		p, err := lister.ListMessages(ctx, f.ID, graph.ListOptions{Top: 1, Select: []string{"id"},
			ReceivedBefore: in.Decision.Cutoff, Count: true})
		if err != nil {
			return in, fmt.Errorf("count messages before the cut-off: %w", err)
		}
		if p.Count < 0 {
			return in, errors.New("count messages before the cut-off: Graph returned no @odata.count")
		}
		in.WouldArchive = p.Count
		in.WouldNew = max(in.Messages-p.Count, 0)
	}
	counts, err := db.LedgerCounts(ctx, ch.Name)
	if err != nil {
		return in, err
	}
	for _, n := range counts {
		in.Imported += n
	}
	return in, nil
}

// DryRun pages the channel's delta from the stored cursor (a full pass for
// a channel never synced) and hands each event a sync would queue to emit,
// with its ledger row. It writes nothing: no ledger, outbox, cursor or
// archive decision, and never touches the mailbox. Messages already in the
// ledger are skipped, as a real sync would.
func (r *Runner) DryRun(ctx context.Context, emit func(ev *QueuedEvent, entry store.LedgerEntry) error) (Stats, error) {
	r.round.Lock()
	defer r.round.Unlock()
	var stats Stats
	st, folderID, cursor, err := r.dryRunStart(ctx)
	if err != nil {
		return stats, err
	}
	src := event.Source{Tenant: r.cfg.Tenant, Mailbox: r.mailbox, Channel: r.ch, Folder: DisplayFolder(r.ch.Folder),
		Policy: policyFrom(st, r.ch.Archive)}
	opts := graph.DeltaOptions{PageSize: r.cfg.PageSize, ExpandAttachments: true}
	for {
		page, err := r.cfg.Graph.Delta(ctx, folderID, cursor, opts)
		if errors.Is(err, graph.ErrSyncStateNotFound) && cursor != "" {
			cursor = ""
			stats.Resyncs++
			continue
		}
		if err != nil {
			return stats, fmt.Errorf("sync %q: %w", DisplayFolder(r.ch.Folder), err)
		}
		stats.Pages++
		src.Now = r.cfg.Now()
		if err := r.dryRunPage(ctx, src, page, &stats, emit); err != nil {
			return stats, err
		}
		stats.Rejected += len(page.Undecodable)
		if page.NextLink == "" {
			stats.Queued = stats.Archived + stats.New
			return stats, nil
		}
		cursor = page.NextLink
	}
}

// dryRunStart is where a dry run starts: the stored sync state (with the
// archive decision a first round would make, not recorded), the folder and
// the cursor.
func (r *Runner) dryRunStart(ctx context.Context) (st store.SyncState, folderID, cursor string, err error) {
	st, err = r.cfg.DB.SyncState(ctx, r.ch.Name)
	if err != nil {
		return st, "", "", err
	}
	folderID, cursor = st.FolderID, st.DeltaLink
	if folderID == "" || st.FolderPath != r.ch.Folder {
		f, err := r.cfg.Graph.ResolveFolder(ctx, r.ch.Folder)
		if err != nil {
			return st, "", "", fmt.Errorf("resolve folder %q: %w", DisplayFolder(r.ch.Folder), err)
		}
		folderID, cursor = f.ID, ""
	}
	if st.ArchiveMode == "" {
		f, err := r.cfg.Graph.GetFolder(ctx, folderID)
		if err != nil {
			return st, "", "", fmt.Errorf("count messages in %q: %w", DisplayFolder(r.ch.Folder), err)
		}
		d, err := DecideArchive(r.ch.Archive, f.TotalItemCount, r.cfg.Now())
		if err != nil {
			return st, "", "", err
		}
		st.ArchiveMode, st.ArchiveCutoff = d.Mode, d.Cutoff
	}
	return st, folderID, cursor, nil
}

// dryRunPage builds the events of one page's messages not yet in the
// ledger and hands each to emit, counting into stats.
func (r *Runner) dryRunPage(ctx context.Context, src event.Source, page *graph.DeltaPage, stats *Stats, emit func(ev *QueuedEvent, entry store.LedgerEntry) error) error {
	ids := make([]string, 0, len(page.Messages))
	for _, m := range page.Messages {
		ids = append(ids, m.ID)
	}
	known, err := r.cfg.DB.LedgerKnownTx(ctx, nil, r.ch.Name, ids)
	if err != nil {
		return err
	}
	var fresh []*graph.Message
	for i := range page.Messages {
		if m := &page.Messages[i]; m.Removed == nil && !known[m.ID] {
			fresh = append(fresh, m)
		}
	}
	// The same bodies a real round delivers: text mail as written.
	gone, err := r.fetchTextBodies(ctx, fresh, nil)
	if err != nil {
		return err
	}
	for i := range page.Messages {
		m := &page.Messages[i]
		if m.Removed != nil {
			stats.Removed++
			continue
		}
		stats.Seen++
		if known[m.ID] {
			stats.Known++
			continue
		}
		if gone[m.ID] {
			continue
		}
		b, err := r.buildOne(ctx, src, m)
		if err != nil {
			return err
		}
		if b.gone {
			continue
		}
		switch {
		case b.event == nil:
			stats.Rejected++
		case b.entry.Kind == store.KindArchived:
			stats.Archived++
		default:
			stats.New++
		}
		if err := emit(b.event, b.entry); err != nil {
			return err
		}
	}
	return nil
}

// DisplayFolder is a channel's folder as logs, errors and pages name it:
// an empty folder is the inbox.
func DisplayFolder(f string) string {
	if f == "" {
		return "Inbox"
	}
	return f
}
