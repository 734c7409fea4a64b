package notify

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestPollPolicyInterval(t *testing.T) {
	s := time.Second
	tests := []struct {
		name       string
		p          PollPolicy
		since      time.Duration
		subscribed bool
		want       time.Duration
	}{
		{"defaults, just active", PollPolicy{}, 0, false, 10 * s},
		{"defaults, 15s idle", PollPolicy{}, 15 * s, false, 10 * s},
		{"defaults, 40s idle", PollPolicy{}, 40 * s, false, 20 * s},
		{"defaults, 2m idle", PollPolicy{}, 2 * time.Minute, false, time.Minute},
		{"defaults, a day idle", PollPolicy{}, 24 * time.Hour, false, time.Minute},
		{"negative since is activity", PollPolicy{}, -time.Minute, false, 10 * s},
		{"subscribed: the safety-net interval", PollPolicy{}, 0, true, time.Minute},
		{"budget raises Fast", PollPolicy{Fast: 10 * s, Budget: 120}, 0, false, 30 * s},
		{"Fast never above Slow", PollPolicy{Fast: 5 * time.Minute, Slow: time.Minute}, 0, false, time.Minute},
		{"fixed when Fast equals Slow", PollPolicy{Fast: 2 * time.Minute, Slow: 2 * time.Minute}, 0, false, 2 * time.Minute},
		{"growth 4", PollPolicy{Growth: 4}, 2 * time.Minute, false, 30 * s},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.p.Interval(tc.since, tc.subscribed); got != tc.want {
				t.Errorf("Interval(%s, %v) = %s, want %s", tc.since, tc.subscribed, got, tc.want)
			}
		})
	}
}

func TestPollPolicyMaxRequestsPerHour(t *testing.T) {
	for _, tc := range []struct {
		p    PollPolicy
		want int
	}{
		{PollPolicy{}, 360},
		{PollPolicy{Budget: 120}, 120},
		{PollPolicy{Fast: time.Minute}, 60},
	} {
		if got := tc.p.MaxRequestsPerHour(); got != tc.want {
			t.Errorf("%+v: %d, want %d", tc.p, got, tc.want)
		}
	}
}

// TestPollPolicyStaysWithinBudget drives a simulated day of mail arriving
// at random (seeded) moments, from quiet to a flood: the rounds per hour
// never exceed the stated budget, the interval stays between Fast and Slow
// and grows monotonically with idle time.
func TestPollPolicyStaysWithinBudget(t *testing.T) {
	p := PollPolicy{Fast: 10 * time.Second, Slow: time.Minute, Budget: 240}
	budget := p.MaxRequestsPerHour()
	if budget != 240 {
		t.Fatalf("budget %d", budget)
	}
	for _, mailsPerHour := range []int{0, 1, 30, 600, 20000} {
		rng := rand.New(rand.NewPCG(7, uint64(mailsPerHour)))
		arrivals := make([]time.Duration, mailsPerHour*24)
		for i := range arrivals {
			arrivals[i] = time.Duration(rng.Int64N(int64(24 * time.Hour)))
		}
		slices.Sort(arrivals)
		rounds := map[int]int{}
		lastActivity, next := -24*time.Hour, 0
		for now := time.Duration(0); now < 24*time.Hour; {
			// A round finds whatever arrived since the previous one.
			if next < len(arrivals) && arrivals[next] <= now {
				lastActivity = now
				for next < len(arrivals) && arrivals[next] <= now {
					next++
				}
			}
			rounds[int(now/time.Hour)]++
			d := p.Interval(now-lastActivity, false)
			if d < 15*time.Second || d > time.Minute {
				t.Fatalf("interval %s outside [15s, 1m] (Fast raised to fit the budget)", d)
			}
			now += d
		}
		for h, n := range rounds {
			if n > budget {
				t.Errorf("%d mails/h: hour %d took %d rounds, budget %d", mailsPerHour, h, n, budget)
			}
		}
		if mailsPerHour == 0 && rounds[5] != 60 {
			t.Errorf("idle hour: %d rounds, want 60 (one a minute)", rounds[5])
		}
	}
	prev := time.Duration(0)
	for idle := time.Duration(0); idle < 10*time.Minute; idle += time.Second {
		d := p.Interval(idle, false)
		if d < prev {
			t.Fatalf("interval shrinks with idle time: %s at %s after %s", d, idle, prev)
		}
		prev = d
	}
}
