package admin

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/m365bridge/m365bridge/bridge/store"
	"github.com/m365bridge/m365bridge/bridge/web"
	"github.com/m365bridge/m365bridge/webhooks/deliver"
)

//go:embed templates/*.html
var templateFS embed.FS

var pageTemplates = template.Must(template.New("").Funcs(template.FuncMap{
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	// secs is an age in seconds as an operator reads it.
	"secs": func(s float64) string { return fmt.Sprintf("%.1f s", s) },
}).ParseFS(templateFS, "templates/*.html"))

// failedRowsShown caps the dead-letter table of the status page.
const failedRowsShown = 100

// statusUI serves the status page and its forms. Every form is a POST with
// a CSRF token that answers 303 back to the page (or on to Entra ID).
type statusUI struct {
	a    *Console
	sess *session
}

func (a *Console) mountStatus(e *echo.Echo) {
	ui := &statusUI{a: a, sess: newSession(a.adminAuth)}
	e.Pre(ui.sess.gate(ui))
	e.GET("/", ui.page)
	e.GET("/status", ui.page)
	e.POST("/ui/channels/:name/auth", ui.startAuth)
	e.POST("/ui/channels/:name/sync", ui.syncNow)
	e.POST("/ui/endpoints/:name/pause", ui.pause)
	e.POST("/ui/endpoints/:name/resume", ui.resume)
	e.POST("/ui/endpoints/:name/test", ui.testWebhook)
	e.POST("/ui/replay", ui.replay)
}

// statusPage is the data of templates/status.html.
type statusPage struct {
	Version      string
	Now          time.Time
	Flash        *flash
	CSRF         string
	LoopbackOnly bool
	SignedIn     bool
	Channels     []channelView
	Endpoints    []EndpointView
	Failed       []DeliveryView
	FailedTotal  int
	// RejectedMail are messages that stayed in the mailbox because they
	// could not become an event or the receiver refused them, with why
	// (the helpdesk heard mail.rejected for the former).
	RejectedMail []store.LedgerEntry
	// Cluster is the daemons sharing the database and who owns which
	// channel; nil on SQLite (one daemon), where the section is hidden.
	Cluster *ClusterView
	Problem string
}

// rejectedMailShown bounds the rejected messages listed per channel.
const rejectedMailShown = 20

func (ui *statusUI) page(c echo.Context) error {
	ctx := c.Request().Context()
	p := statusPage{Version: ui.a.version, Now: ui.a.now(), Flash: ui.sess.takeFlash(c), CSRF: ui.sess.csrfToken(c),
		LoopbackOnly: !ui.sess.auth.TokenSet(), SignedIn: ui.sess.auth.SignedIn(c.Request())}
	var err error
	if p.Channels, err = ui.a.channelViews(ctx); err != nil {
		return fmt.Errorf("status page: %w", err)
	}
	if p.Endpoints, err = ui.a.endpointViews(ctx); err != nil {
		return fmt.Errorf("status page: %w", err)
	}
	rows, err := ui.a.db.Outbox().List(ctx, deliver.Filter{States: []deliver.State{deliver.StateDead, deliver.StateRejected}, Limit: failedRowsShown})
	if err != nil {
		return fmt.Errorf("status page: %w", err)
	}
	for _, r := range rows {
		p.Failed = append(p.Failed, NewDeliveryView(r))
	}
	for _, ep := range p.Endpoints {
		p.FailedTotal += ep.Dead + ep.Rejected
	}
	for _, ch := range p.Channels {
		rej, err := ui.a.db.LedgerList(ctx, ch.Name, store.LedgerRejected, rejectedMailShown)
		if err != nil {
			return fmt.Errorf("status page: %w", err)
		}
		p.RejectedMail = append(p.RejectedMail, rej...)
	}
	if ui.a.db.Postgres() {
		cv, err := clusterView(c, ui.a.db, ui.a.config().Store.LeaseTTL)
		if err != nil {
			return fmt.Errorf("status page: %w", err)
		}
		p.Cluster = &cv
	}
	return ui.render(c, http.StatusOK, "status.html", p)
}

func (ui *statusUI) render(c echo.Context, status int, name string, data any) error {
	var buf bytes.Buffer
	if err := pageTemplates.ExecuteTemplate(&buf, name, data); err != nil {
		return fmt.Errorf("render %s: %w", name, err)
	}
	h := c.Response().Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	return c.HTMLBlob(status, buf.Bytes())
}

// loginPage is the data of templates/login.html.
type loginPage struct {
	Version string
	Error   string
}

func (ui *statusUI) renderLogin(c echo.Context, status int, msg string) error {
	return ui.render(c, status, "login.html", loginPage{Version: ui.a.version, Error: msg})
}

