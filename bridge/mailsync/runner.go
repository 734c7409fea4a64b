// Package mailsync is the sync stage: one Runner per channel pages its
// folder's delta query, decides the archive mode on the first round,
// commits ledger rows, outbox rows and the cursor in one transaction per
// page, ties webhook acknowledgements to the ledger (LedgerHooks) and runs
// the post-import actions only for delivered mail.
package mailsync

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/m365bridge/m365bridge/bridge/backoff"
	"github.com/m365bridge/m365bridge/bridge/event"
	"github.com/m365bridge/m365bridge/bridge/graph"
	"github.com/m365bridge/m365bridge/bridge/membudget"
	"github.com/m365bridge/m365bridge/bridge/notify"
	"github.com/m365bridge/m365bridge/bridge/store"
	"github.com/m365bridge/m365bridge/config"
	"github.com/m365bridge/m365bridge/webhooks"
)

// MailboxAPI is what a runner needs of a Graph mailbox; *graph.MailboxClient
// implements it. Tests use the real client against the simulator.
type MailboxAPI interface {
	ResolveFolder(ctx context.Context, path string) (graph.Folder, error)
	GetFolder(ctx context.Context, id string) (graph.Folder, error)
	Delta(ctx context.Context, folderID, cursor string, opts graph.DeltaOptions) (*graph.DeltaPage, error)
	Attachments(ctx context.Context, messageID string) ([]graph.Attachment, error)
	AttachmentsOf(ctx context.Context, messageIDs []string) (map[string][]graph.Attachment, map[string]error, error)
	AttachmentsMetaOf(ctx context.Context, messageIDs []string) (map[string][]graph.Attachment, map[string]error, error)
	AttachmentsByID(ctx context.Context, messageID string, attachmentIDs []string) ([]graph.Attachment, error)
	StreamAttachment(ctx context.Context, messageID, attachmentID string, w io.Writer, onHeader func(http.Header)) (int64, error)
	MIME(ctx context.Context, id string, maxBytes int64) ([]byte, error)
	AttachmentContent(ctx context.Context, messageID, attachmentID string, maxBytes int64) ([]byte, error)
	TextBodiesOf(ctx context.Context, messageIDs []string) (map[string]*graph.ItemBody, map[string]error, error)
	MarkRead(ctx context.Context, ids []string) map[string]error
	Move(ctx context.Context, ids []string, destFolderID string) map[string]error
}

// QueuedEvent is one event handed to the outbox inside the page transaction.
type QueuedEvent struct {
	ID      string // event id = webhook-id
	Type    string // mail.received | mail.archived
	Channel string // channel name
	Webhook string // endpoint name (channel.webhook)
	// Body is the event envelope as delivered: {"type","timestamp","data"}
	// JSON (event.EncodeEnvelope), built once so that a page holds one copy of
	// each event, attachments included.
	Body []byte
}

// EnqueueFunc writes ev into the webhook outbox inside tx; an id already
// present must be a no-op (so a re-sync cannot queue an event twice).
type EnqueueFunc func(ctx context.Context, tx *sql.Tx, ev QueuedEvent) error

// AuthFunc reports whether the runner should poll: the channel's sign-in
// is active, or in state error (a passing failure: each round tries the
// token refresh again, and the first that works makes it active).
type AuthFunc func(ctx context.Context) (bool, error)

