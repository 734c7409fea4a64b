package entra_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/bridge/entra"
	"github.com/m365bridge/m365bridge/bridge/m365sim"
	"github.com/m365bridge/m365bridge/bridge/store"
)

const (
	agent = "agent@contoso.com"
	sales = "sales@contoso.com"
)

// Acceptance 1: consent end to end, user and shared mailbox.
func TestConsent(t *testing.T) {
	h := newHarness(t, nil)
	ctx := context.Background()
	t.Run("user mailbox", func(t *testing.T) {
		h.connect("me", agent)
		st := h.state("me")
		if st.State != store.ChannelActive || st.Account.UPN != agent || st.Account.ObjectID == "" || st.MailboxType != "user" {
			t.Fatalf("state = %+v", st)
		}
		tok, err := h.b().m.Source("me").Token(ctx)
		if err != nil || tok == "" {
			t.Fatalf("Token = %q, %v", tok, err)
		}
		// The token reads the user's mailbox on Graph.
		req, _ := http.NewRequest("GET", h.simSrv.URL+"/v1.0/me/mailFolders/inbox", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("Graph with the token: HTTP %d", resp.StatusCode)
		}
	})
	t.Run("shared mailbox", func(t *testing.T) {
		h.connect("support", agent)
		st := h.state("support")
		if st.State != store.ChannelActive || st.MailboxAddress != "support@contoso.com" || st.Account.UPN != agent {
			t.Fatalf("state = %+v", st)
		}
	})
	t.Run("shared mailbox without Full Access", func(t *testing.T) {
		h := newHarness(t, nil)
		code, body, _ := h.signIn("support", store.AuthConnect, sales, nil)
		if code != http.StatusForbidden || !strings.Contains(body, "lacks Full Access") {
			t.Fatalf("HTTP %d\n%s", code, body)
		}
		h.assertNothingStored("support")
	})
	t.Run("wrong shared mailbox address", func(t *testing.T) {
		code, body, _ := h.signIn("typo", store.AuthConnect, agent, nil)
		if code != http.StatusForbidden || !strings.Contains(body, "Wrong shared mailbox address") {
			t.Fatalf("HTTP %d\n%s", code, body)
		}
		h.assertNothingStored("typo")
	})
	t.Run("disabled shared mailbox", func(t *testing.T) {
		h := newHarness(t, nil)
		if err := h.sim.SetMailboxEnabled("support@contoso.com", false); err != nil {
			t.Fatal(err)
		}
		code, body, _ := h.signIn("support", store.AuthConnect, agent, nil)
		if code != http.StatusForbidden || !strings.Contains(body, "MailboxNotEnabledForRESTAPI") {
			t.Fatalf("HTTP %d\n%s", code, body)
		}
		h.assertNothingStored("support")
	})
}

// Acceptance 2: re-authentication rules.
func TestReauth(t *testing.T) {
	h := newHarness(t, nil)
	h.connect("me", agent)
	h.connect("support", agent)
	before, err := h.tokens("me")
	if err != nil {
		t.Fatal(err)
	}

	t.Run("other user on a user mailbox is refused", func(t *testing.T) {
		code, body, _ := h.signIn("me", store.AuthReauth, sales, nil)
		if code != http.StatusForbidden || !strings.Contains(body, "User mismatch") {
			t.Fatalf("HTTP %d\n%s", code, body)
		}
		after, err := h.tokens("me")
		if err != nil || after != before {
			t.Fatal("the old tokens were not kept")
		}
		if st := h.state("me"); st.Account.UPN != agent || st.State != store.ChannelActive {
			t.Fatalf("state = %+v", st)
		}
	})
	t.Run("same user succeeds", func(t *testing.T) {
		code, body, _ := h.signIn("me", store.AuthReauth, agent, nil)
		if code != http.StatusOK {
			t.Fatalf("HTTP %d\n%s", code, body)
		}
		after, err := h.tokens("me")
		if err != nil || after.Refresh == before.Refresh {
			t.Fatalf("tokens not replaced: %v", err)
		}
	})
	t.Run("other delegate on a shared mailbox succeeds", func(t *testing.T) {
		if err := h.sim.Delegate("support@contoso.com", sales, true, true); err != nil {
			t.Fatal(err)
		}
		code, body, _ := h.signIn("support", store.AuthReauth, sales, nil)
		if code != http.StatusOK {
			t.Fatalf("HTTP %d\n%s", code, body)
		}
		if st := h.state("support"); st.Account.UPN != sales || st.MailboxAddress != "support@contoso.com" {
			t.Fatalf("state = %+v", st)
		}
		if !strings.Contains(string(h.logs.Bytes()), "delegate changed") {
			t.Fatal("the delegate change was not logged")
		}
	})
}

