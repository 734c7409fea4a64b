package event

import "time"

// ArchivePolicy classifies messages once the decision is made.
type ArchivePolicy struct {
	On     bool
	Cutoff time.Time
	// State is the ticket state for archived mail (default closed).
	State string
}

// Archived reports whether a message received at received is archived: the
// policy is on and it was received strictly before the cut-off, compared at
// full precision (Zammad truncates the cut-off to a day; the bridge does
// not). A message without a received time is never archived.
func (p ArchivePolicy) Archived(received time.Time) bool {
	return p.On && !received.IsZero() && received.Before(p.Cutoff)
}
