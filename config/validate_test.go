package config

import (
	"fmt"
	"strings"
	"testing"
)

// edit changes the base document; at is the text on the line the error
// must point at ("" when the error has no better place than a parent).
type edit struct{ old, new string }

// TestValidationRules: each rule, from one edit of testdata/valid.yaml.
func TestValidationRules(t *testing.T) {
	base := readTestdata(t, "valid.yaml")
	const support = "    group: Support L1\n"               // the end of channels[0]
	const sales = "    group: Sales\n"                      // inside channels[1]
	const hook = "    secret: ${HELPDESK_WEBHOOK_SECRET}\n" // inside webhooks[0]
	add := func(after, lines string) edit { return edit{after, after + lines} }
	tests := []struct {
		name  string
		edits []edit
		path  string
		msg   string // a part of the message
		hint  string // a part of the hint, if checked
		at    string // text on the line the error points at
		count int    // errors expected; 0 means 1
	}{
		// Unknown keys, with and without a suggestion.
		{name: "UnknownTopLevelKey", edits: []edit{add("tenant: contoso.onmicrosoft.com\n", "lsten: 127.0.0.1:1\n")},
			path: "lsten", msg: `unknown key "lsten"`, hint: `did you mean "listen"?`, at: "lsten:"},
		{name: "UnknownNestedKey", edits: []edit{{"    group: Sales", "    grop: Sales"}},
			path: "channels[1].grop", msg: `unknown key "grop"`, hint: `did you mean "group"?`, at: "grop:"},
		{name: "UnknownKeyNoSuggestion", edits: []edit{add(support, "    colour: red\n")},
			path: "channels[0].colour", msg: `unknown key "colour"`, hint: "valid keys here: name, mailbox", at: "colour:"},
		{name: "DuplicateKey", edits: []edit{add(support, "    group: Other\n")},
			path: "channels[0].group", msg: `duplicate key "group" (first at line 17)`, at: "group: Other"},

		// Required fields.
		{name: "PublicURLRequired", edits: []edit{{"public_url: https://bridge.example.com\n", ""}},
			path: "public_url", msg: "required, but not set"},
		{name: "ClientIDRequired", edits: []edit{{"  client_id: 00000000-0000-0000-0000-000000000001\n", ""}},
			path: "microsoft.client_id", msg: "required", at: "microsoft:"},
		{name: "ClientSecretRequired", edits: []edit{{"  client_secret: ${M365_CLIENT_SECRET}\n", ""}},
			path: "microsoft.client_secret", msg: "required", at: "microsoft:"},
		{name: "TenantRequired", edits: []edit{{"  tenant: contoso.onmicrosoft.com\n", ""}},
			path: "microsoft.tenant", msg: "required", at: "microsoft:"},
		{name: "NoChannels", edits: []edit{{base[strings.Index(base, "channels:"):], "channels: []\n"}},
			path: "channels", msg: "at least one channel", at: "channels: []"},
		{name: "NoWebhooks", edits: []edit{{base[strings.Index(base, "webhooks:"):strings.Index(base, "channels:")], ""}},
			path: "webhooks", msg: "at least one webhook"},

		// Names.
		{name: "DuplicateChannelName", edits: []edit{{"  - name: sales", "  - name: support"}},
			path: "channels[1].name", msg: `duplicate channel name "support"`, hint: "channels[0] has it already", at: "  - name: support\n    mailbox:\n      type: user"},
		{name: "ChannelNameNotForURLs", edits: []edit{{"  - name: sales", "  - name: Sales Team"}},
			path: "channels[1].name", msg: `channel name "Sales Team" cannot be used in URLs`, hint: "lower-case", at: "name: Sales Team"},
		{name: "DuplicateWebhookName", edits: []edit{
			add(hook, "  - name: helpdesk\n    url: https://b.example.com/\n    secret: ${HELPDESK_WEBHOOK_SECRET}\n"),
			add(support, "    webhook: helpdesk\n"), add(sales, "    webhook: helpdesk\n")},
			path: "webhooks[1].name", msg: `duplicate webhook name "helpdesk"`, at: "  - name: helpdesk\n    url: https://b"},
		{name: "UndefinedWebhook", edits: []edit{add(support, "    webhook: helpdsk\n")},
			path: "channels[0].webhook", msg: `webhook "helpdsk" is not defined`, hint: `did you mean "helpdesk"? defined webhooks: "helpdesk"`, at: "webhook: helpdsk"},
		{name: "WebhookAmbiguous", edits: []edit{
			add(hook, "  - name: other\n    url: https://b.example.com/\n    secret: ${HELPDESK_WEBHOOK_SECRET}\n"),
			add(support, "    webhook: helpdesk\n")},
			path: "channels[1].webhook", msg: "several are defined", hint: `"helpdesk" or "other"`},

		// Mailboxes.
		{name: "MailboxTypeUnknown", edits: []edit{{"      type: shared", "      type: group"}},
			path: "channels[0].mailbox.type", msg: `mailbox type "group" is not user or shared`, at: "type: group"},
		{name: "MailboxTypeRequired", edits: []edit{{"      type: user\n", "      address: \"\"\n"}},
			path: "channels[1].mailbox.type", msg: "mailbox type is required"},
		{name: "SharedWithoutAddress", edits: []edit{{"      address: support@contoso.com\n", ""}},
			path: "channels[0].mailbox.address", msg: "a shared mailbox needs an address", at: "    mailbox:\n      type: shared"},
		{name: "SharedBadAddress", edits: []edit{{"address: support@contoso.com", "address: support@contoso"}},
			path: "channels[0].mailbox.address", msg: `"support@contoso" is not a mail address`, at: "address: support@contoso"},
		{name: "SharedAddressWithName", edits: []edit{{"address: support@contoso.com", "address: Support <support@contoso.com>"}},
			path: "channels[0].mailbox.address", msg: "is not a mail address"},
		{name: "UserWithAddress", edits: []edit{{"      type: user\n", "      type: user\n      address: me@contoso.com\n"}},
			path: "channels[1].mailbox.address", msg: "a user mailbox is the signed-in user's own; remove address or use type: shared", at: "address: me@"},
		{name: "SameSharedFolderTwice", edits: []edit{{"      type: user\n", "      type: shared\n      address: SUPPORT@contoso.com\n    folder: inbox/support\n"}},
			path: "channels[1].folder", msg: "channels[0] already syncs this folder"},
		{name: "FolderEmptyPart", edits: []edit{{"folder: Inbox/Support", "folder: Inbox//Support"}},
			path: "channels[0].folder", msg: "has an empty part", at: "folder: Inbox//"},

		// public_url.
		{name: "PublicURLHTTPNotLoopback", edits: []edit{{"public_url: https://bridge.example.com", "public_url: http://bridge.example.com"}},
			path: "public_url", msg: "must use https", at: "public_url:"},
		{name: "PublicURLRelative", edits: []edit{{"public_url: https://bridge.example.com", "public_url: bridge.example.com"}},
			path: "public_url", msg: "is not an absolute URL"},
		{name: "PublicURLQuery", edits: []edit{{"public_url: https://bridge.example.com", "public_url: https://bridge.example.com/?a=b"}},
			path: "public_url", msg: "query or fragment"},
		{name: "PublicURLFragment", edits: []edit{{"public_url: https://bridge.example.com", "public_url: 'https://bridge.example.com/#x'"}},
			path: "public_url", msg: "query or fragment"},
		{name: "PublicURLScheme", edits: []edit{{"public_url: https://bridge.example.com", "public_url: ftp://bridge.example.com"}},
			path: "public_url", msg: `scheme "ftp" is not https`},

		// Listeners.
		{name: "ListenNotHostPort", edits: []edit{add("public_url: https://bridge.example.com\n", "listen: 8365\n")},
			path: "listen", msg: `"8365" is not host:port`, at: "listen: 8365"},
		{name: "ListenBadPort", edits: []edit{add("public_url: https://bridge.example.com\n", "listen: 127.0.0.1:99999\n")},
			path: "listen", msg: "not a number from 0 to 65535"},
		{name: "AdminSameAsListen", edits: []edit{add("public_url: https://bridge.example.com\n", "admin: {listen: 127.0.0.1:8365}\n")},
			path: "admin.listen", msg: "same address as listen", at: "admin:"},
		{name: "AdminHostWithScheme", edits: []edit{add("public_url: https://bridge.example.com\n", "admin:\n  hosts: [ok.internal, 'http://bridge-admin:8366']\n")},
			path: "admin.hosts[1]", msg: `"http://bridge-admin:8366" is not a host name`, hint: "no scheme, port, path or wildcard", at: "hosts:"},
		{name: "AdminHostWildcard", edits: []edit{add("public_url: https://bridge.example.com\n", "admin:\n  hosts: ['*.internal']\n")},
			path: "admin.hosts[0]", msg: `"*.internal" is not a host name`},
		{name: "TrustedProxyGarbage", edits: []edit{add("public_url: https://bridge.example.com\n", "admin:\n  trusted_proxies: [127.0.0.1, '::1', 10.0.0.0/8, proxy.internal]\n")},
			path: "admin.trusted_proxies[3]", msg: `"proxy.internal" is not an IP address or CIDR prefix`, hint: "such as 127.0.0.1", at: "trusted_proxies:"},
		{name: "TrustedProxyHostBits", edits: []edit{add("public_url: https://bridge.example.com\n", "admin:\n  trusted_proxies: [10.1.2.3/8]\n")},
			path: "admin.trusted_proxies[0]", msg: `did you mean 10.0.0.0/8?`},
		{name: "TrustedProxyBadPrefix", edits: []edit{add("public_url: https://bridge.example.com\n", "admin:\n  trusted_proxies: [10.0.0.0/33]\n")},
			path: "admin.trusted_proxies[0]", msg: `"10.0.0.0/33" is not an IP address`},

		// State database.
		{name: "DatabaseNotPostgres", edits: []edit{add("public_url: https://bridge.example.com\n", "state: {database: 'mysql://db/bridge'}\n")},
			path: "state.database", msg: "must be a postgres:// URL", hint: "leave state.database out for the SQLite file", at: "state:"},
		{name: "DatabaseNoName", edits: []edit{add("public_url: https://bridge.example.com\n", "state: {database: 'postgres://bridge@db.internal'}\n")},
			path: "state.database", msg: "names no database"},
		{name: "DatabaseNoHost", edits: []edit{add("public_url: https://bridge.example.com\n", "state: {database: 'postgres:///bridge'}\n")},
			path: "state.database", msg: "names no host"},

		// Microsoft.
		{name: "TenantConsumers", edits: []edit{{"tenant: contoso.onmicrosoft.com", "tenant: consumers"}},
			path: "microsoft.tenant", msg: "consumers cannot be used"},
		{name: "TenantGarbage", edits: []edit{{"tenant: contoso.onmicrosoft.com", "tenant: not a tenant"}},
			path: "microsoft.tenant", msg: "is not a tenant ID, domain or organizations", at: "tenant: not"},
		{name: "ClientIDNotGUID", edits: []edit{{"client_id: 00000000-0000-0000-0000-000000000001", "client_id: my-app"}},
			path: "microsoft.client_id", msg: "not a GUID"},
		{name: "GraphURLPlainHTTP", edits: []edit{add("  tenant: contoso.onmicrosoft.com\n", "  graph_url: http://graph.example.com\n")},
			path: "microsoft.graph_url", msg: "must use https"},
		{name: "PromptUnknown", edits: []edit{add("  tenant: contoso.onmicrosoft.com\n", "  prompt: select-account\n")},
			path: "microsoft.prompt", msg: `"select-account" is not allowed here`, hint: `did you mean "select_account"?`},
		{name: "RefreshMarginTooLong", edits: []edit{add("  tenant: contoso.onmicrosoft.com\n", "  refresh_margin: 2h\n")},
			path: "microsoft.refresh_margin", msg: "out of range"},

		// Webhooks.
		{name: "WebhookURLRelative", edits: []edit{{"url: https://helpdesk.example.com/hooks/m365", "url: /hooks/m365"}},
			path: "webhooks[0].url", msg: "is not an absolute http(s) URL", at: "url: /hooks"},
		{name: "WebhookSecretRequired", edits: []edit{{hook, ""}},
			path: "webhooks[0].secret", msg: "a signing secret is required"},
		{name: "WebhookSecretNotWhsec", edits: []edit{{hook, "    secret: notasecret-at-all-really\n"}},
			path: "webhooks[0].secret", msg: "does not start with whsec_", at: "secret: notasecret"},
		{name: "WebhookSecretNotBase64", edits: []edit{{hook, "    secret: whsec_!!!!\n"}},
			path: "webhooks[0].secret", msg: "not valid base64"},
		{name: "WebhookSecretTooShort", edits: []edit{{hook, "    secret: whsec_c2hvcnQ=\n"}},
			path: "webhooks[0].secret", msg: "24 to 64 bytes"},
		{name: "WebhookSecretsNotAList", edits: []edit{add(hook, "    secrets: ${HELPDESK_WEBHOOK_SECRET}\n")},
			path: "webhooks[0].secrets", msg: "expected a list", hint: "use secret: for a single value"},
		{name: "WebhookSecretsBadEntry", edits: []edit{add(hook, "    secrets: [whsec_c2hvcnQ=]\n")},
			path: "webhooks[0].secrets[0]", msg: "24 to 64 bytes"},
		{name: "WebhookHeaderReserved", edits: []edit{add(hook, "    headers: {webhook-id: x}\n")},
			path: "webhooks[0].headers.webhook-id", msg: "is set by the bridge"},
		{name: "WebhookHeaderContentType", edits: []edit{add(hook, "    headers: {Content-Type: text/plain}\n")},
			path: "webhooks[0].headers.Content-Type", msg: "Content-Type is set by the bridge", hint: "template.content_type"},
		{name: "WebhookConcurrencyZero", edits: []edit{add(hook, "    concurrency: 0\n")},
			path: "webhooks[0].concurrency", msg: "at least 1", at: "concurrency: 0"},
		{name: "WebhookMaxAttemptsZero", edits: []edit{add(hook, "    max_attempts: 0\n")},
			path: "webhooks[0].max_attempts", msg: "at least 1"},
		{name: "WebhookTimeoutZero", edits: []edit{add(hook, "    timeout: 0s\n")},
			path: "webhooks[0].timeout", msg: "more than zero"},
		{name: "WebhookTypesWithoutMailArchived", edits: []edit{add(hook, "    types: [mail.received, channel.*]\n")},
			path: "webhooks[0].types", msg: `does not take mail.archived, which channel "support" (archive.mode auto) produces`,
			hint: "add mail.archived (or mail.*) to types", at: "types:", count: 2},
		{name: "WebhookTypesWithoutMail", edits: []edit{add(hook, "    types: [channel.*]\n"), add(sales, "    archive: {mode: off}\n")},
			path: "webhooks[0].types", msg: `does not take mail.received, which channel "sales" (archive.mode off) produces`, count: 2},
		{name: "WebhookScheduleZero", edits: []edit{add(hook, "    schedule: [0s, 5s, 5m]\n")},
			path: "webhooks[0].schedule[0]", msg: "retry delay must be more than zero", hint: "the first attempt is always immediate", at: "schedule:"},
		{name: "WebhookTemplateBoth", edits: []edit{add(hook, "    template: {body: x, file: t.tmpl}\n")},
			path: "webhooks[0].template", msg: "both body and file", at: "template:"},
		{name: "WebhookTemplateNeither", edits: []edit{add(hook, "    template: {content_type: text/plain}\n")},
			path: "webhooks[0].template", msg: "needs a body or a file"},
		{name: "WebhookTemplateSyntax", edits: []edit{add(hook, "    template:\n      body: '{{.Title'\n")},
			path: "webhooks[0].template", msg: "does not parse"},
		{name: "WebhookTemplateUnknownFunc", edits: []edit{add(hook, "    template:\n      body: '{{nosuch .Title}}'\n")},
			path: "webhooks[0].template", msg: `function "nosuch" not defined`},
		{name: "WebhookTemplateFileMissing", edits: []edit{add(hook, "    template: {file: body.tmpl}\n")},
			path: "webhooks[0].template.file", msg: "cannot read template file conf/body.tmpl", at: "template:"},

		// Channels.
		{name: "AfterImportMoveEmpty", edits: []edit{{"after_import: mark_read", "after_import: 'move:'"}},
			path: "channels[1].after_import", msg: "move needs a folder path", at: "after_import:"},
		{name: "AfterImportMoveEmptyPart", edits: []edit{{"after_import: mark_read", "after_import: move:Archive//x"}},
			path: "channels[1].after_import", msg: "has an empty part"},
		{name: "AfterImportUnknown", edits: []edit{{"after_import: mark_read", "after_import: mark-read"}},
			path: "channels[1].after_import", msg: `unknown after_import action "mark-read"`, hint: `did you mean "mark_read"?`},
		{name: "PollIntervalTooShort", edits: []edit{add(sales, "    poll_interval: 5s\n")},
			path: "channels[1].poll_interval", msg: "shorter than 10s", at: "poll_interval: 5s"},
		{name: "PollIntervalNotADuration", edits: []edit{add(sales, "    poll_interval: 1 minute\n")},
			path: "channels[1].poll_interval", msg: `invalid duration "1 minute"`},
		{name: "PollFastAbovePollInterval", edits: []edit{add(sales, "    poll_fast: 2m\n")},
			path: "channels[1].poll_fast", msg: "poll_fast 2m0s must be between 10s and poll_interval (1m0s)", at: "poll_fast: 2m"},
		{name: "PollFastTooShort", edits: []edit{add(sales, "    poll_fast: 1s\n")},
			path: "channels[1].poll_fast", msg: "must be between 10s", at: "poll_fast: 1s"},
		{name: "ChangeNotificationsUnknown", edits: []edit{add(sales, "    change_notifications: on\n")},
			path: "channels[1].change_notifications", msg: `unknown change_notifications mode "on"`, hint: "auto"},
		{name: "ArchiveModeUnknown", edits: []edit{add(sales, "    archive: {mode: maybe}\n")},
			path: "channels[1].archive.mode", msg: `archive mode "maybe" is not auto, on or off`},
		{name: "ArchiveOnWithoutBefore", edits: []edit{add(sales, "    archive:\n      mode: on\n")},
			path: "channels[1].archive.before", msg: "archive mode on needs before", at: "    archive:\n      mode: on"},
		{name: "ArchiveBeforeNotRFC3339", edits: []edit{add(sales, "    archive: {mode: on, before: 2026-11-01}\n")},
			path: "channels[1].archive.before", msg: `invalid time "2026-11-01"`, hint: "RFC 3339"},
		{name: "ArchiveOffWithBefore", edits: []edit{add(sales, "    archive: {mode: off, before: 2026-11-01T00:00:00Z}\n")},
			path: "channels[1].archive.before", msg: "before has no effect with archive mode off"},
		{name: "ArchiveStateEmpty", edits: []edit{add(sales, "    archive: {state: ''}\n")},
			path: "channels[1].archive.state", msg: "must not be empty"},
		{name: "MaxAttachmentBytesUnits", edits: []edit{add(sales, "    max_attachment_bytes: 10MB\n")},
			path: "channels[1].max_attachment_bytes", msg: `"10MB" is not a whole number`},
		{name: "AttachmentsModeUnknown", edits: []edit{add(sales, "    attachments: url\n")},
			path: "channels[1].attachments", msg: `unknown attachments mode "url"`, hint: "inline"},
		{name: "AttachmentLinkTTLTooShort", edits: []edit{add(sales, "    attachment_link_ttl: 5s\n")},
			path: "channels[1].attachment_link_ttl", msg: "attachment_link_ttl 5s is outside 1m0s to 2160h0m0s"},
		{name: "RawMIMENotBool", edits: []edit{add(sales, "    raw_mime: please\n")},
			path: "channels[1].raw_mime", msg: `"please" is not true or false`},
		{name: "ChannelsNotAList", edits: []edit{{base[strings.Index(base, "channels:"):], "channels: support\n"}},
			path: "channels", msg: "expected a list, found a single value"},

		// Logging.
		{name: "LogLevelUnknown", edits: []edit{add("after_import: mark_read\n", "log: {level: verbose}\n")},
			path: "log.level", msg: `"verbose" is not allowed here`, hint: `one of "debug", "info", "warn" or "error"`},
		{name: "LogFormatUnknown", edits: []edit{add("after_import: mark_read\n", "log: {format: xml}\n")},
			path: "log.format", msg: `"xml" is not allowed here`},

		// References outside secret fields.
		{name: "ReferenceInPlainField", edits: []edit{{"group: Sales", "group: ${GROUP}"}},
			path: "channels[1].group", msg: "only secret fields take ${VAR} references", at: "group: ${GROUP}"},
		{name: "UnsetVariable", edits: []edit{{"${M365_CLIENT_SECRET}", "${NOT_SET_ANYWHERE}"}},
			path: "microsoft.client_secret", msg: "environment variable NOT_SET_ANYWHERE is not set", hint: "${NOT_SET_ANYWHERE:-value}"},
		{name: "MissingSecretFile", edits: []edit{{"${M365_CLIENT_SECRET}", "file:secrets/client"}},
			path: "microsoft.client_secret", msg: "secret file conf/secrets/client does not exist"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := base
			for _, e := range tt.edits {
				if !strings.Contains(doc, e.old) {
					t.Fatalf("edit: %q not in the document", e.old)
				}
				doc = strings.Replace(doc, e.old, e.new, 1)
			}
			_, err := Parse([]byte(doc), "conf/bridge.yaml", baseEnv())
			if err == nil {
				t.Fatalf("no error; want %s: %s", tt.path, tt.msg)
			}
			es := asErrors(t, err)
			want := max(tt.count, 1)
			var found *Error
			for _, e := range es {
				if e.Path == tt.path && strings.Contains(e.Msg, tt.msg) {
					found = e
				}
			}
			if found == nil || len(es) != want {
				t.Fatalf("got %d errors:\n%v\nwant %d, including %s: ...%s...", len(es), err, want, tt.path, tt.msg)
			}
			if tt.hint != "" && !strings.Contains(found.Hint, tt.hint) {
				t.Errorf("hint = %q, want it to contain %q", found.Hint, tt.hint)
			}
			if found.Line == 0 || found.Col == 0 {
				t.Errorf("error has no position: %v", found)
			}
			if tt.at != "" {
				if got, want := found.Line, lineOf(t, doc, tt.at); got != want {
					t.Errorf("line = %d, want %d (%q)", got, want, tt.at)
				}
			}
			if got, want := found.Error(), fmt.Sprintf("conf/bridge.yaml:%d:%d: %s: ", found.Line, found.Col, tt.path); !strings.HasPrefix(got, want) {
				t.Errorf("Error() = %q, want prefix %q", got, want)
			}
		})
	}
}

