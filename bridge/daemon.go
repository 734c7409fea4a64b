// Package bridge is the daemon: it wires configuration, the state store, the
// HTTP listeners, the Entra ID token lifecycle, one sync runner per channel
// and the webhook dispatcher, and runs them under one lifecycle.
package bridge

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"

	"github.com/m365bridge/m365bridge/bridge/admin"
	"github.com/m365bridge/m365bridge/bridge/attachlink"
	"github.com/m365bridge/m365bridge/bridge/cluster"
	"github.com/m365bridge/m365bridge/bridge/entra"
	"github.com/m365bridge/m365bridge/bridge/event"
	"github.com/m365bridge/m365bridge/bridge/graph"
	"github.com/m365bridge/m365bridge/bridge/mailsync"
	"github.com/m365bridge/m365bridge/bridge/membudget"
	"github.com/m365bridge/m365bridge/bridge/notify"
	"github.com/m365bridge/m365bridge/bridge/send"
	"github.com/m365bridge/m365bridge/bridge/store"
	"github.com/m365bridge/m365bridge/bridge/web"
	"github.com/m365bridge/m365bridge/config"
	"github.com/m365bridge/m365bridge/webhooks/deliver"
)

// Options are what the daemon takes besides its configuration.
type Options struct {
	Logger  *slog.Logger
	Version string
	Now     func() time.Time
	// Getenv reads the token-encryption key variables (default os.Getenv).
	Getenv func(string) string
	// HTTPClient makes every call to Entra ID and Graph; default one with a
	// 2-minute overall timeout.
	HTTPClient *http.Client
	// SupervisorPoll is how often a channel that is not connected yet looks
	// at the store again (default 2 s).
	SupervisorPoll time.Duration
	// Dispatcher tunes the webhook dispatcher (tests shorten its polls).
	Dispatcher deliver.Options
	// ConfigPath is the file the configuration came from; ReloadFile
	// (SIGHUP, `m365bridge reload`) reads it again.
	ConfigPath string
	// Adjust, when set, is applied to the configuration ReloadFile reads,
	// before it is applied: the overrides the caller made to the first
	// one (the demo's state directory, poll interval and receiver), so
	// that a reload keeps them.
	Adjust func(*config.Config)
	// Send tunes the send worker (tests shorten its waits).
	Send send.Options

	// beforeBuild, when set (tests), is every runner's
	// RunnerConfig.BeforeBuild.
	beforeBuild func(m *graph.Message)
	// notifyEvent, when set (tests), is the change-notification
	// manager's notify.Options.OnEvent.
	notifyEvent func(channel, event string)
	// pollBudget, when set (tests), is every runner's
	// RunnerConfig.PollBudget.
	pollBudget int
}

// Daemon is a running bridge: New, then Start, Run, Close.
type Daemon struct {
	cfg        *config.Config
	log        *slog.Logger
	opts       Options
	instanceID string

	db        *store.DB
	vault     *store.Vault
	auth      *entra.Manager
	graph     *graph.Client
	endpoints []deliver.Endpoint
	disp      *deliver.Dispatcher
	web       *web.Server
	admin     *admin.Console
	sender    *send.Service
	links     *event.AttachmentLinks
	notify    *notify.Manager // nil when public_url cannot take notifications
	// cluster is this daemon's membership among the daemons sharing a
	// PostgreSQL database; nil on SQLite (cluster.go).
	cluster *cluster.Share
	// pageSlots bounds the delta pages all of this daemon's runners read
	// and build at once (RunnerConfig.PageSlots).
	pageSlots *semaphore.Weighted
	// memory is the byte budget of mail all runners hold at once
	// (memory_budget_bytes, RunnerConfig.Memory).
	memory *membudget.Budget
	// holdBack holds the runners' imports back while pending event bodies
	// exceed state_budget_bytes (RunnerConfig.HoldBack).
	holdBack *mailsync.HoldBack

	mu      sync.Mutex                  // guards cfg, endpoints and the maps below
	runners map[string]*mailsync.Runner // channels that are running
	wake    map[string]chan struct{}    // supervisors waiting for a connection

	// runMu serialises Run's setup and reloads; runCtx and group are the
	// running errgroup, chans its channel supervisors.
	runMu  sync.Mutex
	runCtx context.Context
	group  *errgroup.Group
	chans  map[string]*channelRun
}

// New prepares a daemon; nothing is opened or bound until Start.
func New(cfg *config.Config, opts Options) *Daemon {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Getenv == nil {
		opts.Getenv = os.Getenv
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 2 * time.Minute}
	}
	if opts.SupervisorPoll == 0 {
		opts.SupervisorPoll = 2 * time.Second
	}
	var nonce [12]byte
	rand.Read(nonce[:])
	return &Daemon{cfg: cfg, log: opts.Logger, opts: opts, instanceID: hex.EncodeToString(nonce[:]),
		runners: map[string]*mailsync.Runner{}, wake: map[string]chan struct{}{}, chans: map[string]*channelRun{},
		pageSlots: semaphore.NewWeighted(mailsync.DefaultPagesInFlight), memory: membudget.New(cfg.MemoryBudget),
		holdBack: mailsync.NewHoldBack(cfg.StateBudget)}
}