// RunnerConfig is what NewRunner takes. Channel, DB and Graph are
// required; the rest have defaults.
type RunnerConfig struct {
	Channel config.Channel
	// Tenant keys event ids (with the mailbox address and the immutable
	// message id): the configured tenant, lower-cased, as the daemon passes
	// it (event.Tenant), not the account's tid, which is known only once a
	// channel is connected. It must never change for a channel.
	Tenant string
	// Mailbox is the mailbox's address for events and ids; default
	// Channel.Mailbox.Address.
	Mailbox string
	DB      *store.DB
	Graph   MailboxAPI
	// Enqueue puts events into the outbox; default storeEnqueue(DB).
	Enqueue EnqueueFunc
	// Auth gates polling; default: the channel's row in the store is active.
	Auth   AuthFunc
	Logger *slog.Logger
	Now    func() time.Time
	// Wake is called after each commit that queued events (the dispatcher's
	// wake-up); may be nil.
	Wake func()
	// OnSyncResult, when set, hears every round's outcome: code "" for a
	// round that succeeded, else the error code, reason and fix that were
	// recorded; prev is the outcome it replaced in the store (Status and
	// Error*), so that entering and leaving an error are seen once, even
	// across restarts. The daemon turns these into channel.error and
	// channel.restored events.
	OnSyncResult func(ctx context.Context, prev store.SyncState, code, reason, fix string)
	// PageSize is the delta page size (default graph.DefaultDeltaPageSize).
	PageSize int
	// Takes reports whether the channel's webhook takes events of a type
	// (its webhooks[].types); nil takes every type. A mail whose event it
	// does not take is not queued: its ledger row is rejected with the
	// reason ("filtered: ..."), so it is never delivered, the after_import
	// action never runs for it, and it stays in the mailbox, listed for
	// the operator. bridge.yaml validation refuses a channel whose webhook
	// leaves out a mail event type the channel produces; this guards the
	// rest (a filter changed underneath, a Runner built in Go). A
	// mail.rejected notice is queued only when it is taken.
	Takes func(typ string) bool
	// Links, when set, signs the attachment links of the channel's events
	// (event.Source.Link).
	Links *event.AttachmentLinks
	// MaxEventBytes bounds one encoded event (default and maximum
	// webhooks.MaxEventBytes, 64 MiB: what webhooks.Receiver and
	// `m365bridge receive` take): content is left out of a larger one (raw
	// MIME, then the largest attachments, each listed with the reason);
	// only a message still over the limit without them is rejected.
	MaxEventBytes int64
	// PageSlots bounds how many delta pages are being read and turned into
	// events at once, across the runners that share it: a page with its
	// attachments can hold tens of MiB, and fifty mailboxes importing at
	// once must not hold fifty pages. The daemon passes one to all its
	// runners. Default: a limit of DefaultPagesInFlight for this runner
	// alone.
	PageSlots *semaphore.Weighted
	// Memory is the byte budget for mail in memory, shared by all runners
	// (and the dispatcher): a page claims pageReserveBytes before it is
	// read and grows its claim to what its bodies and attachments weigh
	// (times the copies building its events makes, buildCopies) before it
	// builds, so a heavy page waits for bytes while light ones pass.
	// Default: a budget of DefaultMemoryBudget for this runner alone.
	Memory *membudget.Budget
	// HoldBack, shared by the daemon's runners, holds the import back while
	// pending event bodies exceed state_budget_bytes; nil: never held back.
	HoldBack *HoldBack

	// PostActionWait is the longest an acknowledged message waits for a
	// full $batch (graph.MaxBatchSize) before its after_import action runs
	// anyway (default DefaultPostActionWait).
	PostActionWait time.Duration
	// After is the runner's timer, on the same clock as Now: a channel that
	// receives once d has passed (default time.After).
	After func(d time.Duration) <-chan time.Time

	// Subscribed, when set, reports whether Graph change notifications are
	// on for the channel: the poll is then only the safety net, at
	// poll_interval. Otherwise the runner polls adaptively
	// (notify.PollPolicy with the channel's poll_fast and poll_interval).
	// A change notification wakes the runner through SyncNow.
	Subscribed func() bool
	// OnFolder, when set, hears the channel's folder id whenever a round
	// uses one it has not reported yet (the first round, a folder resolved
	// again after it was recreated): the daemon subscribes to it.
	OnFolder func(folderID string)
	// Notifications, when set, is the channel's change-notification state
	// for Status.
	Notifications func() (notify.ChannelStatus, bool)
	// PollBudget is the most Graph requests per hour the adaptive poll may
	// spend (notify.PollPolicy.Budget; default 360).
	PollBudget int

	// BeforeBuild, when set (tests), runs before each message's event is
	// built, on the goroutine that builds it.
	BeforeBuild func(m *graph.Message)
	// afterPostPass, when set (tests), hears the end of each post-action
	// pass that Run made on a Notify or on the deadline, with how many
	// delivered messages still wait for a full batch.
	afterPostPass func(waiting int)
	onHold        func(p store.PendingBodies) // tests: hears each check that holds the import back
	onAwait       func()                      // tests: a held runner is about to wait for deliveries
}

