package config

import (
	"encoding/base64"
	"fmt"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/m365bridge/m365bridge/webhooks"
)

// Validate checks a Config built in Go (call SetDefaults first) with the
// same rules Parse applies to a file, returning an Errors (without line
// numbers) or nil. Template files are read from the file system. Its
// warnings become available through Warnings.
func (c *Config) Validate() error {
	v := &validator{at: func(string) (int, int) { return 0, 0 }, env: OSEnv{}}
	v.config(c)
	c.warnings = v.warns
	if len(v.errs) > 0 {
		return v.errs
	}
	return nil
}

// validator applies the rules, collecting every error and warning. at gives
// the line:col of a field path.
type validator struct {
	file  string
	env   Env
	at    func(path string) (line, col int)
	errs  Errors
	warns Errors
}

func (v *validator) newError(path, msg, hint string) *Error {
	line, col := v.at(path)
	return &Error{File: v.file, Line: line, Col: col, Path: path, Msg: msg, Hint: hint}
}

func (v *validator) fail(path, msg, hint string) {
	if len(v.errs) <= maxErrors {
		v.errs = append(v.errs, v.newError(path, msg, hint))
	}
}

func (v *validator) warn(path, msg string) { v.warns = append(v.warns, v.newError(path, msg, "")) }

var (
	namePattern   = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	guidPattern   = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	domainPattern = regexp.MustCompile(`^(?i:[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$`)
	headerPattern = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
)

func (v *validator) config(c *Config) {
	defer v.demoSecrets(c)
	v.publicURL(c.PublicURL)
	v.listen("listen", c.Listen)
	v.listen("admin.listen", c.Admin.Listen)
	if c.Listen != "" && c.Listen == c.Admin.Listen && !strings.HasSuffix(c.Listen, ":0") {
		v.fail("admin.listen", "the admin listener has the same address as listen", "give the admin listener its own port, such as 127.0.0.1:8366")
	}
	if c.Admin.Token.IsZero() {
		msg := "no admin token: the admin listener accepts loopback clients only"
		if host, _, err := net.SplitHostPort(c.Admin.Listen); err == nil && !isLoopback(host) {
			msg = "no admin token while admin.listen is not loopback: only loopback clients will be accepted; set admin.token"
		}
		v.warn("admin.token", msg)
	} else {
		v.literalSecret("admin.token", c.Admin.Token)
	}
	v.adminHosts(c)
	v.trustedProxies(c.Admin.TrustedProxies)
	if strings.TrimSpace(c.State) == "" {
		v.fail("state_dir", "must not be empty", "name the directory for the database and key, such as ./data")
	}
	v.database(c.Store.Database)
	if c.Store.LeaseTTL < MinLeaseTTL {
		v.fail("state.lease_ttl", fmt.Sprintf("must be at least %s", MinLeaseTTL), "write a duration such as 30s (the default); a daemon that stops renewing loses its channels after this long")
	}
	if c.StateBudget < 0 {
		v.fail("state_budget_bytes", "must not be negative", "give the bytes of delivered event bodies to keep, such as 268435456 (256 MiB), or 0 to drop them once delivered")
	}
	if c.MemoryBudget < 1<<20 {
		v.fail("memory_budget_bytes", "must be at least 1048576 (1 MiB)", "give the bytes of mail the runners may hold in memory at once, such as 100663296 (96 MiB), or leave it out for that default")
	}
	v.oneOf("log.level", c.Log.Level, "debug", "info", "warn", "error")
	v.oneOf("log.format", c.Log.Format, "text", "json")
	v.microsoft(&c.MS)
	hooks, names := v.webhooks(c)
	v.channels(c, hooks, names)
}

// webhooks checks each webhook and that names are unique; it returns the
// index of each name and the names in order.
func (v *validator) webhooks(c *Config) (map[string]int, []string) {
	index := map[string]int{}
	var names []string
	if len(c.Webhooks) == 0 {
		v.fail("webhooks", "at least one webhook is required", "add a webhooks: entry with name, url and secret")
	}
	for i := range c.Webhooks {
		w := &c.Webhooks[i]
		p := fmt.Sprintf("webhooks[%d]", i)
		v.webhook(p, w)
		if w.Name == "" {
			continue
		}
		if first, dup := index[w.Name]; dup {
			v.fail(p+".name", fmt.Sprintf("duplicate webhook name %q", w.Name), fmt.Sprintf("each webhook needs a unique name; webhooks[%d] has it already", first))
			continue
		}
		index[w.Name] = i
		names = append(names, w.Name)
	}
	return index, names
}

