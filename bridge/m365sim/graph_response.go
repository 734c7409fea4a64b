package m365sim

// Graph responses and request bodies: Prefer headers, JSON in Graph's
// content type and property order, the error envelope and the request
// size limit.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// preferences are the parsed Prefer headers.
type preferences struct {
	immutableID bool
	bodyType    string // "", "text" or "html"
	maxPageSize int
}

func parsePrefer(r *http.Request) preferences {
	var p preferences
	for _, v := range r.Header.Values("Prefer") {
		for _, item := range strings.Split(v, ",") {
			k, val, _ := strings.Cut(strings.TrimSpace(item), "=")
			val = strings.Trim(strings.TrimSpace(val), `"`)
			switch strings.ToLower(strings.TrimSpace(k)) {
			case "idtype":
				p.immutableID = strings.EqualFold(val, "ImmutableId")
			case "outlook.body-content-type":
				if v := strings.ToLower(val); v == "text" || v == "html" {
					p.bodyType = v
				}
			case "odata.maxpagesize":
				if n, err := strconv.Atoi(val); err == nil && n > 0 {
					p.maxPageSize = n
				}
			}
		}
	}
	return p
}

// applyBodyPreference echoes Preference-Applied for a body-type request.
func applyBodyPreference(w http.ResponseWriter, p preferences) {
	if p.bodyType != "" {
		w.Header().Add("Preference-Applied", `outlook.body-content-type="`+p.bodyType+`"`)
	}
}

// graphContentType is the Content-Type Graph puts on JSON answers (B.4).
const graphContentType = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"

// writeJSON writes a Graph JSON answer with the B.4 headers.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", graphContentType)
	w.Header().Set("OData-Version", "4.0")
	w.WriteHeader(status)
	w.Write(marshalJSON(v))
}

// marshalJSON encodes without HTML escaping, as Graph does.
func marshalJSON(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return []byte(`null`)
	}
	return bytes.TrimRight(b.Bytes(), "\n")
}

// jobj is a JSON object that keeps its key order, so answers read like
// Graph's and golden files stay stable.
type jobj []jkv

type jkv struct {
	k string
	v any
}

func (o jobj) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, kv := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(marshalJSON(kv.k))
		b.WriteByte(':')
		b.Write(marshalJSON(kv.v))
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// graphTime formats a time as Graph does: ISO 8601 UTC with seconds.
func graphTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }

// writeGraphError writes the C.1 envelope:
// {"error":{"code","message","innerError":{"date","request-id","client-request-id"}}}.
func writeGraphError(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	writeGraphErrorInner(w, r, status, code, msg, nil)
}

func writeGraphErrorInner(w http.ResponseWriter, r *http.Request, status int, code, msg string, extra jobj) {
	reqID := w.Header().Get("request-id")
	if reqID == "" {
		reqID = newGUID()
		w.Header().Set("request-id", reqID)
	}
	clientID := r.Header.Get("client-request-id")
	if clientID == "" {
		clientID = w.Header().Get("client-request-id")
	}
	if clientID == "" {
		clientID = reqID
	}
	w.Header().Set("client-request-id", clientID)
	inner := append(jobj{}, extra...)
	inner = append(inner, jkv{"date", time.Now().UTC().Format("2006-01-02T15:04:05")}, jkv{"request-id", reqID}, jkv{"client-request-id", clientID})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(marshalJSON(jobj{{"error", jobj{{"code", code}, {"message", msg}, {"innerError", inner}}}}))
}

// maxRequestBytes is Graph's cap on one REST request's body: "There is a
// limit of 4 MB on the total size of each REST request" (GDC
// api-reference/v1.0/api/profilephoto-update.md; the same 4 MB note is why
// attachments over 3 MB need an upload session, GDC
// concepts/outlook-large-attachments.md). "4 MB" is read as 4,000,000 bytes,
// the stricter reading, so the sim never accepts what Graph might refuse.
const maxRequestBytes = 4_000_000

// writeTooLarge answers a body over maxRequestBytes: 413 is the documented
// status ("Request Entity Too Large: The size of the request exceeds the
// maximum limit.", GDC concepts/errors.md); the code is the sim's own.
func writeTooLarge(w http.ResponseWriter, r *http.Request) {
	writeGraphError(w, r, http.StatusRequestEntityTooLarge, "RequestEntityTooLarge",
		fmt.Sprintf("The size of the request exceeds the maximum limit (%d bytes).", maxRequestBytes))
}

// readBody reads a request body of at most maxRequestBytes; over it, it
// answers 413 and returns false.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	if r.ContentLength > maxRequestBytes {
		writeTooLarge(w, r)
		return nil, false
	}
	b, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxRequestBytes))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		writeTooLarge(w, r)
		return nil, false
	case err != nil:
		writeGraphError(w, r, http.StatusBadRequest, "RequestBodyRead", "Cannot read the request body: "+err.Error())
		return nil, false
	}
	return b, true
}

// readJSONBody decodes a request body, answering 413 over maxRequestBytes
// and 400 on bad JSON.
func readJSONBody(w http.ResponseWriter, r *http.Request, v any) bool {
	b, ok := readBody(w, r)
	if !ok {
		return false
	}
	if err := json.Unmarshal(b, v); err != nil {
		writeGraphError(w, r, http.StatusBadRequest, "RequestBodyRead", "Invalid JSON in the request body: "+err.Error())
		return false
	}
	return true
}