// Acceptance 3: bad callbacks each give a clear page and store nothing.
func TestBadCallbacks(t *testing.T) {
	h := newHarness(t, nil)
	tests := []struct {
		name   string
		run    func() (int, string)
		status int
		want   string
	}{
		{"unknown state", func() (int, string) {
			c, b, _ := h.get(h.cbSrv.URL + "/oauth/callback?state=forged&code=abc")
			return c, b
		}, 400, "Unknown sign-in link"},
		{"no state", func() (int, string) {
			c, b, _ := h.get(h.cbSrv.URL + "/oauth/callback?code=abc")
			return c, b
		}, 400, "Not a sign-in callback"},
		{"expired state", func() (int, string) {
			u, err := h.b().m.StartAuth(context.Background(), "me", store.AuthConnect)
			if err != nil {
				t.Fatal(err)
			}
			h.clock.Advance(11 * time.Minute)
			c, b, _ := h.follow(u, agent, nil)
			return c, b
		}, 400, "expired"},
		{"declined consent", func() (int, string) {
			c, b, _ := h.signIn("me", store.AuthConnect, agent, url.Values{"sim_auto": {"decline"}})
			return c, b
		}, 400, "declined"},
		{"hostile error text is escaped", func() (int, string) {
			u, _ := h.b().m.StartAuth(context.Background(), "me", store.AuthConnect)
			state := mustQuery(t, u).Get("state")
			c, b, _ := h.get(h.cbSrv.URL + "/oauth/callback?state=" + url.QueryEscape(state) +
				"&error=access_denied&error_description=" + url.QueryEscape("<script>alert(1)</script>"))
			if strings.Contains(b, "<script>") {
				t.Fatal("page contains unescaped input")
			}
			return c, b
		}, 400, "&lt;script&gt;"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := tt.run()
			if code != tt.status || !strings.Contains(body, tt.want) {
				t.Fatalf("HTTP %d, want %d with %q\n%s", code, tt.status, tt.want, body)
			}
			h.assertNothingStored("me")
		})
	}

	t.Run("reused state", func(t *testing.T) {
		h := newHarness(t, nil)
		code, _, final := h.signIn("me", store.AuthConnect, agent, nil)
		if code != 200 {
			t.Fatalf("first use: HTTP %d", code)
		}
		before, _ := h.tokens("me")
		code, body, _ := h.get(final.String())
		if code != 400 || !strings.Contains(body, "already used") {
			t.Fatalf("replay: HTTP %d\n%s", code, body)
		}
		if after, _ := h.tokens("me"); after != before {
			t.Fatal("a replayed callback changed the tokens")
		}
	})

	t.Run("admin consent required", func(t *testing.T) {
		h := newHarness(t, func(s *m365sim.Seed, _ *m365sim.Options) { s.Tenant.AdminConsentRequired = true })
		code, body, _ := h.signIn("me", store.AuthConnect, agent, nil)
		if code < 400 || code > 499 || !(strings.Contains(body, "administrator") || strings.Contains(body, "admin")) {
			t.Fatalf("HTTP %d\n%s", code, body)
		}
		h.assertNothingStored("me")
		// Backing out of "Need admin approval" redirects with cancel.
		code, body, _ = h.signIn("me", store.AuthConnect, agent, url.Values{"sim_auto": {"decline"}})
		if code != 400 || !strings.Contains(body, "administrator") {
			t.Fatalf("cancel: HTTP %d\n%s", code, body)
		}
		h.assertNothingStored("me")
	})

	t.Run("redirect URI not registered", func(t *testing.T) {
		h := newHarness(t, nil)
		h.b().m.Client.RedirectURI = h.cbSrv.URL + "/not-registered"
		code, body, final := h.signIn("me", store.AuthConnect, agent, nil)
		if code != 400 || !strings.Contains(body, "50011") || strings.HasPrefix(final.String(), h.cbSrv.URL) {
			t.Fatalf("HTTP %d at %s\n%s", code, final, body)
		}
		h.assertNothingStored("me")
	})

	t.Run("redirect URI changed between start and redemption", func(t *testing.T) {
		h := newHarness(t, nil)
		h.b().m.Client.RedirectURI = h.cbSrv.URL + "/oauth/callback2"
		u, err := h.b().m.StartAuth(context.Background(), "me", store.AuthConnect)
		if err != nil {
			t.Fatal(err)
		}
		h.b().m.Client.RedirectURI = h.cbSrv.URL + "/oauth/callback"
		code, body, _ := h.follow(u, agent, nil)
		if code != 400 || !strings.Contains(body, "AADSTS500112") {
			t.Fatalf("HTTP %d\n%s", code, body)
		}
		h.assertNothingStored("me")
	})
}