// channels checks each channel, unique names and folders, and the webhook
// each one points at.
func (v *validator) channels(c *Config, hooks map[string]int, names []string) {
	if len(c.Channels) == 0 {
		v.fail("channels", "at least one channel is required", "add a channels: entry with name, mailbox and group")
	}
	channels := map[string]int{}
	folders := map[string]int{}
	used := map[string]bool{}
	for i := range c.Channels {
		ch := &c.Channels[i]
		p := fmt.Sprintf("channels[%d]", i)
		v.channel(p, ch)
		if ch.Name != "" {
			if first, dup := channels[ch.Name]; dup {
				v.fail(p+".name", fmt.Sprintf("duplicate channel name %q", ch.Name), fmt.Sprintf("each channel needs a unique name; channels[%d] has it already", first))
			} else {
				channels[ch.Name] = i
			}
		}
		switch {
		case ch.Webhook == "" && len(c.Webhooks) > 1:
			v.fail(p+".webhook", "no webhook given and several are defined", "name one of "+quoteList(names))
		case ch.Webhook == "" && len(c.Webhooks) == 1 && c.Webhooks[0].Name != "":
			v.fail(p+".webhook", "no webhook given", "call SetDefaults to use the only one, "+quoteList(names))
		case ch.Webhook != "" && len(c.Webhooks) > 0:
			if _, ok := hooks[ch.Webhook]; !ok {
				hint := "defined webhooks: " + quoteList(names)
				if s := suggest(ch.Webhook, names); s != "" {
					hint = fmt.Sprintf("did you mean %q? defined webhooks: %s", s, quoteList(names))
				}
				v.fail(p+".webhook", fmt.Sprintf("webhook %q is not defined", ch.Webhook), hint)
			}
		}
		used[ch.Webhook] = true
		if j, ok := hooks[ch.Webhook]; ok {
			v.mailTypes(fmt.Sprintf("webhooks[%d].types", j), ch, c.Webhooks[j].Types)
		}
		if ch.Mailbox.Type == MailboxShared && ch.Mailbox.Address != "" {
			key := strings.ToLower(ch.Mailbox.Address) + "\x00" + strings.ToLower(strings.Trim(ch.Folder, "/"))
			if first, dup := folders[key]; dup {
				v.fail(p+".folder", fmt.Sprintf("channels[%d] already syncs this folder of %s", first, ch.Mailbox.Address), "each mailbox folder can feed one channel; every message would be delivered twice")
			} else {
				folders[key] = i
			}
		}
	}
	for i, w := range c.Webhooks {
		if w.Name != "" && !used[w.Name] && len(c.Channels) > 0 {
			v.warn(fmt.Sprintf("webhooks[%d].name", i), fmt.Sprintf("webhook %q is not used by any channel", w.Name))
		}
	}
}

// mailTypes refuses a webhook type filter that leaves out a mail event type
// the channel produces: mail.received always, mail.archived unless the
// archive mode is off. Every mail becomes an event (DESIGN.md invariant
// 8); one that no webhook takes would never be delivered, so it could
// neither be acknowledged nor leave the mailbox, and nobody would hear of
// it. Other types (channel.*, mail.sent, …) may be filtered freely.
func (v *validator) mailTypes(path string, ch *Channel, types []string) {
	mode := ch.Archive.Mode
	if mode == "" {
		mode = DefaultArchiveMode
	}
	produced := []string{webhooks.TypeMailReceived}
	if mode != ArchiveOff {
		produced = append(produced, webhooks.TypeMailArchived)
	}
	var missing []string
	for _, typ := range produced {
		if !webhooks.TypeFilterTakes(types, typ) {
			missing = append(missing, typ)
		}
	}
	if len(missing) == 0 {
		return
	}
	v.fail(path, fmt.Sprintf("types [%s] does not take %s, which channel %q (archive.mode %s) produces", strings.Join(types, ", "), strings.Join(missing, " and "), ch.Name, mode),
		fmt.Sprintf("add %s (or mail.*) to types: every mail becomes an event, and a mail no webhook takes would stay in the mailbox undelivered, unacknowledged and unreported; or give channel %q another webhook", strings.Join(missing, " and "), ch.Name))
}

