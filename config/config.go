// Package config defines bridge.yaml: its schema, defaults, strict loading
// and validation. Parsing is pure: no logging, no globals; every problem in a
// file is reported at once, each with line:col, the field path and a hint.
package config

import (
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"
)

// Config is a whole bridge.yaml.
type Config struct {
	// PublicURL is the bridge's externally reachable base URL (the FQDN). The
	// OAuth redirect URI is PublicURL + "/oauth/callback".
	PublicURL string `yaml:"public_url"`
	// Listen is the public listener: OAuth callback, health, send endpoint.
	Listen string `yaml:"listen"`
	Admin  Admin  `yaml:"admin"`
	State  string `yaml:"state_dir"`
	// StateBudget bounds the bytes of event bodies kept in state_dir: past
	// it, the bodies of delivered events go first, oldest delivery first;
	// their rows and ids stay until the webhook's retention. Bodies still
	// to be delivered or replayed are never dropped. 0 drops a delivered
	// body at the next housekeeping pass.
	StateBudget int64 `yaml:"state_budget_bytes"`
	// MemoryBudget bounds the bytes of mail the channel runners hold in
	// memory at once, all channels together (delta pages, attachments, the
	// events built from them): a heavy page waits for bytes, light ones
	// pass. One message heavier than the budget runs alone. Read at start.
	MemoryBudget int64 `yaml:"memory_budget_bytes"`
	// Store selects where the state lives: Store.Database unset keeps it
	// in the SQLite file in state_dir (the default).
	Store Store     `yaml:"state"`
	Log   Log       `yaml:"log"`
	MS    Microsoft `yaml:"microsoft"`
	// Webhooks are the helpdesk endpoints events are delivered to.
	Webhooks []Webhook `yaml:"webhooks"`
	// Channels are the mailbox folders to sync.
	Channels []Channel `yaml:"channels"`

	// warnings are the non-fatal findings of Parse (see Warnings).
	warnings Errors
}

// Warnings returns what Parse or Validate found questionable but valid (an
// admin listener without a token, archive mode off, a secret written in
// the file), one line each in the same file:line:col: path: message form
// as errors.
func (c *Config) Warnings() []string {
	out := make([]string, len(c.warnings))
	for i, w := range c.warnings {
		out[i] = w.Error()
	}
	return out
}

// Admin is the private listener: status page, admin API, metrics.
// Store is the state database. The token-encryption and link keys stay in
// state_dir (or the environment) whichever database holds the state.
type Store struct {
	// Database, when set, is a postgres:// (or postgresql://) URL: the state
	// lives in that PostgreSQL database, which several daemons may share.
	// A secret field: the URL may carry a password, so ${VAR} and file:
	// references work here.
	Database Secret `yaml:"database"`
	// LeaseTTL is how long a daemon's hold on a channel lasts without a
	// renewal (PostgreSQL only): a daemon that stops renewing (killed,
	// paused, cut off) loses its channels to the others after at most
	// this long. Renewals and heartbeats run every third of it.
	LeaseTTL time.Duration `yaml:"lease_ttl"`
}

// DefaultLeaseTTL is state.lease_ttl's default; MinLeaseTTL its floor.
const (
	DefaultLeaseTTL = 30 * time.Second
	MinLeaseTTL     = time.Second
)

type Admin struct {
	Listen string `yaml:"listen"`
	// Token protects the admin listener; empty means loopback-only access.
	Token Secret `yaml:"token"`
	// Hosts are further names (besides loopback addresses, localhost and
	// the listen host) a token-less admin listener answers to; any other
	// Host header is refused, so a DNS-rebinding page cannot use it.
	Hosts []string `yaml:"hosts"`
	// TrustedProxies are IP addresses or CIDR prefixes of reverse proxies
	// in front of the admin listener: only their X-Forwarded-For (the
	// client of sign-in logs and limits) and X-Forwarded-Proto count.
	TrustedProxies []string `yaml:"trusted_proxies"`
}