func mustQuery(t *testing.T, u string) url.Values {
	t.Helper()
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	return pu.Query()
}

var errCrash = errors.New("simulated crash")

// Acceptance 4: 200 refresh cycles with crashes injected before and after
// the commit; the channel never loses its newest refresh token.
func TestRotationSurvivesCrashes(t *testing.T) {
	h := newHarness(t, nil)
	h.sim.SetTokenLifetimes(10*time.Minute, 0)
	h.connect("me", agent)
	ctx := context.Background()
	rng := rand.New(rand.NewSource(7))
	crashes := map[string]int{}
	for i := 0; i < 200; i++ {
		h.clock.Advance(6 * time.Minute) // inside the 5-minute margin: refresh due
		mode := []string{"", "", entra.HookReceived, entra.HookCommitted}[rng.Intn(4)]
		bs := h.b()
		bs.m.Hook = func(_ context.Context, stage string) error {
			if stage == mode {
				return errCrash
			}
			return nil
		}
		tok, err := bs.m.Source("me").Token(ctx)
		switch {
		case mode == "" && err != nil:
			t.Fatalf("cycle %d: %v", i, err)
		case mode != "" && !errors.Is(err, errCrash):
			t.Fatalf("cycle %d: crash at %s not hit: %v", i, mode, err)
		}
		stored, err := bs.vault.LoadTokens(ctx, "me")
		if err != nil {
			t.Fatal(err)
		}
		if mode != entra.HookReceived && stored.Refresh != h.newestRefresh() {
			t.Fatalf("cycle %d (%q): the stored refresh token is not the newest issued", i, mode)
		}
		if mode == "" && tok != stored.Access {
			t.Fatalf("cycle %d: returned an access token that is not the stored one", i)
		}
		if mode != "" {
			crashes[mode]++
			bs = h.open() // a new process over the same files
			if _, err := bs.m.Source("me").Token(ctx); err != nil {
				t.Fatalf("cycle %d: after a crash at %s: %v", i, mode, err)
			}
		}
	}
	if crashes[entra.HookReceived] == 0 || crashes[entra.HookCommitted] == 0 {
		t.Fatalf("crash modes not all exercised: %v", crashes)
	}
	if st := h.state("me"); st.State != store.ChannelActive {
		t.Fatalf("state = %+v", st)
	}
}

// Acceptance 5: 50 goroutines at expiry cause exactly one refresh.
func TestSingleFlightRefresh(t *testing.T) {
	h := newHarness(t, nil)
	h.connect("me", agent)
	h.clock.Advance(2 * time.Hour)
	before := h.sim.TokenRequests("refresh_token")
	src := h.b().m.Source("me")
	var wg sync.WaitGroup
	toks := make([]string, 50)
	errs := make([]error, 50)
	start := make(chan struct{})
	for i := range toks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			toks[i], errs[i] = src.Token(context.Background())
		}()
	}
	close(start)
	wg.Wait()
	for i := range toks {
		if errs[i] != nil || toks[i] != toks[0] {
			t.Fatalf("goroutine %d: %v (token same as first: %v)", i, errs[i], toks[i] == toks[0])
		}
	}
	if got := h.sim.TokenRequests("refresh_token") - before; got != 1 {
		t.Fatalf("sim saw %d refresh requests, want 1", got)
	}
	if got := h.refreshes.Load(); got != 1 {
		t.Fatalf("wire saw %d refresh requests, want 1", got)
	}
}

