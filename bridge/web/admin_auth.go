package web

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Admin sign-in limits. A client (an IPv4 address, an IPv6 /64) that
// presents a wrong admin token MaxSignInFailures times within
// SignInWindow is refused with 429 until the window, counted from its
// first failure, has passed; meanwhile even the right token is refused, so
// guessing goes no faster. Valid session cookies are not affected.
const (
	MaxSignInFailures = 10
	SignInWindow      = 5 * time.Minute
	// SessionTTL is how long a status page sign-in lasts.
	SessionTTL = 12 * time.Hour
)

// Bounds of the in-memory tables, so a flood cannot grow them without end.
const (
	maxLimiterEntries = 10_000
	maxSessions       = 1_000
)

// AdminCookie carries a status page session id (set by the sign-in form).
const AdminCookie = "m365bridge_admin"

// ErrWrongToken is SignIn's answer to a token that is not admin.token.
var ErrWrongToken = errors.New("that is not the admin token")

// ThrottledError is SignIn's answer while a client is locked out.
type ThrottledError struct{ RetryAfter time.Duration }

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("too many failed sign-in attempts from this address: try again in %s", e.RetryAfter.Round(time.Second))
}

// AdminAuth decides who may use the admin listener: the Bearer token or a
// session cookie when admin.token is set, loopback peers asking for one of
// the listener's own names when it is not. It keeps the sign-in sessions
// (in memory: a restart signs everyone out) and the failed-attempt limits,
// and it tells the real client from what a trusted proxy forwarded.
type AdminAuth struct {
	token   string
	hosts   map[string]bool
	proxies []netip.Prefix
	secure  bool
	now     func() time.Time
	log     *slog.Logger

	mu       sync.Mutex
	sessions map[[sha256.Size]byte]time.Time // by hash of the id → expiry
	failures map[netip.Prefix]*failures
}

type failures struct {
	n     int
	since time.Time
}

func newAdminAuth(opts Options) *AdminAuth {
	a := &AdminAuth{
		token:    opts.AdminToken,
		hosts:    map[string]bool{"localhost": true},
		proxies:  opts.TrustedProxies,
		secure:   opts.SecureCookies,
		now:      opts.Now,
		log:      opts.Logger,
		sessions: map[[sha256.Size]byte]time.Time{},
		failures: map[netip.Prefix]*failures{},
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	// The listen host, even 0.0.0.0 or ::, which the CLI dials as it is
	// written: an IP literal is no name a rebinding page can own.
	if host, _, err := net.SplitHostPort(opts.AdminAddr); err == nil && host != "" {
		a.hosts[normalHost(host)] = true
	}
	for _, h := range opts.AdminHosts {
		a.hosts[normalHost(h)] = true
	}
	return a
}

// TokenSet reports whether admin.token is configured (otherwise the
// listener is loopback-only, without sign-in).
func (a *AdminAuth) TokenSet() bool { return a.token != "" }

func normalHost(h string) string { return strings.TrimSuffix(strings.ToLower(h), ".") }

// hostAllowed reports whether a Host header names this listener: a
// loopback address, localhost, the admin.listen host or one of
// admin.hosts. A DNS-rebinding page reaches the listener under its own
// name, which is none of these.
func (a *AdminAuth) hostAllowed(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	} else {
		host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.Unmap().IsLoopback() {
		return true
	}
	return host != "" && a.hosts[normalHost(host)]
}

// Client returns the address a request is attributed to and its TCP peer.
// They differ only when the peer is a trusted proxy: the client is then
// the rightmost X-Forwarded-For entry that is not a trusted proxy itself.
func (a *AdminAuth) Client(r *http.Request) (client, peer netip.Addr) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}, netip.Addr{}
	}
	peer = ap.Addr().Unmap()
	client = peer
	if !a.trusted(peer) {
		return client, peer
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		ip, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break // a malformed hop: stop at the last address we believe
		}
		client = ip.Unmap()
		if !a.trusted(client) {
			break
		}
	}
	return client, peer
}