// Defaults of RunnerConfig.
const (
	// DefaultPagesInFlight is the default number of delta pages all runners
	// together read and build at once (two keep both cores busy).
	DefaultPagesInFlight = 2
	// DefaultMemoryBudget is the default byte budget of RunnerConfig.Memory
	// (config.DefaultMemoryBudget, memory_budget_bytes).
	DefaultMemoryBudget  = 96 << 20
	DefaultMaxEventBytes = webhooks.MaxEventBytes
	// DefaultPostActionWait is how long an acknowledged message waits at
	// most for a full $batch of post-import actions before it goes in a
	// smaller one.
	DefaultPostActionWait = 2 * time.Second
	// postActionChunk is how many ledger rows one post-action pass takes
	// (a multiple of graph.MaxBatchSize).
	postActionChunk = 200
	// maxPostActionDelay caps the retry delay of a failing post-action.
	maxPostActionDelay = time.Hour
)

// Stats counts what one sync round did.
type Stats struct {
	Pages      int `json:"pages"`
	Seen       int `json:"seen"`        // message entries in delta pages
	Queued     int `json:"queued"`      // new events queued
	Archived   int `json:"archived"`    // of Queued, archived
	New        int `json:"new"`         // of Queued, new
	Rejected   int `json:"rejected"`    // could not become an event
	Known      int `json:"known"`       // already in the ledger (a replay or a re-sync)
	Removed    int `json:"removed"`     // @removed entries (ignored)
	Resyncs    int `json:"resyncs"`     // expired cursors restarted
	PostDone   int `json:"post_done"`   // post-import actions completed
	PostFailed int `json:"post_failed"` // post-import actions to retry
}

func (s *Stats) add(o Stats) {
	s.Pages += o.Pages
	s.Seen += o.Seen
	s.Queued += o.Queued
	s.Archived += o.Archived
	s.New += o.New
	s.Rejected += o.Rejected
	s.Known += o.Known
	s.Removed += o.Removed
	s.Resyncs += o.Resyncs
	s.PostDone += o.PostDone
	s.PostFailed += o.PostFailed
}

// Runner states, as Status reports them.
const (
	RunnerIdle    = "idle"
	RunnerSyncing = "syncing"
	RunnerPaused  = "paused" // sign-in not active
	RunnerError   = "error"
)

// Status is a runner's live summary for `channels`, /metrics and the status
// page.
type Status struct {
	Channel       string      `json:"channel"`
	State         string      `json:"state"`
	Reason        string      `json:"reason,omitempty"`
	Fix           string      `json:"fix,omitempty"`
	LastSyncAt    time.Time   `json:"last_sync_at,omitzero"`
	LastSuccessAt time.Time   `json:"last_success_at,omitzero"`
	Rounds        int64       `json:"rounds"`
	Totals        Stats       `json:"totals"`
	Graph         graph.Stats `json:"graph"`
	// Notifications is the change-notification state; nil when the
	// channel has none (change_notifications: off).
	Notifications *notify.ChannelStatus `json:"notifications,omitempty"`
	// HeldBack is set while the import waits for deliveries (HoldBack).
	HeldBack *HeldBack `json:"held_back,omitempty"`
}

// Runner syncs one channel: its folder's delta into ledger and outbox, and
// the post-import actions of delivered messages. Create with NewRunner,
// then Run (or drive SyncOnce in tests). Safe for concurrent use; rounds are
// serialised.
type Runner struct {
	cfg     RunnerConfig
	ch      config.Channel
	mailbox string
	log     *slog.Logger
	notify  chan struct{}
	syncNow chan struct{}

	round sync.Mutex // one round at a time

	mu       sync.Mutex // guards the fields below
	status   Status
	moveDest string // resolved folder id of after_import move:<folder>
	// lastActivity is when a round last found new mail (adaptive poll);
	// folderReported the folder id last given to OnFolder.
	lastActivity   time.Time
	folderReported string
}