// TestValidLoopbackAndTenants: forms that are allowed.
func TestValidForms(t *testing.T) {
	base := readTestdata(t, "valid.yaml")
	tests := []struct{ name, old, new string }{
		{"PublicURLLoopbackV4", "public_url: https://bridge.example.com", "public_url: http://127.0.0.2:8365"},
		{"PublicURLLoopbackV6", "public_url: https://bridge.example.com", "public_url: http://[::1]:8365/"},
		{"PublicURLLocalhost", "public_url: https://bridge.example.com", "public_url: http://localhost:8365/bridge"},
		{"TenantGUID", "tenant: contoso.onmicrosoft.com", "tenant: 72f988bf-86f1-41af-91ab-2d7cd011db47"},
		{"TenantOrganizations", "tenant: contoso.onmicrosoft.com", "tenant: organizations"},
		{"TenantCommon", "tenant: contoso.onmicrosoft.com", "tenant: common"},
		{"PollInterval10s", "    group: Sales\n", "    group: Sales\n    poll_interval: 10s\n"},
		{"EmptyFolderIsInbox", "folder: Inbox/Support", "folder: ''"},
		{"NullValueKeepsDefault", "    group: Sales\n", "    group: Sales\n    poll_interval:\n    archive:\n"},
		{"MergeKey", "  - name: sales\n    mailbox:\n      type: user\n", "  - name: sales\n    <<: {mailbox: {type: user}, group: X}\n"},
		{"AfterImportDelete", "after_import: mark_read", "after_import: delete"},
		{"TemplateFile", "    secret: ${HELPDESK_WEBHOOK_SECRET}\n", "    secret: ${HELPDESK_WEBHOOK_SECRET}\n    template: {file: body.tmpl, content_type: text/plain}\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(base, tt.old) {
				t.Fatalf("%q not in the document", tt.old)
			}
			env := baseEnv()
			env.files["conf/body.tmpl"] = `{"t": {{json .Data.article.subject}}}`
			c, err := Parse([]byte(strings.Replace(base, tt.old, tt.new, 1)), "conf/bridge.yaml", env)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := c.Channels[1].PollInterval >= MinPollInterval, true; got != want {
				t.Errorf("poll_interval %v", c.Channels[1].PollInterval)
			}
		})
	}
}

