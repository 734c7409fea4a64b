package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/m365bridge/m365bridge/bridge"
	"github.com/m365bridge/m365bridge/bridge/logging"
	"github.com/m365bridge/m365bridge/bridge/m365sim"
	"github.com/m365bridge/m365bridge/bridge/store"
	"github.com/m365bridge/m365bridge/config"
	"github.com/m365bridge/m365bridge/webhooks"
	"github.com/m365bridge/m365bridge/webhooks/deliver"
)

// runDemo runs the whole product on this machine: the simulator seeded with
// realistic mailboxes, the daemon with bridge.yaml pointed at it, and a
// development receiver that verifies and prints every event.
func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("demo", stderr)
	path := fs.String("config", "bridge.yaml", "configuration `file` (its login_url must point at a loopback address: the simulator runs there)")
	stateDir := fs.String("state-dir", "", "state `directory` (default: a new temporary one, removed at exit)")
	logLevel := fs.String("log-level", "warn", "daemon log `level` on stderr")
	oldMails := fs.Int("history", 30, "how many older mails the Support folder starts with")
	demoPoll := fs.Duration("poll", 10*time.Second, "how often the demo's channels poll (bridge.yaml's interval is for real mailboxes)")
	pause := fs.Duration("pause", 3*time.Second, "how long to wait before injecting the live-pickup mail")
	hookURL := fs.String("webhook-url", "", "deliver to your receiver at this `URL` instead of the built-in one on webhooks[0].url")
	hookSecret := fs.String("webhook-secret", "", "the whsec_ `secret` your receiver verifies with (with --webhook-url)")
	stall := fs.Duration("stall", demoStall, "give up when no event was delivered or refused for this `long` (a safety net: progress is printed while events flow)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := checkDemoFlags(fs, *hookURL, *hookSecret, *oldMails); err != nil {
		return err
	}
	cfg, simURL, override, cleanup, err := loadDemoConfig(*path, *stateDir, *demoPoll, *hookURL, *hookSecret, stderr)
	if err != nil {
		return err
	}
	defer cleanup()
	log, err := logging.NewLogger(stderr, *logLevel, "text")
	if err != nil {
		return usageError{err.Error()}
	}
	p := &demoPrinter{w: stdout}

	// 1. The simulator, with the app registration bridge.yaml names.
	now := time.Now().UTC().Truncate(time.Second)
	seed := demoSeed(cfg, now, *oldMails)
	sim, err := m365sim.Listen(simURL.Host, m365sim.Options{AllowHTTPLoopback: true}, seed)
	if err != nil {
		return fmt.Errorf("start simulator: %w", err)
	}
	defer sim.Close()
	p.say("Simulator (Entra ID + Graph) on %s: tenant %s, users %s, shared mailbox %s",
		sim.URL, cfg.MS.Tenant, strings.Join(sim.Seeded.Users, ", "), strings.Join(sim.Seeded.Mailboxes, ", "))

	// 2. The helpdesk: a receiver that verifies every signature, or yours.
	if *hookURL == "" {
		recv, err := startDemoReceiver(cfg, p)
		if err != nil {
			return err
		}
		defer recv.close()
	} else {
		p.say("Delivering to your receiver at %s (webhook %q), signed with the secret you gave.", deliver.RedactURL(*hookURL), cfg.Webhooks[0].Name)
	}

	// 3. The bridge itself. Its dispatcher reports every delivery result:
	// that is what the demo waits on, not the clock.
	prog := newDemoProgress()
	d, stop, err := startDemoBridge(ctx, cfg, bridge.Options{Logger: log, Version: version, ConfigPath: *path, Adjust: override,
		Dispatcher: deliver.Options{OnResult: prog.onResult}})
	if err != nil {
		return err
	}
	defer stop()
	p.say("Bridge listening: public %s (OAuth callback %s), admin %s; state in %s", d.PublicAddr(), cfg.RedirectURI(), d.AdminAddr(), cfg.State)

	// 4. Consent for every channel, through the simulator's sign-in page.
	if err := demoConnect(ctx, d, cfg, seed, p); err != nil {
		return err
	}

	switch err := demoScenario(ctx, cfg, sim, seed, prog, p, demoTiming{poll: *demoPoll, pause: *pause, stall: *stall}); {
	case errors.Is(err, errDemoStopped):
		return nil
	case err != nil:
		return err
	}
	p.say("Status page: http://%s/ (admin token: $M365BRIDGE_ADMIN_TOKEN, default demo-admin-token). `m365bridge reload` re-reads %s. Ctrl-C stops everything.", d.AdminAddr(), *path)
	<-ctx.Done()
	p.say("Stopping.")
	return nil
}

