package entra

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/m365bridge/m365bridge/bridge/backoff"
	"github.com/m365bridge/m365bridge/bridge/store"
	"github.com/m365bridge/m365bridge/config"
)

// Manager runs consent, re-authentication and refresh for every configured
// channel over the store. Set the exported fields before first use; then it
// is safe for concurrent use.
type Manager struct {
	Client *Client
	Vault  *store.Vault
	// GraphURL is the Graph host (https://graph.microsoft.com) for the
	// mailbox access probe after consent.
	GraphURL string
	// Channels are the configured channels by name. After first use,
	// change them only through SetChannels.
	Channels map[string]config.Mailbox
	Notifier Notifier
	Log      *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// RefreshMargin: access tokens are refreshed this long before expiry
	// (default 5 minutes).
	RefreshMargin time.Duration
	// AuthTTL is how long a pending authorization is valid (default 10 min).
	AuthTTL time.Duration
	// MaxAttempts bounds the tries of one refresh on temporary failures
	// (default 4); BaseBackoff doubles per try up to MaxBackoff (defaults
	// 500ms and 10s), or Entra's Retry-After when longer (capped at
	// MaxBackoff). After the last try the channel is in state error and the
	// call fails with *UnavailableError; the next call (the runner's next
	// poll) starts over, for as long as the failure lasts.
	MaxAttempts             int
	BaseBackoff, MaxBackoff time.Duration
	// Hook, when set, runs at each refresh stage (HookReceived,
	// HookCommitted); an error aborts the refresh there. Tests use it to
	// simulate a crash.
	Hook func(ctx context.Context, stage string) error
	// OnRefresh, when set, hears the outcome of every refresh of a
	// channel's tokens (metrics): RefreshOK, RefreshFailed (temporary,
	// retried on next use) or RefreshRefused (re-authentication needed).
	// It must not block.
	OnRefresh func(channel, result string)

	mu      sync.Mutex
	sources map[string]*Source
}

// FromConfig builds a Manager for cfg: the client from cfg.MS and the
// redirect URI, the channels, the refresh margin. hc makes every call to
// Entra and Graph; it must have a timeout.
func FromConfig(cfg *config.Config, v *store.Vault, hc *http.Client) *Manager {
	login, graph := cfg.MS.LoginURL, cfg.MS.GraphURL
	if login == "" {
		login = config.DefaultLoginURL
	}
	if graph == "" {
		graph = config.DefaultGraphURL
	}
	prompt := cfg.MS.Prompt
	if prompt == "" {
		prompt = config.DefaultPrompt
	}
	m := &Manager{
		Client: &Client{LoginURL: login, Tenant: cfg.MS.Tenant, ClientID: cfg.MS.ClientID,
			ClientSecret: cfg.MS.ClientSecret.Value(), RedirectURI: cfg.RedirectURI(), Prompt: prompt, HTTP: hc},
		Vault: v, GraphURL: graph, Channels: map[string]config.Mailbox{}, RefreshMargin: cfg.MS.RefreshMargin,
	}
	for _, ch := range cfg.Channels {
		m.Channels[ch.Name] = ch.Mailbox
	}
	return m
}

func (m *Manager) db() *store.DB { return m.Vault.DB() }

// SetChannels replaces the configured channels (a reload). Pending
// authorizations of removed channels fail at the callback as unknown.
func (m *Manager) SetChannels(chs []config.Channel) {
	next := make(map[string]config.Mailbox, len(chs))
	for _, ch := range chs {
		next[ch.Name] = ch.Mailbox
	}
	m.mu.Lock()
	m.Channels = next
	m.mu.Unlock()
}

// mailbox is a configured channel's mailbox.
func (m *Manager) mailbox(channel string) (config.Mailbox, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	mb, ok := m.Channels[channel]
	return mb, ok
}

func (m *Manager) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

func (m *Manager) margin() time.Duration {
	if m.RefreshMargin > 0 {
		return m.RefreshMargin
	}
	return config.DefaultRefreshMargin
}

func (m *Manager) maxAttempts() int {
	if m.MaxAttempts > 0 {
		return m.MaxAttempts
	}
	return 4
}

func (m *Manager) maxBackoff() time.Duration {
	if m.MaxBackoff > 0 {
		return m.MaxBackoff
	}
	return 10 * time.Second
}

// backoff is the wait before try attempt+1: BaseBackoff doubling up to
// MaxBackoff. A longer Retry-After from Entra wins, capped at MaxBackoff.
func (m *Manager) backoff(attempt int) time.Duration {
	base, max := m.BaseBackoff, m.maxBackoff()
	if base <= 0 {
		base = 500 * time.Millisecond
	}
	return backoff.Exponential(base, max, attempt)
}

// Source returns the channel's token source; the same one for every call,
// so that refreshes are single-flight per channel.
func (m *Manager) Source(channel string) *Source {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.sources == nil {
		m.sources = map[string]*Source{}
	}
	s := m.sources[channel]
	if s == nil {
		s = &Source{m: m, channel: channel, flight: make(chan struct{}, 1)}
		m.sources[channel] = s
	}
	return s
}

// ErrUnknownChannel means the name is not a configured channel.
var ErrUnknownChannel = fmt.Errorf("unknown channel")

// StartAuth creates a pending authorization for channel (kind
// store.AuthConnect or store.AuthReauth: random state, single use, expiring
// after AuthTTL, PKCE verifier) and returns the /authorize URL to open. A
// re-authentication of a user mailbox hints the bound account.
func (m *Manager) StartAuth(ctx context.Context, channel, kind string) (string, error) {
	mb, ok := m.mailbox(channel)
	if !ok {
		return "", fmt.Errorf("start authorization: %w %q (see channels: in bridge.yaml)", ErrUnknownChannel, channel)
	}
	state, err := randomState()
	if err != nil {
		return "", fmt.Errorf("start authorization: %w", err)
	}
	ttl := m.AuthTTL
	if ttl <= 0 {
		ttl = 10 * time.Minute
	}
	now := m.now()
	verifier := oauth2.GenerateVerifier()
	if err := m.Vault.CreateAuthRequest(ctx, store.AuthRequest{State: state, Channel: channel, Kind: kind,
		Verifier: verifier, Created: now, Expires: now.Add(ttl)}); err != nil {
		return "", fmt.Errorf("start authorization: %w", err)
	}
	hint := ""
	if kind == store.AuthReauth && mb.Type != config.MailboxShared {
		if st, err := m.db().ChannelState(ctx, channel); err == nil {
			hint = st.Account.UPN
		}
	}
	m.log().Info("authorization started", "channel", channel, "kind", kind, "expires", now.Add(ttl))
	return m.Client.AuthCodeURL(state, verifier, hint), nil
}

func randomState() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
