package mailsync

import (
	"errors"
	"fmt"
	"time"

	"github.com/m365bridge/m365bridge/bridge/event"
	"github.com/m365bridge/m365bridge/bridge/store"
	"github.com/m365bridge/m365bridge/config"
)

// ErrArchiveCutoffMissing: archive.mode is on but archive.before is unset.
var ErrArchiveCutoffMissing = errors.New("archive.mode on needs archive.before (the cut-off)")

// ArchiveDecision is what a channel's archive settings say on its first
// sync, before it is recorded in the store.
type ArchiveDecision struct {
	Mode   string    // store.ArchiveDecidedOn or store.ArchiveDecidedOff
	Cutoff time.Time // for on: mail received strictly before it is archived
	Reason string    // for the log and `m365bridge channels`
}

// DecideArchive applies archive settings to a folder holding count messages
// at now, the moment of the first sync (the seed's archive dialog):
//
//   - auto: a folder that already holds mail turns archive mode on with the
//     cut-off at now, truncated to the second (Graph's receivedDateTime has
//     whole seconds, so mail arriving later in the same second as the first
//     sync must not read as older than the cut-off); an empty folder turns
//     it off;
//   - on: archive mode on with the configured cut-off (archive.before);
//   - off: everything is imported as new.
func DecideArchive(a config.Archive, count int, now time.Time) (ArchiveDecision, error) {
	switch a.Mode {
	case config.ArchiveOff:
		return ArchiveDecision{Mode: store.ArchiveDecidedOff, Reason: "archive.mode is off: all mail is imported as new"}, nil
	case config.ArchiveOn:
		if a.Before == nil || a.Before.IsZero() {
			return ArchiveDecision{}, ErrArchiveCutoffMissing
		}
		reason := "archive.mode is on with cut-off " + a.Before.UTC().Format(time.RFC3339Nano)
		if a.Before.After(now) {
			reason += " (in the future: mail arriving until then is archived too)"
		}
		return ArchiveDecision{Mode: store.ArchiveDecidedOn, Cutoff: a.Before.UTC(), Reason: reason}, nil
	case config.ArchiveAuto, "":
		if count <= 0 {
			return ArchiveDecision{Mode: store.ArchiveDecidedOff, Reason: "archive.mode auto: the folder was empty at the first sync"}, nil
		}
		return ArchiveDecision{Mode: store.ArchiveDecidedOn, Cutoff: now.UTC().Truncate(time.Second),
			Reason: fmt.Sprintf("archive.mode auto: the folder held %d messages at the first sync", count)}, nil
	}
	return ArchiveDecision{}, fmt.Errorf("decide archive mode: unknown archive.mode %q (want auto, on or off)", a.Mode)
}

// policyFrom builds the policy in force from the recorded sync state and the
// channel's archive settings (for the target state). An undecided state
// gives a policy that archives nothing.
func policyFrom(s store.SyncState, a config.Archive) event.ArchivePolicy {
	state := a.State
	if state == "" {
		state = config.DefaultArchiveState
	}
	return event.ArchivePolicy{On: s.ArchiveMode == store.ArchiveDecidedOn, Cutoff: s.ArchiveCutoff, State: state}
}