func (v *validator) publicURL(s string) {
	const path = "public_url"
	if s == "" {
		v.fail(path, "required, but not set", "the bridge's external base URL, such as https://bridge.example.com; the redirect URI is public_url + /oauth/callback")
		return
	}
	u, err := url.Parse(s)
	switch {
	case err != nil || !u.IsAbs() || u.Host == "" || u.Opaque != "":
		v.fail(path, fmt.Sprintf("%q is not an absolute URL", s), "write it as https://bridge.example.com")
	case u.Scheme != "https" && u.Scheme != "http":
		v.fail(path, fmt.Sprintf("scheme %q is not https", u.Scheme), "write it as https://bridge.example.com")
	case u.Scheme == "http" && !isLoopback(u.Hostname()):
		v.fail(path, fmt.Sprintf("%q must use https: its host is not loopback", s), "Entra ID accepts http redirect URIs only for localhost; serve the bridge behind TLS")
	case u.User != nil:
		v.fail(path, "must not contain a user name or password", "")
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(s, "#"):
		v.fail(path, "must not have a query or fragment", "write only scheme, host and an optional path prefix")
	}
}

func (v *validator) listen(path, addr string) {
	if addr == "" {
		v.fail(path, "the listen address is empty", "write host:port, such as 127.0.0.1:8365")
		return
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		v.fail(path, fmt.Sprintf("%q is not host:port", addr), "write host:port, such as 127.0.0.1:8365 (or [::1]:8365)")
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		v.fail(path, fmt.Sprintf("port %q is not a number from 0 to 65535", port), "write host:port, such as 127.0.0.1:8365")
	}
}

// hostPattern is a DNS name as a browser puts it in the Host header:
// letters, digits and hyphens in dot-separated labels, one label allowed.
var hostPattern = regexp.MustCompile(`^(?i:[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.(?i:[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?))*\.?$`)

func (v *validator) adminHosts(c *Config) {
	for i, h := range c.Admin.Hosts {
		p := fmt.Sprintf("admin.hosts[%d]", i)
		if _, err := netip.ParseAddr(strings.Trim(h, "[]")); err == nil {
			continue
		}
		if len(h) > 253 || !hostPattern.MatchString(h) {
			v.fail(p, fmt.Sprintf("%q is not a host name", h), "write the bare name the browser uses for the admin listener, such as bridge-admin.internal: no scheme, port, path or wildcard")
		}
	}
	if len(c.Admin.Hosts) > 0 && !c.Admin.Token.IsZero() {
		v.warn("admin.hosts", "has no effect while admin.token is set: only a token-less admin listener checks the Host header")
	}
}

func (v *validator) trustedProxies(list []string) {
	for i, s := range list {
		p := fmt.Sprintf("admin.trusted_proxies[%d]", i)
		pr, err := parseProxy(s)
		if err != nil {
			v.fail(p, err.Error(), "write the address of a reverse proxy in front of the admin listener, such as 127.0.0.1, or a CIDR prefix such as 10.0.0.0/8")
			continue
		}
		if pr.Bits() == 0 {
			v.warn(p, fmt.Sprintf("%s trusts every client to name its own address in X-Forwarded-For: sign-in logs and limits then believe whatever a client claims", s))
		}
	}
}

