// Package backoff is the one place retry waits are computed: exponential
// doubling with a cap, a fixed schedule whose last entry repeats, and the
// two kinds of jitter the bridge's loops use. Every retry loop (Graph
// transport, Entra token refresh, sync post-actions and poll, send worker,
// webhook dispatcher) takes its numbers from here with its own parameters.
// It imports only the standard library, so webhooks/deliver can use it too.
package backoff

import (
	"math/rand/v2"
	"time"
)

// Exponential is the wait before retry number retry (1 is the first
// retry): base, doubled for each retry after the first, never above max.
// A retry below 1 waits base (capped).
func Exponential(base, max time.Duration, retry int) time.Duration {
	d := base
	for i := 1; i < retry && d < max; i++ {
		d *= 2
	}
	return min(d, max)
}

// Schedule is the wait before retry number retry from a fixed schedule:
// s[retry-1], the last entry repeating beyond its end, s[0] below 1. s
// must not be empty.
func Schedule(s []time.Duration, retry int) time.Duration {
	return s[min(max(retry-1, 0), len(s)-1)]
}

// EqualJitter spreads d as "equal jitter": half of it fixed, the other half
// random, so d/2 <= result <= d. n draws a number in [0, x) (nil:
// math/rand/v2's N).
func EqualJitter(d time.Duration, n func(x time.Duration) time.Duration) time.Duration {
	if n == nil {
		n = rand.N[time.Duration]
	}
	half := d / 2
	return half + n(half+1)
}

// Spread spreads d by ±frac at random: d*(1-frac) <= result <= d*(1+frac).
// r draws a float in [0, 1) (nil: math/rand/v2's Float64).
func Spread(d time.Duration, frac float64, r func() float64) time.Duration {
	if r == nil {
		r = rand.Float64
	}
	return time.Duration(float64(d) * (1 - frac + 2*frac*r()))
}
