//go:build !race

package bridge

// raceEnabled: see sync_race_test.go.
const raceEnabled = false
