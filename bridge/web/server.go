// Package web is the HTTP plumbing of the bridge's two listeners: binding,
// health and readiness, shutdown, and the admin listener's guard (token,
// sessions, host and proxy rules). The handlers are mounted by their own
// packages: bridge/send and the OAuth callback and attachment links on the
// public listener, which Entra ID and the helpdesk reach; bridge/admin on
// the admin listener, which only operators reach.
package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/labstack/echo/v4"
)

// Options configure a Server.
type Options struct {
	PublicAddr string // host:port; port 0 picks a free one
	AdminAddr  string
	// AdminToken protects the admin listener (Bearer, or the status page's
	// session cookie). Empty: only loopback clients are served, and only
	// when they name the listener by a loopback address, localhost, the
	// AdminAddr host or one of AdminHosts (no DNS rebinding).
	AdminToken string
	AdminHosts []string
	// TrustedProxies are the peers whose X-Forwarded-For and
	// X-Forwarded-Proto the admin listener believes.
	TrustedProxies []netip.Prefix
	// SecureCookies makes the status page's cookies Secure (public_url is
	// https); they are anyway when a request comes over TLS.
	SecureCookies bool
	// Now is the clock of sessions and sign-in limits (default time.Now).
	Now func() time.Time
	// InstanceID is a per-process nonce that /healthz reports, so
	// `check --online` can tell this very process answered.
	InstanceID string
	Version    string
	// Ready reports whether the daemon can do its work; /readyz answers 503
	// with the error when it returns one.
	Ready  func(ctx context.Context) error
	Logger *slog.Logger
}

// Server owns both listeners. Routes are added to Public and Admin before
// Start; Start binds synchronously so a busy port is a startup error.
type Server struct {
	Public *echo.Echo
	Admin  *echo.Echo
	// AdminAuth guards the admin listener; the status page signs in and
	// out through it.
	AdminAuth *AdminAuth

	opts      Options
	publicSrv *http.Server
	adminSrv  *http.Server
	publicLn  net.Listener
	adminLn   net.Listener
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
	serveErr  chan error
}

// New builds the server with health routes on both listeners.
func New(opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{Public: newEcho(opts.Logger), Admin: newEcho(opts.Logger), AdminAuth: newAdminAuth(opts), opts: opts, serveErr: make(chan error, 2)}
	for _, e := range []*echo.Echo{s.Public, s.Admin} {
		e.GET("/healthz", s.healthz)
		e.GET("/readyz", s.readyz)
	}
	// c.RealIP() on the admin listener is the client AdminAuth attributes
	// a request to: X-Forwarded-For counts only from trusted proxies.
	s.Admin.IPExtractor = func(r *http.Request) string {
		client, _ := s.AdminAuth.Client(r)
		return client.String()
	}
	s.Admin.Pre(s.adminHost)
	s.Admin.Use(s.adminAuth)
	return s
}

func newEcho(log *slog.Logger) *echo.Echo {
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = errorHandler(log)
	return e
}

// errorHandler is the one place errors become HTTP answers: an echo error
// keeps its status, anything else is a 500 whose detail is logged, not sent.
func errorHandler(log *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		status := http.StatusInternalServerError
		msg := "internal error"
		var he *echo.HTTPError
		if errors.As(err, &he) {
			status = he.Code
			msg = fmt.Sprint(he.Message)
		} else {
			log.Error("request failed", "method", c.Request().Method, "path", c.Path(), "err", err)
		}
		if c.Request().Method == http.MethodHead {
			c.NoContent(status)
			return
		}
		c.JSON(status, map[string]string{"error": msg})
	}
}

// Start binds both listeners and serves them in the background.
func (s *Server) Start() error {
	var err error
	if s.publicLn, err = listen("public", s.opts.PublicAddr); err != nil {
		return err
	}
	if s.adminLn, err = listen("admin", s.opts.AdminAddr); err != nil {
		s.publicLn.Close()
		return err
	}
	s.publicSrv = newHTTPServer(s.Public)
	s.adminSrv = newHTTPServer(s.Admin)
	s.serve(s.publicSrv, s.publicLn)
	s.serve(s.adminSrv, s.adminLn)
	s.opts.Logger.Info("listening", "public", s.publicLn.Addr().String(), "admin", s.adminLn.Addr().String())
	return nil
}