// checkDemoFlags refuses arguments and flag combinations the demo cannot use.
func checkDemoFlags(fs *flag.FlagSet, hookURL, hookSecret string, oldMails int) error {
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("demo: unexpected argument %q", fs.Arg(0))}
	}
	if (hookURL == "") != (hookSecret == "") {
		return usageError{"demo: --webhook-url and --webhook-secret go together (the secret your receiver verifies signatures with)"}
	}
	if oldMails < 0 {
		return usageError{"demo: --history must be 0 or more"}
	}
	return nil
}

// startDemoBridge starts and runs the daemon; stop ends it within
// shutdownTimeout.
func startDemoBridge(ctx context.Context, cfg *config.Config, opts bridge.Options) (*bridge.Daemon, func(), error) {
	d := bridge.New(cfg, opts)
	if err := d.Start(ctx); err != nil {
		return nil, nil, err
	}
	runCtx, stopRun := context.WithCancel(ctx)
	runDone := make(chan error, 1)
	go func() { runDone <- d.Run(runCtx) }()
	return d, func() {
		stopRun()
		<-runDone
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
		defer cancel()
		d.Close(sctx)
	}, nil
}

// loadDemoConfig loads bridge.yaml for the demo, which must point at a
// loopback simulator, and applies the demo's overrides (state directory,
// poll interval, receiver); override is kept for `m365bridge reload`
// (Options.Adjust). cleanup removes a temporary state directory.
func loadDemoConfig(path, stateDir string, demoPoll time.Duration, hookURL, hookSecret string, stderr io.Writer) (cfg *config.Config, simURL *url.URL, override func(*config.Config), cleanup func(), err error) {
	cleanup = func() {}
	cfg, err = config.Load(path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return nil, nil, nil, cleanup, exitError{code: 1}
	}
	simURL, err = url.Parse(cfg.MS.LoginURL)
	if err != nil || !isLoopbackHost(simURL.Hostname()) || strings.TrimRight(cfg.MS.GraphURL, "/") != strings.TrimRight(cfg.MS.LoginURL, "/") {
		return nil, nil, nil, cleanup, fmt.Errorf("demo runs against the built-in simulator: microsoft.login_url and graph_url in %s must both be the same loopback URL, e.g. http://127.0.0.1:8369", path)
	}
	if stateDir == "" {
		dir, err := os.MkdirTemp("", "m365bridge-demo-")
		if err != nil {
			return nil, nil, nil, cleanup, err
		}
		cleanup = func() { os.RemoveAll(dir) }
		stateDir = dir
	}
	// The demo's overrides, kept by `m365bridge reload` (Options.Adjust).
	override = func(c *config.Config) {
		c.State = stateDir
		for i := range c.Channels {
			if c.Channels[i].PollInterval > demoPoll {
				c.Channels[i].PollInterval = demoPoll
			}
		}
		if hookURL != "" && len(c.Webhooks) > 0 {
			c.Webhooks[0].URL = hookURL
			c.Webhooks[0].Secret, c.Webhooks[0].Secrets = config.NewSecret(hookSecret), nil
		}
	}
	override(cfg)
	if hookURL != "" {
		if err := checkDemoWebhook(hookURL, hookSecret); err != nil {
			cleanup()
			return nil, nil, nil, func() {}, err
		}
	}
	return cfg, simURL, override, cleanup, nil
}

// demoConnect gives consent for every channel through the simulator's
// sign-in page, as its user.
func demoConnect(ctx context.Context, d *bridge.Daemon, cfg *config.Config, seed *m365sim.Seed, p *demoPrinter) error {
	for _, ch := range cfg.Channels {
		authURL, err := d.Auth().StartAuth(ctx, ch.Name, store.AuthConnect)
		if err != nil {
			return fmt.Errorf("start consent for %s: %w", ch.Name, err)
		}
		user := demoSignInUser(ch, seed)
		p.say("Consent for channel %q: open %s (signing in as %s automatically)", ch.Name, authURL, user)
		if err := demoConsent(ctx, authURL, user); err != nil {
			return fmt.Errorf("consent for %s: %w", ch.Name, err)
		}
		p.say("Channel %q connected.", ch.Name)
	}
	return nil
}

