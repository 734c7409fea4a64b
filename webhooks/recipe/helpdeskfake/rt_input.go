// RT request bodies: attachments, role lists, custom fields.

package helpdeskfake

import (
	"encoding/base64"
	"encoding/json"
	"maps"
	"mime"
	"net/http"
	"slices"
	"strings"
)

// w3c turns an RT database date into the W3C form REST2 answers with.
func w3c(sqlDate string) string {
	if sqlDate == "" {
		return "1970-01-01T00:00:00Z" // RT's "not set"
	}
	return strings.Replace(sqlDate, " ", "T", 1) + "Z"
}

// rtAttachment is one entry of Attachments (REST2.pm, "Add Attachments").
type rtAttachment struct {
	FileName, FileType, FileContent string
}

// files decodes Attachments; Ticket.pm and Message.pm answer 400 when a
// field is missing. MIMEObj->attach gets Type, Filename and Data only: no
// Content-ID survives.
func files(list []rtAttachment) ([]Attachment, string) {
	var out []Attachment
	for _, a := range list {
		switch {
		case a.FileName == "":
			return nil, "Field FileName is required for each attachment in Attachments"
		case a.FileType == "":
			return nil, "Field FileType is required for each attachment in Attachments"
		case a.FileContent == "":
			return nil, "Field FileContent is required for each attachment in Attachments"
		}
		b, err := base64.StdEncoding.DecodeString(a.FileContent)
		if err != nil {
			return nil, "FileContent of " + a.FileName + " is not MIME Base64"
		}
		out = append(out, Attachment{Filename: a.FileName, ContentType: a.FileType, Data: b})
	}
	return out, ""
}

// stringList takes a JSON string or list of strings (RT takes either for
// roles and squelch lists).
func stringList(raw json.RawMessage) []string {
	if len(raw) == 0 {
		return nil
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		var out []string
		for _, s := range strings.Split(one, ",") {
			if s = strings.ToLower(strings.TrimSpace(s)); s != "" {
				out = append(out, s)
			}
		}
		return out
	}
	var many []string
	json.Unmarshal(raw, &many)
	for i := range many {
		many[i] = strings.ToLower(strings.TrimSpace(many[i]))
	}
	return many
}

// cfValues keeps the values of known custom fields (a string or a list
// each, REST2.pm "Object Custom Field Values").
func cfValues(in map[string]json.RawMessage, known []string) map[string][]string {
	out := map[string][]string{}
	for name, raw := range in {
		if !contains(known, name) {
			continue // RT logs "Custom field … not found" and goes on
		}
		var one string
		if json.Unmarshal(raw, &one) == nil {
			out[name] = []string{one}
			continue
		}
		var many []string
		if json.Unmarshal(raw, &many) == nil {
			out[name] = many
		}
	}
	return out
}

// jsonBody reports whether r has a JSON body.
func jsonBody(r *http.Request) bool {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return mt == "application/json"
}

// sortedNames returns the keys of m in order.
func sortedNames(m map[string][]string) []string { return slices.Sorted(maps.Keys(m)) }