// NewRunner returns a runner for cfg.Channel. It does no I/O.
func NewRunner(cfg RunnerConfig) *Runner {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Mailbox == "" {
		cfg.Mailbox = cfg.Channel.Mailbox.Address
	}
	if cfg.PageSize <= 0 {
		cfg.PageSize = graph.DefaultDeltaPageSize
	}
	if cfg.MaxEventBytes <= 0 || cfg.MaxEventBytes > webhooks.MaxEventBytes {
		cfg.MaxEventBytes = DefaultMaxEventBytes
	}
	if cfg.Channel.MaxAttachmentBytes <= 0 {
		cfg.Channel.MaxAttachmentBytes = config.DefaultMaxAttachmentBytes
	}
	if cfg.Channel.AttachmentLinkTTL <= 0 {
		cfg.Channel.AttachmentLinkTTL = config.DefaultAttachmentLinkTTL
	}
	if cfg.Channel.AfterImport.Action == "" {
		cfg.Channel.AfterImport.Action = config.ActionKeep
	}
	if cfg.PostActionWait <= 0 {
		cfg.PostActionWait = DefaultPostActionWait
	}
	if cfg.After == nil {
		cfg.After = time.After
	}
	if cfg.PageSlots == nil {
		cfg.PageSlots = semaphore.NewWeighted(DefaultPagesInFlight)
	}
	if cfg.Memory == nil {
		cfg.Memory = membudget.New(DefaultMemoryBudget)
	}
	if cfg.Enqueue == nil {
		cfg.Enqueue = storeEnqueue(cfg.DB)
	}
	if cfg.Auth == nil {
		db, name := cfg.DB, cfg.Channel.Name
		cfg.Auth = func(ctx context.Context) (bool, error) {
			st, err := db.ChannelState(ctx, name)
			if errors.Is(err, store.ErrNoChannel) {
				return false, nil
			}
			return err == nil && (st.State == store.ChannelActive || st.State == store.ChannelError), err
		}
	}
	return &Runner{
		cfg: cfg, ch: cfg.Channel, mailbox: cfg.Mailbox,
		log:    cfg.Logger.With(slog.String("channel", cfg.Channel.Name), slog.String("mailbox", cfg.Mailbox)),
		notify: make(chan struct{}, 1), syncNow: make(chan struct{}, 1),
		status: Status{Channel: cfg.Channel.Name, State: RunnerIdle},
	}
}

// Status returns the runner's current summary.
func (r *Runner) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.status
	if st, ok := r.cfg.Graph.(interface{ Stats() graph.Stats }); ok {
		s.Graph = st.Stats()
	}
	if r.cfg.Notifications != nil {
		if ns, ok := r.cfg.Notifications(); ok {
			s.Notifications = &ns
		}
	}
	return s
}

func (r *Runner) setState(state, reason, fix string) {
	r.mu.Lock()
	r.status.State, r.status.Reason, r.status.Fix = state, reason, fix
	r.mu.Unlock()
}

// SyncNow asks a running runner for a sync round at once instead of at its
// next poll (an operator who just fixed a folder, a reload). It never
// blocks; requests while a round runs fold into one more round.
func (r *Runner) SyncNow() {
	select {
	case r.syncNow <- struct{}{}:
	default:
	}
}

