// Freshdesk request bodies: JSON or multipart/form-data, and their checks.

package helpdeskfake

import (
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// fdInput is a create, update or note request, from JSON or from
// multipart/form-data (fields by name; custom_fields[cf_x], tags[],
// attachments[] as in the documented curl examples).
type fdInput struct {
	fields map[string][]string
	custom map[string]any
	files  []Attachment
	json   map[string]any
}

// str returns the value of field k as text, "" if absent.
func (in fdInput) str(k string) string {
	if v, ok := in.json[k]; ok && v != nil {
		return fmt.Sprint(v)
	}
	if v := in.fields[k]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// has reports whether field k was sent.
func (in fdInput) has(k string) bool {
	_, ok := in.json[k]
	return ok || len(in.fields[k]) > 0
}

// list returns the values of list field k (a JSON list or k[] form fields).
func (in fdInput) list(k string) []string {
	if v, ok := in.json[k].([]any); ok {
		var out []string
		for _, x := range v {
			out = append(out, fmt.Sprint(x))
		}
		return out
	}
	return in.fields[k+"[]"]
}

// input reads the request body into an fdInput; on a bad body it has
// answered with Freshdesk's error and returns false.
func (f *Freshdesk) input(w http.ResponseWriter, r *http.Request) (fdInput, bool) {
	in := fdInput{fields: map[string][]string{}, custom: map[string]any{}}
	mt, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch mt {
	case "application/json":
		dec := json.NewDecoder(r.Body)
		dec.UseNumber()
		if err := dec.Decode(&in.json); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"code": "invalid_json", "message": "Request body has invalid json format"})
			return in, false
		}
		if _, ok := in.json["attachments"]; ok {
			fdInvalid(w, fdFieldError{"attachments", "It should be a/an Array of file uploads (multipart/form-data)", "datatype_mismatch"})
			return in, false
		}
		if cf, ok := in.json["custom_fields"].(map[string]any); ok {
			in.custom = cf
		}
	case "multipart/form-data":
		mr := multipart.NewReader(r.Body, params["boundary"])
		total := 0
		for {
			part, err := mr.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				writeJSON(w, http.StatusBadRequest, map[string]string{"code": "invalid_multipart", "message": err.Error()})
				return in, false
			}
			b, _ := io.ReadAll(part)
			name := part.FormName()
			switch {
			case name == "attachments[]" && part.FileName() != "":
				total += len(b)
				in.files = append(in.files, Attachment{Filename: part.FileName(), ContentType: part.Header.Get("Content-Type"), Data: b})
			case strings.HasPrefix(name, "custom_fields[") && strings.HasSuffix(name, "]"):
				in.custom[name[len("custom_fields["):len(name)-1]] = string(b)
			default:
				in.fields[name] = append(in.fields[name], string(b))
			}
		}
		if total > fdMaxAttachments {
			fdInvalid(w, fdFieldError{"attachments", "The cumulative size of all attachments must not exceed 20 MB", "invalid_size"})
			return in, false
		}
	default:
		writeJSON(w, http.StatusUnsupportedMediaType, map[string]string{"code": "invalid_content_type", "message": "Content-Type header should have application/json or multipart/form-data"})
		return in, false
	}
	for k := range in.custom {
		if !contains(f.CustomFields, k) {
			fdInvalid(w, fdFieldError{k, "Unexpected/invalid field in request", "invalid_field"})
			return in, false
		}
	}
	return in, true
}

// attachmentsOut renders stored files as a ticket's or note's attachments.
func (f *Freshdesk) attachmentsOut(files []Attachment) []map[string]any {
	out := []map[string]any{}
	for i, a := range files {
		out = append(out, map[string]any{"id": i + 1, "name": a.Filename, "content_type": a.ContentType, "size": len(a.Data)})
	}
	return out
}

// intField reads integer field k, def when absent; a value not in valid
// is answered with a validation error and false.
func (f *Freshdesk) intField(w http.ResponseWriter, in fdInput, k string, def int, valid []int) (int, bool) {
	if !in.has(k) {
		return def, true
	}
	n, err := strconv.Atoi(in.str(k))
	if err != nil || !slices.Contains(valid, n) {
		fdInvalid(w, fdFieldError{k, fmt.Sprintf("It should be one of these values: '%v'", valid), "invalid_value"})
		return 0, false
	}
	return n, true
}