// demoTiming is how the demo paces its scenario.
type demoTiming struct{ poll, pause, stall time.Duration }

// errDemoStopped: the demo was stopped (Ctrl-C) before its scenario ended.
var errDemoStopped = errors.New("demo stopped")

// demoScenario waits for the first sync, injects new mail and waits for
// it, then measures a live pickup; each wait ends on delivery results.
func demoScenario(ctx context.Context, cfg *config.Config, sim *m365sim.Server, seed *m365sim.Seed, prog *demoProgress, p *demoPrinter, t demoTiming) error {
	// 5. The first sync: history archived, recent mail new.
	expected := 0
	for _, u := range seed.Users {
		expected += len(u.Mail.Messages)
	}
	for _, m := range seed.SharedMailboxes {
		expected += len(m.Mail.Messages)
	}
	p.say("First sync: %d existing messages; mail before each channel's cut-off arrives as mail.archived (closed, original date, no automations).", expected)
	if err := prog.wait(ctx, "First sync", expected, t.stall, p); err != nil {
		return err
	}

	// 6. New mail after the first sync becomes new tickets.
	news := demoNewSupport(time.Now().UTC())
	for _, m := range news {
		if _, err := sim.Sim.InjectMessage(demoSupportAddress(cfg), m); err != nil {
			return fmt.Errorf("inject mail: %w", err)
		}
	}
	expected += len(news)
	p.say("%d new mails arrived in Support (a reply to an archived thread, an inline image, an auto-reply); next poll within %s.", len(news), t.poll)
	if err := prog.wait(ctx, "New mail", expected, t.stall, p); err != nil {
		return err
	}

	// 7. Live pickup.
	select {
	case <-ctx.Done():
		return errDemoStopped
	case <-time.After(t.pause):
	}
	injected := time.Now()
	if _, err := sim.Sim.InjectMessage(demoSupportAddress(cfg), demoFresh(injected.UTC())); err != nil {
		return fmt.Errorf("inject mail: %w", err)
	}
	p.say("Injected a fresh mail at %s; watching for it…", injected.UTC().Format("15:04:05"))
	if err := prog.wait(ctx, "Live pickup", expected+1, t.stall, p); err != nil {
		return err
	}
	p.say("Live pickup: delivered %.1fs after it arrived.", time.Since(injected).Seconds())
	if n := prog.refusedCount(); n > 0 {
		p.say("%d events were refused by the receiver (last answer: %s): `m365bridge deliveries --state-dir %s --state rejected`.", n, prog.lastAnswer(), cfg.State)
	}
	return nil
}

// demoPrinter serialises the demo's lines with the receiver's.
type demoPrinter struct {
	mu sync.Mutex
	w  io.Writer
}

func (p *demoPrinter) say(format string, a ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "== "+format+"\n", a...)
}

func (p *demoPrinter) event(line string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "   %s %s\n", time.Now().UTC().Format("15:04:05"), line)
}

// demoSeed is the default sim directory with bridge.yaml's app
// registration, and mail in the channels' folders.
func demoSeed(cfg *config.Config, now time.Time, history int) *m365sim.Seed {
	seed := m365sim.DefaultSeed()
	seed.App.ClientID = cfg.MS.ClientID
	seed.App.ClientSecret = cfg.MS.ClientSecret.Value()
	seed.App.RedirectURIs = []string{cfg.RedirectURI()}
	if !containsFold(seed.Tenant.Domains, cfg.MS.Tenant) && cfg.MS.Tenant != seed.Tenant.ID {
		seed.Tenant.Domains = append(seed.Tenant.Domains, cfg.MS.Tenant)
	}
	for _, ch := range cfg.Channels {
		switch {
		case ch.Mailbox.Type == config.MailboxShared:
			for i := range seed.SharedMailboxes {
				if strings.EqualFold(seed.SharedMailboxes[i].Address, ch.Mailbox.Address) {
					msgs := demoOldSupport(now, history)
					for j := range msgs {
						msgs[j].Folder = folderOrInbox(ch.Folder)
					}
					seed.SharedMailboxes[i].Mail.Messages = append(seed.SharedMailboxes[i].Mail.Messages, msgs...)
				}
			}
		default:
			cutoff := now.Add(-10 * 24 * time.Hour)
			if ch.Archive.Before != nil {
				cutoff = *ch.Archive.Before
			}
			for i := range seed.Users {
				if seed.Users[i].UPN == demoSignInUser(ch, seed) {
					msgs := demoSales(cutoff)
					for j := range msgs {
						msgs[j].Folder = folderOrInbox(ch.Folder)
					}
					seed.Users[i].Mail.Messages = append(seed.Users[i].Mail.Messages, msgs...)
				}
			}
		}
	}
	return seed
}

