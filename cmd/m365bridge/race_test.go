//go:build race

package main

// raceEnabled: the race detector slows the kill test's daemon several
// times over, so TestKillNineDuringImport imports fewer messages under it
// and .ci/run runs it once more without the detector at full size; and it
// makes a 64 MiB request body take tens of seconds to build, read and
// decode, so the size-limit tests, which have no concurrency to check, skip
// themselves under it.
const raceEnabled = true
