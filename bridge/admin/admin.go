package admin

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/m365bridge/m365bridge/bridge/entra"
	"github.com/m365bridge/m365bridge/bridge/mailsync"
	"github.com/m365bridge/m365bridge/bridge/store"
)

// mountAPI adds the admin JSON API and /metrics.
func (a *Console) mountAPI(e *echo.Echo) {
	e.GET("/api/channels", a.apiChannels)
	e.GET("/api/cluster", a.apiCluster)
	e.POST("/api/channels/:name/auth", a.apiStartAuth)
	e.POST("/api/channels/:name/sync", a.apiSyncNow)
	e.GET("/api/deliveries", a.apiDeliveries)
	e.POST("/api/replay", a.apiReplay)
	e.GET("/api/endpoints", a.apiEndpoints)
	e.POST("/api/endpoints/:name/pause", a.apiPause)
	e.POST("/api/endpoints/:name/resume", a.apiResume)

	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(a.metrics.reg, promhttp.HandlerOpts{
		ErrorLog: slogPrinter{a.log}, ErrorHandling: promhttp.ContinueOnError,
	})))
}

// apiChannels answers every configured channel as a ChannelInfo: sign-in
// row, archive decision, message counts, last sync and live runner status.
func (a *Console) apiChannels(c echo.Context) error {
	out, err := mailsync.ChannelInfos(c.Request().Context(), a.db, a.channelNames(), a.runner)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, out)
}

// apiStartAuth creates a pending authorization and answers the URL to open
// (?reauth=1 for re-authentication).
func (a *Console) apiStartAuth(c echo.Context) error {
	name := c.Param("name")
	kind := store.AuthConnect
	if c.QueryParam("reauth") != "" {
		kind = store.AuthReauth
	}
	url, err := a.startAuth(c, name, kind)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]string{"channel": name, "url": url})
}

// startAuth is the API's and the status page's way to begin consent.
func (a *Console) startAuth(c echo.Context, name, kind string) (string, error) {
	if _, ok := a.channel(name); !ok {
		return "", echo.NewHTTPError(http.StatusNotFound, "no channel "+name+" in bridge.yaml")
	}
	url, err := a.auth.StartAuth(c.Request().Context(), name, kind)
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
func (a *Console) apiSyncNow(c echo.Context) error {
	name := c.Param("name")
	if _, ok := a.channel(name); !ok {
		return echo.NewHTTPError(http.StatusNotFound, "no channel "+name+" in bridge.yaml")
	}
	r, ok := a.runner(name)
	if !ok {
		return echo.NewHTTPError(http.StatusConflict, "channel "+name+" is not connected yet: run `m365bridge auth "+name+"`")
	}
	r.SyncNow()
	return c.JSON(http.StatusAccepted, map[string]string{"channel": name, "status": "sync requested"})
}

// apiReload is POST /api/reload: re-read bridge.yaml and apply it. 422 with
// every configuration error when the file is invalid (nothing changed).
func (a *Console) apiReload(c echo.Context) error {
	err := a.reload(c.Request().Context())
	switch {
	case err == nil:
		return c.JSON(http.StatusOK, map[string]string{"status": "reloaded"})
	case a.restart != nil && errors.Is(err, a.restart):
		return c.JSON(http.StatusOK, map[string]string{"status": "reloaded", "warning": err.Error()})
	default:
		return echo.NewHTTPError(http.StatusUnprocessableEntity, err.Error())
	}
}