func folderOrInbox(f string) string {
	if f == "" {
		return "Inbox"
	}
	return f
}

// demoSignInUser picks who signs in for a channel: the first delegate with
// Full Access for a shared mailbox; for a user mailbox the user whose name
// matches the channel's (sales → sales@…), else the first user.
func demoSignInUser(ch config.Channel, seed *m365sim.Seed) string {
	if ch.Mailbox.Type == config.MailboxShared {
		for _, m := range seed.SharedMailboxes {
			if strings.EqualFold(m.Address, ch.Mailbox.Address) && len(m.FullAccess) > 0 {
				return m.FullAccess[0]
			}
		}
	}
	for _, u := range seed.Users {
		if strings.HasPrefix(strings.ToLower(u.UPN), ch.Name+"@") {
			return u.UPN
		}
	}
	return seed.Users[0].UPN
}

func demoSupportAddress(cfg *config.Config) string {
	for _, ch := range cfg.Channels {
		if ch.Mailbox.Type == config.MailboxShared {
			return ch.Mailbox.Address
		}
	}
	return "support@contoso.com"
}

// demoConsent plays the browser: it opens the consent URL with the sim's
// auto-approve as user and follows the redirects to the bridge's callback.
func demoConsent(ctx context.Context, authURL, user string) error {
	u := authURL + "&sim_auto=1&login_hint=" + url.QueryEscape(user)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	page, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("callback answered %d: %s", resp.StatusCode, firstLine(string(page)))
	}
	return nil
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// demoReceiver is the helpdesk's webhook endpoint for the demo.
type demoReceiver struct {
	srv *http.Server
}

func startDemoReceiver(cfg *config.Config, p *demoPrinter) (*demoReceiver, error) {
	if len(cfg.Webhooks) == 0 {
		return nil, errors.New("bridge.yaml has no webhook for the demo receiver")
	}
	w := cfg.Webhooks[0]
	u, err := url.Parse(w.URL)
	if err != nil || !isLoopbackHost(u.Hostname()) {
		return nil, fmt.Errorf("demo runs its own receiver: webhooks[0].url must be a loopback URL, got %q", w.URL)
	}
	var secrets []string
	for _, s := range w.AllSecrets() {
		secrets = append(secrets, s.Value())
	}
	dr := &demoReceiver{}
	rc := &webhooks.Receiver{Verifier: webhooks.Verifier{Secrets: secrets}}
	rc.OnEvent = func(ctx context.Context, d *webhooks.Delivery) error {
		p.event(summarize(d))
		return nil
	}
	rc.OnReject = func(r *http.Request, status int, err error) { p.event(fmt.Sprintf("REJECTED %d: %v", status, err)) }
	mux := http.NewServeMux()
	mux.Handle(u.Path, rc)
	ln, err := net.Listen("tcp", u.Host)
	if err != nil {
		return nil, fmt.Errorf("demo receiver on %s (webhooks[0].url): %w", u.Host, err)
	}
	dr.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go dr.srv.Serve(ln)
	p.say("Helpdesk receiver on %s verifying signatures with webhook %q's secret", w.URL, w.Name)
	return dr, nil
}

func (dr *demoReceiver) close() { dr.srv.Close() }

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

func containsFold(list []string, v string) bool {
	for _, x := range list {
		if strings.EqualFold(x, v) {
			return true
		}
	}
	return false
}
