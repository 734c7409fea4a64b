package config

import (
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse: no input makes Parse panic; every failure is an Errors whose
// entries name the file and say something; every success is a Config with
// its channels and webhooks, that validates again in Go.
//
// Seeds are small on purpose: the fuzzer mutates and minimises whatever it
// is given, and a 10 KB seed (bridge.yaml) left it at a few dozen
// executions a minute. The full sample file is covered by the table tests.
func FuzzParse(f *testing.F) {
	// The smallest configuration Parse accepts, in block and flow style.
	f.Add([]byte("public_url: https://b.example\nmicrosoft: {client_id: 00000000-0000-0000-0000-000000000001, client_secret: ${M365_CLIENT_SECRET}, tenant: contoso.onmicrosoft.com}\nwebhooks: [{name: h, url: 'https://h.example/x', secret: ${HELPDESK_WEBHOOK_SECRET}}]\nchannels: [{name: s, mailbox: {type: user}}]\n"))
	f.Add([]byte("channels:\n  - name: s\n    mailbox:\n      type: shared\n      address: s@contoso.com\n    archive: {mode: on, before: 2026-11-01T00:00:00Z}\n    after_import: move:Inbox/Done\n"))
	f.Add([]byte("webhooks:\n  - name: h\n    url: https://h.example/x\n    secrets: [file:t.tmpl, ${X:-y}]\n    headers: {Authorization: ${T}}\n    template: {file: t.tmpl}\n    schedule: [0s, 5s, 7d]\n"))
	f.Add([]byte("listen: [1\nadmin: {listen: x, tokn: y}\nstate_dir: 3\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		// Inputs over 4 KB are skipped: they reach nothing a small one does
		// not, and each new interesting one costs the fuzzer up to a minute
		// of minimising (go test's -fuzzminimizetime default) in which it
		// executes nothing else.
		if len(data) > 4<<10 {
			t.Skip()
		}
		env := baseEnv()
		env.files[filepath.Join("conf", "t.tmpl")] = "{{.}}"
		c, err := Parse(data, "conf/bridge.yaml", env)
		if err != nil {
			if c != nil {
				t.Fatal("both a Config and an error")
			}
			es, ok := err.(Errors)
			if !ok || len(es) == 0 {
				t.Fatalf("error %T %v is not a non-empty Errors", err, err)
			}
			for _, e := range es {
				if e.File != "conf/bridge.yaml" || e.Msg == "" {
					t.Fatalf("incomplete error %#v", e)
				}
			}
			// The environment's secret values must not leak into errors
			// (unless the input itself spells them out, say as a key).
			for _, s := range []string{clientSecretValue, webhookSecret} {
				if strings.Contains(err.Error(), s) && !strings.Contains(string(data), s) {
					t.Fatalf("a secret in the error text: %v", err)
				}
			}
			return
		}
		if len(c.Channels) == 0 || len(c.Webhooks) == 0 || c.PublicURL == "" {
			t.Fatalf("valid config without channels, webhooks or public_url: %+v", c)
		}
		// A parsed Config passes the same rules when checked again in Go
		// (template files are not on disk, so skip those).
		for _, w := range c.Webhooks {
			if w.Template != nil && w.Template.File != "" {
				return
			}
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse accepted what Validate rejects: %v", err)
		}
	})
}
