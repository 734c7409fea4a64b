package entra

import (
	"bytes"
	"context"
	"database/sql"
	"embed"
	"errors"
	"html/template"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/m365bridge/m365bridge/bridge/store"
	"github.com/m365bridge/m365bridge/config"
)

//go:embed pages/page.html
var pageFS embed.FS

var pageTmpl = template.Must(template.ParseFS(pageFS, "pages/page.html"))

// page is what the callback shows. Every field is escaped by html/template.
type page struct {
	OK      bool
	Title   string
	Message string
	Channel string
	Mailbox string
	Account string
	Code    string
	Fix     string
	Detail  string
}

func renderPage(c echo.Context, status int, p page) error {
	var buf bytes.Buffer
	if err := pageTmpl.Execute(&buf, p); err != nil {
		return err
	}
	h := c.Response().Header()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	return c.HTMLBlob(status, buf.Bytes())
}

func failPage(c echo.Context, status int, title, channel string, g Guidance, detail string) error {
	return renderPage(c, status, page{Title: title, Message: g.Reason, Channel: channel, Code: g.Code, Fix: g.Fix, Detail: detail})
}

const startAgain = "Start again: run `m365bridge auth CHANNEL` (or `--reauth`) and open the new URL within ten minutes."

// Callback is the echo handler for GET /oauth/callback on the public
// listener. It consumes the pending authorization named by state (unknown,
// expired or reused: an error page, nothing changes), shows what an error
// redirect means, and otherwise redeems the code, verifies the id_token,
// checks the account against the channel and the mailbox access, and only
// then stores the tokens and marks the channel active. Every failure is a
// small HTML page saying what happened and what to do; none stores anything.
func (m *Manager) Callback(c echo.Context) error {
	ctx := c.Request().Context()
	q := c.QueryParams()
	state := q.Get("state")
	if state == "" {
		return failPage(c, http.StatusBadRequest, "Not a sign-in callback", "",
			Guidance{Reason: "This address is the bridge's OAuth callback; the request carries no sign-in state.", Fix: startAgain}, "")
	}
	req, err := m.Vault.TakeAuthRequest(ctx, state, m.now())
	switch {
	case errors.Is(err, store.ErrAuthUnknown):
		return failPage(c, http.StatusBadRequest, "Unknown sign-in link", "",
			Guidance{Reason: "This sign-in was not started by this bridge, or it was cleaned up long ago.", Fix: startAgain}, "")
	case errors.Is(err, store.ErrAuthReused):
		return failPage(c, http.StatusBadRequest, "Sign-in link already used", "",
			Guidance{Reason: "Each sign-in link works once; this one has been used (a reload or the back button sends it again).", Fix: startAgain}, "")
	case errors.Is(err, store.ErrAuthExpired):
		return failPage(c, http.StatusBadRequest, "Sign-in link expired", "",
			Guidance{Reason: "The sign-in took longer than the link's lifetime.", Fix: startAgain}, "")
	case err != nil:
		m.log().Error("oauth callback: read pending authorization", "err", err)
		return failPage(c, http.StatusInternalServerError, "The bridge could not read its state", "",
			Guidance{Reason: "The state database failed.", Fix: "Check the bridge's log, then start again."}, "")
	}
	log := m.log().With("channel", req.Channel, "kind", req.Kind)

	if e := q.Get("error"); e != "" {
		desc := q.Get("error_description")
		ae := &AuthError{Op: "sign in", Err: e, Codes: codesIn(desc), Subcode: q.Get("error_subcode"), Description: firstLine(desc)}
		g := ae.Guidance()
		log.Warn("oauth callback: sign-in failed", "err", e, "code", g.Code, "subcode", ae.Subcode)
		return failPage(c, http.StatusBadRequest, "Sign-in did not complete", req.Channel, g, ae.Description)
	}
	code := q.Get("code")
	if code == "" {
		return failPage(c, http.StatusBadRequest, "Sign-in did not complete", req.Channel,
			Guidance{Reason: "Entra ID sent neither a code nor an error.", Fix: startAgain}, "")
	}
	resp, err := m.Client.Exchange(ctx, code, req.Verifier)
	if err != nil {
		var ae *AuthError
		if errors.As(err, &ae) {
			g := ae.Guidance()
			log.Warn("oauth callback: code redemption refused", "code", g.Code, "err", ae.Err)
			return failPage(c, http.StatusBadRequest, "Entra ID refused the sign-in", req.Channel, g, ae.Description)
		}
		log.Error("oauth callback: code redemption failed", "err", err)
		return failPage(c, http.StatusBadGateway, "Could not reach Entra ID", req.Channel,
			Guidance{Reason: "Redeeming the sign-in code failed: " + err.Error(), Fix: startAgain}, "")
	}
	id, err := m.Client.VerifyIDToken(ctx, resp.IDToken)
	if err != nil {
		log.Error("oauth callback: id_token rejected", "err", err)
		return failPage(c, http.StatusBadGateway, "Could not verify the sign-in", req.Channel,
			Guidance{Reason: "The id_token Entra ID returned did not verify: " + err.Error(), Fix: "Check microsoft.login_url and microsoft.tenant, then start again."}, "")
	}
	return m.bind(c, req, resp, id)
}

