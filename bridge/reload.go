package bridge

import (
	"context"
	"errors"
	"fmt"
	"reflect"

	"github.com/m365bridge/m365bridge/config"
)

// channelRun is one channel's supervisor goroutine, stoppable on its own so
// a reload can remove or replace a channel without touching the others.
type channelRun struct {
	cfg    config.Channel
	cancel context.CancelFunc
	done   chan struct{}
}

// startChannel starts a channel's supervisor under the running group.
// Callers hold d.runMu.
func (d *Daemon) startChannel(ch config.Channel) {
	ctx, cancel := context.WithCancel(d.runCtx)
	cr := &channelRun{cfg: ch, cancel: cancel, done: make(chan struct{})}
	d.chans[ch.Name] = cr
	d.group.Go(func() error {
		defer close(cr.done)
		return d.runChannel(ctx, ch)
	})
}

// stopChannel stops a channel's supervisor and runner and waits for them.
// A round in progress ends at its next Graph call; what it committed stays
// committed and queued events are still delivered. Callers hold d.runMu.
func (d *Daemon) stopChannel(name string) {
	cr := d.chans[name]
	if cr == nil {
		return
	}
	cr.cancel()
	<-cr.done
	d.dropNotifications(name)
	delete(d.chans, name)
	d.mu.Lock()
	delete(d.runners, name)
	delete(d.wake, name)
	d.mu.Unlock()
}

// ErrRestartNeeded marks settings a reload cannot apply while running.
var ErrRestartNeeded = errors.New("restart needed")

// Reload applies a new, already validated configuration without dropping
// in-flight work: channels added start, removed ones stop, changed ones
// restart (their cursors and ledgers are in the store, so they resume where
// they were); webhook endpoints are replaced in the dispatcher, whose
// queued rows stay. Listeners, state_dir and the microsoft section cannot
// change while running: those differences are reported with
// ErrRestartNeeded and the rest is still applied.
func (d *Daemon) Reload(ctx context.Context, next *config.Config) error {
	d.runMu.Lock()
	defer d.runMu.Unlock()
	if d.group == nil {
		return errors.New("reload: the daemon is not running")
	}
	cur := d.config()
	var fixed []string
	if cur.Listen != next.Listen || cur.Admin.Listen != next.Admin.Listen || cur.PublicURL != next.PublicURL {
		fixed = append(fixed, "listen/admin.listen/public_url")
	}
	if cur.Admin.Token.Value() != next.Admin.Token.Value() {
		fixed = append(fixed, "admin.token")
	}
	if !reflect.DeepEqual(cur.Admin.Hosts, next.Admin.Hosts) || !reflect.DeepEqual(cur.Admin.TrustedProxies, next.Admin.TrustedProxies) {
		fixed = append(fixed, "admin.hosts/admin.trusted_proxies")
	}
	if cur.State != next.State {
		fixed = append(fixed, "state_dir")
	}
	if !reflect.DeepEqual(msComparable(cur.MS), msComparable(next.MS)) {
		fixed = append(fixed, "microsoft")
	}
	if len(fixed) > 0 {
		// Keep what cannot change, apply the rest.
		next.Listen, next.Admin, next.PublicURL, next.State, next.MS = cur.Listen, cur.Admin, cur.PublicURL, cur.State, cur.MS
	}

	eps, err := d.webhookEndpoints(next)
	if err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	names := make([]string, 0, len(next.Channels))
	for _, ch := range next.Channels {
		names = append(names, ch.Name)
	}
	if err := d.db.EnsureChannels(ctx, names); err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	if err := d.disp.SetEndpoints(eps); err != nil {
		return fmt.Errorf("reload: webhooks: %w", err)
	}
	d.db.SetBodyBudget(next.StateBudget)
	d.holdBack.SetBudget(next.StateBudget)
	d.mu.Lock()
	d.cfg = next
	d.endpoints = eps
	d.mu.Unlock()
	d.auth.SetChannels(next.Channels)

	var added, removed, changed []string
	want := map[string]config.Channel{}
	for _, ch := range next.Channels {
		want[ch.Name] = ch
	}
	for name, cr := range d.chans {
		ch, ok := want[name]
		switch {
		case !ok:
			d.stopChannel(name)
			removed = append(removed, name)
		case !reflect.DeepEqual(ch, cr.cfg):
			d.stopChannel(name)
			d.startChannel(ch)
			changed = append(changed, name)
		}
	}
	for _, ch := range next.Channels {
		if _, ok := d.chans[ch.Name]; !ok {
			d.startChannel(ch)
			added = append(added, ch.Name)
		}
	}
	d.log.Info("configuration reloaded", "channels_added", added, "channels_removed", removed, "channels_changed", changed, "webhooks", len(eps))
	if len(fixed) > 0 {
		return fmt.Errorf("%w to change %v; those settings were kept, the rest applied", ErrRestartNeeded, fixed)
	}
	return nil
}

// msComparable is the microsoft section without its secret wrapper, for
// comparison.
func msComparable(m config.Microsoft) [7]string {
	return [7]string{m.ClientID, m.ClientSecret.Value(), m.Tenant, m.LoginURL, m.GraphURL, m.Prompt, m.RefreshMargin.String()}
}

// ReloadFile re-reads the configuration file the daemon was started with
// and applies it; an invalid file changes nothing and its errors are
// returned (and logged) in full.
func (d *Daemon) ReloadFile(ctx context.Context) error {
	if d.opts.ConfigPath == "" {
		return errors.New("reload: the daemon was not started from a file")
	}
	next, err := config.Load(d.opts.ConfigPath)
	if err != nil {
		d.log.Error("reload rejected: the running configuration stays", "file", d.opts.ConfigPath, "err", err)
		return fmt.Errorf("reload rejected, the running configuration stays:\n%w", err)
	}
	for _, w := range next.Warnings() {
		d.log.Warn("configuration warning", "file", d.opts.ConfigPath, "warning", w)
	}
	if d.opts.Adjust != nil {
		d.opts.Adjust(next)
	}
	if err := d.Reload(ctx, next); err != nil {
		d.log.Warn("reload", "err", err)
		return err
	}
	return nil
}

// config is the configuration in force.
func (d *Daemon) config() *config.Config {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg
}
