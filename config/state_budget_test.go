package config

import (
	"strings"
	"testing"
)

// state_budget_bytes (issue 17): default 256 MiB, an explicit 0 is kept
// (drop delivered bodies), a negative value is an error that says the fix.
func TestStateBudget(t *testing.T) {
	base := readTestdata(t, "valid.yaml")
	for _, tc := range []struct {
		name, line string
		want       int64
		wantErr    string
	}{
		{"default", "", DefaultStateBudget, ""},
		{"explicit", "state_budget_bytes: 1048576\n", 1 << 20, ""},
		{"zero", "state_budget_bytes: 0\n", 0, ""},
		{"negative", "state_budget_bytes: -1\n", 0, "state_budget_bytes: must not be negative"},
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
			if c.StateBudget != tc.want {
				t.Errorf("StateBudget = %d, want %d", c.StateBudget, tc.want)
			}
		})
	}
}