// Acceptance 6: refused grants put the channel in reauth_required with the
// mapped guidance; re-authentication brings it back.
func TestReauthRequired(t *testing.T) {
	tests := []struct {
		name   string
		break_ func(h *harness)
		fix    func(h *harness)
		code   string
		guide  string
	}{
		{"revoked grant", func(h *harness) {
			if err := h.sim.RevokeSignInSessions(agent); err != nil {
				t.Fatal(err)
			}
		}, nil, "AADSTS50173", "password"},
		{"expired secret", func(h *harness) {
			if err := h.sim.ExpireClientSecrets(h.seeded.ClientID); err != nil {
				t.Fatal(err)
			}
		}, func(h *harness) {
			if _, err := h.sim.AddClientSecret(h.seeded.ClientID, "fresh-secret-value", time.Time{}); err != nil {
				t.Fatal(err)
			}
			h.b().m.Client.ClientSecret = "fresh-secret-value"
		}, "AADSTS7000222", "new client secret"},
		{"wrong secret", func(h *harness) {
			h.b().m.Client.ClientSecret = "b3a0c2f1-0000-4000-8000-secretid0000"
		}, func(h *harness) {
			h.b().m.Client.ClientSecret = h.seeded.ClientSecret
		}, "AADSTS7000215", "Value, not its Secret ID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, nil)
			ctx := context.Background()
			h.connect("me", agent)
			h.clock.Advance(2 * time.Hour)
			tt.break_(h)
			_, err := h.b().m.Source("me").Token(ctx)
			var re *entra.ReauthError
			if !errors.Is(err, entra.ErrReauthRequired) || !errors.As(err, &re) {
				t.Fatalf("Token err = %v, want ErrReauthRequired", err)
			}
			st := h.state("me")
			if st.State != store.ChannelReauthRequired || st.Code != tt.code || !strings.Contains(st.Fix+st.Reason, tt.guide) {
				t.Fatalf("state = %+v, want reauth_required %s with %q", st, tt.code, tt.guide)
			}
			if failed, _ := h.notify.counts(); failed != 1 {
				t.Fatalf("AuthFailed called %d times, want 1", failed)
			}
			// Later calls do not hit Entra again.
			n := h.refreshes.Load()
			if _, err := h.b().m.Source("me").Token(ctx); !errors.Is(err, entra.ErrReauthRequired) {
				t.Fatalf("second Token err = %v", err)
			}
			if h.refreshes.Load() != n {
				t.Fatal("a channel in reauth_required still refreshes")
			}
			if tt.fix != nil {
				tt.fix(h)
			}
			code, body, _ := h.signIn("me", store.AuthReauth, agent, nil)
			if code != http.StatusOK {
				t.Fatalf("re-auth: HTTP %d\n%s", code, body)
			}
			if st := h.state("me"); st.State != store.ChannelActive || st.Code != "" {
				t.Fatalf("after re-auth state = %+v", st)
			}
			if _, restored := h.notify.counts(); restored != 1 {
				t.Fatalf("AuthRestored called %d times, want 1", restored)
			}
			h.clock.Advance(2 * time.Hour)
			if _, err := h.b().m.Source("me").Token(ctx); err != nil {
				t.Fatalf("Token after re-auth: %v", err)
			}
		})
	}
}

