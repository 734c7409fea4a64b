package m365sim

// STUB — owned by the Entra helper, who replaces this file (and may split it
// into entra_*.go files).

import "net/http"

// entraState holds authorization codes, refresh tokens and the signing key.
type entraState struct{}

func (s *Sim) initEntra()                              {}
func (s *Sim) registerEntra(mux *http.ServeMux)        {}
func (s *Sim) registerEntraControl(mux *http.ServeMux) {}
