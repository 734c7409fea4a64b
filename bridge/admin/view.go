package admin

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/m365bridge/m365bridge/bridge/mailsync"
	"github.com/m365bridge/m365bridge/bridge/store"
	"github.com/m365bridge/m365bridge/webhooks/deliver"
)

// channelView is one configured channel as the status page, the admin API
// and the metrics see it: configuration, auth row, sync state and, once
// the channel syncs, its runner's live status.
type channelView struct {
	Name           string `json:"name"`
	MailboxType    string `json:"mailbox_type"`
	MailboxAddress string `json:"mailbox_address,omitempty"`
	Folder         string `json:"folder"`
	Webhook        string `json:"webhook,omitempty"`
	AfterImport    string `json:"after_import,omitempty"`
	// PostDone counts the ledger rows in state done (after_import finished).
	PostDone int                 `json:"post_done"`
	Auth     store.ChannelStatus `json:"auth"`
	Sync     store.SyncState     `json:"sync_state"`
	Runner   *mailsync.Status    `json:"runner,omitempty"`
}

// channelViews lists the configured channels in bridge.yaml order.
func (a *Console) channelViews(ctx context.Context) ([]channelView, error) {
	auths, err := a.db.ChannelStates(ctx)
	if err != nil {
		return nil, err
	}
	syncs, err := a.db.SyncStates(ctx)
	if err != nil {
		return nil, err
	}
	cfg := a.config() // one snapshot: a reload may swap it
	out := make([]channelView, 0, len(cfg.Channels))
	for _, ch := range cfg.Channels {
		v := channelView{Name: ch.Name, MailboxType: ch.Mailbox.Type, MailboxAddress: ch.Mailbox.Address,
			Folder: mailsync.DisplayFolder(ch.Folder), Webhook: ch.Webhook, AfterImport: ch.AfterImport.String(),
			Auth: store.ChannelStatus{Name: ch.Name, State: store.ChannelNeedsConsent}, Sync: store.SyncState{Channel: ch.Name}}
		for _, a := range auths {
			if a.Name == ch.Name {
				v.Auth = a
			}
		}
		for _, s := range syncs {
			if s.Channel == ch.Name {
				v.Sync = s
			}
		}
		if v.MailboxAddress == "" {
			v.MailboxAddress = v.Auth.Account.UPN
		}
		counts, err := a.db.LedgerCounts(ctx, ch.Name)
		if err != nil {
			return nil, err
		}
		v.PostDone = counts[store.LedgerDone]
		if r, ok := a.runner(ch.Name); ok {
			s := r.Status()
			v.Runner = &s
		}
		out = append(out, v)
	}
	return out, nil
}

// Up reports whether the last sync round succeeded (and the runner is not
// paused or failing).
func (v channelView) Up() bool {
	if v.Runner != nil {
		return v.Runner.State == mailsync.RunnerIdle || v.Runner.State == mailsync.RunnerSyncing
	}
	return v.Sync.Status == store.SyncOK
}

// LastSuccess is when a sync round last succeeded; zero if never.
func (v channelView) LastSuccess() time.Time {
	if v.Runner != nil && !v.Runner.LastSuccessAt.IsZero() {
		return v.Runner.LastSuccessAt
	}
	if v.Sync.Status == store.SyncOK {
		return v.Sync.LastSyncAt
	}
	return time.Time{}
}

// Lag is the time since the last successful round ("never" before it).
func (v channelView) Lag(now time.Time) string {
	t := v.LastSuccess()
	if t.IsZero() {
		return "never"
	}
	return now.Sub(t).Round(time.Second).String()
}

// FirstSync reports a first full pass in progress: done of about total.
func (v channelView) FirstSync() (done, total int64, active bool) {
	if v.Sync.ArchiveMode == "" || !v.Sync.InitialDoneAt.IsZero() {
		return 0, 0, false
	}
	return v.Sync.Seen, v.Sync.ProgressTotal, true
}

// Percent is a first sync's progress for a <progress>/<meter> element.
func (v channelView) Percent() int {
	done, total, _ := v.FirstSync()
	if total <= 0 {
		return 0
	}
	return int(min(100, done*100/total))
}

// Connected reports whether the channel was ever signed in (the button
// then re-authenticates).
func (v channelView) Connected() bool { return v.Auth.State != store.ChannelNeedsConsent }

// problem is what needs the operator's attention, and the fix.
type problem struct{ What, Fix string }

// Problem is what needs the operator's attention, with its fix; zero when
// nothing does.
func (v channelView) Problem() problem {
	switch v.Auth.State {
	case store.ChannelNeedsConsent:
		return problem{"Not connected yet.", "Click Connect and sign in with the account that owns the mailbox (or, for a shared mailbox, one that has full access to it)."}
	case store.ChannelReauthRequired, store.ChannelError:
		what := v.Auth.Reason
		if v.Auth.Code != "" {
			what = v.Auth.Code + ": " + what
		}
		fix := strings.ReplaceAll(v.Auth.Fix, "auth CHANNEL", "auth "+v.Name)
		if v.Auth.State == store.ChannelReauthRequired {
			fix = strings.TrimSpace(fix + " Or click Re-authenticate below.")
		}
		return problem{what, fix}
	}
	if v.Runner != nil && v.Runner.State == mailsync.RunnerError {
		return problem{v.Runner.Reason, v.Runner.Fix}
	}
	if v.Runner == nil && v.Sync.Status == store.SyncError {
		return problem{v.Sync.ErrorReason, v.Sync.ErrorFix}
	}
	return problem{}
}

// ArchiveText describes the archive decision.
func (v channelView) ArchiveText() string { return mailsync.NewArchiveState(v.Sync).String() }

