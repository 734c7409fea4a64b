package send

import (
	"time"
)

// Options tune the send worker; the zero value of each field selects
// its default.
type Options struct {
	// Poll is how often the store is looked at without a wake-up (default 5s).
	Poll time.Duration
	// Schedule is the wait after an attempt Graph did not process (429 or
	// 503 after the client's own retries, a token refused), by attempt
	// number; the last entry repeats. Default 30s, 2m, 10m, 30m, 1h, 2h.
	Schedule []time.Duration
	// MaxAttempts ends retrying: the request fails (default 8).
	MaxAttempts int
	// MaxAge ends retrying, also while the channel is not connected
	// (default 24h after acceptance).
	MaxAge time.Duration
	// Recheck is how long after an attempt whose outcome is unknown the
	// mailbox's Sent Items and Drafts are searched before anything is sent
	// again, and how often while a sent draft's copy is awaited (default 2m).
	Recheck time.Duration
	// Filing is how long after a send Exchange may take to file the Sent
	// Items copy: a draft that left Drafts without a copy in Sent Items is
	// looked for until then, never sent again, and reported unverified
	// after it (default 30m).
	Filing time.Duration
	// Concurrency is the number of requests sent at once (default 4).
	Concurrency int
	// Hook, if set, is called at "accepted" (row committed, before the 202),
	// "before-graph" (attempt committed), "draft-complete" (the tagged draft
	// is built and recorded, not sent yet), "after-graph" (the send call
	// answered, outcome not yet stored) and "await-filing" (a sent draft's
	// Sent Items copy was looked for and is not there yet; the row is
	// rescheduled), with the send id. Crash tests block there.
	Hook func(stage, sendID string)
}

func (o *Options) defaults() {
	if o.Poll <= 0 {
		o.Poll = 5 * time.Second
	}
	if len(o.Schedule) == 0 {
		o.Schedule = []time.Duration{30 * time.Second, 2 * time.Minute, 10 * time.Minute, 30 * time.Minute, time.Hour, 2 * time.Hour}
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 8
	}
	if o.MaxAge <= 0 {
		o.MaxAge = 24 * time.Hour
	}
	if o.Recheck <= 0 {
		o.Recheck = 2 * time.Minute
	}
	if o.Filing <= 0 {
		o.Filing = 30 * time.Minute
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 4
	}
}