func (v *validator) microsoft(ms *Microsoft) {
	switch {
	case ms.ClientID == "":
		v.fail("microsoft.client_id", "required, but not set", "the Application (client) ID from the app registration's Overview page in Entra ID")
	case !guidPattern.MatchString(ms.ClientID):
		v.fail("microsoft.client_id", "not a GUID", "the Application (client) ID looks like 00000000-0000-0000-0000-000000000000; the value is not shown in case a secret was pasted here")
	}
	if ms.ClientSecret.IsZero() {
		v.fail("microsoft.client_secret", "required, but not set", "create one under Certificates & secrets in the app registration; write client_secret: ${M365_CLIENT_SECRET}")
	} else {
		v.literalSecret("microsoft.client_secret", ms.ClientSecret)
	}
	t := ms.Tenant
	switch {
	case t == "":
		v.fail("microsoft.tenant", "required, but not set", "the Directory (tenant) ID, a verified domain such as contoso.onmicrosoft.com, or organizations for a multitenant app")
	case t == "consumers":
		v.fail("microsoft.tenant", "consumers cannot be used: personal Microsoft accounts cannot hold work mailboxes", "use the tenant ID, a domain, or organizations")
	case t == "organizations" || t == "common" || guidPattern.MatchString(t) || domainPattern.MatchString(t):
	default:
		v.fail("microsoft.tenant", fmt.Sprintf("%q is not a tenant ID, domain or organizations", t), "the Directory (tenant) ID, a verified domain such as contoso.onmicrosoft.com, or organizations")
	}
	v.endpoint("microsoft.login_url", ms.LoginURL)
	v.endpoint("microsoft.graph_url", ms.GraphURL)
	v.oneOf("microsoft.prompt", ms.Prompt, "select_account", "login", "consent", "none")
	if ms.RefreshMargin < 0 || ms.RefreshMargin > 30*time.Minute {
		v.fail("microsoft.refresh_margin", fmt.Sprintf("refresh_margin %s is out of range", ms.RefreshMargin), "access tokens live about an hour; use 0 to 30m (default 5m)")
	}
}

// endpoint checks an outbound base URL: absolute, https unless loopback.
func (v *validator) endpoint(path, s string) {
	u, err := url.Parse(s)
	switch {
	case s == "":
		v.fail(path, "the URL is empty", "remove the line to use the default")
	case err != nil || !u.IsAbs() || u.Host == "" || u.Opaque != "":
		v.fail(path, fmt.Sprintf("%q is not an absolute URL", s), "write it as https://host")
	case u.Scheme != "https" && !(u.Scheme == "http" && isLoopback(u.Hostname())):
		v.fail(path, fmt.Sprintf("%q must use https (http only for a loopback host)", s), "tokens travel over this connection")
	case u.RawQuery != "" || u.Fragment != "":
		v.fail(path, "the URL must not have a query or fragment", "")
	}
}

