package deliver_test

import (
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/webhooks/deliver"
)

// TestScheduleFirstRetry: Schedule[0] is the wait before the first retry,
// as bridge.yaml documents it: [5s, 5m, 30m] retries after 5 s, then 5 min,
// then 30 min (it used to drop 5s and wait 5 min first).
func TestScheduleFirstRetry(t *testing.T) {
	schedule := []time.Duration{5 * time.Second, 5 * time.Minute, 30 * time.Minute}
	h := newHarness(t, deliver.Endpoint{Schedule: schedule, MaxAttempts: 10})
	h.setRespond(func(n int, id string, attempt int) (int, http.Header) {
		if n < 4 {
			return http.StatusServiceUnavailable, nil
		}
		return http.StatusNoContent, nil
	})
	h.enqueue("m1", "c")
	h.start(deliver.Options{Jitter: func(d time.Duration) time.Duration { return d }})
	h.runUntil("delivered", h.allIn(deliver.StateDelivered, "m1"))
	reqs := h.requests()
	if len(reqs) != 5 {
		t.Fatalf("%d requests, want 5", len(reqs))
	}
	want := []time.Duration{5 * time.Second, 5 * time.Minute, 30 * time.Minute, 30 * time.Minute} // the last repeats
	for i, w := range want {
		if got := reqs[i+1].At.Sub(reqs[i].At); got != w {
			t.Errorf("wait before attempt %d = %s, want %s", i+2, got, w)
		}
	}
}

// TestDefaultScheduleIsDocumented: the default retry waits are the ones
// README.md's table and webhooks/README.md's configuration example list.
func TestDefaultScheduleIsDocumented(t *testing.T) {
	for _, doc := range []struct {
		file string
		re   *regexp.Regexp
	}{
		{"../../README.md", regexp.MustCompile("(?m)^\\| `webhooks\\[\\]\\.schedule` \\| `([^`]*)`")},
		{"../README.md", regexp.MustCompile(`(?m)^\s+schedule: \[([^\]]*)\]`)},
	} {
		b, err := os.ReadFile(doc.file)
		if err != nil {
			t.Fatal(err)
		}
		m := doc.re.FindSubmatch(b)
		if m == nil {
			t.Errorf("%s: no schedule found (%s)", doc.file, doc.re)
			continue
		}
		var got []time.Duration
		for _, f := range strings.Split(string(m[1]), ",") {
			d, err := time.ParseDuration(strings.TrimSpace(f))
			if err != nil {
				t.Fatalf("%s: %v", doc.file, err)
			}
			got = append(got, d)
		}
		if !slices.Equal(got, deliver.DefaultSchedule) {
			t.Errorf("%s documents the schedule %v; DefaultSchedule is %v", doc.file, got, deliver.DefaultSchedule)
		}
	}
}
