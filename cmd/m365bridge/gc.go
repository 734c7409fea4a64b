package main

import (
	"fmt"
	"log/slog"
	"runtime/debug"
)

// The daemon's garbage collector settings. Go's default (GOGC=100: a
// collection each time the heap doubles its live part) spent about a tenth
// of the bridge's CPU on an import (mark workers, stack scans, returning
// memory to the system and faulting it back in for the next large
// response). serveGOGC lets the heap grow to three times its live part
// instead, which halves the number of collections while the live heap is
// small. The live heap is bounded by memory_budget_bytes (the mail in
// flight; a 10,000 mail import peaks at about two thirds of the default
// budget), and a soft memory limit of the budget plus gcHeadroom (at least
// gcMinLimit) caps the heap: near the limit the runtime collects sooner, so
// the peak RSS stays within the 150 MiB the daemon aims at (about 30 MiB of
// it is SQLite and the rest outside Go's heap). Were the live heap to pass
// the limit, the runtime bounds the collector's share of CPU, and the heap
// grows past it. An operator's GOGC or GOMEMLIMIT in the environment wins
// over both.
const (
	serveGOGC  = 200
	gcHeadroom = 8 << 20
	gcMinLimit = 64 << 20
)

// gcSettings is what the daemon sets: percent < 0 and limit < 0 leave the
// runtime's value (the environment's or Go's default) as it is.
type gcSettings struct {
	percent int
	limit   int64
}

// gcFor returns the settings for a daemon with memory budget budget
// (bytes), leaving alone what the environment (getenv) sets.
func gcFor(budget int64, getenv func(string) string) gcSettings {
	s := gcSettings{percent: serveGOGC, limit: max(budget+gcHeadroom, gcMinLimit)}
	if getenv("GOGC") != "" {
		s.percent = -1
	}
	if getenv("GOMEMLIMIT") != "" || budget <= 0 {
		s.limit = -1
	}
	return s
}

// apply sets s in the runtime and logs the outcome.
func (s gcSettings) apply(log *slog.Logger) {
	percent, limit := "from GOGC", "from GOMEMLIMIT"
	if s.percent >= 0 {
		debug.SetGCPercent(s.percent)
		percent = fmt.Sprint(s.percent)
	}
	if s.limit >= 0 {
		debug.SetMemoryLimit(s.limit)
		limit = fmt.Sprintf("%d MiB (memory_budget_bytes + %d MiB)", s.limit>>20, gcHeadroom>>20)
	}
	log.Info("garbage collector", "gogc", percent, "soft_memory_limit", limit)
}
