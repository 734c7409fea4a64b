//go:build race

package webhooks

// raceEnabled: the race detector makes a 64 MiB request body take tens of
// seconds to build, read and decode; the size-limit tests, which have no
// concurrency to check, skip themselves under it.
const raceEnabled = true
