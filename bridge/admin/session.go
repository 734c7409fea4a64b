package admin

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/m365bridge/m365bridge/bridge/web"
)

// Cookies of the status page (besides web.AdminCookie, the session). All
// are HttpOnly and SameSite=Strict, and Secure when served over https.
const (
	csrfCookie  = "m365bridge_csrf"  // random per browser; forms carry its HMAC
	flashCookie = "m365bridge_flash" // one message for the next page view
	csrfField   = "csrf"
)

// session is the status page's browser state: sign-in (sessions kept by
// the admin listener's web.AdminAuth), CSRF tokens, flash messages and
// cross-origin refusal.
type session struct {
	auth *web.AdminAuth
	key  []byte // per-process HMAC key for CSRF tokens
	cop  *http.CrossOriginProtection
}

func newSession(auth *web.AdminAuth) *session {
	key := make([]byte, 32)
	rand.Read(key)
	return &session{auth: auth, key: key, cop: http.NewCrossOriginProtection()}
}

// gate runs before routing and before the admin listener's token check:
// it refuses cross-origin state changes (a page on another site posting to
// the admin listener, which matters most in loopback-only mode), shows the
// sign-in form instead of a bare 401 to a browser without a session,
// and handles sign-in and sign-out themselves (sign-out works with an
// expired session too).
func (s *session) gate(ui *statusUI) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			req := c.Request()
			if err := s.cop.Check(req); err != nil {
				return echo.NewHTTPError(http.StatusForbidden, "cross-origin request refused: the admin listener only takes state changes from its own pages or from non-browser clients")
			}
			if req.Method == http.MethodPost && req.URL.Path == "/login" {
				return ui.login(c)
			}
			if req.Method == http.MethodPost && req.URL.Path == "/logout" {
				return ui.logout(c)
			}
			if s.auth.TokenSet() && (req.URL.Path == "/" || req.URL.Path == "/status") &&
				(req.Method == http.MethodGet || req.Method == http.MethodHead) &&
				!s.auth.SignedIn(req) && req.Header.Get("Authorization") == "" {
				return ui.renderLogin(c, http.StatusUnauthorized, "")
			}
			return next(c)
		}
	}
}

// cookie is a status page cookie: HttpOnly, SameSite=Strict, and Secure
// when the admin listener is reached over https.
func (s *session) cookie(c echo.Context, name, value string, maxAge int) *http.Cookie {
	return s.auth.Cookie(c.Request(), name, value, maxAge)
}

// csrfToken returns the token the page's forms carry, creating the
// browser's CSRF cookie when it has none.
func (s *session) csrfToken(c echo.Context) string {
	ck, err := c.Cookie(csrfCookie)
	if err != nil || len(ck.Value) != 64 {
		b := make([]byte, 32)
		rand.Read(b)
		ck = s.cookie(c, csrfCookie, hex.EncodeToString(b), 0)
		c.SetCookie(ck)
	}
	return s.mac(ck.Value)
}

func (s *session) mac(v string) string {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte("csrf\x00" + v))
	return hex.EncodeToString(m.Sum(nil))
}

// csrfOK checks a form's token against the browser's cookie.
func (s *session) csrfOK(c echo.Context) bool {
	ck, err := c.Cookie(csrfCookie)
	if err != nil || ck.Value == "" {
		return false
	}
	return hmac.Equal([]byte(c.FormValue(csrfField)), []byte(s.mac(ck.Value)))
}

// flash is a one-time message shown on the next page view.
type flash struct {
	OK   bool
	Text string
}

func (s *session) setFlash(c echo.Context, ok bool, text string) {
	v := "e"
	if ok {
		v = "o"
	}
	c.SetCookie(s.cookie(c, flashCookie, base64.RawURLEncoding.EncodeToString([]byte(v+text)), 120))
}

// takeFlash reads and clears the flash cookie.
func (s *session) takeFlash(c echo.Context) *flash {
	ck, err := c.Cookie(flashCookie)
	if err != nil {
		return nil
	}
	c.SetCookie(s.cookie(c, flashCookie, "", -1))
	b, err := base64.RawURLEncoding.DecodeString(ck.Value)
	if err != nil || len(b) < 2 {
		return nil
	}
	return &flash{OK: b[0] == 'o', Text: string(b[1:])}
}
