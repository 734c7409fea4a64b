package bridge

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/m365bridge/m365bridge/bridge/web"
)

// Cookies of the status page. All are HttpOnly and SameSite=Strict.
const (
	csrfCookie  = "m365bridge_csrf"  // random per browser; forms carry its HMAC
	flashCookie = "m365bridge_flash" // one message for the next page view
	csrfField   = "csrf"
)

// session is the status page's browser state: sign-in with the admin token,
// CSRF tokens, flash messages and cross-origin refusal.
type session struct {
	token string // admin.token; "" means loopback-only, no sign-in
	key   []byte // per-process HMAC key for CSRF tokens
	cop   *http.CrossOriginProtection
}

func newSession(token string) *session {
	key := make([]byte, 32)
	rand.Read(key)
	return &session{token: token, key: key, cop: http.NewCrossOriginProtection()}
}

// gate runs before routing and before the admin listener's token check:
// it refuses cross-origin state changes (a page on another site posting to
// the admin listener, which matters most in loopback-only mode), shows the
// sign-in form instead of a bare 401 to a browser without the cookie, and
// handles the sign-in itself.
func (s *session) gate(ui *statusUI) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			req := c.Request()
			if err := s.cop.Check(req); err != nil {
				return echo.NewHTTPError(http.StatusForbidden, "cross-origin request refused: the admin listener only takes state changes from its own pages or from non-browser clients")
			}
			if req.URL.Path == "/login" && req.Method == http.MethodPost {
				return ui.login(c)
			}
			if s.token != "" && (req.URL.Path == "/" || req.URL.Path == "/status") &&
				(req.Method == http.MethodGet || req.Method == http.MethodHead) && !s.signedIn(req) {
				return ui.renderLogin(c, http.StatusUnauthorized, "")
			}
			return next(c)
		}
	}
}

// signedIn reports whether req carries the admin token (cookie or Bearer).
func (s *session) signedIn(req *http.Request) bool {
	got, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
	if !ok {
		ck, err := req.Cookie(web.AdminCookie)
		if err != nil {
			return false
		}
		got = ck.Value
	}
	return s.tokenOK(got)
}

func (s *session) tokenOK(got string) bool {
	return s.token != "" && subtle.ConstantTimeCompare([]byte(got), []byte(s.token)) == 1
}

func strictCookie(name, value string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge, HttpOnly: true, SameSite: http.SameSiteStrictMode}
}

// cookieSafe reports a token a browser cookie cannot carry unchanged
// (quotes, semicolons, backslashes, control or non-ASCII characters): the
// sign-in would then loop back to the form.
func (s *session) cookieSafe() error {
	if err := (&http.Cookie{Name: web.AdminCookie, Value: s.token}).Valid(); err != nil {
		return errors.New("admin.token has characters a browser cookie cannot carry (quote, semicolon, backslash, control or non-ASCII): the API still takes it as a Bearer token; for the page, choose a token of letters, digits and -._~")
	}
	return nil
}

// signIn sets the admin cookie (a browser session cookie).
func (s *session) signIn(c echo.Context) {
	c.SetCookie(strictCookie(web.AdminCookie, s.token, 0))
}

func (s *session) signOut(c echo.Context) {
	c.SetCookie(strictCookie(web.AdminCookie, "", -1))
}

// csrfToken returns the token the page's forms carry, creating the
// browser's CSRF cookie when it has none.
func (s *session) csrfToken(c echo.Context) string {
	ck, err := c.Cookie(csrfCookie)
	if err != nil || len(ck.Value) != 64 {
		b := make([]byte, 32)
		rand.Read(b)
		ck = strictCookie(csrfCookie, hex.EncodeToString(b), 0)
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

func setFlash(c echo.Context, ok bool, text string) {
	v := "e"
	if ok {
		v = "o"
	}
	c.SetCookie(strictCookie(flashCookie, base64.RawURLEncoding.EncodeToString([]byte(v+text)), 120))
}

// takeFlash reads and clears the flash cookie.
func takeFlash(c echo.Context) *flash {
	ck, err := c.Cookie(flashCookie)
	if err != nil {
		return nil
	}
	c.SetCookie(strictCookie(flashCookie, "", -1))
	b, err := base64.RawURLEncoding.DecodeString(ck.Value)
	if err != nil || len(b) < 2 {
		return nil
	}
	return &flash{OK: b[0] == 'o', Text: string(b[1:])}
}
