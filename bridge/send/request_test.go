package send

import (
	"testing"
)

func TestDecodeSendRequestForms(t *testing.T) {
	tests := []struct {
		name, body string
		check      func(Request) bool
	}{
		{"address string with name", `{"to":["Carol <carol@example.com>"],"text":"x"}`,
			func(r Request) bool { return r.To[0] == Address{Name: "Carol", Address: "carol@example.com"} }},
		{"address object", `{"to":[{"name":"C","address":"c@example.com"}],"text":"x"}`,
			func(r Request) bool { return r.To[0] == Address{Name: "C", Address: "c@example.com"} }},
		{"references string", `{"to":["c@example.com"],"text":"x","references":"<a@b> <c@d>"}`,
			func(r Request) bool { return len(r.References) == 2 && r.References[1] == "<c@d>" }},
		{"references list", `{"to":["c@example.com"],"text":"x","references":["<a@b>"]}`,
			func(r Request) bool { return len(r.References) == 1 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := decodeSendRequest([]byte(tt.body))
			if err != nil || !tt.check(r) {
				t.Errorf("got %+v, %v", r, err)
			}
		})
	}
	for _, bad := range []string{`{"to":["c@example.com"],"text":"x","in_reply_to":"abc"}`, `{"to":["c@example.com"],"text":"x"} {}`,
		`{"to":["c@example.com"],"text":"x","attachments":[{"filename":"a","content_base64":"!!"}]}`,
		`{"to":["c@example.com"],"text":"x","attachments":[{"filename":"a","content_base64":"","inline":true}]}`} {
		if _, err := decodeSendRequest([]byte(bad)); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}
