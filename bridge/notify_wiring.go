package bridge

import (
	"context"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/m365bridge/m365bridge/bridge/graph"
	"github.com/m365bridge/m365bridge/bridge/mailsync"
	"github.com/m365bridge/m365bridge/bridge/notify"
	"github.com/m365bridge/m365bridge/config"
)

// startNotifier makes the change-notification manager and mounts its
// notification URL (notify.Path) on the public listener, without
// authentication: Graph has none to offer, the per-subscription clientState
// is the check. A public_url the manager cannot use leaves the daemon on
// polling alone, with a warning.
func (d *Daemon) startNotifier() {
	m, err := notify.NewManager(notify.Options{
		PublicURL: d.cfg.PublicURL,
		Now:       d.opts.Now,
		After:     d.opts.Dispatcher.After,
		Logger:    d.log,
		Wake:      d.wakeRunner,
		OnEvent:   d.opts.notifyEvent,
	})
	if err != nil {
		d.log.Warn("change notifications off; channels are polled", "err", err)
		return
	}
	d.notify = m
	d.web.Public.Any(notify.Path, echo.WrapHandler(m.Handler()))
}

// wakeRunner is the manager's Wake: a delta round now. SyncNow never
// blocks (a 1-buffered channel; wakes during a round fold into one more).
func (d *Daemon) wakeRunner(channel string, why notify.Reason) {
	if r, ok := d.Runner(channel); ok {
		d.log.Debug("change notification: sync round now", "channel", channel, "reason", string(why))
		r.SyncNow()
	}
}

// withNotifications hooks a channel's runner to the manager when the
// channel has change_notifications: auto: the runner subscribes its folder
// once resolved (again when it changes), polls only as a safety net while
// subscribed, and reports the subscription in its Status. A shared mailbox
// is added too: the manager records Graph's refusal (no delegated
// subscriptions there) and the runner polls adaptively.
func (d *Daemon) withNotifications(rc *mailsync.RunnerConfig, mc *graph.MailboxClient) {
	m, name := d.notify, rc.Channel.Name
	if m == nil || rc.Channel.ChangeNotifications != config.NotificationsAuto {
		return
	}
	rc.Subscribed = func() bool { return m.Subscribed(name) }
	rc.Notifications = func() (notify.ChannelStatus, bool) { return m.Status(name) }
	rc.OnFolder = func(folderID string) { m.Add(notify.Channel{Name: name, Graph: mc, FolderID: folderID}) }
}

// dropNotifications deletes a stopped channel's subscription (a reload
// removed or changed it; a changed one subscribes again once its new
// runner resolved its folder).
func (d *Daemon) dropNotifications(channel string) {
	if d.notify == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.notify.Remove(ctx, channel); err != nil {
		d.log.Warn("could not delete the channel's subscription; it expires by itself", "channel", channel, "err", err)
	}
}

// closeNotifier deletes the subscriptions on shutdown (best effort: one
// left behind expires by itself, and the next start deletes it first).
func (d *Daemon) closeNotifier(ctx context.Context) {
	if d.notify == nil {
		return
	}
	if err := d.notify.Close(ctx); err != nil {
		d.log.Warn("could not delete every subscription; they expire by themselves", "err", err)
	}
}
