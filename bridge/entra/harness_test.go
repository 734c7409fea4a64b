package entra_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/m365bridge/m365bridge/bridge/entra"
	"github.com/m365bridge/m365bridge/bridge/m365sim"
	"github.com/m365bridge/m365bridge/bridge/store"
	"github.com/m365bridge/m365bridge/config"
)

// clock is a test clock shared by the sim and the bridge.
type clock struct {
	base   time.Time
	offset atomic.Int64
}

func (c *clock) Now() time.Time          { return c.base.Add(time.Duration(c.offset.Load())) }
func (c *clock) Advance(d time.Duration) { c.offset.Add(int64(d)) }
func newClock(t testing.TB) *clock       { return &clock{base: testEpoch(t)} }
func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}
func (b *lockedBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// recNotifier records notifications.
type recNotifier struct {
	mu       sync.Mutex
	failed   []string // codes
	restored []string // channels
	// unavailable and available record passing outages (codes, channels).
	unavailable, available []string
}

func (n *recNotifier) AuthFailed(_ context.Context, channel, code, reason, fix string) {
	n.mu.Lock()
	n.failed = append(n.failed, code)
	n.mu.Unlock()
}

func (n *recNotifier) AuthRestored(_ context.Context, channel string) {
	n.mu.Lock()
	n.restored = append(n.restored, channel)
	n.mu.Unlock()
}

func (n *recNotifier) Unavailable(_ context.Context, channel, code, reason, fix string) {
	n.mu.Lock()
	n.unavailable = append(n.unavailable, code)
	n.mu.Unlock()
}

func (n *recNotifier) Available(_ context.Context, channel string) {
	n.mu.Lock()
	n.available = append(n.available, channel)
	n.mu.Unlock()
}

func (n *recNotifier) counts() (int, int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.failed), len(n.restored)
}

// harness is one sim on loopback, one bridge callback server, one state
// directory.
type harness struct {
	t      *testing.T
	clock  *clock
	sim    *m365sim.Sim
	simSrv *httptest.Server
	seeded *m365sim.Seeded
	cbSrv  *httptest.Server
	dir    string
	logs   *lockedBuffer
	notify *recNotifier

	refreshes atomic.Int64 // refresh_token grant requests seen by the sim
	// failNext makes the next n token requests answer 503 before the sim.
	failNext atomic.Int64
	// retryAfter, when above 0, is the Retry-After (seconds) of those 503s.
	retryAfter atomic.Int64

	mu     sync.Mutex
	issued []string // every access and refresh token the sim handed out
	newest string   // the last refresh token issued

	cur atomic.Pointer[bridgeState]
}

type bridgeState struct {
	db    *store.DB
	vault *store.Vault
	m     *entra.Manager
}

var channelsCfg = map[string]config.Mailbox{
	"me":      {Type: config.MailboxUser},
	"support": {Type: config.MailboxShared, Address: "support@contoso.com"},
	"typo":    {Type: config.MailboxShared, Address: "suport@contoso.com"},
}

func newHarness(t *testing.T, tweak func(*m365sim.Seed, *m365sim.Options)) *harness {
	t.Helper()
	h := &harness{t: t, clock: newClock(t), dir: t.TempDir(), logs: &lockedBuffer{}, notify: &recNotifier{}}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.GET("/oauth/callback", func(c echo.Context) error { return h.cur.Load().m.Callback(c) })
	e.GET("/oauth/callback2", func(c echo.Context) error { return h.cur.Load().m.Callback(c) })
	h.cbSrv = httptest.NewServer(e)
	t.Cleanup(h.cbSrv.Close)

	seed := m365sim.DefaultSeed()
	seed.App.RedirectURIs = []string{h.cbSrv.URL + "/oauth/callback", h.cbSrv.URL + "/oauth/callback2"}
	opts := m365sim.Options{Now: h.clock.Now}
	if tweak != nil {
		tweak(seed, &opts)
	}
	h.sim = m365sim.New(opts)
	seeded, err := h.sim.Apply(seed)
	if err != nil {
		t.Fatal(err)
	}
	h.seeded = seeded
	h.simSrv = httptest.NewServer(http.HandlerFunc(h.serveSim))
	t.Cleanup(h.simSrv.Close)
	h.open()
	return h
}

