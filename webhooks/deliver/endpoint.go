package deliver

import (
	"fmt"
	"net/url"
	"strings"
	"text/template"
	"time"

	"github.com/m365bridge/m365bridge/bridge/backoff"
	"github.com/m365bridge/m365bridge/webhooks"
)

// Endpoint is one receiver and how to deliver to it. Zero fields take the
// defaults below.
type Endpoint struct {
	Name string
	URL  string
	// Secrets sign every request; all of them during a rotation.
	Secrets []string
	// Headers are sent with every request (e.g. an API token).
	Headers map[string]string
	// Types limits the event types queued for this endpoint ("mail.*"
	// matches a prefix); empty means all. The enqueuing side applies it.
	Types []string
	// Timeout bounds one attempt.
	Timeout time.Duration
	// MaxAttempts and MaxAge (from enqueue or replay) end retrying: the row
	// becomes dead.
	MaxAttempts int
	MaxAge      time.Duration
	// Schedule[i] is the wait before retry i+1, that is before attempt
	// i+2, measured from the start of attempt i+1: the first attempt is
	// immediate and Schedule[0] is the wait before the first retry. Past
	// its end the last delay repeats. Each delay gets ±20% jitter.
	Schedule []time.Duration
	// Concurrency is how many deliveries may be in flight. 1 keeps each
	// channel's events in order; more allows any order.
	Concurrency int
	// Template, when set, renders the request body from the event instead
	// of sending the event JSON; see ParseTemplate.
	Template *template.Template
	// ContentType of the request body.
	ContentType string
	// Retention: delivered rows are deleted after this long.
	Retention time.Duration
	// Recipe, when set, delivers each row in its place (several templated
	// requests to a helpdesk's API) instead of one signed POST to URL;
	// Template and Secrets are then unused and a secret is not required.
	Recipe Runner
}

// Defaults.
const (
	DefaultTimeout     = 30 * time.Second
	DefaultMaxAttempts = 12
	DefaultMaxAge      = 72 * time.Hour
	DefaultConcurrency = 1
	DefaultRetention   = 7 * 24 * time.Hour
	DefaultContentType = "application/json"
)

// DefaultSchedule: the first attempt at once, then retries after 5 s,
// 5 min, 30 min, 2 h, 5 h, 10 h, then every 10 h (12 attempts span about
// 67 h).
var DefaultSchedule = []time.Duration{5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour, 10 * time.Hour}

// WithDefaults returns e with zero fields set to the defaults.
func (e Endpoint) WithDefaults() Endpoint {
	if e.Timeout <= 0 {
		e.Timeout = DefaultTimeout
	}
	if e.MaxAttempts <= 0 {
		e.MaxAttempts = DefaultMaxAttempts
	}
	if e.MaxAge <= 0 {
		e.MaxAge = DefaultMaxAge
	}
	if len(e.Schedule) == 0 {
		e.Schedule = DefaultSchedule
	}
	if e.Concurrency <= 0 {
		e.Concurrency = DefaultConcurrency
	}
	if e.Retention <= 0 {
		e.Retention = DefaultRetention
	}
	if e.ContentType == "" {
		e.ContentType = DefaultContentType
	}
	return e
}

// Validate reports what is wrong with e, every problem at once.
func (e Endpoint) Validate() error {
	var errs []string
	if e.Name == "" {
		errs = append(errs, "name is empty")
	}
	if u, err := url.Parse(e.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Sprintf("url %q is not an absolute http(s) URL", e.URL))
	}
	if len(e.Secrets) == 0 && e.Recipe == nil {
		errs = append(errs, "no secret: set secret: whsec_… (generate one with `openssl rand -base64 32`)")
	}
	for i, s := range e.Secrets {
		if _, err := webhooks.DecodeSecret(s); err != nil {
			errs = append(errs, fmt.Sprintf("secret %d: %v", i+1, err))
		}
	}
	for _, d := range e.Schedule {
		if d < 0 {
			errs = append(errs, fmt.Sprintf("schedule has a negative delay %s", d))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("webhook endpoint %q: %s", e.Name, strings.Join(errs, "; "))
	}
	return nil
}

// Accepts reports whether events of type typ are for this endpoint (see
// webhooks.TypeFilterTakes).
func (e Endpoint) Accepts(typ string) bool { return webhooks.TypeFilterTakes(e.Types, typ) }

// delayAfter is the scheduled delay (before jitter) from the start of
// attempt n (1-based) to attempt n+1: Schedule[n-1], or its last entry.
func (e Endpoint) delayAfter(n int) time.Duration {
	s := e.Schedule
	if len(s) == 0 {
		s = DefaultSchedule
	}
	return backoff.Schedule(s, n)
}
