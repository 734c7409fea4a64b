package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseValidAppliesDefaults(t *testing.T) {
	c, err := Parse([]byte(readTestdata(t, "valid.yaml")), "dir/bridge.yaml", baseEnv())
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"listen", c.Listen, DefaultListen},
		{"admin.listen", c.Admin.Listen, DefaultAdminListen},
		{"state_dir relative to the file", c.State, filepath.Join("dir", "data")},
		{"log.level", c.Log.Level, DefaultLogLevel},
		{"log.format", c.Log.Format, DefaultLogFormat},
		{"login_url", c.MS.LoginURL, DefaultLoginURL},
		{"graph_url", c.MS.GraphURL, DefaultGraphURL},
		{"prompt", c.MS.Prompt, DefaultPrompt},
		{"refresh_margin", c.MS.RefreshMargin, DefaultRefreshMargin},
		{"client_secret", c.MS.ClientSecret.Value(), clientSecretValue},
		{"client_secret ref", c.MS.ClientSecret.Ref, "${M365_CLIENT_SECRET}"},
		{"webhook timeout", c.Webhooks[0].Timeout, DefaultWebhookTimeout},
		{"webhook max_attempts", c.Webhooks[0].MaxAttempts, DefaultMaxAttempts},
		{"webhook max_age", c.Webhooks[0].MaxAge, DefaultMaxAge},
		{"webhook concurrency", c.Webhooks[0].Concurrency, DefaultConcurrency},
		{"webhook retention", c.Webhooks[0].Retention, DefaultRetention},
		{"webhook secrets", len(c.Webhooks[0].AllSecrets()), 1},
		{"channel after_import default", c.Channels[0].AfterImport, AfterImport{Action: ActionKeep}},
		{"channel after_import set", c.Channels[1].AfterImport, AfterImport{Action: ActionMarkRead}},
		{"channel poll_interval", c.Channels[0].PollInterval, DefaultPollInterval},
		{"channel poll_fast", c.Channels[0].PollFast, DefaultPollFast},
		{"channel change_notifications", c.Channels[0].ChangeNotifications, NotificationsAuto},
		{"channel archive mode", c.Channels[0].Archive.Mode, ArchiveAuto},
		{"channel archive state", c.Channels[0].Archive.State, DefaultArchiveState},
		{"channel webhook defaults to the only one", c.Channels[0].Webhook, "helpdesk"},
		{"channel max_attachment_bytes", c.Channels[0].MaxAttachmentBytes, int64(DefaultMaxAttachmentBytes)},
		{"channel attachments", c.Channels[0].Attachments, AttachmentsInline},
		{"channel attachment_link_ttl", c.Channels[0].AttachmentLinkTTL, DefaultAttachmentLinkTTL},
		{"redirect URI", c.RedirectURI(), "https://bridge.example.com/oauth/callback"},
	}
	for _, ck := range checks {
		if ck.got != ck.want {
			t.Errorf("%s = %v, want %v", ck.name, ck.got, ck.want)
		}
	}
}

