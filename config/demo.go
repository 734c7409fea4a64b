package config

import (
	"fmt"
	"net/url"
	"strings"
)

// The demo's secrets: the defaults in the sample bridge.yaml, published
// with the source. Anyone can read them, so they must never protect a real
// tenant, a real helpdesk or a reachable admin listener.
const (
	DemoClientSecret  = "sim-demo-secret"
	DemoWebhookSecret = "whsec_bTM2NWJyaWRnZSBkZW1vIHNlY3JldDogbm90IGZvciBwcm9kdWN0aW9u"
	DemoAdminToken    = "demo-admin-token"
)

// DemoSecret is one field that still holds a published demo secret, and
// the fix.
type DemoSecret struct {
	Path string // e.g. webhooks[0].secret
	Fix  string
}

// DemoSecrets lists the fields whose value is one of the demo's published
// secrets, in file order.
func (c *Config) DemoSecrets() []DemoSecret {
	var out []DemoSecret
	if c.MS.ClientSecret.Value() == DemoClientSecret {
		out = append(out, DemoSecret{"microsoft.client_secret", "set M365_CLIENT_SECRET to the app registration's client secret (Certificates & secrets)"})
	}
	if c.Admin.Token.Value() == DemoAdminToken {
		out = append(out, DemoSecret{"admin.token", "set M365BRIDGE_ADMIN_TOKEN to a long random value, e.g. $(openssl rand -hex 32)"})
	}
	for i, w := range c.Webhooks {
		if w.Secret.Value() == DemoWebhookSecret {
			out = append(out, DemoSecret{fmt.Sprintf("webhooks[%d].secret", i), "set HELPDESK_WEBHOOK_SECRET to a new whsec_ secret shared with the receiver: echo whsec_$(openssl rand -base64 32)"})
		}
		for j, s := range w.Secrets {
			if s.Value() == DemoWebhookSecret {
				out = append(out, DemoSecret{fmt.Sprintf("webhooks[%d].secrets[%d]", i, j), "replace it with a new whsec_ secret shared with the receiver"})
			}
		}
	}
	return out
}

// UsesMicrosoft reports whether login_url or graph_url leave this machine:
// Microsoft's clouds (the defaults, or a national cloud) rather than the
// simulator on a loopback address.
func (c *Config) UsesMicrosoft() bool {
	for _, raw := range []string{c.MS.LoginURL, c.MS.GraphURL} {
		u, err := url.Parse(raw)
		if err != nil || !isLoopback(strings.Trim(u.Hostname(), "[]")) {
			return true
		}
	}
	return false
}

// demoSecrets warns about every demo secret left in a configuration that
// talks to Microsoft; `serve` refuses to start with them (ErrDemoSecrets).
func (v *validator) demoSecrets(c *Config) {
	if !c.UsesMicrosoft() {
		return
	}
	for _, d := range c.DemoSecrets() {
		v.warns = append(v.warns, v.newError(d.Path,
			"still the demo's published secret while microsoft.login_url/graph_url point at Microsoft; `m365bridge serve` refuses to start", d.Fix))
	}
}

// DemoSecretsError is what `serve` returns for a configuration that would
// talk to Microsoft with the demo's published secrets.
func (c *Config) DemoSecretsError() error {
	if !c.UsesMicrosoft() {
		return nil
	}
	ds := c.DemoSecrets()
	if len(ds) == 0 {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "refusing to start: microsoft.login_url/graph_url point at Microsoft (%s), but %d setting(s) still hold the demo's published secrets, which anyone can read:", c.MS.LoginURL, len(ds))
	for _, d := range ds {
		fmt.Fprintf(&b, "\n  %s: %s", d.Path, d.Fix)
	}
	return fmt.Errorf("%s", b.String())
}