func (v *validator) webhook(p string, w *Webhook) {
	v.name(p+".name", w.Name, "webhook")
	u, err := url.Parse(w.URL)
	switch {
	case w.URL == "":
		v.fail(p+".url", "required, but not set", "the helpdesk endpoint events are POSTed to, such as https://helpdesk.example.com/hooks/m365")
	case err != nil || !u.IsAbs() || u.Host == "" || u.Opaque != "" || (u.Scheme != "http" && u.Scheme != "https"):
		v.fail(p+".url", fmt.Sprintf("%q is not an absolute http(s) URL", w.URL), "write it as https://helpdesk.example.com/hooks/m365")
	case u.Scheme == "http" && !isLoopback(u.Hostname()):
		v.warn(p+".url", "events are sent over plain http to a host that is not loopback")
	}
	secrets := w.AllSecrets()
	if len(secrets) == 0 && w.Recipe == nil {
		v.fail(p+".secret", "a signing secret is required", "secret: ${HELPDESK_WEBHOOK_SECRET}, a whsec_ value shared with the receiver")
	}
	if !w.Secret.IsZero() {
		v.whsec(p+".secret", w.Secret)
	}
	for i, s := range w.Secrets {
		v.whsec(fmt.Sprintf("%s.secrets[%d]", p, i), s)
	}
	headers := make([]string, 0, len(w.Headers))
	for name := range w.Headers {
		headers = append(headers, name)
	}
	sort.Strings(headers)
	for _, name := range headers {
		val := w.Headers[name]
		hp := p + ".headers." + name
		lower := strings.ToLower(name)
		switch {
		case !headerPattern.MatchString(name):
			v.fail(hp, fmt.Sprintf("%q is not a valid header name", name), "letters, digits and - such as X-Api-Key")
		case strings.HasPrefix(lower, "webhook-") || lower == "content-length" || lower == "host":
			v.fail(hp, fmt.Sprintf("header %s is set by the bridge", name), "remove it")
		case lower == "content-type":
			v.fail(hp, "Content-Type is set by the bridge", "with a template, set template.content_type")
		case val.IsZero():
			v.fail(hp, "the header value is empty", "")
		case strings.ContainsAny(val.Value(), "\r\n"):
			v.fail(hp, "the header value contains a line break", "")
		}
	}
	for i, t := range w.Types {
		if strings.TrimSpace(t) == "" || strings.ContainsAny(t, " \t") {
			v.fail(fmt.Sprintf("%s.types[%d]", p, i), fmt.Sprintf("%q is not an event type", t), "such as mail.received or mail.archived")
		}
	}
	v.positive(p+".timeout", w.Timeout)
	v.positive(p+".max_age", w.MaxAge)
	v.positive(p+".retention", w.Retention)
	for i, d := range w.Schedule {
		if d <= 0 {
			v.fail(fmt.Sprintf("%s.schedule[%d]", p, i), "a retry delay must be more than zero",
				"the first attempt is always immediate; schedule lists the waits before each retry, such as [5s, 5m, 30m]")
		}
	}
	if w.MaxAttempts < 1 {
		v.fail(p+".max_attempts", fmt.Sprintf("max_attempts must be at least 1, not %d", w.MaxAttempts), fmt.Sprintf("default %d", DefaultMaxAttempts))
	}
	if w.Concurrency < 1 {
		v.fail(p+".concurrency", fmt.Sprintf("concurrency must be at least 1, not %d", w.Concurrency), "1 keeps events in order")
	}
	if w.Template != nil {
		v.template(p+".template", w.Template)
	}
	if w.Recipe != nil {
		if w.Template != nil {
			v.fail(p+".recipe", "a webhook has either a template or a recipe", "a recipe's steps carry their own bodies: remove template")
		}
		v.recipe(p+".recipe", w.Recipe)
		if w.Concurrency > 1 {
			v.warn(p+".concurrency", "a recipe with concurrency above 1 may deliver a reply before the mail it answers, which then opens a ticket of its own; keep 1")
		}
	}
}

// whsec checks a Standard Webhooks secret without ever printing it.
func (v *validator) whsec(path string, s Secret) {
	b64, ok := strings.CutPrefix(s.Value(), "whsec_")
	const hint = "a Standard Webhooks secret is whsec_ followed by base64 of 24 to 64 random bytes; make one with: echo whsec_$(openssl rand -base64 32)"
	if !ok {
		v.fail(path, "the secret does not start with whsec_", hint)
		return
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		raw, err = base64.RawStdEncoding.DecodeString(b64)
	}
	switch {
	case err != nil:
		v.fail(path, "the part after whsec_ is not valid base64", hint)
	case len(raw) < 24 || len(raw) > 64:
		v.fail(path, "the secret must decode to 24 to 64 bytes", hint)
	default:
		v.literalSecret(path, s)
	}
}

// literalSecret warns about a secret written into the file itself.
func (v *validator) literalSecret(path string, s Secret) {
	if s.Ref == "literal" {
		v.warn(path, "the secret is written in the file; prefer ${VAR} or file:/path so the file can be shared")
	}
}

func (v *validator) template(p string, t *Template) {
	switch {
	case t.Body != "" && t.File != "":
		v.fail(p, "template has both body and file", "keep one")
		return
	case t.Body == "" && t.File == "":
		v.fail(p, "template needs a body or a file", "body: a text/template inline, or file: path/to/template")
		return
	}
	body := t.Body
	if t.File != "" {
		path := t.File // Parse made it relative to the config file
		b, err := v.env.ReadFile(path)
		if err != nil {
			v.fail(p+".file", fmt.Sprintf("cannot read template file %s: %s", path, reason(err)), "relative paths are relative to the config file's directory")
			return
		}
		body = string(b)
	}
	if _, err := ParseTemplate(body); err != nil {
		v.fail(p, fmt.Sprintf("the template does not parse: %s", strings.TrimPrefix(err.Error(), "template: body:")), "see text/template syntax; the data is the event")
	}
	if strings.TrimSpace(t.ContentType) == "" {
		v.fail(p+".content_type", "must not be empty", "such as application/json")
	}
}