// TrustedPrefixes is TrustedProxies parsed (a bare address is a /32 or
// /128); entries that do not parse are left out (Validate reports them).
func (a Admin) TrustedPrefixes() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range a.TrustedProxies {
		if p, err := parseProxy(s); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// parseProxy reads an IP address or a CIDR prefix without host bits.
func parseProxy(s string) (netip.Prefix, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		if a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("%q has a zone", s)
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an IP address or CIDR prefix", s)
	}
	if p != p.Masked() {
		return netip.Prefix{}, fmt.Errorf("%q has bits set after the prefix length: did you mean %s?", s, p.Masked())
	}
	return p, nil
}

// Log configures log/slog.
type Log struct {
	Level  string `yaml:"level"`  // debug | info | warn | error
	Format string `yaml:"format"` // text | json
}

// Microsoft is the Entra ID app registration and the endpoints to reach.
type Microsoft struct {
	ClientID     string `yaml:"client_id"`
	ClientSecret Secret `yaml:"client_secret"`
	// Tenant is a tenant GUID or verified domain (single tenant), or
	// "organizations" (multitenant app).
	Tenant string `yaml:"tenant"`
	// LoginURL and GraphURL default to the global cloud; the simulator and
	// national clouds override them.
	LoginURL string `yaml:"login_url"`
	GraphURL string `yaml:"graph_url"`
	// Prompt is sent to /authorize: select_account (default), login,
	// consent, or none.
	Prompt string `yaml:"prompt"`
	// RefreshMargin: access tokens are refreshed this long before expiry.
	RefreshMargin time.Duration `yaml:"refresh_margin"`
}

// Webhook is one helpdesk endpoint.
type Webhook struct {
	Name string `yaml:"name"`
	URL  string `yaml:"url"`
	// Secrets sign every request (Standard Webhooks, whsec_...). YAML takes
	// one string (`secret:`) or a list during rotation (`secrets:`).
	Secret  Secret   `yaml:"secret"`
	Secrets []Secret `yaml:"secrets"`
	// Headers are static extra request headers, e.g. an API token.
	Headers map[string]Secret `yaml:"headers"`
	// Types limits the event types sent here; empty means all.
	Types []string `yaml:"types"`
	// Timeout bounds one attempt.
	Timeout time.Duration `yaml:"timeout"`
	// MaxAttempts and MaxAge end retrying: the row becomes a dead letter.
	MaxAttempts int           `yaml:"max_attempts"`
	MaxAge      time.Duration `yaml:"max_age"`
	// Schedule overrides the retry delays: Schedule[0] is the wait after the
	// first attempt (which is immediate) before the first retry, and so on;
	// the last repeats.
	Schedule []time.Duration `yaml:"schedule"`
	// Concurrency is how many deliveries may be in flight; 1 keeps order.
	Concurrency int `yaml:"concurrency"`
	// Template renders the request body from the event instead of sending
	// the native event JSON (for posting straight into a ticket API).
	Template *Template `yaml:"template"`
	// Retention: delivered outbox rows are removed after this long.
	Retention time.Duration `yaml:"retention"`
	// Recipe, when set, delivers each event into the helpdesk's REST API
	// in templated steps (lookup, create or reply…) instead of one signed
	// POST; url is then the API's base URL and no secret is needed.
	Recipe *Recipe `yaml:"recipe"`
}

// Template is a Go text/template for a request body.
type Template struct {
	Body        string `yaml:"body"`
	File        string `yaml:"file"`
	ContentType string `yaml:"content_type"`
}

// AllSecrets is the webhook's signing secrets, Secret first.
func (w Webhook) AllSecrets() []Secret {
	var out []Secret
	if !w.Secret.IsZero() {
		out = append(out, w.Secret)
	}
	return append(out, w.Secrets...)
}

