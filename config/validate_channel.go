package config

import (
	"fmt"
	"net/mail"
	"strings"
)

func (v *validator) channel(p string, ch *Channel) {
	v.name(p+".name", ch.Name, "channel")
	v.mailbox(p, ch.Mailbox)
	v.folder(p+".folder", ch.Folder, true)
	v.afterImportAction(p, ch.AfterImport)
	v.polling(p, ch)
	v.attachments(p, ch)
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
	v.archive(p+".archive", ch.Archive)
}

// mailbox checks a channel's mailbox: its type, and a shared one's address.
func (v *validator) mailbox(p string, m Mailbox) {
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
}

// afterImportAction checks what is done with mail after import.
func (v *validator) afterImportAction(p string, a AfterImport) {
	switch a.Action {
	case ActionKeep, ActionMarkRead, ActionDelete:
	case ActionMove:
		if strings.TrimSpace(a.Folder) == "" {
			v.fail(p+".after_import", "move needs a folder path", "write move:Archive/Done")
		} else {
			v.folder(p+".after_import", a.Folder, false)
		}
	default:
		v.fail(p+".after_import", fmt.Sprintf("unknown after_import action %q", a.Action), "keep, mark_read, delete or move:<folder path>")
	}
}

// polling checks the poll intervals and the change-notification mode.
func (v *validator) polling(p string, ch *Channel) {
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
}

// attachments checks how attachments travel: inline limit, mode, link lifetime.
func (v *validator) attachments(p string, ch *Channel) {
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
}

// archive checks the archive mode, its cut-off and the archived state.
func (v *validator) archive(ap string, a Archive) {
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
