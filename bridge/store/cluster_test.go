package store

import (
	"fmt"
	"maps"
	"testing"
)

func names(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%03d", prefix, i)
	}
	return out
}

func TestAssign(t *testing.T) {
	for _, tc := range []struct {
		channels, members int
	}{{0, 3}, {1, 3}, {5, 1}, {10, 3}, {200, 3}, {7, 7}, {3, 5}} {
		t.Run(fmt.Sprintf("%d_channels_%d_members", tc.channels, tc.members), func(t *testing.T) {
			chs, ms := names("mailbox-", tc.channels), names("daemon-", tc.members)
			got := Assign(chs, ms)
			if len(got) != len(chs) {
				t.Fatalf("%d channels assigned, want %d", len(got), len(chs))
			}
			limit := (tc.channels + tc.members - 1) / tc.members
			load := map[string]int{}
			for _, ch := range chs {
				m, ok := got[ch]
				if !ok {
					t.Fatalf("channel %s unassigned", ch)
				}
				load[m]++
			}
			for m, n := range load {
				if n > limit {
					t.Errorf("member %s has %d channels, more than ⌈%d/%d⌉ = %d", m, n, tc.channels, tc.members, limit)
				}
			}
			// Pure and order-independent: every daemon computes the same.
			rev := make([]string, len(ms))
			for i, m := range ms {
				rev[len(ms)-1-i] = m
			}
			if again := Assign(append([]string(nil), chs...), rev); !maps.Equal(again, got) {
				t.Errorf("a different member order gives a different assignment")
			}
		})
	}
	if got := Assign([]string{"a"}, nil); len(got) != 0 {
		t.Errorf("no members: %v, want nothing assigned", got)
	}
}

// TestAssignMovesFewOnJoinAndLeave: a daemon joining takes about its share
// and a daemon leaving gives away about its own, not a reshuffle.
func TestAssignMovesFewOnJoinAndLeave(t *testing.T) {
	chs := names("mailbox-", 200)
	three := Assign(chs, names("daemon-", 3))
	four := Assign(chs, names("daemon-", 4))
	moved := 0
	for ch, m := range three {
		if four[ch] != m {
			moved++
		}
	}
	t.Logf("a fourth daemon moved %d of 200 channels", moved)
	// The newcomer's fair share is 50; a full reshuffle would move ~150.
	if moved > 80 {
		t.Errorf("a fourth daemon moved %d of 200 channels, want about 50", moved)
	}
	two := Assign(chs, names("daemon-", 2)) // daemon-002 left
	moved = 0
	for ch, m := range three {
		if m != "daemon-002" && two[ch] != m {
			moved++
		}
	}
	t.Logf("daemon-002 leaving moved %d channels of the others", moved)
	if moved > 40 {
		t.Errorf("daemon-002 leaving moved %d channels of the others, want few", moved)
	}
}