// Channel is one mailbox folder synced into one destination group.
type Channel struct {
	Name    string  `yaml:"name"`
	Mailbox Mailbox `yaml:"mailbox"`
	// Folder is a path such as Inbox/Support; empty means the inbox.
	Folder string `yaml:"folder"`
	// Group is the helpdesk's destination group, carried in every event.
	Group string `yaml:"group"`
	// AfterImport says what happens to mail once the helpdesk acknowledged it.
	AfterImport AfterImport `yaml:"after_import"`
	// PollInterval is how often the folder is synced (with jitter).
	PollInterval time.Duration `yaml:"poll_interval"`
	Archive      Archive       `yaml:"archive"`
	// PollFast is the poll interval right after the channel saw new mail;
	// it grows back to PollInterval while the folder stays idle (adaptive
	// polling, bridge/notify.PollPolicy). Equal to PollInterval: fixed.
	PollFast time.Duration `yaml:"poll_fast"`
	// ChangeNotifications: auto subscribes to Graph change notifications
	// for a user mailbox (Graph offers none for shared mailboxes under
	// delegated permissions), so new mail wakes the runner at once; off
	// relies on polling alone.
	ChangeNotifications string `yaml:"change_notifications"`
	// Webhook names the endpoint this channel's events go to.
	Webhook string `yaml:"webhook"`
	// RawMIME adds the original message bytes to each event.
	RawMIME bool `yaml:"raw_mime"`
	// MaxAttachmentBytes: attachments larger than this are listed with
	// included: false instead of being inlined.
	MaxAttachmentBytes int64 `yaml:"max_attachment_bytes"`
	// Attachments says how attachment content travels: inline (default;
	// content_base64 up to max_attachment_bytes, a signed link above it)
	// or link (never inline: every attachment by its signed link).
	Attachments string `yaml:"attachments"`
	// AttachmentLinkTTL is how long an attachment link works after the
	// event was built.
	AttachmentLinkTTL time.Duration `yaml:"attachment_link_ttl"`
	// Send, when present and enabled, lets the helpdesk send replies through
	// the mailbox (POST /v1/channels/{name}/messages on the public listener).
	Send *ChannelSend `yaml:"send"`
}

// ChannelSend enables a channel's send endpoint. Requests are signed
// (Standard Webhooks) with one of the secrets; a section without
// `enabled:` is enabled.
type ChannelSend struct {
	Enabled bool     `yaml:"enabled"`
	Secret  Secret   `yaml:"secret"`
	Secrets []Secret `yaml:"secrets"`
}

// AllSecrets is the send endpoint's accepted secrets, Secret first.
func (s *ChannelSend) AllSecrets() []Secret {
	if s == nil {
		return nil
	}
	var out []Secret
	if !s.Secret.IsZero() {
		out = append(out, s.Secret)
	}
	return append(out, s.Secrets...)
}

// SendEnabled reports whether the channel accepts send requests.
func (ch Channel) SendEnabled() bool {
	return ch.Send != nil && ch.Send.Enabled && len(ch.Send.AllSecrets()) > 0
}

// Mailbox says whose mailbox a channel reads.
type Mailbox struct {
	Type    string `yaml:"type"` // user | shared
	Address string `yaml:"address"`
}

// Channel change_notifications modes.
const (
	NotificationsAuto = "auto"
	NotificationsOff  = "off"
)

// Channel attachments modes.
const (
	AttachmentsInline = "inline"
	AttachmentsLink   = "link"
)

// Mailbox types.
const (
	MailboxUser   = "user"
	MailboxShared = "shared"
)

// AfterImport is keep, mark_read, delete (move to Deleted Items) or
// move:<folder path>.
type AfterImport struct {
	Action string // keep | mark_read | delete | move
	Folder string // for move
}

// After-import actions.
const (
	ActionKeep     = "keep"
	ActionMarkRead = "mark_read"
	ActionDelete   = "delete"
	ActionMove     = "move"
)

