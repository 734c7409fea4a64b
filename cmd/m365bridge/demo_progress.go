package main

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/m365bridge/m365bridge/webhooks"
	"github.com/m365bridge/m365bridge/webhooks/deliver"
)

// demoStall is the demo's safety net: it gives up when no mail event was
// delivered or refused for this long. Events normally settle every few
// milliseconds; a first sync of 10,000 mails takes well under a minute.
const demoStall = 5 * time.Minute

// demoProgressEvery paces the progress lines (output only: the wait itself
// is driven by the dispatcher's results).
const demoProgressEvery = 2 * time.Second

// demoProgress counts the mail events the receiver settled, from the
// dispatcher's OnResult: delivered (2xx) or refused for good (4xx). Each
// event counts once, whatever its retries.
type demoProgress struct {
	mu        sync.Mutex
	settled   map[string]bool
	delivered int
	refused   int
	answer    string // the receiver's last non-2xx answer
	more      chan struct{}
}

func newDemoProgress() *demoProgress {
	return &demoProgress{settled: map[string]bool{}, more: make(chan struct{}, 1)}
}

// onResult is the dispatcher's OnResult hook.
func (p *demoProgress) onResult(endpoint string, row deliver.Row, res deliver.Result) {
	if !strings.HasPrefix(row.Type, "mail.") {
		return
	}
	p.mu.Lock()
	if res.Outcome != deliver.Delivered {
		p.answer = fmt.Sprintf("%d %s", res.Status, res.Excerpt)
	}
	if !p.settled[row.EventID] {
		switch res.Outcome {
		case deliver.Delivered:
			p.settled[row.EventID] = true
			p.delivered++
		case deliver.Permanent, deliver.Gone:
			p.settled[row.EventID] = true
			p.refused++
		}
	}
	p.mu.Unlock()
	select {
	case p.more <- struct{}{}:
	default:
	}
}

func (p *demoProgress) counts() (delivered, refused int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.delivered, p.refused
}

func (p *demoProgress) refusedCount() int { _, r := p.counts(); return r }

func (p *demoProgress) lastAnswer() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.answer
}

// wait returns once n mail events settled, printing progress while they
// flow. It gives up only when nothing settled for stall (a receiver that
// is down, a runner that cannot sync), saying what it saw last; ctx ending
// (Ctrl-C) is not an error.
func (p *demoProgress) wait(ctx context.Context, step string, n int, stall time.Duration, out *demoPrinter) error {
	idle := time.NewTimer(stall)
	defer idle.Stop()
	tick := time.NewTicker(demoProgressEvery)
	defer tick.Stop()
	d0, r0 := p.counts()
	start, base, printed := time.Now(), d0+r0, 0
	for {
		d, r := p.counts()
		if d+r >= n {
			if printed > 0 {
				out.say("%s: all %d events settled in %s (%d delivered, %d refused).", step, n, time.Since(start).Round(100*time.Millisecond), d, r)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-p.more:
			if !idle.Stop() {
				select {
				case <-idle.C:
				default:
				}
			}
			idle.Reset(stall)
		case <-tick.C:
			if d+r != printed {
				printed = d + r
				out.say("%s: %d of %d events delivered (%d refused), %.0f/s…", step, d, n, r, float64(d+r-base)/time.Since(start).Seconds())
			}
		case <-idle.C:
			msg := fmt.Sprintf("demo: %s stalled: %d of %d events settled and none for %s", step, d+r, n, stall)
			if a := p.lastAnswer(); a != "" {
				msg += "; the receiver's last answer: " + a
			}
			return fmt.Errorf("%s. Run with --log-level info to see the daemon's view", msg)
		}
	}
}

// checkDemoWebhook validates --webhook-url and --webhook-secret before
// anything starts.
func checkDemoWebhook(rawURL, secret string) error {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return usageError{fmt.Sprintf("demo: --webhook-url %q is not an absolute http(s) URL", rawURL)}
	}
	if _, err := webhooks.Sign(secret, "msg_check", time.Unix(0, 0), nil); err != nil {
		return usageError{"demo: --webhook-secret: " + err.Error() + " (want whsec_ and base64, e.g. echo whsec_$(openssl rand -base64 32))"}
	}
	return nil
}