// Notify asks a running runner to run its post-import actions soon, e.g.
// after the dispatcher committed acknowledgements. It never blocks.
func (r *Runner) Notify() {
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

// Run syncs at the channel's poll interval (with ±10% jitter; adaptive,
// or a safety net under change notifications: see pollWait) until ctx
// ends, and at once on SyncNow (a change notification's wake-up); while the channel's sign-in is not active it only waits. A Notify
// runs the post-import actions in between, in whole $batch calls: messages
// short of a full batch wait for more acknowledgements, at most
// PostActionWait (on the runner's After), or for the next round. Errors of
// a round are recorded (store and Status) and retried next round; Run
// returns nil when ctx ends.
func (r *Runner) Run(ctx context.Context) error {
	interval := r.ch.PollInterval
	if interval <= 0 {
		interval = config.DefaultPollInterval
	}
	if r.cfg.HoldBack != nil {
		defer r.cfg.HoldBack.join(r.ch.Name)()
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	var flush <-chan time.Time // armed while acknowledged messages wait for a full batch
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-r.syncNow:
		case <-r.notify:
			waiting := 0
			if ok, _ := r.cfg.Auth(ctx); ok {
				w, err := r.postActionsSafe(ctx, true)
				if err != nil && ctx.Err() == nil {
					r.log.Warn("post-import actions failed", "err", err)
				}
				waiting = w
			}
			if waiting > 0 && flush == nil {
				flush = r.cfg.After(r.cfg.PostActionWait)
			}
			if r.cfg.afterPostPass != nil {
				r.cfg.afterPostPass(waiting)
			}
			continue
		case <-flush:
			flush = nil
			if ok, _ := r.cfg.Auth(ctx); ok {
				if _, err := r.postActionsSafe(ctx, false); err != nil && ctx.Err() == nil {
					r.log.Warn("post-import actions failed", "err", err)
				}
			}
			if r.cfg.afterPostPass != nil {
				r.cfg.afterPostPass(0)
			}
			continue
		case <-timer.C:
		}
		active, err := r.cfg.Auth(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			r.log.Warn("read channel auth state", "err", err)
		case !active:
			r.setState(RunnerPaused, "the channel's sign-in is not active", "run `m365bridge auth "+r.ch.Name+"`")
		default:
			if _, err := r.SyncOnce(ctx); err != nil && ctx.Err() == nil {
				r.log.Warn("sync round failed", "err", err)
			}
			flush = nil // the round ran every due post-action
		}
		timer.Reset(backoff.Spread(r.pollWait(interval), 0.1, nil))
	}
}

// SyncOnce runs one round: resolve the folder, decide archive mode on the
// first round, page the folder's delta from the stored cursor into ledger
// and outbox (one transaction per page, cursor included), then the
// post-import actions of delivered messages. Its error is also recorded as
// the channel's sync status with the operator-facing reason and fix.
func (r *Runner) SyncOnce(ctx context.Context) (Stats, error) {
	r.round.Lock()
	defer r.round.Unlock()
	r.setState(RunnerSyncing, "", "")
	stats, err := r.syncRoundSafe(ctx)
	if ctx.Err() == nil {
		// Delivered messages get their post-import action even when paging
		// failed (a folder renamed away, Graph down for a moment).
		post, perr := r.postActionsRound(ctx)
		stats.add(post)
		if err == nil {
			err = perr
		}
	}
	now := r.cfg.Now()
	r.mu.Lock()
	r.status.Rounds++
	r.status.LastSyncAt = now
	r.status.Totals.add(stats)
	r.mu.Unlock()
	r.noteActivity(stats)
	if err != nil {
		if ctx.Err() != nil {
			r.setState(RunnerIdle, "", "")
			return stats, err
		}
		code, reason, fix := explainSync(err)
		r.setState(RunnerError, reason, fix)
		r.log.Error("sync failed", "code", code, "reason", reason, "fix", fix)
		prev, rerr := r.cfg.DB.SwapSyncResult(context.WithoutCancel(ctx), r.ch.Name, store.SyncError, code, reason, fix)
		if rerr != nil {
			r.log.Error("record sync result", "err", rerr)
		} else if r.cfg.OnSyncResult != nil {
			r.cfg.OnSyncResult(context.WithoutCancel(ctx), prev, code, reason, fix)
		}
		return stats, err
	}
	r.mu.Lock()
	r.status.LastSuccessAt = now
	r.mu.Unlock()
	r.setState(RunnerIdle, "", "")
	prev, err := r.cfg.DB.SwapSyncResult(ctx, r.ch.Name, store.SyncOK, "", "", "")
	if err != nil {
		return stats, err
	}
	if r.cfg.OnSyncResult != nil {
		r.cfg.OnSyncResult(ctx, prev, "", "", "")
	}
	if stats.Queued+stats.Rejected > 0 || stats.Resyncs > 0 {
		r.log.Info("sync round", "pages", stats.Pages, "queued", stats.Queued, "archived", stats.Archived,
			"new", stats.New, "rejected", stats.Rejected, "known", stats.Known, "resyncs", stats.Resyncs)
	}
	return stats, nil
}