// Temporary failures are retried with backoff and do not need re-auth.
func TestTransientRefreshFailure(t *testing.T) {
	h := newHarness(t, nil)
	ctx := context.Background()
	h.connect("me", agent)
	h.clock.Advance(2 * time.Hour)
	h.failNext.Store(2)
	if _, err := h.b().m.Source("me").Token(ctx); err != nil {
		t.Fatalf("Token after two 503s: %v", err)
	}
	h.clock.Advance(2 * time.Hour)
	h.failNext.Store(100)
	_, err := h.b().m.Source("me").Token(ctx)
	if err == nil || errors.Is(err, entra.ErrReauthRequired) {
		t.Fatalf("Token with Entra down: %v, want a temporary error", err)
	}
	var ue *entra.UnavailableError
	if !errors.As(err, &ue) {
		t.Errorf("Token with Entra down: %T %v, want *entra.UnavailableError", err, err)
	}
	if st := h.state("me"); st.State != store.ChannelError || st.Code != entra.CodeUnavailable {
		t.Fatalf("state = %+v, want error %s", st, entra.CodeUnavailable)
	}
	// The outage lasts through more calls and a restart: no second
	// Unavailable, and the restarted process still refreshes.
	if _, err := h.b().m.Source("me").Token(ctx); err == nil {
		t.Fatal("Token succeeded with Entra down")
	}
	h.open()
	before := h.refreshes.Load()
	if _, err := h.b().m.Source("me").Token(ctx); err == nil {
		t.Fatal("Token succeeded with Entra down after a restart")
	}
	if h.refreshes.Load() == before {
		t.Fatal("after a restart a channel in state error no longer refreshes")
	}
	h.failNext.Store(0)
	if _, err := h.b().m.Source("me").Token(ctx); err != nil {
		t.Fatalf("Token after recovery: %v", err)
	}
	if st := h.state("me"); st.State != store.ChannelActive || st.Code != "" {
		t.Fatalf("state after recovery = %+v", st)
	}
	if _, err := h.b().m.Source("me").Token(ctx); err != nil {
		t.Fatalf("Token after recovery: %v", err)
	}
	h.notify.mu.Lock()
	defer h.notify.mu.Unlock()
	if len(h.notify.unavailable) != 1 || len(h.notify.available) != 1 || len(h.notify.failed) != 0 {
		t.Errorf("notifications: unavailable %v, available %v, auth failed %v; want one of each of the first two",
			h.notify.unavailable, h.notify.available, h.notify.failed)
	}
}

// A Retry-After from Entra stretches the wait before the next try, up to
// MaxBackoff.
func TestRefreshHonoursRetryAfter(t *testing.T) {
	h := newHarness(t, nil)
	ctx := context.Background()
	h.connect("me", agent)
	h.clock.Advance(2 * time.Hour)
	h.retryAfter.Store(1)
	h.failNext.Store(1)
	m := h.b().m
	m.MaxBackoff = 2 * time.Second // above the Retry-After of 1 s
	start := time.Now()
	if _, err := m.Source("me").Token(ctx); err != nil {
		t.Fatalf("Token after one 503: %v", err)
	}
	if waited := time.Since(start); waited < time.Second {
		t.Errorf("the retry came %s after a 503 with Retry-After: 1, want at least 1s", waited)
	}
}

// Invalidate forces a refresh even when the stored token looks fresh.
func TestInvalidate(t *testing.T) {
	h := newHarness(t, nil)
	h.connect("me", agent)
	src := h.b().m.Source("me")
	a, err := src.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	src.Invalidate()
	b, err := src.Token(context.Background())
	if err != nil || a == b || h.refreshes.Load() != 1 {
		t.Fatalf("after Invalidate: same token %v, refreshes %d, err %v", a == b, h.refreshes.Load(), err)
	}
}

// Acceptance 7: no issued token appears in clear in the database files or
// the logs.
func TestNoTokenInClear(t *testing.T) {
	h := newHarness(t, nil)
	ctx := context.Background()
	h.connect("me", agent)
	h.connect("support", agent)
	for i := 0; i < 5; i++ {
		h.clock.Advance(2 * time.Hour)
		if _, err := h.b().m.Source("me").Token(ctx); err != nil {
			t.Fatal(err)
		}
	}
	h.b().m.Client.ClientSecret = "wrong"
	h.clock.Advance(2 * time.Hour)
	h.b().m.Source("support").Token(ctx) // a failure path logs too

	h.mu.Lock()
	issued := append([]string(nil), h.issued...)
	h.mu.Unlock()
	if len(issued) < 12 {
		t.Fatalf("only %d tokens captured", len(issued))
	}
	var blobs [][]byte
	for _, suffix := range []string{"", "-wal", "-shm"} {
		b, err := os.ReadFile(filepath.Join(h.dir, store.FileName+suffix))
		if err == nil {
			blobs = append(blobs, b)
		}
	}
	if len(blobs) < 2 {
		t.Fatalf("expected the database and its WAL, found %d files", len(blobs))
	}
	blobs = append(blobs, h.logs.Bytes())
	for _, tok := range issued {
		if tok == "" {
			continue
		}
		for i, b := range blobs {
			if bytes.Contains(b, []byte(tok)) {
				t.Fatalf("a token appears in clear in file %d", i)
			}
			// The random part alone must not leak either.
			if parts := strings.Split(tok, "."); len(parts) == 3 && bytes.Contains(b, []byte(parts[1])) {
				t.Fatalf("a token's body appears in clear in file %d", i)
			}
		}
	}
}
