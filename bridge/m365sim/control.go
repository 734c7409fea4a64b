package m365sim

import (
	"encoding/json"
	"net/http"
	"time"
)

// registerControl mounts the control API under /_sim/. It is for tests, the
// demo and operators poking at a running sim; it has no authentication, so a
// sim must only ever listen on loopback.
func (s *Sim) registerControl(mux *http.ServeMux) {
	mux.HandleFunc("POST /_sim/clock/advance", s.handleClockAdvance)
	mux.HandleFunc("GET /_sim/clock", s.handleClock)
	s.registerEntraControl(mux)
	s.registerGraphControl(mux)
}

// Advance moves the sim's clock forward by d (tokens and codes expire, delta
// tokens age, notification resends fall due) without waiting.
func (s *Sim) Advance(d time.Duration) {
	s.clockMu.Lock()
	s.offset += d
	s.clockMu.Unlock()
	s.FlushNotifications()
}

func (s *Sim) handleClockAdvance(w http.ResponseWriter, r *http.Request) {
	d, err := time.ParseDuration(r.URL.Query().Get("by"))
	if err != nil || d < 0 {
		writeControlError(w, http.StatusBadRequest, "by must be a positive Go duration such as 90m")
		return
	}
	s.Advance(d)
	s.handleClock(w, r)
}

func (s *Sim) handleClock(w http.ResponseWriter, r *http.Request) {
	writeControlJSON(w, http.StatusOK, map[string]any{"now": s.now().UTC().Format(time.RFC3339Nano)})
}

// writeControlJSON and writeControlError answer control API calls.
func writeControlJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeControlError(w http.ResponseWriter, status int, msg string) {
	writeControlJSON(w, status, map[string]string{"error": msg})
}
