//go:build !race

package bridge

// raceEnabled: see race_test.go.
const raceEnabled = false
