package m365sim

// Request counters: benchmarks divide Graph requests by imported messages.

import (
	"maps"
	"net/http"
)

// Counters are the Graph requests the sim has answered since start (or the
// last ResetCounters).
type Counters struct {
	// Requests counts HTTP requests to /v1.0 on the wire; a $batch
	// counts once here.
	Requests int `json:"requests"`
	// Batches counts $batch envelopes, BatchInner the requests run inside
	// them.
	Batches    int `json:"batches"`
	BatchInner int `json:"batchInner"`
	// The maps count every executed request, wire and $batch-inner alike:
	// by endpoint kind (message.list, message.get, message.value, delta,
	// folder.list, attachment.get, sendMail, batch…), by mailbox address,
	// by method and by status code.
	ByKind    map[string]int `json:"byKind"`
	ByMailbox map[string]int `json:"byMailbox"`
	ByMethod  map[string]int `json:"byMethod"`
	ByStatus  map[string]int `json:"byStatus"`
	// Throttled counts 429s from throttling, Faults fired fault rules.
	Throttled int `json:"throttled"`
	Faults    int `json:"faults"`
}

type counterState struct {
	Counters
	throttled, faults int
}

func newCounterState() counterState {
	return counterState{Counters: Counters{ByKind: map[string]int{}, ByMailbox: map[string]int{}, ByMethod: map[string]int{}, ByStatus: map[string]int{}}}
}

// count records one finished request.
func (s *Sim) count(info *reqInfo, method string, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := &s.graph.counters
	if info.batched {
		c.BatchInner++
	} else {
		c.Requests++
	}
	if info.kind == "batch" {
		c.Batches++
	}
	c.ByKind[info.kind]++
	if info.mailbox != "" {
		c.ByMailbox[info.mailbox]++
	}
	c.ByMethod[method]++
	c.ByStatus[countStatus(info, status)]++
}

// Counters returns a snapshot of the request counters.
func (s *Sim) Counters() Counters {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.graph.counters.Counters
	c.ByKind, c.ByMailbox = maps.Clone(c.ByKind), maps.Clone(c.ByMailbox)
	c.ByMethod, c.ByStatus = maps.Clone(c.ByMethod), maps.Clone(c.ByStatus)
	c.Throttled, c.Faults = s.graph.counters.throttled, s.graph.counters.faults
	return c
}

// ResetCounters zeroes the request counters.
func (s *Sim) ResetCounters() {
	s.mu.Lock()
	s.graph.counters = newCounterState()
	s.mu.Unlock()
}

func (s *Sim) handleCounters(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodDelete {
		s.ResetCounters()
		w.WriteHeader(http.StatusNoContent)
		return
	}
	writeControlJSON(w, http.StatusOK, s.Counters())
}
