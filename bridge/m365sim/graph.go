package m365sim

// STUB — owned by the Graph helper, who replaces this file (and may split it
// into graph_*.go files).

import (
	"encoding/json"
	"net/http"
)

// graphState holds throttling, fault rules, counters.
type graphState struct{}

// mailData is one mailbox's folders, messages and delta state.
type mailData struct{}

func newMailData(s *Sim, mb *Mailbox) *mailData { return &mailData{} }

func (s *Sim) initGraph()                              {}
func (s *Sim) registerGraph(mux *http.ServeMux)        {}
func (s *Sim) registerGraphControl(mux *http.ServeMux) {}

// MailSeed says what mail a mailbox starts with.
type MailSeed struct{}

func (s *Sim) seedMailLocked(mb *Mailbox, ms MailSeed) error { return nil }

// writeGraphError writes the Graph error envelope.
func writeGraphError(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"code": code, "message": msg}})
}
