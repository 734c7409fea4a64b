package mailsync

import (
	"math"
	"time"

	"github.com/m365bridge/m365bridge/bridge/notify"
)

// pollWait is the wait before the next round (before jitter): the
// channel's poll_interval while change notifications are on (a safety net
// then), else the adaptive poll of notify.PollPolicy — poll_fast right
// after a round that found new mail, growing back to poll_interval while
// the folder stays idle.
func (r *Runner) pollWait(interval time.Duration) time.Duration {
	subscribed := r.cfg.Subscribed != nil && r.cfg.Subscribed()
	r.mu.Lock()
	last := r.lastActivity
	r.mu.Unlock()
	since := time.Duration(math.MaxInt64) // never saw new mail: idle
	if !last.IsZero() {
		since = r.cfg.Now().Sub(last)
	}
	return notify.PollPolicy{Fast: r.ch.PollFast, Slow: interval, Budget: r.cfg.PollBudget}.Interval(since, subscribed)
}

// noteActivity records a round that found new mail (queued or rejected
// messages), which makes the adaptive poll fast again.
func (r *Runner) noteActivity(stats Stats) {
	if stats.Queued+stats.Rejected == 0 {
		return
	}
	now := r.cfg.Now()
	r.mu.Lock()
	r.lastActivity = now
	r.mu.Unlock()
}

// reportFolder tells RunnerConfig.OnFolder about a folder id it has not
// heard yet (the first round, a folder resolved again to a new id).
func (r *Runner) reportFolder(id string) {
	if r.cfg.OnFolder == nil || id == "" {
		return
	}
	r.mu.Lock()
	same := r.folderReported == id
	r.folderReported = id
	r.mu.Unlock()
	if !same {
		r.cfg.OnFolder(id)
	}
}
