// Package attachlink serves the bridge's signed attachment links on the
// public listener: it checks a link (signature and expiry) and streams the
// attachment from the channel's mailbox in Graph to the receiver. Links
// themselves are made and checked by bridge/event.
package attachlink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/m365bridge/m365bridge/bridge/event"
	"github.com/m365bridge/m365bridge/bridge/graph"
)

// Refusals of Env.Mailbox.
var (
	// ErrNotConfigured: the link's channel is no longer in bridge.yaml.
	ErrNotConfigured = errors.New("channel not configured")
	// ErrNotConnected: the channel has no signed-in account.
	ErrNotConnected = errors.New("channel not connected")
)

// Env is what serving a link needs of the daemon.
type Env struct {
	Links *event.AttachmentLinks
	Log   *slog.Logger
	// Mailbox returns the Graph client of a channel's mailbox, or
	// ErrNotConfigured / ErrNotConnected.
	Mailbox func(ctx context.Context, channel string) (*graph.MailboxClient, error)
}

type server struct{ env Env }

// Mount serves attachment links on e (the public listener).
func Mount(e *echo.Echo, env Env) {
	s := &server{env: env}
	e.GET(event.AttachmentLinkPath, s.serve)
}

// serveAttachment answers a signed attachment link: it checks the
// signature (constant time) and the expiry (the daemon's clock), then
// streams the attachment from Graph's /attachments/{id}/$value to the
// receiver as it arrives, nothing held in memory or written to disk, with
// Content-Type, Content-Length (when Graph sent it) and
// Content-Disposition. Refusals: 403 an altered or foreign link, 410 an
// expired one, 404 a channel no longer configured or content no longer in
// the mailbox, 503 a channel not connected or a passing Graph outage (with
// Retry-After), 502 another Graph refusal.
func (s *server) serve(c echo.Context) error {
	t, err := s.env.Links.Check(c.QueryParams())
	switch {
	case errors.Is(err, event.ErrLinkExpired):
		return echo.NewHTTPError(http.StatusGone, err.Error())
	case err != nil:
		return echo.NewHTTPError(http.StatusForbidden, err.Error())
	}
	log := s.env.Log.With("component", "attachments", "channel", t.Channel)
	ctx := c.Request().Context()
	client, err := s.env.Mailbox(ctx, t.Channel)
	switch {
	case errors.Is(err, ErrNotConfigured):
		return echo.NewHTTPError(http.StatusNotFound, fmt.Sprintf("channel %q is no longer configured in bridge.yaml", t.Channel))
	case errors.Is(err, ErrNotConnected):
		c.Response().Header().Set("Retry-After", "60")
		return echo.NewHTTPError(http.StatusServiceUnavailable, fmt.Sprintf("channel %q is not connected; sign it in again (m365bridge auth %s), then retry", t.Channel, t.Channel))
	case err != nil:
		return err
	}

	w := c.Response()
	// A large file to a slow receiver outlasts the listener's write
	// timeout; Graph's side is bounded by graph.StreamTimeout.
	http.NewResponseController(w.Writer).SetWriteDeadline(time.Now().Add(graph.StreamTimeout))
	onHeader := func(h http.Header) { copyAttachmentHeaders(w.Header(), h, t.Name) }
	n, err := client.StreamAttachment(ctx, t.Message, t.Attachment, w, onHeader)
	if err == nil {
		log.Debug("attachment served by link", "bytes", n)
		return nil
	}
	if w.Committed {
		// Bytes went out: the receiver must not take the short body for
		// the whole file, so the connection is cut, not ended cleanly.
		log.Warn("attachment stream broke off", "bytes", n, "err", err)
		panic(http.ErrAbortHandler)
	}
	for _, k := range []string{"Content-Type", "Content-Length", "Content-Disposition", "Cache-Control", "X-Content-Type-Options"} {
		w.Header().Del(k)
	}
	if ctx.Err() != nil {
		return nil // the receiver went away
	}
	var ge *graph.Error
	switch {
	case errors.Is(err, graph.ErrItemNotFound):
		return echo.NewHTTPError(http.StatusNotFound, "the attachment is no longer in the mailbox (the mail was deleted for good)")
	case errors.As(err, &ge) && ge.Temporary():
		c.Response().Header().Set("Retry-After", "30")
		log.Warn("attachment by link: Graph unavailable", "err", err)
		return echo.NewHTTPError(http.StatusServiceUnavailable, "Microsoft Graph is unavailable or throttling; retry later")
	case errors.As(err, &ge):
		log.Warn("attachment by link: Graph refused", "err", err)
		return echo.NewHTTPError(http.StatusBadGateway, fmt.Sprintf("Microsoft Graph refused the attachment: %s", ge.Code))
	default:
		log.Warn("attachment by link failed", "err", err)
		c.Response().Header().Set("Retry-After", "30")
		return echo.NewHTTPError(http.StatusServiceUnavailable, "the attachment could not be read from the mailbox now; retry later")
	}
}

// copyAttachmentHeaders sets the receiver's headers from Graph's answer:
// its Content-Type (or octet-stream), its Content-Length when it sent one,
// and a download under the link's file name, never sniffed or cached.
func copyAttachmentHeaders(out, in http.Header, name string) {
	ct := in.Get("Content-Type")
	if ct == "" {
		ct = "application/octet-stream"
	}
	out.Set("Content-Type", ct)
	if n, err := strconv.ParseInt(in.Get("Content-Length"), 10, 64); err == nil && n >= 0 {
		out.Set("Content-Length", strconv.FormatInt(n, 10))
	} else {
		out.Del("Content-Length")
	}
	if name == "" {
		name = "attachment"
	}
	out.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": name}))
	out.Set("X-Content-Type-Options", "nosniff")
	out.Set("Cache-Control", "private, no-store")
}