// Messages are the channel's counters, each meaning one thing (see
// MessageCounts).
func (v channelView) Messages() mailsync.MessageCounts {
	return mailsync.NewMessageCounts(v.Sync, v.PostDone)
}

// EndpointView is one webhook endpoint with its queue.
type EndpointView struct {
	Name      string                `json:"name"`
	URL       string                `json:"url"`
	State     deliver.EndpointState `json:"state"`
	Reason    string                `json:"reason,omitempty"`
	Since     time.Time             `json:"since,omitzero"`
	Pending   int                   `json:"pending"`
	Delivered int                   `json:"delivered"`
	Dead      int                   `json:"dead"`
	Rejected  int                   `json:"rejected"`
	// LastError is the newest error among the endpoint's undelivered rows.
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	Configured  bool      `json:"configured"`
}

// endpointNames are the configured endpoints, then any other endpoint that
// still holds rows (removed from bridge.yaml), sorted.
func (a *Console) endpointNames(counts map[string]map[deliver.State]int) []string {
	var names, extra []string
	for _, w := range a.config().Webhooks {
		names = append(names, w.Name)
	}
	for n := range counts {
		if !slices.Contains(names, n) {
			extra = append(extra, n)
		}
	}
	slices.Sort(extra)
	return append(names, extra...)
}

// endpointViews lists the webhook endpoints with queue depth and state.
func (a *Console) endpointViews(ctx context.Context) ([]EndpointView, error) {
	q := a.db.Outbox()
	counts, err := q.Counts(ctx)
	if err != nil {
		return nil, err
	}
	cfg := a.config()
	var out []EndpointView
	for _, name := range a.endpointNames(counts) {
		v := EndpointView{Name: name, Pending: counts[name][deliver.StatePending], Delivered: counts[name][deliver.StateDelivered],
			Dead: counts[name][deliver.StateDead], Rejected: counts[name][deliver.StateRejected]}
		for _, w := range cfg.Webhooks {
			if w.Name == name {
				v.URL, v.Configured = deliver.RedactURL(w.URL), true
			}
		}
		st, err := q.Endpoint(ctx, name)
		if err != nil {
			return nil, err
		}
		v.State, v.Reason, v.Since = st.State, st.Reason, st.Since
		// The head of the queue says why it is stuck; dead and rejected rows
		// say why they stopped. Each is one indexed, limited read.
		for _, states := range [][]deliver.State{{deliver.StatePending}, {deliver.StateDead, deliver.StateRejected}} {
			rows, err := q.List(ctx, deliver.Filter{Endpoint: name, States: states, Limit: 50})
			if err != nil {
				return nil, err
			}
			for _, r := range rows {
				if r.LastError != "" && r.LastAttemptAt.After(v.LastErrorAt) {
					v.LastError, v.LastErrorAt = deliver.RedactText(r.LastError), r.LastAttemptAt // rows written before the sender redacted
				}
			}
		}
		out = append(out, v)
	}
	return out, nil
}

// DeliveryView is an outbox row without its body, for the API, the page and
// `m365bridge deliveries --json`.
type DeliveryView struct {
	Seq           int64     `json:"seq"`
	EventID       string    `json:"event_id"`
	Endpoint      string    `json:"endpoint"`
	Channel       string    `json:"channel"`
	Type          string    `json:"type"`
	State         string    `json:"state"`
	Attempts      int       `json:"attempts"`
	CreatedAt     time.Time `json:"created_at"`
	NextAttemptAt time.Time `json:"next_attempt_at,omitzero"`
	LastAttemptAt time.Time `json:"last_attempt_at,omitzero"`
	LastStatus    int       `json:"last_status,omitempty"`
	LastError     string    `json:"last_error,omitempty"`
	ReplayedAt    time.Time `json:"replayed_at,omitzero"`
	DeliveredAt   time.Time `json:"delivered_at,omitzero"`
}

// NewDeliveryView is how the status page, the admin API and `m365bridge
// deliveries` render an outbox row: the error redacted, the next attempt
// only while pending.
func NewDeliveryView(r deliver.Row) DeliveryView {
	v := DeliveryView{Seq: r.Seq, EventID: r.EventID, Endpoint: r.Endpoint, Channel: r.Channel, Type: r.Type,
		State: string(r.State), Attempts: r.Attempts, CreatedAt: r.CreatedAt, LastAttemptAt: r.LastAttemptAt,
		LastStatus: r.LastStatus, LastError: deliver.RedactText(r.LastError), ReplayedAt: r.ReplayedAt, DeliveredAt: r.DeliveredAt}
	if r.State == deliver.StatePending {
		v.NextAttemptAt = r.NextAttemptAt
	}
	return v
}

// Row is the outbox row a view was rendered from, as far as the view
// carries it (no body, the error redacted).
func (v DeliveryView) Row() deliver.Row {
	return deliver.Row{Seq: v.Seq, EventID: v.EventID, Endpoint: v.Endpoint, Channel: v.Channel, Type: v.Type,
		State: deliver.State(v.State), Attempts: v.Attempts, CreatedAt: v.CreatedAt, NextAttemptAt: v.NextAttemptAt,
		LastAttemptAt: v.LastAttemptAt, LastStatus: v.LastStatus, LastError: v.LastError, ReplayedAt: v.ReplayedAt,
		DeliveredAt: v.DeliveredAt}
}

// Excerpt is the start of the last error, for a table cell.
func (v DeliveryView) Excerpt() string {
	const n = 160
	if len(v.LastError) <= n {
		return v.LastError
	}
	cut := n
	for cut > 0 && v.LastError[cut]&0xC0 == 0x80 {
		cut--
	}
	return v.LastError[:cut] + "…"
}
