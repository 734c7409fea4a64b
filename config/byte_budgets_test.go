package config

import (
	"strings"
	"testing"
)

// The two byte budgets (issue 17): state_budget_bytes, default 256 MiB, an
// explicit 0 kept (drop delivered bodies), negative an error; and
// memory_budget_bytes, default 96 MiB, below 1 MiB an error. Each error
// says the fix.
func TestByteBudgets(t *testing.T) {
	base := readTestdata(t, "valid.yaml")
	state := func(c *Config) int64 { return c.StateBudget }
	memory := func(c *Config) int64 { return c.MemoryBudget }
	for _, tc := range []struct {
		name, line string
		got        func(*Config) int64
		want       int64
		wantErr    string
	}{
		{"state default", "", state, DefaultStateBudget, ""},
		{"state explicit", "state_budget_bytes: 1048576\n", state, 1 << 20, ""},
		{"state zero", "state_budget_bytes: 0\n", state, 0, ""},
		{"state negative", "state_budget_bytes: -1\n", state, 0, "state_budget_bytes: must not be negative"},
		{"memory default", "", memory, DefaultMemoryBudget, ""},
		{"memory explicit", "memory_budget_bytes: 33554432\n", memory, 32 << 20, ""},
		{"memory too small", "memory_budget_bytes: 1000\n", memory, 0, "memory_budget_bytes: must be at least 1048576 (1 MiB)"},
		{"memory negative", "memory_budget_bytes: -1\n", memory, 0, "memory_budget_bytes: must be at least 1048576 (1 MiB)"},
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
			if got := tc.got(c); got != tc.want {
				t.Errorf("%s: got %d, want %d", strings.TrimSpace(tc.line), got, tc.want)
			}
		})
	}
}