// bind checks the account and the mailbox and, only if both are right,
// stores the tokens and activates the channel, holding the channel's refresh
// lock so that no refresh interleaves.
func (m *Manager) bind(c echo.Context, req store.AuthRequest, resp *TokenResponse, id Identity) error {
	ctx := c.Request().Context()
	log := m.log().With("channel", req.Channel, "kind", req.Kind)
	mb, ok := m.mailbox(req.Channel)
	if !ok {
		return failPage(c, http.StatusBadRequest, "Channel not configured", req.Channel,
			Guidance{Reason: "The channel was removed from bridge.yaml after the sign-in started.", Fix: "Add it back to channels: and start again."}, "")
	}
	src := m.Source(req.Channel)
	if err := src.lock(ctx); err != nil {
		return err
	}
	defer src.unlock()

	prev, err := m.db().ChannelState(ctx, req.Channel)
	if err != nil && !errors.Is(err, store.ErrNoChannel) {
		log.Error("oauth callback: read channel", "err", err)
		return failPage(c, http.StatusInternalServerError, "The bridge could not read its state", req.Channel,
			Guidance{Reason: "The state database failed.", Fix: "Check the bridge's log, then start again."}, "")
	}
	account := describe(id)
	shared := mb.Type == config.MailboxShared
	bound := prev.Account.ObjectID != ""
	sameUser := prev.Account.TenantID == id.TenantID && prev.Account.ObjectID == id.ObjectID
	if !shared && bound && !sameUser {
		log.Warn("oauth callback: user mismatch, keeping the old tokens",
			"bound_upn", prev.Account.UPN, "signed_in_upn", id.UPN)
		return renderPage(c, http.StatusForbidden, page{Title: "User mismatch", Channel: req.Channel, Account: account,
			Mailbox: prev.Account.UPN, Code: "user_mismatch",
			Message: "This channel reads the mailbox of " + prev.Account.UPN + ", but you signed in as " + id.UPN + ". A user mailbox channel can only be re-authenticated by its own user; nothing was changed.",
			Fix:     "Sign in as " + prev.Account.UPN + ". To read another user's mailbox, add a new channel for it in bridge.yaml and connect that one."})
	}

	mailbox := id.UPN
	if shared {
		mailbox = mb.Address
	}
	if g, detail, err := m.probeMailbox(ctx, resp.AccessToken, shared, mb.Address); err != nil {
		log.Warn("oauth callback: mailbox access check failed, nothing stored", "mailbox", mailbox, "code", g.Code, "err", err)
		return renderPage(c, http.StatusForbidden, page{Title: "Mailbox not reachable", Channel: req.Channel, Mailbox: mailbox,
			Account: account, Code: g.Code, Message: g.Reason + " Nothing was stored.", Fix: g.Fix, Detail: detail})
	}

	err = m.db().Tx(ctx, func(tx *sql.Tx) error {
		if err := m.Vault.SaveTokens(ctx, tx, req.Channel, store.Tokens{Access: resp.AccessToken, Refresh: resp.RefreshToken, Expiry: resp.Expiry}); err != nil {
			return err
		}
		typ := mb.Type
		if typ == "" {
			typ = config.MailboxUser
		}
		return m.db().BindChannel(ctx, tx, req.Channel, store.Binding{MailboxType: typ, MailboxAddress: mailbox,
			Account: store.Account{TenantID: id.TenantID, ObjectID: id.ObjectID, UPN: id.UPN, Name: id.Name}, TokenExpiry: resp.Expiry})
	})
	if err != nil {
		log.Error("oauth callback: store tokens", "err", err)
		return failPage(c, http.StatusInternalServerError, "The bridge could not store the tokens", req.Channel,
			Guidance{Reason: "The state database failed; the channel is unchanged.", Fix: "Check the bridge's log, then start again."}, "")
	}
	src.forget()
	if shared && bound && !sameUser {
		log.Info("shared mailbox delegate changed", "mailbox", mailbox, "old_delegate", prev.Account.UPN, "new_delegate", id.UPN)
	}
	log.Info("channel connected", "mailbox", mailbox, "account", id.UPN)
	switch prev.State {
	case store.ChannelReauthRequired:
		m.notifier().AuthRestored(context.WithoutCancel(ctx), req.Channel)
	case store.ChannelError: // the helpdesk heard channel.error: close it
		m.notifier().Available(context.WithoutCancel(ctx), req.Channel)
	}
	return renderPage(c, http.StatusOK, page{OK: true, Title: "Channel connected", Channel: req.Channel, Mailbox: mailbox, Account: account,
		Message: "The bridge can now read this mailbox; syncing starts (or resumes from where it stopped) on its next poll."})
}

func describe(id Identity) string {
	s := strings.TrimSpace(id.Name)
	if id.UPN != "" {
		if s != "" {
			s += " <" + id.UPN + ">"
		} else {
			s = id.UPN
		}
	}
	return s
}
