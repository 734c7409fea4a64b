package bridge

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/m365bridge/m365bridge/bridge/store"
)

// mountAdmin adds the admin JSON API. The admin listener's token (or the
// loopback-only rule) already guards every route.
func (d *Daemon) mountAdmin(e *echo.Echo) {
	e.GET("/api/channels", d.apiChannels)
	e.POST("/api/channels/:name/auth", d.apiStartAuth)
}

func (d *Daemon) apiChannels(c echo.Context) error {
	states, err := d.db.ChannelStates(c.Request().Context())
	if err != nil {
		return err
	}
	type channel struct {
		store.ChannelStatus
		Sync *Status `json:"sync,omitempty"`
	}
	out := make([]channel, 0, len(states))
	for _, st := range states {
		ch := channel{ChannelStatus: st}
		if r, ok := d.Runner(st.Name); ok {
			s := r.Status()
			ch.Sync = &s
		}
		out = append(out, ch)
	}
	return c.JSON(http.StatusOK, out)
}

// apiStartAuth creates a pending authorization and answers the URL to open
// (?reauth=1 for re-authentication).
func (d *Daemon) apiStartAuth(c echo.Context) error {
	name := c.Param("name")
	if _, ok := d.channel(name); !ok {
		return echo.NewHTTPError(http.StatusNotFound, "no channel "+name+" in bridge.yaml")
	}
	kind := store.AuthConnect
	if c.QueryParam("reauth") != "" {
		kind = store.AuthReauth
	}
	url, err := d.auth.StartAuth(c.Request().Context(), name, kind)
	if err != nil {
		return echo.NewHTTPError(http.StatusConflict, err.Error())
	}
	return c.JSON(http.StatusOK, map[string]string{"channel": name, "url": url})
}
