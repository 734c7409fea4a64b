package m365sim

// JSON batching (B.10): POST /v1.0/$batch with up to 20 requests. Each item
// runs through the same Graph router as a real request (so it is
// authenticated, throttled, fault-injected and counted), at most four at a
// time as Outlook fans out, one by one when dependsOn is used. Answers come
// back in a shuffled order.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
)

// maxBatchRequests and batchFanOut are Graph's and Outlook's limits.
const (
	maxBatchRequests = 20
	batchFanOut      = 4
)

type batchItem struct {
	ID        string            `json:"id"`
	Method    string            `json:"method"`
	URL       string            `json:"url"`
	Headers   map[string]string `json:"headers,omitempty"`
	Body      json.RawMessage   `json:"body,omitempty"`
	DependsOn []string          `json:"dependsOn,omitempty"`
}

type batchResult struct {
	ID      string            `json:"id"`
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers,omitempty"`
	Body    json.RawMessage   `json:"body,omitempty"`
}

func (s *Sim) handleBatch(w http.ResponseWriter, r *http.Request) {
	infoOf(r).kind = "batch"
	if s.authenticate(w, r) == nil {
		return
	}
	var req struct {
		Requests []batchItem `json:"requests"`
	}
	b, ok := readBody(w, r) // the 4 MB request cap applies to the batch as a whole
	if !ok {
		return
	}
	if err := json.Unmarshal(b, &req); err != nil {
		writeGraphError(w, r, http.StatusBadRequest, "BadRequest", "Invalid batch payload format: "+err.Error())
		return
	}
	if msg := validateBatch(req.Requests); msg != "" {
		writeGraphError(w, r, http.StatusBadRequest, "BadRequest", msg)
		return
	}
	results := make([]batchResult, len(req.Requests))
	sequential := false
	for _, it := range req.Requests {
		sequential = sequential || len(it.DependsOn) > 0
	}
	if sequential {
		status := map[string]int{}
		for i, it := range req.Requests {
			failed := false
			for _, dep := range it.DependsOn {
				if st := status[strings.ToLower(dep)]; st < 200 || st > 299 {
					failed = true
				}
			}
			if failed {
				results[i] = failedDependency(it.ID)
			} else {
				results[i] = s.runBatchItem(r, it)
			}
			status[strings.ToLower(it.ID)] = results[i].Status
		}
	} else {
		sem := make(chan struct{}, batchFanOut)
		var wg sync.WaitGroup
		for i, it := range req.Requests {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				results[i] = s.runBatchItem(r, it)
			}()
		}
		wg.Wait()
	}
	s.mu.Lock()
	s.graph.rng.Shuffle(len(results), func(i, j int) { results[i], results[j] = results[j], results[i] })
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"responses": results})
}

// validateBatch returns why a batch is rejected as a whole, or "". The
// rules are documented (B.10); the texts are the sim's own.
func validateBatch(items []batchItem) string {
	if len(items) == 0 {
		return "The batch request must contain at least one request."
	}
	if len(items) > maxBatchRequests {
		return fmt.Sprintf("The batch contains %d requests; the limit is %d.", len(items), maxBatchRequests)
	}
	ids := map[string]bool{}
	for _, it := range items {
		id := strings.ToLower(it.ID)
		switch {
		case it.ID == "":
			return "Every request in a batch needs an id."
		case ids[id]:
			return fmt.Sprintf("Batch request contains duplicate request id '%s'.", it.ID)
		case it.Method == "" || it.URL == "":
			return fmt.Sprintf("Request id : %s needs a method and a url.", it.ID)
		case strings.Contains(strings.ToLower(it.URL), "$batch"):
			return fmt.Sprintf("Request id : %s: a batch cannot contain another $batch.", it.ID)
		case len(it.Body) > 0 && string(it.Body) != "null" && headerValue(it.Headers, "Content-Type") == "":
			return fmt.Sprintf("Write request id : %s does not contain Content-Type header or body.", it.ID)
		}
		for _, dep := range it.DependsOn {
			if !ids[strings.ToLower(dep)] {
				return fmt.Sprintf("The dependsOn id '%s' of request '%s' does not name an earlier request.", dep, it.ID)
			}
		}
		ids[id] = true
	}
	return ""
}

func headerValue(h map[string]string, name string) string {
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}

// failedDependency is the 424 item. The status is documented (B.10); the
// body's code and text are the sim's own.
func failedDependency(id string) batchResult {
	return batchResult{ID: id, Status: http.StatusFailedDependency,
		Headers: map[string]string{"Content-Type": "application/json"},
		Body:    marshalJSON(jobj{{"error", jobj{{"code", "FailedDependency"}, {"message", "A request this request depends on failed."}}}})}
}

// runBatchItem executes one item through the Graph router.
func (s *Sim) runBatchItem(outer *http.Request, it batchItem) batchResult {
	u := it.URL
	if i := strings.Index(u, "/v1.0/"); strings.HasPrefix(u, "http") && i >= 0 {
		u = u[i+len("/v1.0"):]
	}
	if !strings.HasPrefix(u, "/") {
		u = "/" + u
	}
	var body []byte
	if len(it.Body) > 0 && string(it.Body) != "null" {
		body = it.Body
		var b64 string
		if json.Unmarshal(it.Body, &b64) == nil {
			if dec, err := base64.StdEncoding.DecodeString(b64); err == nil {
				body = dec
			}
		}
	}
	ctx := context.WithValue(outer.Context(), reqInfoKey{}, &reqInfo{batched: true})
	req, err := http.NewRequestWithContext(ctx, strings.ToUpper(it.Method), baseURL(outer)+"/v1.0"+u, bytes.NewReader(body))
	if err != nil {
		return batchResult{ID: it.ID, Status: http.StatusBadRequest, Body: marshalJSON(jobj{{"error", jobj{{"code", "BadRequest"}, {"message", "Invalid request url: " + err.Error()}}}})}
	}
	req.Host, req.TLS, req.RemoteAddr = outer.Host, outer.TLS, outer.RemoteAddr
	for k, v := range it.Headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Authorization", outer.Header.Get("Authorization"))
	rec := httptest.NewRecorder()
	s.serveGraph(rec, req)
	res := batchResult{ID: it.ID, Status: rec.Code, Headers: map[string]string{}}
	for k, v := range rec.Header() {
		if len(v) > 0 {
			res.Headers[k] = strings.Join(v, ", ")
		}
	}
	if b := rec.Body.Bytes(); len(b) > 0 {
		if strings.Contains(rec.Header().Get("Content-Type"), "json") && json.Valid(b) {
			res.Body = b
		} else {
			res.Body = marshalJSON(base64.StdEncoding.EncodeToString(b))
		}
	}
	return res
}
