package m365sim

// Fault rules: failures injected into Graph requests that match a method, a
// path pattern and optionally a mailbox, either with a probability drawn
// from the sim's seeded RNG (Rate) or for the next N matches (Count).

import (
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// FaultRule describes one injected failure. A request matches when Method
// (empty: any), Path and Mailbox (empty: any) match; the rule then fires
// with probability Rate (0 means always) while Count (0 means unlimited)
// lasts. The first rule that fires applies, in this order: Hold, Latency,
// Drop, Status (or 504 when MaxPageSize is exceeded), EmptyPage.
type FaultRule struct {
	ID string `json:"id,omitempty"` // assigned by AddFault
	// Method is an HTTP method such as GET.
	Method string `json:"method,omitempty"`
	// Path is a glob over the request path, with or without the /v1.0
	// prefix: * matches within one segment, ** across segments. With the
	// prefix "re:" it is a regular expression instead.
	Path string `json:"path"`
	// Mailbox is the mailbox address (case-insensitive).
	Mailbox string  `json:"mailbox,omitempty"`
	Rate    float64 `json:"rate,omitempty"`
	Count   int     `json:"count,omitempty"`
	// Status answers with this code (e.g. 500, 503, 429, 504) in the Graph
	// envelope; Code and Message override the defaults for the status.
	Status     int    `json:"status,omitempty"`
	Code       string `json:"code,omitempty"`
	Message    string `json:"message,omitempty"`
	RetryAfter int    `json:"retryAfter,omitempty"` // seconds; sets Retry-After
	// Latency delays the request (it keeps its throttling slot meanwhile).
	Latency time.Duration `json:"-"`
	// Drop closes the connection without an answer.
	Drop bool `json:"drop,omitempty"`
	// DropAfter lets the request take effect, then closes the connection
	// without the answer: the client's view of a timeout after the service
	// accepted the request.
	DropAfter bool `json:"dropAfter,omitempty"`
	// MaxPageSize makes the rule fire only for list and delta requests
	// whose page size (Prefer odata.maxpagesize, else $top, else 10)
	// exceeds it; the answer is 504 unless Status says otherwise.
	MaxPageSize int `json:"maxPageSize,omitempty"`
	// EmptyPage makes a delta request answer an empty page with a nextLink
	// that continues where the round was.
	EmptyPage bool `json:"emptyPage,omitempty"`
	// Hold (Go only) blocks matching requests until it is closed; tests use
	// it to make requests overlap without timing.
	Hold <-chan struct{} `json:"-"`
	// Fired (Go only) receives a value each time the rule fires, before
	// Hold; the request holds its throttling slot by then. Tests use it to
	// know that held requests are in flight.
	Fired chan<- struct{} `json:"-"`
}

type faultRule struct {
	FaultRule
	re *regexp.Regexp
}

type faultEffect struct{ emptyPage, dropAfter bool }

// globRegexp turns a path glob into an anchored regular expression.
func globRegexp(glob string) (*regexp.Regexp, error) {
	if expr, ok := strings.CutPrefix(glob, "re:"); ok {
		return regexp.Compile(expr)
	}
	var b strings.Builder
	b.WriteString("^(/v1\\.0)?")
	for i := 0; i < len(glob); i++ {
		switch c := glob[i]; {
		case c == '*' && i+1 < len(glob) && glob[i+1] == '*':
			b.WriteString(".*")
			i++
		case c == '*':
			b.WriteString("[^/]*")
		case c == '?':
			b.WriteString("[^/]")
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString("$")
	return regexp.Compile(b.String())
}

// AddFault installs a fault rule and returns its id.
func (s *Sim) AddFault(rule FaultRule) (string, error) {
	if rule.Path == "" {
		return "", fmt.Errorf("add fault: path is required (a glob such as /v1.0/me/messages/** or re:<regexp>)")
	}
	re, err := globRegexp(rule.Path)
	if err != nil {
		return "", fmt.Errorf("add fault: path %q: %w", rule.Path, err)
	}
	if rule.Rate < 0 || rule.Rate > 1 {
		return "", fmt.Errorf("add fault: rate %v must be within 0..1", rule.Rate)
	}
	if rule.Status != 0 && (rule.Status < 400 || rule.Status > 599) {
		return "", fmt.Errorf("add fault: status %d must be a 4xx or 5xx code", rule.Status)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.graph.faultSeq++
	rule.ID = "fault-" + strconv.Itoa(s.graph.faultSeq)
	s.graph.faults = append(s.graph.faults, &faultRule{FaultRule: rule, re: re})
	return rule.ID, nil
}

// ClearFaults removes every fault rule.
func (s *Sim) ClearFaults() {
	s.mu.Lock()
	s.graph.faults = nil
	s.mu.Unlock()
}

// Faults lists the installed rules with their remaining counts.
func (s *Sim) Faults() []FaultRule {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]FaultRule, 0, len(s.graph.faults))
	for _, f := range s.graph.faults {
		out = append(out, f.FaultRule)
	}
	return out
}

func pageSizeOf(r *http.Request, p preferences) int {
	if p.maxPageSize > 0 {
		return p.maxPageSize
	}
	if n, err := strconv.Atoi(r.URL.Query().Get("$top")); err == nil {
		return n
	}
	return 10
}

// pickFault returns the rule that fires for this request, consuming one
// of its count.
func (s *Sim) pickFault(r *http.Request, mailbox string, p preferences) *FaultRule {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.graph.faults {
		if (f.Method != "" && !strings.EqualFold(f.Method, r.Method)) ||
			(f.Mailbox != "" && !strings.EqualFold(f.Mailbox, mailbox)) || !f.re.MatchString(r.URL.Path) {
			continue
		}
		if f.MaxPageSize > 0 && pageSizeOf(r, p) <= f.MaxPageSize {
			continue
		}
		if f.Rate > 0 && s.graph.rng.Float64() >= f.Rate {
			continue
		}
		rule := f.FaultRule
		if f.Count > 0 {
			f.Count--
			if f.Count == 0 {
				s.graph.faults = append(s.graph.faults[:i:i], s.graph.faults[i+1:]...)
			}
		}
		s.graph.counters.faults++
		return &rule
	}
	return nil
}

// applyFaults runs the matching fault rule. handled means the response
// was written (or the connection dropped) and the handler must not run.
func (s *Sim) applyFaults(w http.ResponseWriter, r *http.Request, mailbox string, p preferences) (fx faultEffect, handled bool) {
	f := s.pickFault(r, mailbox, p)
	if f == nil {
		return fx, false
	}
	if f.Fired != nil {
		select {
		case f.Fired <- struct{}{}:
		case <-r.Context().Done():
			return fx, true
		}
	}
	if f.Hold != nil {
		select {
		case <-f.Hold:
		case <-r.Context().Done():
			return fx, true
		}
	}
	if f.Latency > 0 {
		t := time.NewTimer(f.Latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return fx, true
		}
	}
	if f.Drop {
		dropConnection(w, r)
		return fx, true
	}
	status := f.Status
	if status == 0 && f.MaxPageSize > 0 {
		status = http.StatusGatewayTimeout
	}
	if status != 0 {
		if f.RetryAfter > 0 && status != http.StatusTooManyRequests {
			w.Header().Set("Retry-After", strconv.Itoa(f.RetryAfter))
		}
		code, msg := faultDefaults(status)
		if f.Code != "" {
			code = f.Code
		}
		if f.Message != "" {
			msg = f.Message
		}
		if status == http.StatusTooManyRequests && f.Code == "" {
			writeTooManyRequests(w, r, max(f.RetryAfter, 1))
			return fx, true
		}
		writeGraphError(w, r, status, code, msg)
		return fx, true
	}
	fx.emptyPage, fx.dropAfter = f.EmptyPage, f.DropAfter
	return fx, false
}

func faultDefaults(status int) (code, msg string) {
	switch status {
	case http.StatusServiceUnavailable:
		return "serviceNotAvailable", "The service is temporarily unavailable. Retry after a delay."
	case http.StatusGatewayTimeout:
		return "UnknownError", "The gateway timed out waiting for the backend."
	case http.StatusInternalServerError:
		return "generalException", "An unspecified error occurred."
	case http.StatusBadGateway:
		return "UnknownError", "Bad gateway."
	}
	return "generalException", http.StatusText(status)
}

// dropConnection closes the client connection without an answer. Inside
// $batch there is no connection to drop, so the item answers 504.
func dropConnection(w http.ResponseWriter, r *http.Request) {
	if infoOf(r).batched {
		writeGraphError(w, r, http.StatusGatewayTimeout, "UnknownError", "The gateway timed out waiting for the backend.")
		return
	}
	infoOf(r).dropped = true
	if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
		conn.Close()
		return
	}
	panic(http.ErrAbortHandler)
}

// discardWriter takes a handler's answer and drops it (FaultRule.DropAfter).
type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(int)             {}