// login takes the admin token from the sign-in form and starts a session
// (web.AdminAuth logs a wrong token with the client's address and limits
// the attempts).
func (ui *statusUI) login(c echo.Context) error {
	auth := ui.sess.auth
	if !auth.TokenSet() {
		return c.Redirect(http.StatusSeeOther, "/")
	}
	err := auth.SignIn(c.Response(), c.Request(), c.FormValue("token"))
	var te *web.ThrottledError
	switch {
	case errors.As(err, &te):
		c.Response().Header().Set("Retry-After", web.RetryAfter(te))
		return ui.renderLogin(c, http.StatusTooManyRequests, "Too many wrong tokens from your address: try again in "+te.RetryAfter.Round(time.Second).String()+".")
	case err != nil:
		return ui.renderLogin(c, http.StatusUnauthorized, "That is not the admin token (admin.token in bridge.yaml).")
	}
	return c.Redirect(http.StatusSeeOther, "/")
}

// logout ends the session on the server and deletes its cookie.
func (ui *statusUI) logout(c echo.Context) error {
	ui.sess.auth.SignOut(c.Response(), c.Request())
	return c.Redirect(http.StatusSeeOther, "/")
}

// checkForm verifies the CSRF token; on failure it leaves a flash message
// and the caller redirects back without changing anything.
func (ui *statusUI) checkForm(c echo.Context) bool {
	if ui.sess.csrfOK(c) {
		return true
	}
	ui.sess.setFlash(c, false, "That form had expired (the bridge may have restarted): nothing was changed. Try again.")
	return false
}

func back(c echo.Context, anchor string) error {
	return c.Redirect(http.StatusSeeOther, "/"+anchor)
}

// startAuth creates a pending authorization and sends the browser to
// Entra ID; the callback page on the public listener reports the result.
func (ui *statusUI) startAuth(c echo.Context) error {
	if !ui.checkForm(c) {
		return back(c, "#channels")
	}
	name := c.Param("name")
	kind := store.AuthConnect
	if c.FormValue("kind") == store.AuthReauth {
		kind = store.AuthReauth
	}
	url, err := ui.a.startAuth(c, name, kind)
	if err != nil {
		ui.sess.setFlash(c, false, "Could not start the sign-in for "+name+": "+errText(err))
		return back(c, "#channels")
	}
	return c.Redirect(http.StatusSeeOther, url)
}

// syncNow asks a connected channel's runner for a round at once.
func (ui *statusUI) syncNow(c echo.Context) error {
	if !ui.checkForm(c) {
		return back(c, "#channels")
	}
	name := c.Param("name")
	if r, ok := ui.a.runner(name); ok {
		r.SyncNow()
		ui.sess.setFlash(c, true, "Channel "+name+" is syncing now; reload the page to see the result.")
	} else {
		ui.sess.setFlash(c, false, "Channel "+name+" is not connected yet: connect it first.")
	}
	return back(c, "#channels")
}

func (ui *statusUI) pause(c echo.Context) error  { return ui.pauseResume(c, true) }
func (ui *statusUI) resume(c echo.Context) error { return ui.pauseResume(c, false) }

func (ui *statusUI) pauseResume(c echo.Context, pause bool) error {
	if !ui.checkForm(c) {
		return back(c, "#endpoints")
	}
	name := c.Param("name")
	verb := "resumed"
	if pause {
		verb = "paused"
	}
	if err := ui.a.pauseResume(c.Request().Context(), name, pause, "paused from the status page"); err != nil {
		ui.sess.setFlash(c, false, "Could not change webhook "+name+": "+errText(err))
	} else {
		ui.sess.setFlash(c, true, "Webhook "+name+" "+verb+".")
	}
	return back(c, "#endpoints")
}

// testWebhook sends a webhook.test to the endpoint and shows the
// receiver's answer.
func (ui *statusUI) testWebhook(c echo.Context) error {
	if !ui.checkForm(c) {
		return back(c, "#endpoints")
	}
	res, err := ui.a.testWebhook(c.Request().Context(), c.Param("name"), "requested from the status page", RecipeTest{})
	if err != nil {
		ui.sess.setFlash(c, false, "Could not test webhook "+c.Param("name")+": "+errText(err))
		return back(c, "#endpoints")
	}
	text := res.Summary()
	if r := []rune(text); len(r) > 600 { // the flash travels in a cookie
		text = string(r[:599]) + "…"
	}
	ui.sess.setFlash(c, res.OK, "Test sent. "+text)
	return back(c, "#endpoints")
}

// replay puts one dead or rejected event back in the queue, same id.
func (ui *statusUI) replay(c echo.Context) error {
	if !ui.checkForm(c) {
		return back(c, "#dead-letters")
	}
	id := c.FormValue("id")
	if id == "" {
		ui.sess.setFlash(c, false, "Replay: no event id in the form.")
		return back(c, "#dead-letters")
	}
	n, err := ui.a.replay(c.Request().Context(), deliver.Filter{IDs: []string{id}})
	switch {
	case err != nil:
		ui.sess.setFlash(c, false, "Replay of "+id+" failed: "+errText(err))
	case n == 0:
		ui.sess.setFlash(c, false, "Nothing to replay: "+id+" is no longer dead or rejected.")
	default:
		ui.sess.setFlash(c, true, "Event "+id+" is queued again with the same id; it is delivered next.")
	}
	return back(c, "#dead-letters")
}

// errText is an error as an operator should read it.
func errText(err error) string {
	var he *echo.HTTPError
	if errors.As(err, &he) {
		return fmt.Sprint(he.Message)
	}
	return err.Error()
}
