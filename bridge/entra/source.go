package entra

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/m365bridge/m365bridge/bridge/store"
)

// ErrReauthRequired is matched (errors.Is) by every error that needs an
// operator: the channel was never connected, or Entra refused its grant.
// Runners stop polling the channel until it is (re-)authenticated.
var ErrReauthRequired = errors.New("channel needs (re-)authentication")

// ReauthError says why a channel cannot get a token. It matches
// ErrReauthRequired.
type ReauthError struct {
	Channel string
	State   string // store.ChannelNeedsConsent or store.ChannelReauthRequired
	Code    string // e.g. AADSTS700082
	Reason  string
	Fix     string
}

func (e *ReauthError) Error() string {
	if e.State == store.ChannelNeedsConsent {
		return fmt.Sprintf("channel %s is not connected: run `m365bridge auth %s`", e.Channel, e.Channel)
	}
	s := fmt.Sprintf("channel %s needs re-authentication", e.Channel)
	if e.Code != "" {
		s += " (" + e.Code + ")"
	}
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	return s
}

// Is makes errors.Is(err, ErrReauthRequired) true.
func (e *ReauthError) Is(target error) bool { return target == ErrReauthRequired }

// TokenSource hands out access tokens for one channel. The Graph client
// calls Token before each request and Invalidate on a 401.
type TokenSource interface {
	Token(ctx context.Context) (string, error)
	Invalidate()
}

// Source is a channel's TokenSource; get it from Manager.Source, which
// returns one Source per channel so that refreshes are single-flight.
type Source struct {
	m       *Manager
	channel string
	// flight is a one-slot semaphore: whoever holds it may refresh or
	// rebind this channel's tokens.
	flight chan struct{}

	mu       sync.Mutex
	access   string // cached access token
	expiry   time.Time
	rejected string // the access token Graph answered 401 for
}

var _ TokenSource = (*Source)(nil)

func (s *Source) lock(ctx context.Context) error {
	select {
	case s.flight <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Source) unlock() { <-s.flight }

func (s *Source) cached(now time.Time) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.access != "" && now.Before(s.expiry.Add(-s.m.margin())) {
		return s.access
	}
	return ""
}

func (s *Source) remember(access string, expiry time.Time) {
	s.mu.Lock()
	s.access, s.expiry = access, expiry
	s.mu.Unlock()
}

// Invalidate drops the cached access token; the next Token refreshes even
// if the token's expiry says it is still good (Graph answered 401).
func (s *Source) Invalidate() {
	s.mu.Lock()
	if s.access != "" {
		s.rejected = s.access
	}
	s.access = ""
	s.mu.Unlock()
}

// forget drops the cache without marking the token rejected: new tokens were
// stored by a re-authentication.
func (s *Source) forget() {
	s.mu.Lock()
	s.access, s.rejected = "", ""
	s.mu.Unlock()
}

// Token returns an access token valid for at least the refresh margin. It
// refreshes when needed, at most one refresh at a time per channel (the
// others wait and reuse the result); the rotated refresh token and the new
// access token are committed in one transaction before the access token is
// returned. Temporary failures are retried with bounded backoff; a refused
// grant moves the channel to reauth_required, notifies, and returns a
// *ReauthError, as does every later call until the channel is re-authenticated.
func (s *Source) Token(ctx context.Context) (string, error) {
	if tok := s.cached(s.m.now()); tok != "" {
		return tok, nil
	}
	if err := s.lock(ctx); err != nil {
		return "", err
	}
	defer s.unlock()
	if tok := s.cached(s.m.now()); tok != "" {
		return tok, nil
	}

	st, err := s.m.db().ChannelState(ctx, s.channel)
	if errors.Is(err, store.ErrNoChannel) {
		return "", &ReauthError{Channel: s.channel, State: store.ChannelNeedsConsent}
	}
	if err != nil {
		return "", fmt.Errorf("get token: %w", err)
	}
	switch st.State {
	case store.ChannelNeedsConsent, store.ChannelReauthRequired:
		return "", &ReauthError{Channel: s.channel, State: st.State, Code: st.Code, Reason: st.Reason, Fix: st.Fix}
	}
	toks, err := s.m.Vault.LoadTokens(ctx, s.channel)
	if errors.Is(err, store.ErrNoTokens) {
		return "", &ReauthError{Channel: s.channel, State: store.ChannelNeedsConsent}
	}
	if err != nil {
		return "", fmt.Errorf("get token: %w", err)
	}
	s.mu.Lock()
	rejected := s.rejected
	s.mu.Unlock()
	// A channel in state error refreshes even with a stored token that
	// looks good: the refresh is what proves Entra is back and makes the
	// channel active again.
	if st.State != store.ChannelError && toks.Access != rejected && s.m.now().Before(toks.Expiry.Add(-s.m.margin())) {
		s.remember(toks.Access, toks.Expiry)
		return toks.Access, nil
	}
	return s.refresh(ctx, toks.Refresh)
}

