package main

import (
	"bytes"
	"log/slog"
	"runtime/debug"
	"strings"
	"testing"
)

// TestGCSettingsFollowTheBudgetUnlessTheEnvironmentSetsThem: GOGC 200 and
// a soft limit of memory_budget_bytes + 8 MiB (at least 64 MiB) by default; an operator's
// GOGC or GOMEMLIMIT is left as it is.
func TestGCSettingsFollowTheBudgetUnlessTheEnvironmentSetsThem(t *testing.T) {
	for _, tt := range []struct {
		name   string
		budget int64
		env    map[string]string
		want   gcSettings
	}{
		{"defaults", 96 << 20, nil, gcSettings{percent: 200, limit: 104 << 20}},
		{"GOGC set", 96 << 20, map[string]string{"GOGC": "100"}, gcSettings{percent: -1, limit: 104 << 20}},
		{"GOGC off", 96 << 20, map[string]string{"GOGC": "off"}, gcSettings{percent: -1, limit: 104 << 20}},
		{"GOMEMLIMIT set", 96 << 20, map[string]string{"GOMEMLIMIT": "1GiB"}, gcSettings{percent: 200, limit: -1}},
		{"small budget", 1 << 20, nil, gcSettings{percent: 200, limit: 64 << 20}},
		{"large budget", 1 << 30, nil, gcSettings{percent: 200, limit: 1<<30 + 8<<20}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := gcFor(tt.budget, func(k string) string { return tt.env[k] })
			if got != tt.want {
				t.Errorf("gcFor = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestGCSettingsApplied: apply sets the runtime's GOGC and memory limit
// and logs them (the runtime's previous values are restored after).
func TestGCSettingsApplied(t *testing.T) {
	oldPercent := debug.SetGCPercent(100)
	oldLimit := debug.SetMemoryLimit(-1)
	t.Cleanup(func() {
		debug.SetGCPercent(oldPercent)
		debug.SetMemoryLimit(oldLimit)
	})
	var logged bytes.Buffer
	gcSettings{percent: 200, limit: 104 << 20}.apply(slog.New(slog.NewTextHandler(&logged, nil)))
	if got := debug.SetGCPercent(200); got != 200 {
		t.Errorf("GOGC = %d, want 200", got)
	}
	if got := debug.SetMemoryLimit(-1); got != 104<<20 {
		t.Errorf("memory limit = %d, want %d", got, 104<<20)
	}
	if !strings.Contains(logged.String(), "gogc=200") || !strings.Contains(logged.String(), "104 MiB") {
		t.Errorf("log = %q, want the settings", logged.String())
	}
	logged.Reset()
	gcSettings{percent: -1, limit: -1}.apply(slog.New(slog.NewTextHandler(&logged, nil)))
	if got := debug.SetGCPercent(200); got != 200 {
		t.Errorf("GOGC = %d after apply with GOGC from the environment, want 200 (untouched)", got)
	}
	if !strings.Contains(logged.String(), "from GOGC") || !strings.Contains(logged.String(), "from GOMEMLIMIT") {
		t.Errorf("log = %q, want both from the environment", logged.String())
	}
}
