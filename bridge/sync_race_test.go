//go:build race

package bridge

// raceEnabled: the race detector slows the kill test's children several
// times over, so it imports fewer messages to stay within the time budget.
const raceEnabled = true