func TestParseValues(t *testing.T) {
	doc := readTestdata(t, "valid.yaml") + `
admin:
  token: file:admin.token
log: {level: debug, format: json}
`
	doc = strings.Replace(doc, "    group: Sales\n", `    group: Sales
    poll_interval: 1d2h
    raw_mime: true
    max_attachment_bytes: 0
    archive:
      mode: on
      before: 2026-11-01T08:30:00+01:00
      state: open
`, 1)
	doc = strings.Replace(doc, "    after_import: mark_read\n", "    after_import:\n      move: Archive/Done\n", 1)
	doc = strings.Replace(doc, "    secret: ${HELPDESK_WEBHOOK_SECRET}\n", `    secret: ${HELPDESK_WEBHOOK_SECRET}
    secrets: ["${OLD_SECRET:-whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw}"]
    headers:
      Authorization: Bearer ${API_TOKEN}
    schedule: [5s, 1m]
    template:
      body: '{"title": {{json .Data.ticket.title}}}'
`, 1)
	env := baseEnv()
	env.vars["API_TOKEN"] = "tok"
	env.files["/etc/m365/admin.token"] = "from-file\n"
	c, err := Parse([]byte(doc), "/etc/m365/bridge.yaml", env)
	if err != nil {
		t.Fatal(err)
	}
	sales := c.Channels[1]
	wantBefore := time.Date(2026, 11, 1, 7, 30, 0, 0, time.UTC)
	w := c.Webhooks[0]
	checks := []struct {
		name      string
		got, want any
	}{
		{"admin token from file, newline trimmed", c.Admin.Token.Value(), "from-file"},
		{"admin token ref", c.Admin.Token.Ref, "file:/etc/m365/admin.token"},
		{"log level", c.Log.Level, "debug"},
		{"log format", c.Log.Format, "json"},
		{"poll_interval with days", sales.PollInterval, 26 * time.Hour},
		{"raw_mime", sales.RawMIME, true},
		{"explicit zero kept", sales.MaxAttachmentBytes, int64(0)},
		{"archive before", sales.Archive.Before != nil && sales.Archive.Before.Equal(wantBefore), true},
		{"archive state", sales.Archive.State, "open"},
		{"after_import move (mapping form)", sales.AfterImport, AfterImport{Action: ActionMove, Folder: "Archive/Done"}},
		{"after_import string", sales.AfterImport.String(), "move:Archive/Done"},
		{"secrets in order", len(w.AllSecrets()), 2},
		{"rotated secret default", w.Secrets[0].Ref, "${OLD_SECRET} (default)"},
		{"embedded reference", w.Headers["Authorization"].Value(), "Bearer tok"},
		{"schedule", len(w.Schedule) == 2 && w.Schedule[1] == time.Minute, true},
		{"template content type default", w.Template.ContentType, DefaultContentType},
	}
	for _, ck := range checks {
		if ck.got != ck.want {
			t.Errorf("%s = %v, want %v", ck.name, ck.got, ck.want)
		}
	}
}