func (v *validator) channel(p string, ch *Channel) {
	v.name(p+".name", ch.Name, "channel")
	m := ch.Mailbox
	switch m.Type {
	case MailboxShared:
		if m.Address == "" {
			v.fail(p+".mailbox.address", "a shared mailbox needs an address", "address: support@contoso.com")
		} else if a, err := mail.ParseAddress(m.Address); err != nil || a.Address != m.Address || a.Name != "" || !strings.Contains(m.Address[strings.LastIndexByte(m.Address, '@')+1:], ".") {
			v.fail(p+".mailbox.address", fmt.Sprintf("%q is not a mail address", m.Address), "write the bare address, such as support@contoso.com")
		}
	case MailboxUser:
		if m.Address != "" {
			v.fail(p+".mailbox.address", "a user mailbox is the signed-in user's own; remove address or use type: shared", "")
		}
	case "":
		v.fail(p+".mailbox.type", "mailbox type is required", "type: user (the account that signs in) or type: shared with an address")
	default:
		v.fail(p+".mailbox.type", fmt.Sprintf("mailbox type %q is not user or shared", m.Type), "type: user (the account that signs in) or type: shared with an address")
	}
	v.folder(p+".folder", ch.Folder, true)
	switch ch.AfterImport.Action {
	case ActionKeep, ActionMarkRead, ActionDelete:
	case ActionMove:
		if strings.TrimSpace(ch.AfterImport.Folder) == "" {
			v.fail(p+".after_import", "move needs a folder path", "write move:Archive/Done")
		} else {
			v.folder(p+".after_import", ch.AfterImport.Folder, false)
		}
	default:
		v.fail(p+".after_import", fmt.Sprintf("unknown after_import action %q", ch.AfterImport.Action), "keep, mark_read, delete or move:<folder path>")
	}
	if ch.PollInterval < MinPollInterval {
		v.fail(p+".poll_interval", fmt.Sprintf("poll_interval %s is shorter than %s", ch.PollInterval, MinPollInterval), "Graph throttles frequent polling; the default is 1m")
	}
	if ch.PollInterval >= MinPollInterval && (ch.PollFast < MinPollInterval || ch.PollFast > ch.PollInterval) {
		v.fail(p+".poll_fast", fmt.Sprintf("poll_fast %s must be between %s and poll_interval (%s)", ch.PollFast, MinPollInterval, ch.PollInterval),
			"poll_fast is the interval right after new mail; it grows back to poll_interval while the folder is idle")
	}
	switch ch.ChangeNotifications {
	case NotificationsAuto, NotificationsOff:
	default:
		v.fail(p+".change_notifications", fmt.Sprintf("unknown change_notifications mode %q", ch.ChangeNotifications), "auto (Graph change notifications for user mailboxes) or off (polling only)")
	}
	if ch.MaxAttachmentBytes < 0 {
		v.fail(p+".max_attachment_bytes", "max_attachment_bytes must not be negative", "0 never inlines attachments")
	}
	switch ch.Attachments {
	case AttachmentsInline, AttachmentsLink:
	default:
		v.fail(p+".attachments", fmt.Sprintf("unknown attachments mode %q", ch.Attachments), "inline (content in the event up to max_attachment_bytes, a link above) or link (every attachment by link)")
	}
	if ch.AttachmentLinkTTL < MinAttachmentLinkTTL || ch.AttachmentLinkTTL > MaxAttachmentLinkTTL {
		v.fail(p+".attachment_link_ttl", fmt.Sprintf("attachment_link_ttl %s is outside %s to %s", ch.AttachmentLinkTTL, MinAttachmentLinkTTL, MaxAttachmentLinkTTL), "how long a receiver may fetch an attachment by its link; the default is 168h (7 days)")
	}
	if s := ch.Send; s != nil {
		if s.Enabled && len(s.AllSecrets()) == 0 {
			v.fail(p+".send.secret", "sending is enabled but no signing secret is set", "secret: ${SUPPORT_SEND_SECRET}, a whsec_ value the helpdesk signs send requests with")
		}
		if !s.Secret.IsZero() {
			v.whsec(p+".send.secret", s.Secret)
		}
		for i, sec := range s.Secrets {
			v.whsec(fmt.Sprintf("%s.send.secrets[%d]", p, i), sec)
		}
	}
	a, ap := ch.Archive, p+".archive"
	switch a.Mode {
	case ArchiveOn:
		if a.Before == nil {
			v.fail(ap+".before", "archive mode on needs before, the cut-off time", "before: 2026-11-01T00:00:00Z; mail received earlier is imported as archive")
		}
	case ArchiveOff:
		if a.Before != nil {
			v.fail(ap+".before", "before has no effect with archive mode off", "remove before, or use mode: on")
		}
		v.warn(ap+".mode", `archive mode is off: mail already in the folder is imported as new tickets, so old mail triggers auto-replies (the seed's "Danger" case)`)
	case ArchiveAuto:
		if a.Before != nil {
			v.warn(ap+".before", "before is not used with archive mode auto (the cut-off is the first sync); use mode: on to set it")
		}
	default:
		v.fail(ap+".mode", fmt.Sprintf("archive mode %q is not auto, on or off", a.Mode), "auto (the safe default), on with before, or off")
	}
	if strings.TrimSpace(a.State) == "" {
		v.fail(ap+".state", "must not be empty", "the ticket state for archived mail, such as closed")
	}
}