func (a *AdminAuth) trusted(ip netip.Addr) bool {
	for _, p := range a.proxies {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// Secure reports whether cookies for r must be Secure: the request came
// over TLS, public_url is https, or a trusted proxy says the client used
// https (X-Forwarded-Proto).
func (a *AdminAuth) Secure(r *http.Request) bool {
	if r.TLS != nil || a.secure {
		return true
	}
	_, peer := a.Client(r)
	proto, _, _ := strings.Cut(r.Header.Get("X-Forwarded-Proto"), ",")
	return a.trusted(peer) && strings.EqualFold(strings.TrimSpace(proto), "https")
}

// Cookie builds a status page cookie for r: HttpOnly, SameSite=Strict,
// Secure when Secure says so. maxAge < 0 deletes it.
func (a *AdminAuth) Cookie(r *http.Request, name, value string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: a.Secure(r)}
}

// checkToken compares a presented token with admin.token, counting a
// wrong one against the client; while the client is locked out it
// answers a *ThrottledError without comparing.
func (a *AdminAuth) checkToken(r *http.Request, got, what string) error {
	client, peer := a.Client(r)
	key := limitKey(client)
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	f := a.failures[key]
	if f != nil && !now.Before(f.since.Add(SignInWindow)) {
		delete(a.failures, key)
		f = nil
	}
	if f != nil && f.n >= MaxSignInFailures {
		return &ThrottledError{RetryAfter: f.since.Add(SignInWindow).Sub(now)}
	}
	if a.token != "" && subtle.ConstantTimeCompare([]byte(got), []byte(a.token)) == 1 {
		return nil
	}
	if f == nil {
		if len(a.failures) >= maxLimiterEntries {
			a.sweepFailures(now)
		}
		if len(a.failures) >= maxLimiterEntries {
			key = netip.Prefix{} // full of live entries: count together
		}
		if f = a.failures[key]; f == nil {
			f = &failures{since: now}
			a.failures[key] = f
		}
	}
	f.n++
	a.log.Warn(what+" with a wrong admin token", "client", client.String(), "peer", peer.String(), "failures", f.n)
	if f.n == MaxSignInFailures {
		a.log.Warn("too many failed admin sign-ins: this client is refused until the window passes",
			"client", client.String(), "peer", peer.String(), "until", f.since.Add(SignInWindow))
	}
	return ErrWrongToken
}

func (a *AdminAuth) sweepFailures(now time.Time) {
	for k, f := range a.failures {
		if !now.Before(f.since.Add(SignInWindow)) {
			delete(a.failures, k)
		}
	}
}

// limitKey groups addresses the way one client can use them: an IPv4
// address, or an IPv6 /64.
func limitKey(ip netip.Addr) netip.Prefix {
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	p, _ := ip.Prefix(bits)
	return p
}

// SignIn checks the token from the sign-in form and, when it is right,
// starts a session and sets its cookie. It answers ErrWrongToken or a
// *ThrottledError otherwise.
func (a *AdminAuth) SignIn(w http.ResponseWriter, r *http.Request, token string) error {
	if err := a.checkToken(r, token, "status page sign-in"); err != nil {
		return err
	}
	b := make([]byte, 32)
	rand.Read(b)
	id := hex.EncodeToString(b)
	now := a.now()
	a.mu.Lock()
	if len(a.sessions) >= maxSessions {
		a.sweepSessions(now)
	}
	a.sessions[sha256.Sum256([]byte(id))] = now.Add(SessionTTL)
	a.mu.Unlock()
	http.SetCookie(w, a.Cookie(r, AdminCookie, id, int(SessionTTL/time.Second)))
	return nil
}

// sweepSessions drops expired sessions and, if the table is still full,
// the one that expires first.
func (a *AdminAuth) sweepSessions(now time.Time) {
	var first [sha256.Size]byte
	var firstExp time.Time
	for k, exp := range a.sessions {
		if !now.Before(exp) {
			delete(a.sessions, k)
		} else if firstExp.IsZero() || exp.Before(firstExp) {
			first, firstExp = k, exp
		}
	}
	if len(a.sessions) >= maxSessions {
		delete(a.sessions, first)
	}
}

// SignedIn reports whether r carries the cookie of a live session.
func (a *AdminAuth) SignedIn(r *http.Request) bool {
	ck, err := r.Cookie(AdminCookie)
	if err != nil || ck.Value == "" {
		return false
	}
	k := sha256.Sum256([]byte(ck.Value))
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	exp, ok := a.sessions[k]
	if ok && !now.Before(exp) {
		delete(a.sessions, k)
		return false
	}
	return ok
}

// SignOut ends r's session on the server and deletes its cookie.
func (a *AdminAuth) SignOut(w http.ResponseWriter, r *http.Request) {
	if ck, err := r.Cookie(AdminCookie); err == nil {
		a.mu.Lock()
		delete(a.sessions, sha256.Sum256([]byte(ck.Value)))
		a.mu.Unlock()
	}
	http.SetCookie(w, a.Cookie(r, AdminCookie, "", -1))
}
