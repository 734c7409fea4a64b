//go:build race

package bridge

// raceEnabled: the race detector makes a 25 MB attachment's base64, MIME
// and hashing take well over the tests' 30 s safety net on a shared host,
// so the daemon-level test sends a smaller file that still needs an
// upload session (the graph package's test sends 25 MB in every build).
const raceEnabled = true
