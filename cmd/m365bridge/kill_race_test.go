//go:build race

package main

// raceEnabled: the race detector slows the kill test's daemon several
// times over, so TestKillNineDuringImport imports fewer messages under it
// and .ci/run runs it once more without the detector at full size.
const raceEnabled = true
