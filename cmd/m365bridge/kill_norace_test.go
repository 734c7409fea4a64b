//go:build !race

package main

// raceEnabled: see kill_race_test.go.
const raceEnabled = false
