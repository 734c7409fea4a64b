//go:build !race

package webhooks

// raceEnabled: see race_test.go.
const raceEnabled = false
