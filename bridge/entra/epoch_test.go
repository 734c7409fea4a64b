package entra_test

import (
	"os"
	"testing"
	"time"
)

// testEpoch is where this suite's clocks start: a fixed date, or
// M365BRIDGE_TEST_EPOCH (RFC 3339), with which .ci/run runs the suite years
// ahead of and behind the wall clock. Code that reads the wall clock where it
// should read its injected one fails there.
func testEpoch(t testing.TB) time.Time {
	t.Helper()
	s := os.Getenv("M365BRIDGE_TEST_EPOCH")
	if s == "" {
		return time.Date(2026, 11, 26, 20, 0, 0, 0, time.UTC)
	}
	at, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatalf("M365BRIDGE_TEST_EPOCH=%q: want RFC 3339, e.g. 2036-01-02T15:04:05Z: %v", s, err)
	}
	return at.UTC()
}