// folder checks a mailbox folder path such as Inbox/Support.
func (v *validator) folder(path, f string, emptyOK bool) {
	if f == "" && emptyOK {
		return
	}
	for _, seg := range strings.Split(strings.Trim(f, "/"), "/") {
		if strings.TrimSpace(seg) == "" {
			v.fail(path, fmt.Sprintf("folder path %q has an empty part", f), "write folder names separated by single slashes, such as Inbox/Support")
			return
		}
	}
}

func (v *validator) name(path, name, what string) {
	switch {
	case name == "":
		v.fail(path, fmt.Sprintf("a %s needs a name", what), "a short name used in URLs and logs, such as support")
	case !namePattern.MatchString(name):
		v.fail(path, fmt.Sprintf("%s name %q cannot be used in URLs", what, name), "use 1 to 63 lower-case letters, digits, - and _, starting with a letter or digit")
	}
}

func (v *validator) positive(path string, d time.Duration) {
	if d <= 0 {
		v.fail(path, "the duration must be more than zero", "remove the line to use the default")
	}
}

func (v *validator) oneOf(path, got string, allowed ...string) {
	for _, a := range allowed {
		if got == a {
			return
		}
	}
	hint := "one of " + quoteList(allowed)
	if s := suggest(got, allowed); s != "" {
		hint = fmt.Sprintf("did you mean %q?", s)
	}
	v.fail(path, fmt.Sprintf("%q is not allowed here", got), hint)
}

// isLoopback reports whether host is localhost or a loopback address
// (127.0.0.0/8, ::1).
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// database checks state.database: empty (SQLite in state_dir) or a
// postgres:// URL with a host and a database name.
func (v *validator) database(s Secret) {
	raw := strings.TrimSpace(s.Value())
	if raw == "" {
		return
	}
	const p = "state.database"
	hint := "write postgres://USER:PASSWORD@HOST:5432/DBNAME (put the password in ${VAR} or file:), or leave state.database out for the SQLite file in state_dir"
	if !strings.HasPrefix(raw, "postgres://") && !strings.HasPrefix(raw, "postgresql://") {
		v.fail(p, "must be a postgres:// URL", hint)
		return
	}
	u, err := url.Parse(raw)
	if err != nil {
		v.fail(p, "is not a valid URL", hint) // the text may hold a password: not quoted
		return
	}
	if u.Host == "" && u.Query().Get("host") == "" {
		v.fail(p, "names no host", hint)
	}
	if strings.Trim(u.Path, "/") == "" && u.Query().Get("dbname") == "" {
		v.fail(p, "names no database", hint)
	}
	if _, hasPassword := u.User.Password(); hasPassword {
		v.literalSecret(p, s)
	}
}