// refresh runs with the flight lock held.
func (s *Source) refresh(ctx context.Context, refreshToken string) (string, error) {
	log := s.m.log().With("channel", s.channel)
	var resp *TokenResponse
	for attempt := 1; ; attempt++ {
		var err error
		resp, err = s.m.Client.Refresh(ctx, refreshToken)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return "", fmt.Errorf("refresh token: %w", ctx.Err())
		}
		if !temporary(err) {
			s.m.refreshed(s.channel, RefreshRefused)
			return "", s.fail(ctx, err)
		}
		if attempt >= s.m.maxAttempts() {
			s.m.refreshed(s.channel, RefreshFailed)
			log.Warn("token refresh failed, will retry on next use", "attempts", attempt, "err", err)
			reason := "token refresh failed: " + err.Error()
			fix := "Nothing if it passes: the bridge keeps retrying at each poll and resumes by itself; check that it can reach " + s.m.Client.login() + "."
			if prev := s.m.setState(ctx, s.channel, store.ChannelError, CodeUnavailable, reason, fix); prev == store.ChannelActive {
				s.m.notifier().Unavailable(context.WithoutCancel(ctx), s.channel, CodeUnavailable, reason, fix)
			}
			return "", &UnavailableError{Channel: s.channel, Err: err}
		}
		d := s.m.backoff(attempt)
		var ae *AuthError
		if errors.As(err, &ae) && ae.RetryAfter > d {
			d = min(ae.RetryAfter, s.m.maxBackoff())
		}
		log.Info("token refresh failed, retrying", "attempt", attempt, "delay", d, "err", err)
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return "", fmt.Errorf("refresh token: %w", ctx.Err())
		}
	}
	if err := s.m.hook(ctx, HookReceived); err != nil {
		return "", err
	}
	recovered := false // the channel was in state error: Entra is back
	err := s.m.db().Tx(ctx, func(tx *sql.Tx) error {
		st, err := s.m.db().ChannelStateTx(ctx, tx, s.channel)
		if err != nil {
			return err
		}
		recovered = st.State == store.ChannelError
		if err := s.m.Vault.SaveTokens(ctx, tx, s.channel, store.Tokens{Access: resp.AccessToken, Refresh: resp.RefreshToken, Expiry: resp.Expiry}); err != nil {
			return err
		}
		return s.m.db().RecordRefresh(ctx, tx, s.channel, resp.Expiry)
	})
	if err != nil {
		return "", fmt.Errorf("refresh token for %s: %w", s.channel, err)
	}
	if err := s.m.hook(ctx, HookCommitted); err != nil {
		return "", err
	}
	s.mu.Lock()
	s.access, s.expiry, s.rejected = resp.AccessToken, resp.Expiry, ""
	s.mu.Unlock()
	s.m.refreshed(s.channel, RefreshOK)
	log.Debug("token refreshed", "expiry", resp.Expiry)
	if recovered {
		log.Info("token refresh works again: channel active")
		s.m.notifier().Available(context.WithoutCancel(ctx), s.channel)
	}
	return resp.AccessToken, nil
}

