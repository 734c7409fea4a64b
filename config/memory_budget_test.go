package config

import (
	"strings"
	"testing"
)

// memory_budget_bytes (issue 17): default 96 MiB, below 1 MiB is an error
// that says the fix.
func TestMemoryBudget(t *testing.T) {
	base := readTestdata(t, "valid.yaml")
	for _, tc := range []struct {
		name, line string
		want       int64
		wantErr    string
	}{
		{"default", "", DefaultMemoryBudget, ""},
		{"explicit", "memory_budget_bytes: 33554432\n", 32 << 20, ""},
		{"too small", "memory_budget_bytes: 1000\n", 0, "memory_budget_bytes: must be at least 1048576 (1 MiB)"},
		{"negative", "memory_budget_bytes: -1\n", 0, "memory_budget_bytes: must be at least 1048576 (1 MiB)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.line+base), "bridge.yaml", baseEnv())
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.MemoryBudget != tc.want {
				t.Errorf("MemoryBudget = %d, want %d", c.MemoryBudget, tc.want)
			}
		})
	}
}