func listen(which, addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("%s listener %s: address already in use (is another m365bridge running? change %s in bridge.yaml)", which, addr, listenKey(which))
		}
		return nil, fmt.Errorf("%s listener %s: %w", which, addr, err)
	}
	return ln, nil
}

func listenKey(which string) string {
	if which == "admin" {
		return "admin.listen"
	}
	return "listen"
}

func newHTTPServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
}

func (s *Server) serve(srv *http.Server, ln net.Listener) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.serveErr <- err
		}
	}()
}

// Err delivers an error if a listener stops serving unexpectedly.
func (s *Server) Err() <-chan error { return s.serveErr }

// PublicAddr and AdminAddr are the bound addresses (after Start).
func (s *Server) PublicAddr() string { return s.publicLn.Addr().String() }

// AdminAddr is the admin listener's bound address (after Start).
func (s *Server) AdminAddr() string { return s.adminLn.Addr().String() }

// Close stops accepting, lets in-flight requests finish until ctx ends, then
// cuts what remains. It is safe to call more than once.
func (s *Server) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		var errs []error
		for _, srv := range []*http.Server{s.publicSrv, s.adminSrv} {
			if srv == nil {
				continue
			}
			if err := srv.Shutdown(ctx); err != nil {
				srv.Close()
				errs = append(errs, err)
			}
		}
		s.wg.Wait()
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

func (s *Server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok", "instance": s.opts.InstanceID, "version": s.opts.Version})
}

func (s *Server) readyz(c echo.Context) error {
	if s.opts.Ready != nil {
		ctx, cancel := context.WithTimeout(c.Request().Context(), 5*time.Second)
		defer cancel()
		if err := s.opts.Ready(ctx); err != nil {
			return c.JSON(http.StatusServiceUnavailable, map[string]string{"status": "not ready", "error": err.Error()})
		}
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
}

func isHealth(path string) bool { return path == "/healthz" || path == "/readyz" }

// adminHost runs first on the admin listener: without a token, a request
// must name the listener itself, or it may come from a page whose DNS name
// was rebound to the loopback address.
func (s *Server) adminHost(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if s.AdminAuth.TokenSet() || isHealth(r.URL.Path) || s.AdminAuth.hostAllowed(r.Host) {
			return next(c)
		}
		return echo.NewHTTPError(http.StatusForbidden, fmt.Sprintf("the admin listener has no token and answers only to its own names: Host %q is not a loopback address, localhost, the admin.listen host or one of admin.hosts; add the name to admin.hosts in bridge.yaml, or set admin.token", r.Host))
	}
}

// adminAuth guards the admin listener: the Bearer token or a status page
// session when a token is configured, otherwise loopback clients only.
// Health stays open. Wrong tokens count against the client's sign-in limit.
func (s *Server) adminAuth(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if isHealth(r.URL.Path) {
			return next(c)
		}
		if !s.AdminAuth.TokenSet() {
			if !isLoopback(r.RemoteAddr) {
				return echo.NewHTTPError(http.StatusForbidden, "the admin listener has no token configured and serves loopback clients only; set admin.token in bridge.yaml")
			}
			return next(c)
		}
		if got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			err := s.AdminAuth.checkToken(r, got, "admin API request")
			if err == nil {
				return next(c)
			}
			return tokenError(c, err)
		}
		if s.AdminAuth.SignedIn(r) {
			return next(c)
		}
		return tokenError(c, ErrWrongToken)
	}
}

// tokenError answers a refused admin request: 429 with Retry-After while
// the client is locked out, else 401.
func tokenError(c echo.Context, err error) error {
	var te *ThrottledError
	if errors.As(err, &te) {
		c.Response().Header().Set("Retry-After", RetryAfter(te))
		return echo.NewHTTPError(http.StatusTooManyRequests, te.Error())
	}
	c.Response().Header().Set("WWW-Authenticate", `Bearer realm="m365bridge admin"`)
	return echo.NewHTTPError(http.StatusUnauthorized, "admin token missing or wrong: send Authorization: Bearer <admin.token>")
}

// RetryAfter is a Retry-After header value: whole seconds, rounded up.
func RetryAfter(te *ThrottledError) string {
	return strconv.Itoa(int((te.RetryAfter + time.Second - 1) / time.Second))
}

func isLoopback(remoteAddr string) bool {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