// TestWebhookTypesThatTakeTheChannelsMail: a filter may leave out any
// type but the mail events its channels produce.
func TestWebhookTypesThatTakeTheChannelsMail(t *testing.T) {
	base := readTestdata(t, "valid.yaml")
	for name, edits := range map[string][]edit{
		"mail.*": {{"    secret: ${HELPDESK_WEBHOOK_SECRET}\n", "    secret: ${HELPDESK_WEBHOOK_SECRET}\n    types: [mail.*, channel.auth_failed]\n"}},
		"listed": {{"    secret: ${HELPDESK_WEBHOOK_SECRET}\n", "    secret: ${HELPDESK_WEBHOOK_SECRET}\n    types: [mail.received, mail.archived]\n"}},
		"star":   {{"    secret: ${HELPDESK_WEBHOOK_SECRET}\n", "    secret: ${HELPDESK_WEBHOOK_SECRET}\n    types: ['*']\n"}},
		"archive off": {{"    secret: ${HELPDESK_WEBHOOK_SECRET}\n", "    secret: ${HELPDESK_WEBHOOK_SECRET}\n    types: [mail.received]\n"},
			{"    group: Support L1\n", "    group: Support L1\n    archive: {mode: off}\n"},
			{"    group: Sales\n", "    group: Sales\n    archive: {mode: off}\n"}},
	} {
		t.Run(name, func(t *testing.T) {
			doc := base
			for _, e := range edits {
				doc = strings.Replace(doc, e.old, e.new, 1)
			}
			if _, err := Parse([]byte(doc), "conf/bridge.yaml", baseEnv()); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestWarnings(t *testing.T) {
	base := readTestdata(t, "valid.yaml")
	tests := []struct {
		name     string
		old, new string
		want     string // a part of one warning
	}{
		{"NoAdminToken", "", "", "admin.token: no admin token: the admin listener accepts loopback clients only"},
		{"ArchiveOff", "    group: Sales\n", "    group: Sales\n    archive: {mode: off}\n", `channels[1].archive.mode: archive mode is off: mail already in the folder is imported as new tickets, so old mail triggers auto-replies`},
		{"LiteralClientSecret", "${M365_CLIENT_SECRET}", "literal-value", "microsoft.client_secret: the secret is written in the file"},
		{"BeforeWithAuto", "    group: Sales\n", "    group: Sales\n    archive: {before: 2026-01-01T00:00:00Z}\n", "before is not used with archive mode auto"},
		{"PlainHTTPWebhook", "url: https://helpdesk", "url: http://helpdesk", "plain http"},
		{"TrustEveryone", "public_url: https://bridge.example.com\n", "public_url: https://bridge.example.com\nadmin: {trusted_proxies: [0.0.0.0/0]}\n", "admin.trusted_proxies[0]: 0.0.0.0/0 trusts every client"},
		{"HostsWithToken", "public_url: https://bridge.example.com\n", "public_url: https://bridge.example.com\nadmin: {token: '${M365_CLIENT_SECRET}', hosts: [a.internal]}\n", "admin.hosts: has no effect while admin.token is set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(strings.Replace(base, tt.old, tt.new, 1)), "bridge.yaml", baseEnv())
			if err != nil {
				t.Fatal(err)
			}
			w := strings.Join(c.Warnings(), "\n")
			if !strings.Contains(w, tt.want) {
				t.Errorf("warnings:\n%s\nwant one containing %q", w, tt.want)
			}
			if strings.Contains(w, "literal-value") {
				t.Errorf("a warning shows the secret: %s", w)
			}
		})
	}
}

func TestSuggest(t *testing.T) {
	keys := []string{"public_url", "listen", "admin", "state_dir", "after_import", "poll_interval"}
	tests := []struct{ in, want string }{
		{"pubilc_url", "public_url"},
		{"lsten", "listen"},
		{"Listen", "listen"},
		{"statedir", "state_dir"},
		{"afterimport", "after_import"},
		{"poll-interval", "poll_interval"},
		{"zzz", ""},
		{"colour", ""},
	}
	for _, tt := range tests {
		if got := suggest(tt.in, keys); got != tt.want {
			t.Errorf("suggest(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestEphemeralPortsMayRepeat(t *testing.T) {
	doc := readTestdata(t, "valid.yaml") + "listen: 127.0.0.1:0\nadmin: {listen: 127.0.0.1:0}\n"
	if _, err := Parse([]byte(doc), "bridge.yaml", baseEnv()); err != nil {
		t.Fatal(err)
	}
}

func TestExplicitEmptyWebhookUsesTheOnlyOne(t *testing.T) {
	doc := strings.Replace(readTestdata(t, "valid.yaml"), "    group: Sales\n", "    group: Sales\n    webhook: ''\n", 1)
	c, err := Parse([]byte(doc), "bridge.yaml", baseEnv())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.Channels[1].Webhook, "helpdesk"; got != want {
		t.Errorf("webhook = %q, want %q", got, want)
	}
}

func TestUnknownKeyHints(t *testing.T) {
	base := readTestdata(t, "valid.yaml")
	tests := []struct{ name, old, new, path, hint string }{
		{"KeyOfAnotherSection", "public_url: https://bridge.example.com\n", "public_url: https://bridge.example.com\nclient_id: x\n", "client_id", "client_id belongs under microsoft; check the indentation"},
		{"MisindentedMailbox", "    mailbox:\n      type: user\n", "    mailbox:\n    type: user\n", "channels[1].type", "type belongs under channels[].mailbox; check the indentation"},
		{"SecretInChannel", "    group: Sales\n", "    group: Sales\n    secret: x\n", "channels[1].secret", "secret belongs under webhooks[]"},
		{"TopLevelKeyNested", "    group: Sales\n", "    group: Sales\n    listen: x\n", "channels[1].listen", "listen belongs under the top level or admin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(strings.Replace(base, tt.old, tt.new, 1)), "b.yaml", baseEnv())
			for _, e := range asErrors(t, err) {
				if e.Path == tt.path {
					if !strings.Contains(e.Hint, tt.hint) {
						t.Errorf("hint = %q, want %q", e.Hint, tt.hint)
					}
					return
				}
			}
			t.Errorf("no error at %s in:\n%v", tt.path, err)
		})
	}
}

func TestAdminHostsAndProxies(t *testing.T) {
	doc := strings.Replace(readTestdata(t, "valid.yaml"), "public_url: https://bridge.example.com\n",
		"public_url: https://bridge.example.com\nadmin:\n  hosts: [bridge-admin, Bridge-Admin.internal., 192.0.2.10, '[::1]']\n  trusted_proxies: [127.0.0.1, '::1', 10.0.0.0/8, '::ffff:192.0.2.1']\n", 1)
	c, err := Parse([]byte(doc), "bridge.yaml", baseEnv())
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(c.Admin.Hosts); got != "[bridge-admin Bridge-Admin.internal. 192.0.2.10 [::1]]" {
		t.Errorf("hosts %s", got)
	}
	if got := fmt.Sprint(c.Admin.TrustedPrefixes()); got != "[127.0.0.1/32 ::1/128 10.0.0.0/8 192.0.2.1/32]" {
		t.Errorf("trusted prefixes %s", got)
	}
	if !c.PublicHTTPS() {
		t.Error("PublicHTTPS of https://bridge.example.com is false")
	}
}
