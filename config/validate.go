package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"regexp"
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
