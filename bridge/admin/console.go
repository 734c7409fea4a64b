// Package admin is the operators' side of the daemon on the admin
// listener: the status page and its forms, the admin JSON API (channels,
// deliveries, replay, endpoint pause and resume, webhook test, reload) and
// the Prometheus metrics.
package admin

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/m365bridge/m365bridge/bridge/entra"
	"github.com/m365bridge/m365bridge/bridge/graph"
	"github.com/m365bridge/m365bridge/bridge/mailsync"
	"github.com/m365bridge/m365bridge/bridge/store"
	"github.com/m365bridge/m365bridge/bridge/web"
	"github.com/m365bridge/m365bridge/config"
	"github.com/m365bridge/m365bridge/webhooks/deliver"
)

// Env is what the admin side takes from the daemon; every field is
// required unless its comment says otherwise.
type Env struct {
	DB      *store.DB
	Log     *slog.Logger
	Now     func() time.Time
	Version string
	// Config is the configuration in force (a reload swaps it).
	Config func() *config.Config
	// Endpoints are the webhook endpoints in force.
	Endpoints func() []deliver.Endpoint
	// Runner is a channel's sync runner once the channel is syncing.
	Runner func(channel string) (*mailsync.Runner, bool)
	Auth   *entra.Manager
	Graph  *graph.Client
	// AdminAuth guards the admin listener; the status page signs in
	// through it.
	AdminAuth *web.AdminAuth
	// WebhookHTTP makes the webhook test's call (nil: the sender's default).
	WebhookHTTP *http.Client
	// Reload re-reads bridge.yaml and applies it (POST /api/reload); an
	// error matching ErrRestartNeeded is a warning, the rest a refusal.
	Reload func(ctx context.Context) error
	// RestartNeeded is the reload error that only warns.
	RestartNeeded error
}

// Console serves the admin listener's routes: New (before the webhook
// dispatcher is built, so Instrument can count its deliveries), then
// SetDispatcher and Mount.
type Console struct {
	db          *store.DB
	log         *slog.Logger
	now         func() time.Time
	version     string
	config      func() *config.Config
	endpoints   func() []deliver.Endpoint
	runner      func(string) (*mailsync.Runner, bool)
	auth        *entra.Manager
	graph       *graph.Client
	adminAuth   *web.AdminAuth
	webhookHTTP *http.Client
	reload      func(context.Context) error
	restart     error
	disp        *deliver.Dispatcher
	metrics     *metrics
}

// New prepares the admin side and connects its metrics to the Graph
// client, the token manager and, through dopts, the dispatcher that is
// built next.
func New(env Env, dopts *deliver.Options) *Console {
	a := &Console{db: env.DB, log: env.Log, now: env.Now, version: env.Version, config: env.Config,
		endpoints: env.Endpoints, runner: env.Runner, auth: env.Auth, graph: env.Graph, adminAuth: env.AdminAuth,
		webhookHTTP: env.WebhookHTTP, reload: env.Reload, restart: env.RestartNeeded}
	a.instrument(dopts)
	return a
}

// SetDispatcher gives the console the webhook dispatcher it pauses,
// resumes and wakes after a replay.
func (a *Console) SetDispatcher(d *deliver.Dispatcher) { a.disp = d }

// Mount adds the status page, the admin JSON API and /metrics to the
// admin listener. The listener's token (or the loopback-only rule) already
// guards every route; the status page adds its sign-in form, CSRF tokens
// for its forms and cross-origin protection in front of that.
func (a *Console) Mount(e *echo.Echo) {
	a.mountStatus(e)
	a.mountAPI(e)
	e.POST("/api/reload", a.apiReload)
	e.POST("/api/endpoints/:name/test", a.apiTestWebhook)
}

// channel is a channel as currently configured.
func (a *Console) channel(name string) (config.Channel, bool) {
	for _, ch := range a.config().Channels {
		if ch.Name == name {
			return ch, true
		}
	}
	return config.Channel{}, false
}

// channelNames are the configured channels' names, in bridge.yaml order.
func (a *Console) channelNames() []string {
	cfg := a.config()
	names := make([]string, 0, len(cfg.Channels))
	for _, ch := range cfg.Channels {
		names = append(names, ch.Name)
	}
	return names
}