func TestParseAfterImport(t *testing.T) {
	tests := []struct {
		in      string
		want    AfterImport
		wantErr bool
	}{
		{"keep", AfterImport{Action: ActionKeep}, false},
		{"mark_read", AfterImport{Action: ActionMarkRead}, false},
		{"delete", AfterImport{Action: ActionDelete}, false},
		{"move:Archive/2026", AfterImport{Action: ActionMove, Folder: "Archive/2026"}, false},
		{"move: Archive", AfterImport{Action: ActionMove, Folder: "Archive"}, false},
		{"move:", AfterImport{Action: ActionMove}, false},
		{"archive", AfterImport{}, true},
		{"", AfterImport{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseAfterImport(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"30s", 30 * time.Second, true},
		{"5m", 5 * time.Minute, true},
		{"7d", 7 * 24 * time.Hour, true},
		{"1d12h", 36 * time.Hour, true},
		{"-5s", 0, false},
		{"5", 0, false},
		{"d", 0, false},
		{"1 minute", 0, false},
		{"9999999999d", 0, false},
	}
	for _, tt := range tests {
		got, err := parseDuration(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseDuration(%q) = %v, %v; want %v, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

// TestFileErrors: problems with the file itself are one clear error each.
func TestFileErrors(t *testing.T) {
	tests := []struct {
		name     string
		doc      string
		wantLine int
		want     string
	}{
		{"empty", "", 0, "the file is empty"},
		{"only comments", "# nothing here\n\n", 0, "the file is empty"},
		{"syntax error with line", "public_url: x\nchannels: [\n", 2, "invalid YAML: did not find expected node content"},
		{"syntax error without line from the library", "public_url: x\nlisten: a: b\n", 2, "invalid YAML: mapping values are not allowed"},
		{"tab indentation", "microsoft:\n  client_id: x\n\ttenant: y\n", 3, "tabs are not allowed in YAML indentation; use spaces"},
		{"list at top level", "- a\n- b\n", 1, "the top level must be a mapping"},
		{"scalar at top level", "hello\n", 1, "the top level must be a mapping"},
		{"two documents", "public_url: x\n---\nlisten: y\n", 2, "more than one YAML document"},
		{"too large", strings.Repeat("#", MaxFileSize+1), 0, "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.doc), "bridge.yaml", baseEnv())
			es := asErrors(t, err)
			if len(es) != 1 {
				t.Fatalf("got %d errors, want 1:\n%v", len(es), err)
			}
			if got := es[0]; got.Line != tt.wantLine || !strings.Contains(got.Msg, tt.want) {
				t.Errorf("got line %d %q, want line %d %q", got.Line, got.Msg, tt.wantLine, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "bridge.yaml:") || strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line naming the file: %q", err)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	t.Run("MissingFile", func(t *testing.T) {
		path := filepath.Join(dir, "missing.yaml")
		_, err := Load(path)
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("errors.Is(err, fs.ErrNotExist) = false for %v", err)
		}
		if got, want := err.Error(), path+": no such file"; !strings.HasPrefix(got, want) {
			t.Errorf("got %q, want prefix %q", got, want)
		}
	})
	t.Run("Directory", func(t *testing.T) {
		_, err := Load(dir)
		if err == nil || !strings.Contains(err.Error(), "cannot read the file") {
			t.Errorf("got %v, want a read error", err)
		}
	})
	t.Run("Valid", func(t *testing.T) {
		t.Setenv("M365_CLIENT_SECRET", clientSecretValue)
		t.Setenv("HELPDESK_WEBHOOK_SECRET", webhookSecret)
		path := filepath.Join(dir, "bridge.yaml")
		if err := os.WriteFile(path, []byte(readTestdata(t, "valid.yaml")), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := c.State, filepath.Join(dir, "data"); got != want {
			t.Errorf("state_dir = %q, want %q", got, want)
		}
	})
}

// TestSampleConfig: the repository's bridge.yaml is valid with no
// environment variables set, and warns about nothing.
func TestSampleConfig(t *testing.T) {
	b, err := os.ReadFile("../bridge.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse(b, "bridge.yaml", testEnv{})
	if err != nil {
		t.Fatal(err)
	}
	if w := c.Warnings(); len(w) != 0 {
		t.Errorf("warnings: %q", w)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"public_url", c.PublicURL, "http://127.0.0.1:8365"},
		{"graph_url", c.MS.GraphURL, "http://127.0.0.1:8369"},
		{"admin token", c.Admin.Token.Value(), "demo-admin-token"},
		{"client secret", c.MS.ClientSecret.Value(), "sim-demo-secret"},
		{"channels", len(c.Channels), 2},
		{"support mailbox", c.Channels[0].Mailbox, Mailbox{Type: MailboxShared, Address: "support@contoso.com"}},
		{"sales archive", c.Channels[1].Archive.Mode, ArchiveOn},
		{"sales after_import", c.Channels[1].AfterImport.Action, ActionMarkRead},
	}
	for _, ck := range checks {
		if ck.got != ck.want {
			t.Errorf("%s = %v, want %v", ck.name, ck.got, ck.want)
		}
	}
}

// TestValidateGoConfig: a Config built in Go gets the same defaults and
// rules, without line numbers.
func TestValidateGoConfig(t *testing.T) {
	c := &Config{
		PublicURL: "https://bridge.example.com",
		MS:        Microsoft{ClientID: "00000000-0000-0000-0000-000000000001", ClientSecret: NewSecret("x"), Tenant: "organizations"},
		Webhooks:  []Webhook{{Name: "hd", URL: "https://hd.example.com/", Secret: NewSecret(webhookSecret)}},
		Channels:  []Channel{{Name: "support", Mailbox: Mailbox{Type: MailboxUser}}},
	}
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if got, want := c.Channels[0].Webhook, "hd"; got != want {
		t.Errorf("webhook = %q, want %q", got, want)
	}
	c.Channels[0].PollInterval = time.Second
	err := c.Validate()
	if es := asErrors(t, err); len(es) != 1 || es[0].Path != "channels[0].poll_interval" || es[0].Line != 0 {
		t.Errorf("got %v, want one poll_interval error without a line", err)
	}
}

func TestUnquotedReferenceInFlowMapping(t *testing.T) {
	doc := "public_url: https://b.example.com\nadmin: {listen: 127.0.0.1:8366, token: ${ADMIN_TOKEN}}\n"
	_, err := Parse([]byte(doc), "bridge.yaml", baseEnv())
	es := asErrors(t, err)
	if len(es) != 1 || es[0].Line != 2 || !strings.Contains(es[0].Hint, "quote a reference") {
		t.Errorf("got %v, want one error on line 2 with a hint to quote the reference", err)
	}
}

// TestHostileInputs: inputs built to be slow or deep end in one clear error
// (these once took 45 s: the syntax-error line search was quadratic).
func TestHostileInputs(t *testing.T) {
	tests := []struct {
		name, doc, want string
	}{
		{"SyntaxErrorAfterManyLines", strings.Repeat("#\n", 30000) + "a: b: c\n", "b.yaml:30001:1: invalid YAML: mapping values are not allowed"},
		{"DeepFlowNesting", strings.Repeat("[", 20000), "invalid YAML: exceeded max depth"},
		{"MergeBomb", "x: &a {name: a}\ny: &b {<<: [*a,*a,*a,*a,*a,*a,*a,*a]}\nz: &c {<<: [*b,*b,*b,*b,*b,*b,*b,*b]}\nw: &d {<<: [*c,*c,*c,*c,*c,*c,*c,*c]}\nv: &e {<<: [*d,*d,*d,*d,*d,*d,*d,*d]}\nchannels: [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\n", `unknown key "x"`},
		{"AliasCycle", "public_url: &x [*x]\n", "public_url: expected a string, found a list"},
		{"ManyUnknownKeys", strings.Repeat("zz: 1\n", 5000), "too many errors"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.doc), "b.yaml", baseEnv())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %.300v, want %q", err, tt.want)
			}
		})
	}
}

// TestSampleCommentedExamples: the option examples commented out in the
// sample bridge.yaml are valid once uncommented.
func TestSampleCommentedExamples(t *testing.T) {
	b, err := os.ReadFile("../bridge.yaml")
	if err != nil {
		t.Fatal(err)
	}
	examples := []string{
		"prompt: select_account", "refresh_margin: 5m",
		"secrets:", "  - ${HELPDESK_WEBHOOK_SECRET_OLD}", "  - file:secrets/helpdesk-new.whsec",
		"headers:", "  Authorization: Bearer ${HELPDESK_API_TOKEN}",
		"types: [mail.received, mail.archived]", "timeout: 30s", "max_attempts: 12", "max_age: 72h",
		"schedule: [5s, 5m, 30m, 2h, 5h, 10h]", "concurrency: 1", "retention: 7d",
		"template:", "  content_type: application/json", "  body: |",
		`    {"title": {{json .Data.ticket.title}}, "group": {{json .Data.group}},`,
		`     "customer": {{json .Data.ticket.customer.address}}}`,
		"poll_interval: 1m", "raw_mime: false", "max_attachment_bytes: 10485760",
		"send:", "  secret: ${SUPPORT_SEND_SECRET}",
		"- name: billing", "  mailbox: {type: shared, address: billing@contoso.com}",
		"  after_import: move:Archive/Imported", "  raw_mime: true",
		"- name: noreply-bounces", "  mailbox: {type: shared, address: noreply@contoso.com}",
		"  after_import: delete", "  archive: {mode: off}   # check warns: old mail is imported as new",
	}
	want := map[string]bool{}
	for _, e := range examples {
		want[e] = true
	}
	found := map[string]bool{}
	lines := strings.Split(string(b), "\n")
	for i, l := range lines {
		indent := l[:len(l)-len(strings.TrimLeft(l, " "))]
		if rest, ok := strings.CutPrefix(l[len(indent):], "# "); ok && want[rest] {
			lines[i] = indent + rest
			found[rest] = true
		}
	}
	for _, e := range examples {
		if !found[e] {
			t.Errorf("example line %q is no longer in bridge.yaml; update this test", e)
		}
	}
	env := testEnv{
		vars: map[string]string{"HELPDESK_WEBHOOK_SECRET_OLD": webhookSecret, "HELPDESK_API_TOKEN": "t", "SUPPORT_SEND_SECRET": webhookSecret},
		files: map[string]string{
			filepath.Join("secrets", "helpdesk-new.whsec"): webhookSecret + "\n",
		},
	}
	c, err := Parse([]byte(strings.Join(lines, "\n")), "bridge.yaml", env)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(c.Channels), 4; got != want {
		t.Errorf("channels = %d, want %d", got, want)
	}
	if got, want := len(c.Webhooks[0].AllSecrets()), 3; got != want {
		t.Errorf("secrets = %d, want %d", got, want)
	}
	if !c.Channels[0].SendEnabled() {
		t.Errorf("send example not uncommented or not enabled: %+v", c.Channels[0].Send)
	}
	if c.Webhooks[0].Template == nil || c.MS.Prompt != "select_account" {
		t.Errorf("template or prompt not uncommented")
	}
}
