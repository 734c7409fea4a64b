package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestProfiledWritesProfiles: with both variables set, a command's run
// leaves a CPU and a heap profile (gzip-compressed protobuf); without
// them, nothing is written.
func TestProfiledWritesProfiles(t *testing.T) {
	dir := t.TempDir()
	cpu, mem := filepath.Join(dir, "cpu.pprof"), filepath.Join(dir, "heap.pprof")
	t.Setenv(cpuProfileEnv, cpu)
	t.Setenv(memProfileEnv, mem)
	ran := false
	if err := profiled(func() error { ran = true; return nil }); err != nil {
		t.Fatal(err)
	}
	if !ran {
		t.Fatal("the command did not run")
	}
	for _, p := range []string{cpu, mem} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
			t.Errorf("%s: want a gzip-compressed profile, got %d bytes", filepath.Base(p), len(b))
		}
	}
}

// TestProfiledBadPath: an unwritable profile path is a clear error that
// names the variable, and the command does not run.
func TestProfiledBadPath(t *testing.T) {
	t.Setenv(cpuProfileEnv, "")
	t.Setenv(memProfileEnv, filepath.Join(t.TempDir(), "missing", "heap.pprof"))
	ran := false
	err := profiled(func() error { ran = true; return nil })
	if err == nil || !strings.Contains(err.Error(), memProfileEnv) {
		t.Fatalf("err = %v, want one naming %s", err, memProfileEnv)
	}
	if ran {
		t.Error("the command ran although its profile could not be written")
	}
}
