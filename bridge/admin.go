package bridge

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/m365bridge/m365bridge/bridge/entra"
	"github.com/m365bridge/m365bridge/bridge/store"
)

// mountAdmin adds the status page, the admin JSON API and /metrics to the
// admin listener. The listener's token (or the loopback-only rule) already
// guards every route; the status page adds its sign-in form, CSRF tokens
// for its forms and cross-origin protection in front of that.
func (d *Daemon) mountAdmin(e *echo.Echo) {
	d.mountStatus(e)

	e.GET("/api/channels", d.apiChannels)
	e.POST("/api/channels/:name/auth", d.apiStartAuth)
	e.POST("/api/channels/:name/sync", d.apiSyncNow)
	e.GET("/api/deliveries", d.apiDeliveries)
	e.POST("/api/replay", d.apiReplay)
	e.GET("/api/endpoints", d.apiEndpoints)
	e.POST("/api/endpoints/:name/pause", d.apiPause)
	e.POST("/api/endpoints/:name/resume", d.apiResume)

	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(d.metrics.reg, promhttp.HandlerOpts{
		ErrorLog: slogPrinter{d.log}, ErrorHandling: promhttp.ContinueOnError,
	})))
}

// apiChannels answers every configured channel as a ChannelInfo: sign-in
// row, archive decision, message counts, last sync and live runner status.
func (d *Daemon) apiChannels(c echo.Context) error {
	out, err := ChannelInfos(c.Request().Context(), d.db, channelNames(d.config()), d.Runner)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, out)
}

// apiStartAuth creates a pending authorization and answers the URL to open
// (?reauth=1 for re-authentication).
func (d *Daemon) apiStartAuth(c echo.Context) error {
	name := c.Param("name")
	kind := store.AuthConnect
	if c.QueryParam("reauth") != "" {
		kind = store.AuthReauth
	}
	url, err := d.startAuth(c, name, kind)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]string{"channel": name, "url": url})
}

// startAuth is the API's and the status page's way to begin consent.
func (d *Daemon) startAuth(c echo.Context, name, kind string) (string, error) {
	if _, ok := d.channel(name); !ok {
		return "", echo.NewHTTPError(http.StatusNotFound, "no channel "+name+" in bridge.yaml")
	}
	url, err := d.auth.StartAuth(c.Request().Context(), name, kind)
	if errors.Is(err, entra.ErrUnknownChannel) {
		return "", echo.NewHTTPError(http.StatusNotFound, err.Error())
	}
	if err != nil {
		return "", echo.NewHTTPError(http.StatusConflict, err.Error())
	}
	return url, nil
}

// slogPrinter lets promhttp report scrape errors through the daemon's log.
type slogPrinter struct {
	log interface{ Error(string, ...any) }
}

func (p slogPrinter) Println(v ...any) { p.log.Error("metrics scrape", "err", v) }

// apiSyncNow asks a channel's runner for a round at once (202); 409 while
// the channel is not connected (it has no runner yet).
func (d *Daemon) apiSyncNow(c echo.Context) error {
	name := c.Param("name")
	if _, ok := d.channel(name); !ok {
		return echo.NewHTTPError(http.StatusNotFound, "no channel "+name+" in bridge.yaml")
	}
	r, ok := d.Runner(name)
	if !ok {
		return echo.NewHTTPError(http.StatusConflict, "channel "+name+" is not connected yet: run `m365bridge auth "+name+"`")
	}
	r.SyncNow()
	return c.JSON(http.StatusAccepted, map[string]string{"channel": name, "status": "sync requested"})
}