// serveSim passes requests to the sim, counting refresh grants and keeping
// every token the sim issues.
func (h *harness) serveSim(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/oauth2/v2.0/token") {
		h.sim.ServeHTTP(w, r)
		return
	}
	body, _ := io.ReadAll(r.Body)
	form, _ := url.ParseQuery(string(body))
	if form.Get("grant_type") == "refresh_token" {
		h.refreshes.Add(1)
	}
	if h.failNext.Add(-1) >= 0 {
		if ra := h.retryAfter.Load(); ra > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(ra)))
		}
		http.Error(w, `{"error":"temporarily_unavailable","error_description":"AADSTS90055: throttled"}`, http.StatusServiceUnavailable)
		return
	}
	h.failNext.Store(0)
	r.Body = io.NopCloser(bytes.NewReader(body))
	rec := httptest.NewRecorder()
	h.sim.ServeHTTP(rec, r)
	var tr struct {
		Access  string `json:"access_token"`
		Refresh string `json:"refresh_token"`
	}
	if json.Unmarshal(rec.Body.Bytes(), &tr) == nil && tr.Access != "" {
		h.mu.Lock()
		h.issued = append(h.issued, tr.Access, tr.Refresh)
		h.newest = tr.Refresh
		h.mu.Unlock()
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	w.Write(rec.Body.Bytes())
}

func (h *harness) newestRefresh() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.newest
}

// open starts a fresh bridge (store, keyring, manager) over the state
// directory, as a restarted process would.
func (h *harness) open() *bridgeState {
	h.t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(h.dir, store.FileName))
	if err != nil {
		h.t.Fatal(err)
	}
	db.Now = h.clock.Now
	log := slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	keys, err := store.LoadKeyring(h.dir, func(string) string { return "" }, log)
	if err != nil {
		h.t.Fatal(err)
	}
	names := make([]string, 0, len(channelsCfg))
	for n := range channelsCfg {
		names = append(names, n)
	}
	if err := db.EnsureChannels(ctx, names); err != nil {
		h.t.Fatal(err)
	}
	v := store.NewVault(db, keys)
	m := &entra.Manager{
		Client: &entra.Client{LoginURL: h.simSrv.URL, Tenant: h.seeded.TenantDomain, ClientID: h.seeded.ClientID,
			ClientSecret: h.seeded.ClientSecret, RedirectURI: h.cbSrv.URL + "/oauth/callback", Prompt: "select_account",
			HTTP: &http.Client{Timeout: 10 * time.Second}, Now: h.clock.Now},
		Vault: v, GraphURL: h.simSrv.URL, Channels: channelsCfg, Notifier: h.notify, Log: log, Now: h.clock.Now,
		BaseBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond,
	}
	bs := &bridgeState{db: db, vault: v, m: m}
	if old := h.cur.Swap(bs); old != nil {
		old.db.Close()
	}
	h.t.Cleanup(func() { db.Close() })
	return bs
}

func (h *harness) b() *bridgeState { return h.cur.Load() }

// signIn starts an authorization and follows every redirect with the sim's
// auto-approve, as the given user (login_hint; "" for the sim's choice) or
// with extra query parameters. It returns the final page.
func (h *harness) signIn(channel, kind, user string, extra url.Values) (int, string, *url.URL) {
	h.t.Helper()
	u, err := h.b().m.StartAuth(context.Background(), channel, kind)
	if err != nil {
		h.t.Fatal(err)
	}
	return h.follow(u, user, extra)
}

func (h *harness) follow(authURL, user string, extra url.Values) (int, string, *url.URL) {
	h.t.Helper()
	pu, err := url.Parse(authURL)
	if err != nil {
		h.t.Fatal(err)
	}
	q := pu.Query()
	q.Set("sim_auto", "1")
	if user != "" {
		q.Set("login_hint", user)
	}
	for k, v := range extra {
		q[k] = v
	}
	pu.RawQuery = q.Encode()
	return h.get(pu.String())
}

func (h *harness) get(u string) (int, string, *url.URL) {
	h.t.Helper()
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(u)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Request.URL
}

func (h *harness) state(channel string) store.ChannelStatus {
	h.t.Helper()
	st, err := h.b().db.ChannelState(context.Background(), channel)
	if err != nil {
		h.t.Fatal(err)
	}
	return st
}

func (h *harness) tokens(channel string) (store.Tokens, error) {
	return h.b().vault.LoadTokens(context.Background(), channel)
}

// connect signs a channel in and fails the test unless it worked.
func (h *harness) connect(channel, user string) {
	h.t.Helper()
	code, body, _ := h.signIn(channel, store.AuthConnect, user, nil)
	if code != http.StatusOK || !strings.Contains(body, "Channel connected") {
		h.t.Fatalf("connect %s as %s: HTTP %d\n%s", channel, user, code, body)
	}
}

// assertNothingStored checks a failed sign-in left the channel untouched.
func (h *harness) assertNothingStored(channel string) {
	h.t.Helper()
	if st := h.state(channel); st.State != store.ChannelNeedsConsent || st.Account.ObjectID != "" {
		h.t.Fatalf("channel %s after a failed sign-in: %+v, want needs_consent and no account", channel, st)
	}
	if _, err := h.tokens(channel); err == nil {
		h.t.Fatalf("channel %s has tokens after a failed sign-in", channel)
	}
}