// String renders the YAML form.
func (a AfterImport) String() string {
	if a.Action == ActionMove {
		return "move:" + a.Folder
	}
	return a.Action
}

// Archive is how mail already in the folder is treated.
type Archive struct {
	Mode   string     `yaml:"mode"`   // auto | on | off
	Before *time.Time `yaml:"before"` // the cut-off, for mode on
	State  string     `yaml:"state"`  // ticket state for archived mail
}

// Archive modes.
const (
	ArchiveAuto = "auto"
	ArchiveOn   = "on"
	ArchiveOff  = "off"
)

// Defaults.
const (
	DefaultListen             = "127.0.0.1:8365"
	DefaultAdminListen        = "127.0.0.1:8366"
	DefaultStateDir           = "./data"
	DefaultStateBudget        = 256 << 20
	DefaultMemoryBudget       = 96 << 20
	DefaultLoginURL           = "https://login.microsoftonline.com"
	DefaultGraphURL           = "https://graph.microsoft.com"
	DefaultPrompt             = "select_account"
	DefaultRefreshMargin      = 5 * time.Minute
	DefaultPollInterval       = time.Minute
	DefaultArchiveState       = "closed"
	DefaultWebhookTimeout     = 30 * time.Second
	DefaultMaxAttempts        = 12
	DefaultMaxAge             = 72 * time.Hour
	DefaultConcurrency        = 1
	DefaultRetention          = 7 * 24 * time.Hour
	DefaultMaxAttachmentBytes = 10 << 20
	// DefaultAttachmentLinkTTL is how long an attachment link works.
	DefaultAttachmentLinkTTL = 7 * 24 * time.Hour
	// MinAttachmentLinkTTL and MaxAttachmentLinkTTL bound
	// attachment_link_ttl.
	MinAttachmentLinkTTL = time.Minute
	MaxAttachmentLinkTTL = 90 * 24 * time.Hour
	DefaultLogLevel      = "info"
	DefaultLogFormat     = "text"
	DefaultAfterImport   = ActionKeep
	DefaultArchiveMode   = ArchiveAuto
	DefaultContentType   = "application/json"
	// MinPollInterval is the shortest poll_interval (and poll_fast) accepted.
	MinPollInterval = 10 * time.Second
	// DefaultPollFast is the adaptive poll interval right after activity.
	DefaultPollFast = 10 * time.Second
)

// Secret is a configuration value that must never be printed: a client
// secret, a webhook secret, an admin token. In YAML it is a literal, a
// ${VAR} reference or file:/path; fmt and slog print it as [redacted].
type Secret struct {
	value string
	// Ref is where the value came from (${VAR}, file:/path or "literal"),
	// safe to show in errors and summaries.
	Ref string
}

// NewSecret wraps a literal value.
func NewSecret(v string) Secret { return Secret{value: v, Ref: "literal"} }

// Value is the secret itself.
func (s Secret) Value() string { return s.value }

// IsZero reports whether the secret is unset.
func (s Secret) IsZero() bool { return s.value == "" }

// String redacts.
func (s Secret) String() string {
	if s.value == "" {
		return ""
	}
	return "[redacted]"
}

// GoString redacts for %#v too.
func (s Secret) GoString() string { return s.String() }

// LogValue redacts in log/slog.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// RedirectURI is the OAuth redirect URI to register in Entra ID.
func (c *Config) RedirectURI() string { return trimSlash(c.PublicURL) + "/oauth/callback" }

// PublicHTTPS reports whether public_url is https: the bridge is served
// behind TLS, so the status page's cookies are Secure.
func (c *Config) PublicHTTPS() bool {
	return len(c.PublicURL) >= 6 && strings.EqualFold(c.PublicURL[:6], "https:")
}

func trimSlash(s string) string {
	for len(s) > 0 && s[len(s)-1] == '/' {
		s = s[:len(s)-1]
	}
	return s
}
