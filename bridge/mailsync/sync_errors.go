package mailsync

import (
	"errors"

	"github.com/m365bridge/m365bridge/bridge/entra"
	"github.com/m365bridge/m365bridge/bridge/graph"
)

// explainSync maps a round's error to a code, reason and fix.
func explainSync(err error) (code, reason, fix string) {
	reason, fix = graph.Explain(err)
	var unavailable *entra.UnavailableError
	var reauth *entra.ReauthError
	switch {
	case errors.As(err, &unavailable):
		return entra.CodeUnavailable, unavailable.Error(),
			"Nothing if it passes: Entra ID is unavailable or unreachable; the bridge retries at each poll and resumes by itself."
	case errors.As(err, &reauth):
		return CodeReauthRequired, reauth.Error(), reauth.Fix
	case errors.Is(err, ErrArchiveCutoffMissing):
		return "archive_cutoff_missing", err.Error(), "set archive.before for the channel, or use archive.mode auto or off"
	case errors.Is(err, graph.ErrFolderAmbiguous):
		code = "folder_ambiguous"
	case errors.Is(err, graph.ErrFolderNotFound):
		code = "folder_not_found"
	case errors.Is(err, graph.ErrMailboxNotFound):
		code = "mailbox_not_found"
	case errors.Is(err, graph.ErrMailboxNotEnabled):
		code = "mailbox_not_enabled"
	case errors.Is(err, graph.ErrAccessDenied):
		code = "access_denied"
	case errors.Is(err, graph.ErrUnauthorized):
		code = "unauthorized"
	case errors.Is(err, graph.ErrThrottled):
		code = "throttled"
	default:
		code = "sync_failed"
	}
	return code, reason, fix
}

// CodeReauthRequired is the sync code of a round that stopped because the
// channel's grant was refused (channel.auth_failed tells the helpdesk).
const CodeReauthRequired = "reauth_required"