// fail records a refused grant: reauth_required with guidance, a log line
// and a notification. The stored tokens are kept (a re-auth replaces them).
func (s *Source) fail(ctx context.Context, err error) error {
	g := Guidance{Code: "", Reason: err.Error(), Fix: reauthFix}
	var ae *AuthError
	if errors.As(err, &ae) {
		g = ae.Guidance()
	}
	s.m.log().Error("token refresh refused: channel needs re-authentication",
		"channel", s.channel, "code", g.Code, "reason", g.Reason, "fix", g.Fix)
	s.m.setState(ctx, s.channel, store.ChannelReauthRequired, g.Code, g.Reason, g.Fix)
	s.m.notifier().AuthFailed(ctx, s.channel, g.Code, g.Reason, g.Fix)
	return &ReauthError{Channel: s.channel, State: store.ChannelReauthRequired, Code: g.Code, Reason: g.Reason, Fix: g.Fix}
}

// Notifier hears about channels losing and regaining authorization; the
// bridge turns these into channel.* events. Calls must not block for long.
//
// AuthFailed and AuthRestored are about a grant an operator must renew
// (state reauth_required, then a re-authentication). Unavailable and
// Available are about a passing failure (state error: Entra unavailable or
// unreachable): Unavailable is called once when an active channel enters
// it, Available once when a refresh succeeds again; both transitions are
// read from the store in the transaction that makes them, so a restart
// during the outage repeats neither.
type Notifier interface {
	AuthFailed(ctx context.Context, channel string, code, reason, fix string)
	AuthRestored(ctx context.Context, channel string)
	Unavailable(ctx context.Context, channel string, code, reason, fix string)
	Available(ctx context.Context, channel string)
}

type nopNotifier struct{}

func (nopNotifier) AuthFailed(context.Context, string, string, string, string)  {}
func (nopNotifier) AuthRestored(context.Context, string)                        {}
func (nopNotifier) Unavailable(context.Context, string, string, string, string) {}
func (nopNotifier) Available(context.Context, string)                           {}

// CodeUnavailable is the channel code recorded (and sent in channel.error)
// while token refreshes fail for a reason that may pass.
const CodeUnavailable = "entra_unavailable"

// UnavailableError is a refresh that failed for a reason that may pass
// (Entra answering 5xx, 429 or temporarily_unavailable, a timeout, the
// network) after the bounded retries of one call. The channel is in state
// error; the next call tries again.
type UnavailableError struct {
	Channel string
	Err     error
}

func (e *UnavailableError) Error() string {
	return fmt.Sprintf("refresh token for %s: %v", e.Channel, e.Err)
}

func (e *UnavailableError) Unwrap() error { return e.Err }

// Test hook stages around a refresh.
const (
	HookReceived  = "received"  // the token endpoint answered; nothing stored yet
	HookCommitted = "committed" // stored; the access token not yet returned
)

// Refresh outcomes reported to Manager.OnRefresh.
const (
	RefreshOK      = "ok"
	RefreshFailed  = "failed"
	RefreshRefused = "refused"
)

func (m *Manager) refreshed(channel, result string) {
	if m.OnRefresh != nil {
		m.OnRefresh(channel, result)
	}
}

func (m *Manager) hook(ctx context.Context, stage string) error {
	if m.Hook == nil {
		return nil
	}
	return m.Hook(ctx, stage)
}

// setState records a channel's state and returns the state it replaced
// ("" when it could not be read or recorded).
func (m *Manager) setState(ctx context.Context, channel, state, code, reason, fix string) (prev string) {
	ctx = context.WithoutCancel(ctx) // record the outcome even when the caller gave up
	err := m.db().Tx(ctx, func(tx *sql.Tx) error {
		if st, err := m.db().ChannelStateTx(ctx, tx, channel); err == nil {
			prev = st.State
		} else if !errors.Is(err, store.ErrNoChannel) {
			return err
		}
		return m.db().SetChannelState(ctx, tx, channel, state, code, reason, fix)
	})
	if err != nil {
		m.log().Error("record channel state", "channel", channel, "state", state, "err", err)
		return ""
	}
	return prev
}

func (m *Manager) log() *slog.Logger {
	if m.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return m.Log
}

func (m *Manager) notifier() Notifier {
	if m.Notifier == nil {
		return nopNotifier{}
	}
	return m.Notifier
}
