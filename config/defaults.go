package config

import (
	"fmt"
	"strings"
	"time"
)

// SetDefaults fills every zero-valued field that has a default with it (the
// Default* constants): listeners, state_dir, log, Microsoft endpoints,
// per-webhook delivery settings, per-channel after_import, poll interval,
// archive mode and state, and a channel's webhook when exactly one is
// defined. It is for a Config built in Go; Parse applies the same defaults
// to fields absent from the file (an explicit zero in the file is kept, so
// that validation can reject it).
func (c *Config) SetDefaults() {
	c.setDefaults(func(string) bool { return false })
}

// setDefaults fills fields that are zero and not set in the file.
func (c *Config) setDefaults(isSet func(path string) bool) {
	str := func(p *string, path, def string) {
		if *p == "" && !isSet(path) {
			*p = def
		}
	}
	dur := func(p *time.Duration, path string, def time.Duration) {
		if *p == 0 && !isSet(path) {
			*p = def
		}
	}
	num := func(p *int, path string, def int) {
		if *p == 0 && !isSet(path) {
			*p = def
		}
	}
	str(&c.Listen, "listen", DefaultListen)
	str(&c.Admin.Listen, "admin.listen", DefaultAdminListen)
	str(&c.State, "state_dir", DefaultStateDir)
	if c.StateBudget == 0 && !isSet("state_budget_bytes") {
		c.StateBudget = DefaultStateBudget
	}
	if c.MemoryBudget == 0 {
		c.MemoryBudget = DefaultMemoryBudget
	}
	dur(&c.Store.LeaseTTL, "state.lease_ttl", DefaultLeaseTTL)
	str(&c.Log.Level, "log.level", DefaultLogLevel)
	str(&c.Log.Format, "log.format", DefaultLogFormat)
	str(&c.MS.LoginURL, "microsoft.login_url", DefaultLoginURL)
	str(&c.MS.GraphURL, "microsoft.graph_url", DefaultGraphURL)
	str(&c.MS.Prompt, "microsoft.prompt", DefaultPrompt)
	dur(&c.MS.RefreshMargin, "microsoft.refresh_margin", DefaultRefreshMargin)
	c.MS.LoginURL = strings.TrimRight(c.MS.LoginURL, "/")
	c.MS.GraphURL = strings.TrimRight(c.MS.GraphURL, "/")

	for i := range c.Webhooks {
		w, p := &c.Webhooks[i], fmt.Sprintf("webhooks[%d]", i)
		dur(&w.Timeout, p+".timeout", DefaultWebhookTimeout)
		num(&w.MaxAttempts, p+".max_attempts", DefaultMaxAttempts)
		dur(&w.MaxAge, p+".max_age", DefaultMaxAge)
		num(&w.Concurrency, p+".concurrency", DefaultConcurrency)
		dur(&w.Retention, p+".retention", DefaultRetention)
		if w.Template != nil {
			str(&w.Template.ContentType, p+".template.content_type", DefaultContentType)
		}
	}
	for i := range c.Channels {
		ch, p := &c.Channels[i], fmt.Sprintf("channels[%d]", i)
		if ch.AfterImport.Action == "" && !isSet(p+".after_import") {
			ch.AfterImport = AfterImport{Action: DefaultAfterImport}
		}
		dur(&ch.PollInterval, p+".poll_interval", DefaultPollInterval)
		dur(&ch.PollFast, p+".poll_fast", min(DefaultPollFast, ch.PollInterval))
		str(&ch.ChangeNotifications, p+".change_notifications", NotificationsAuto)
		str(&ch.Archive.Mode, p+".archive.mode", DefaultArchiveMode)
		str(&ch.Archive.State, p+".archive.state", DefaultArchiveState)
		if len(c.Webhooks) == 1 && ch.Webhook == "" { // webhook: "" counts as absent
			ch.Webhook = c.Webhooks[0].Name
		}
		if ch.MaxAttachmentBytes == 0 && !isSet(p+".max_attachment_bytes") {
			ch.MaxAttachmentBytes = DefaultMaxAttachmentBytes
		}
		str(&ch.Attachments, p+".attachments", AttachmentsInline)
		dur(&ch.AttachmentLinkTTL, p+".attachment_link_ttl", DefaultAttachmentLinkTTL)
		if ch.Send != nil && !ch.Send.Enabled && !isSet(p+".send.enabled") {
			ch.Send.Enabled = true
		}
	}
}
