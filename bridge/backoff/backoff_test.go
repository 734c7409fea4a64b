package backoff

import (
	"testing"
	"time"
)

func TestExponential(t *testing.T) {
	const s = time.Second
	tests := []struct {
		base, max time.Duration
		retry     int
		want      time.Duration
	}{
		{500 * time.Millisecond, 30 * s, 0, 500 * time.Millisecond},
		{500 * time.Millisecond, 30 * s, 1, 500 * time.Millisecond},
		{500 * time.Millisecond, 30 * s, 2, s},
		{500 * time.Millisecond, 30 * s, 7, 30 * s}, // 32 s capped
		{500 * time.Millisecond, 30 * s, 1000, 30 * s},
		{30 * s, 30 * time.Minute, 3, 2 * time.Minute},
		{time.Hour, 30 * s, 1, 30 * s}, // base above max
	}
	for _, tt := range tests {
		if got := Exponential(tt.base, tt.max, tt.retry); got != tt.want {
			t.Errorf("Exponential(%s, %s, %d) = %s, want %s", tt.base, tt.max, tt.retry, got, tt.want)
		}
	}
}

func TestSchedule(t *testing.T) {
	s := []time.Duration{time.Second, time.Minute, time.Hour}
	for retry, want := range map[int]time.Duration{-1: time.Second, 0: time.Second, 1: time.Second, 2: time.Minute, 3: time.Hour, 9: time.Hour} {
		if got := Schedule(s, retry); got != want {
			t.Errorf("Schedule(%d) = %s, want %s", retry, got, want)
		}
	}
}

func TestEqualJitter(t *testing.T) {
	// The injected draw returns its bounds: the result spans [d/2, d].
	low := func(time.Duration) time.Duration { return 0 }
	high := func(x time.Duration) time.Duration { return x - 1 }
	if got := EqualJitter(10*time.Second, low); got != 5*time.Second {
		t.Errorf("lowest = %s, want 5s", got)
	}
	if got := EqualJitter(10*time.Second, high); got != 10*time.Second {
		t.Errorf("highest = %s, want 10s", got)
	}
	for range 100 {
		if got := EqualJitter(time.Second, nil); got < 500*time.Millisecond || got > time.Second {
			t.Fatalf("EqualJitter(1s) = %s, outside [0.5s, 1s]", got)
		}
	}
}

func TestSpread(t *testing.T) {
	for _, tt := range []struct {
		r    float64
		want time.Duration
	}{{0, 80 * time.Second}, {0.5, 100 * time.Second}, {0.75, 110 * time.Second}} {
		if got := Spread(100*time.Second, 0.2, func() float64 { return tt.r }); got != tt.want {
			t.Errorf("Spread(100s, 0.2) with r=%v = %s, want %s", tt.r, got, tt.want)
		}
	}
	for range 100 {
		if got := Spread(time.Minute, 0.1, nil); got < 54*time.Second || got > 66*time.Second {
			t.Fatalf("Spread(1m, 0.1) = %s, outside ±10%%", got)
		}
	}
}
