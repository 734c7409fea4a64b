package mailsync

import (
	"context"
	"time"

	"github.com/m365bridge/m365bridge/bridge/store"
)

// ArchiveState is a channel's recorded archive decision as every surface shows
// it (GET /api/channels, `m365bridge channels`, the status page): the mode
// in force, its cut-off, when and why it was decided.
type ArchiveState struct {
	// Mode is "undecided" before the first sync, then "on" or "off".
	Mode      string    `json:"mode"`
	Cutoff    time.Time `json:"cutoff,omitzero"`
	DecidedAt time.Time `json:"decided_at,omitzero"`
	Reason    string    `json:"reason,omitempty"`
}

// ArchiveUndecided is ArchiveState.Mode before the first sync.
const ArchiveUndecided = "undecided"

// NewArchiveState reads the decision recorded in a channel's sync state.
func NewArchiveState(s store.SyncState) ArchiveState {
	a := ArchiveState{Mode: s.ArchiveMode, Cutoff: s.ArchiveCutoff, DecidedAt: s.ArchiveDecidedAt, Reason: s.ArchiveReason}
	if a.Mode == "" {
		a.Mode = ArchiveUndecided
	}
	return a
}

// String is the decision in one phrase.
func (a ArchiveState) String() string {
	switch {
	case a.Mode == ArchiveUndecided:
		return "not decided yet (at the first sync)"
	case a.Mode == store.ArchiveDecidedOff:
		return "off: every message is new"
	case a.Cutoff.IsZero():
		return a.Mode
	}
	return a.Mode + ": received before " + a.Cutoff.UTC().Format(time.RFC3339) + " is archived"
}

// Short is the decision for a table column: the mode, and the cut-off
// when there is one.
func (a ArchiveState) Short() string {
	if a.Cutoff.IsZero() {
		return a.Mode
	}
	return a.Mode + " before " + a.Cutoff.UTC().Format(time.RFC3339)
}

// MessageCounts are a channel's message counters since it was first
// connected. Each means one thing: Imported = Archived + New + Rejected,
// one per message of the folder; DeltaEntries counts what Graph's delta
// returned, which includes every change to mail already imported (a
// mark_read after_import makes each message come back once), so it is no
// message count; PostDone counts messages whose after_import action
// completed.
type MessageCounts struct {
	Imported     int64 `json:"imported"`
	Archived     int64 `json:"archived"`
	New          int64 `json:"new"`
	Rejected     int64 `json:"rejected"`
	DeltaEntries int64 `json:"delta_entries"`
	PostDone     int64 `json:"post_done"`
}

// NewMessageCounts reads the counters of a sync state and the number of
// ledger rows in state done.
func NewMessageCounts(s store.SyncState, done int) MessageCounts {
	return MessageCounts{Imported: s.Archived + s.New + s.Rejected, Archived: s.Archived, New: s.New, Rejected: s.Rejected,
		DeltaEntries: s.Seen, PostDone: int64(done)}
}

// SyncError is a channel's last sync failure, with its fix.
type SyncError struct {
	Code   string `json:"code,omitempty"`
	Reason string `json:"reason"`
	Fix    string `json:"fix,omitempty"`
}

// ChannelInfo is one channel as GET /api/channels answers it and
// `m365bridge channels` prints it: the sign-in row (its fields at the top
// level), the archive decision, the message counts, the last sync and,
// while the daemon runs it, the runner's live status.
type ChannelInfo struct {
	store.ChannelStatus
	Folder          string        `json:"folder,omitempty"`
	Archive         ArchiveState  `json:"archive"`
	Messages        MessageCounts `json:"messages"`
	LastSyncAt      time.Time     `json:"last_sync_at,omitzero"`
	FirstSyncDoneAt time.Time     `json:"first_sync_done_at,omitzero"`
	SyncError       *SyncError    `json:"sync_error,omitempty"`
	// Sync is the runner's live status (rounds, totals since it started,
	// Graph requests); absent while the channel does not run.
	Sync *Status `json:"sync,omitempty"`
}

// ChannelInfos lists channels from the store: those named (in that order,
// a channel never seen as needs_consent), or every channel in the store
// when names is nil. runner, when not nil, adds a running channel's live
// status.
func ChannelInfos(ctx context.Context, db *store.DB, names []string, runner func(string) (*Runner, bool)) ([]ChannelInfo, error) {
	auths, err := db.ChannelStates(ctx)
	if err != nil {
		return nil, err
	}
	syncs, err := db.SyncStates(ctx)
	if err != nil {
		return nil, err
	}
	if names == nil {
		for _, a := range auths {
			names = append(names, a.Name)
		}
	}
	out := make([]ChannelInfo, 0, len(names))
	for _, name := range names {
		ci := ChannelInfo{ChannelStatus: store.ChannelStatus{Name: name, State: store.ChannelNeedsConsent}}
		for _, a := range auths {
			if a.Name == name {
				ci.ChannelStatus = a
			}
		}
		s := store.SyncState{Channel: name}
		for _, x := range syncs {
			if x.Channel == name {
				s = x
			}
		}
		counts, err := db.LedgerCounts(ctx, name)
		if err != nil {
			return nil, err
		}
		ci.Folder, ci.LastSyncAt, ci.FirstSyncDoneAt = s.FolderPath, s.LastSyncAt, s.InitialDoneAt
		ci.Archive = NewArchiveState(s)
		ci.Messages = NewMessageCounts(s, counts[store.LedgerDone])
		if s.Status == store.SyncError {
			ci.SyncError = &SyncError{Code: s.ErrorCode, Reason: s.ErrorReason, Fix: s.ErrorFix}
		}
		if runner != nil {
			if r, ok := runner(name); ok {
				st := r.Status()
				ci.Sync = &st
			}
		}
		out = append(out, ci)
	}
	return out, nil
}