// Start opens the store, prepares every component and binds the listeners.
// An error leaves nothing open behind.
func (d *Daemon) Start(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			d.Close(context.WithoutCancel(ctx))
		}
	}()
	if d.db, err = store.OpenDatabase(ctx, d.cfg.Store.Database.Value(), d.cfg.State); err != nil {
		return fmt.Errorf("open state: %w", err)
	}
	if d.db.Postgres() {
		d.db.RequireLeases(true) // every channel write carries its lease (cluster.go)
		d.cluster = cluster.New(d.instanceID, d.cfg.Store.LeaseTTL)
	}
	d.db.Now = d.opts.Now // one clock for every part: store, entra, graph, runners, dispatcher
	d.db.SetBodyBudget(d.cfg.StateBudget)
	d.db.Log = d.log // a prompt trim of delivered bodies that failed
	keys, err := store.LoadKeyring(d.cfg.State, d.opts.Getenv, d.log)
	if err != nil {
		return fmt.Errorf("load token key: %w", err)
	}
	d.vault = store.NewVault(d.db, keys)
	linkKey, err := store.LoadLinkKey(d.cfg.State)
	if err != nil {
		return err
	}
	d.links = event.NewAttachmentLinks(linkKey, d.cfg.PublicURL, d.opts.Now)
	if err := d.db.EnsureChannels(ctx, channelNames(d.cfg)); err != nil {
		return err
	}

	d.auth = entra.FromConfig(d.cfg, d.vault, d.opts.HTTPClient)
	d.auth.Log = d.log.With("component", "entra")
	d.auth.Notifier = d
	d.auth.Now = d.opts.Now

	d.graph = &graph.Client{BaseURL: d.cfg.MS.GraphURL, HTTP: d.opts.HTTPClient, Logger: d.log.With("component", "graph"), Now: d.opts.Now}

	if d.endpoints, err = d.webhookEndpoints(d.cfg); err != nil {
		return err
	}
	d.web = web.New(web.Options{
		PublicAddr:     d.cfg.Listen,
		AdminAddr:      d.cfg.Admin.Listen,
		AdminToken:     d.cfg.Admin.Token.Value(),
		AdminHosts:     d.cfg.Admin.Hosts,
		TrustedProxies: d.cfg.Admin.TrustedPrefixes(),
		SecureCookies:  d.cfg.PublicHTTPS(),
		Now:            d.opts.Now,
		InstanceID:     d.instanceID,
		Version:        d.opts.Version,
		Ready:          d.ready,
		Logger:         d.log.With("component", "web"),
	})
	dopts := d.dispatcherOptions()
	d.admin = admin.New(admin.Env{DB: d.db, Log: d.log, Now: d.opts.Now, Version: d.opts.Version, Config: d.config,
		Endpoints: d.currentEndpoints, Runner: d.Runner, Auth: d.auth, Graph: d.graph, AdminAuth: d.web.AdminAuth,
		WebhookHTTP: d.opts.Dispatcher.HTTPClient, Reload: d.ReloadFile, RestartNeeded: ErrRestartNeeded}, &dopts)
	if d.disp, err = deliver.New(d.outboxQueue(), d.endpoints, dopts); err != nil {
		return fmt.Errorf("webhook dispatcher: %w", err)
	}

	d.web.Public.GET("/oauth/callback", d.auth.Callback)
	d.sender = send.New(send.Env{DB: d.db, Log: d.log, Now: d.opts.Now, Channel: d.channel, Mailbox: d.mailboxClient,
		Takes: func(webhook, typ string) bool { return d.webhookTakes(webhook)(typ) }, Wake: d.disp.Wake, Owner: d.ownedContext}, d.opts.Send)
	d.sender.Mount(d.web.Public)
	attachlink.Mount(d.web.Public, d.attachLinkEnv())
	d.startNotifier()
	d.admin.SetDispatcher(d.disp)
	d.admin.Mount(d.web.Admin)
	if err := d.web.Start(); err != nil {
		return err
	}
	d.log.Info("m365bridge started", "version", d.opts.Version, "state", d.db.Path(),
		"channels", len(d.cfg.Channels), "webhooks", len(d.cfg.Webhooks), "redirect_uri", d.cfg.RedirectURI())
	return nil
}

// dispatcherOptions are the daemon's dispatcher options: its clock, log,
// user agent and the runners' byte budget.
func (d *Daemon) dispatcherOptions() deliver.Options {
	dopts := d.opts.Dispatcher
	if dopts.Now == nil {
		dopts.Now = d.opts.Now
	}
	dopts.Logger = d.log.With("component", "deliver")
	dopts.UserAgent = "m365bridge/" + d.opts.Version
	dopts.Memory = d.memory // bodies being delivered share the runners' byte budget
	return dopts
}

