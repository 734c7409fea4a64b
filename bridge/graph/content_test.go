package graph

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"testing"
)

// TestAttachmentContentKeepsGraphBase64: contentBytes stays Graph's text
// when it is canonical base64; text that decodes but is not canonical (line
// breaks, non-zero pad bits) becomes the canonical text of the same bytes,
// as decoding and re-encoding gave before; text that does not decode is
// kept out, with ErrBadContent.
func TestAttachmentContentKeepsGraphBase64(t *testing.T) {
	for _, tt := range []struct {
		name, json, wantB64, wantBytes string
		bad                            bool
	}{
		{"canonical", `"aGVsbG8gd29ybGQ="`, "aGVsbG8gd29ybGQ=", "hello world", false},
		{"escaped slash", `"Pz8\/"`, "Pz8/", "???", false},
		{"line breaks", `"aGVsbG8g\r\nd29ybGQ="`, "aGVsbG8gd29ybGQ=", "hello world", false},
		{"two bytes", `"aGk="`, "aGk=", "hi", false},
		{"non-zero pad bits, lenient", `"aGl="`, "aGk=", "hi", false},
		{"empty", `""`, "", "", false},
		{"not base64", `"contentBytes-value"`, "", "", true},
		{"no padding", `"aGk"`, "", "", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var a Attachment
			if err := json.Unmarshal([]byte(`{"name":"x","contentBytes":`+tt.json+`}`), &a); err != nil {
				t.Fatal(err)
			}
			c := a.Content
			if c == nil || a.ContentBytes != nil || a.Name != "x" {
				t.Fatalf("attachment %+v: want Content and no ContentBytes", a)
			}
			if tt.bad {
				if !errors.Is(c.Err, ErrBadContent) || c.Base64 != "" || a.Bytes() != nil {
					t.Errorf("content %+v: want ErrBadContent and no content", c)
				}
				return
			}
			if c.Err != nil || c.Base64 != tt.wantB64 || c.Size != int64(len(tt.wantBytes)) ||
				c.SHA256 != sha256.Sum256([]byte(tt.wantBytes)) || string(a.Bytes()) != tt.wantBytes {
				t.Errorf("content %+v, bytes %q; want %q for %q", c, a.Bytes(), tt.wantB64, tt.wantBytes)
			}
		})
	}
	var none Attachment
	if err := json.Unmarshal([]byte(`{"name":"x","contentBytes":null}`), &none); err != nil || none.Content != nil {
		t.Errorf("null contentBytes: %+v, %v; want no content", none, err)
	}
}
