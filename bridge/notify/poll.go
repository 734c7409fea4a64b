package notify

import "time"

// PollPolicy is the adaptive poll interval of a channel: short right after
// the channel saw new mail, growing back to the configured interval while
// it stays idle, and never faster than a request budget allows. It is for
// channels without change notifications (shared mailboxes with delegated
// permissions) and, with Subscribed, the safety-net poll of the others.
//
// Cost: one delta round costs one Graph request when nothing changed. The
// fastest the policy ever polls is Fast (raised to fit Budget), so a
// mailbox costs at most Budget requests per hour for polling however busy
// it is, and 3600/Slow per hour when idle (60 with the default 1m).
type PollPolicy struct {
	// Fast is the interval right after activity. Default 10s.
	Fast time.Duration
	// Slow is the interval when idle: the channel's poll_interval.
	// Default 1m.
	Slow time.Duration
	// Budget is the most requests per hour polling may cost per mailbox;
	// Fast is raised to time.Hour/Budget if shorter. Default 360 (one
	// every 10 s).
	Budget int
	// Growth: the interval is the idle time divided by Growth, between
	// Fast and Slow. Default 2 (after 2 minutes idle, 1-minute polls).
	Growth int
}

// normalized fills defaults and applies the budget.
func (p PollPolicy) normalized() PollPolicy {
	if p.Slow <= 0 {
		p.Slow = time.Minute
	}
	if p.Fast <= 0 {
		p.Fast = 10 * time.Second
	}
	if p.Budget <= 0 {
		p.Budget = 360
	}
	if p.Growth <= 0 {
		p.Growth = 2
	}
	p.Fast = max(p.Fast, time.Hour/time.Duration(p.Budget))
	p.Fast = min(p.Fast, p.Slow)
	return p
}

// Interval is the wait before the next delta round, given how long ago the
// channel last saw new mail (negative or zero: in the round just ended) and
// whether change notifications are on for it (then the configured interval
// is only a safety net and is used as is).
func (p PollPolicy) Interval(sinceActivity time.Duration, subscribed bool) time.Duration {
	p = p.normalized()
	if subscribed {
		return p.Slow
	}
	d := sinceActivity / time.Duration(p.Growth)
	return min(max(d, p.Fast), p.Slow)
}

// MaxRequestsPerHour is the most Graph requests per hour the policy spends
// on polling one mailbox (rounds that find nothing new): the figure the
// README states.
func (p PollPolicy) MaxRequestsPerHour() int {
	p = p.normalized()
	return int(time.Hour / p.Fast)
}