// ready is /readyz: the store answers and the configuration is loaded.
func (d *Daemon) ready(ctx context.Context) error {
	if d.config() == nil {
		return errors.New("configuration not loaded")
	}
	return d.db.Ping(ctx)
}

// Run runs the dispatcher and one supervisor per channel until ctx ends or
// a component fails.
func (d *Daemon) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	d.runMu.Lock()
	d.runCtx, d.group = ctx, g
	g.Go(func() error { return d.disp.Run(ctx) })
	g.Go(func() error { return d.sender.Run(ctx) })
	if d.notify != nil {
		g.Go(func() error { return d.notify.Run(ctx) })
	}
	if d.cluster != nil {
		g.Go(func() error { return d.runMembership(ctx) })
	}
	for _, ch := range d.config().Channels {
		d.startChannel(ch)
	}
	d.runMu.Unlock()
	g.Go(func() error {
		select {
		case <-ctx.Done():
			return nil
		case err := <-d.web.Err():
			return fmt.Errorf("http listener: %w", err)
		}
	})
	return g.Wait()
}

// superviseChannel waits until a channel is connected (its mailbox address
// known), then runs its sync runner until ctx ends. The runner itself
// pauses while the channel's sign-in needs attention.
func (d *Daemon) superviseChannel(ctx context.Context, ch config.Channel) error {
	log := d.log.With("channel", ch.Name)
	wake := make(chan struct{}, 1)
	d.mu.Lock()
	d.wake[ch.Name] = wake
	d.mu.Unlock()
	announced := false
	for {
		st, err := d.db.ChannelState(ctx, ch.Name)
		if err != nil && ctx.Err() == nil {
			log.Error("read channel state", "err", err)
		}
		if mb, ok := graphMailbox(ch, st.Account); ok && err == nil && st.Account.ObjectID != "" {
			mc := d.graph.Mailbox(mb, d.auth.Source(ch.Name))
			rc := mailsync.RunnerConfig{
				Channel: ch, Tenant: event.Tenant(d.config()), Mailbox: mb.Address, DB: d.db,
				Graph:  mc,
				Logger: d.log, Now: d.opts.Now, After: d.opts.Dispatcher.After, Wake: d.disp.Wake,
				OnSyncResult: d.syncResultNotifier(ch.Name),
				BeforeBuild:  d.opts.beforeBuild,
				Takes:        d.webhookTakes(ch.Webhook),
				Links:        d.links,
				PageSlots:    d.pageSlots,
				PollBudget:   d.opts.pollBudget,
				Memory:       d.memory,
				HoldBack:     d.holdBack,
			}
			d.withNotifications(&rc, mc)
			r := mailsync.NewRunner(rc)
			d.mu.Lock()
			d.runners[ch.Name] = r
			d.mu.Unlock()
			log.Info("channel syncing", "mailbox", mb.Address, "folder", mailsync.DisplayFolder(ch.Folder))
			return r.Run(ctx)
		}
		if !announced && err == nil {
			log.Warn("channel not connected yet; open the consent URL from `m365bridge auth "+ch.Name+"` or the status page", "state", st.State)
			announced = true
		}
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		case <-time.After(d.opts.SupervisorPoll):
		}
	}
}

func (d *Daemon) wakeSupervisor(channel string) {
	d.mu.Lock()
	w := d.wake[channel]
	d.mu.Unlock()
	if w != nil {
		select {
		case w <- struct{}{}:
		default:
		}
	}
}

// notifyRunner runs inside the outbox's acknowledgement transaction: it
// only signals, never blocks.
func (d *Daemon) notifyRunner(channel string) {
	d.mu.Lock()
	r := d.runners[channel]
	d.mu.Unlock()
	if r != nil {
		r.Notify()
	}
}

// Runner returns a channel's runner once the channel is syncing.
func (d *Daemon) Runner(channel string) (*mailsync.Runner, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	r, ok := d.runners[channel]
	return r, ok
}

// Close shuts everything down within ctx's deadline. Safe to call twice.
func (d *Daemon) Close(ctx context.Context) error {
	var errs []error
	d.closeNotifier(ctx)
	if d.web != nil {
		errs = append(errs, d.web.Close(ctx))
	}
	if d.db != nil {
		errs = append(errs, d.db.Close())
		d.db = nil
	}
	return errors.Join(errs...)
}

// InstanceID is the per-process nonce /healthz reports.
func (d *Daemon) InstanceID() string { return d.instanceID }

// PublicAddr is the bound public listener address (after Start).
func (d *Daemon) PublicAddr() string { return d.web.PublicAddr() }

// AdminAddr is the bound admin listener address (after Start).
func (d *Daemon) AdminAddr() string { return d.web.AdminAddr() }

// Auth is the consent and token manager (after Start).
func (d *Daemon) Auth() *entra.Manager { return d.auth }

// DB is the state store (after Start).
func (d *Daemon) DB() *store.DB { return d.db }

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }
