package recipe

import (
	"bytes"
	"encoding/json"
	"slices"
	"testing"

	"github.com/m365bridge/m365bridge/config"
)

func TestExtract(t *testing.T) {
	var doc any
	dec := json.NewDecoder(bytes.NewReader([]byte(`{"tickets":[{"id":12345678901,"tags":["a","m365bx"]},{"id":7}],"ticket":{"id":3.5},"n":[],"s":"x","b":true}`)))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, want string }{
		{"tickets.0.id", "12345678901"},
		{"tickets.1.id", "7"},
		{"tickets.2.id", ""},
		{"tickets.*.id", "12345678901"},
		{"ticket.id", "3.5"},
		{"n.0", ""},
		{"s", "x"},
		{"b", "true"},
		{"tickets", ""},
		{"missing.path", ""},
	} {
		if got := extract(doc, tc.path); got != tc.want {
			t.Errorf("extract %s: got %q, want %q", tc.path, got, tc.want)
		}
	}
	for _, tc := range []struct {
		m        config.RecipeMatch
		in, want string
	}{
		{config.RecipeMatch{Path: "tickets.*.tags.*", Equals: "x"}, "m365bx", "true"},
		{config.RecipeMatch{Path: "tickets.*.tags.*", Equals: "x"}, "m365b", ""},
		{config.RecipeMatch{Path: "tickets.*.tags.*", Contains: "x"}, "m365b", "true"},
		{config.RecipeMatch{Path: "tickets.*.tags.*", Contains: "x"}, "", ""},
		{config.RecipeMatch{Each: "tickets.*", Path: "tags.*", Equals: "x", Select: "id"}, "m365bx", "12345678901"},
		{config.RecipeMatch{Each: "tickets.*", Path: "id", Equals: "x", Select: "id"}, "7", "7"},
		{config.RecipeMatch{Each: "tickets.*", Path: "id", Equals: "x"}, "7", "true"},
		{config.RecipeMatch{Each: "tickets.*", Path: "id", Equals: "x", Select: "id"}, "8", ""},
	} {
		if got := matchValue(doc, tc.m, tc.in); got != tc.want {
			t.Errorf("match %+v for %q: got %q, want %q", tc.m, tc.in, got, tc.want)
		}
	}
}

func TestMatchWhen(t *testing.T) {
	yes, no := true, false
	mail := facts{typ: "mail.received", mail: true, archive: false, autoSubmitted: true, group: "Support L1", folder: "Inbox/Support", senderDomain: "mail.example.com"}
	vars := map[string]any{"ticket_id": "5", "empty": "", "list": []any{}}
	for _, tc := range []struct {
		name string
		w    config.RecipeWhen
		f    facts
		want bool
	}{
		{"empty takes all", config.RecipeWhen{}, mail, true},
		{"archive false", config.RecipeWhen{Archive: &no}, mail, true},
		{"archive true", config.RecipeWhen{Archive: &yes}, mail, false},
		{"auto-submitted", config.RecipeWhen{AutoSubmitted: &yes}, mail, true},
		{"group any, case-insensitive", config.RecipeWhen{Group: []string{"sales", "support l1"}}, mail, true},
		{"folder", config.RecipeWhen{Folder: []string{"Inbox"}}, mail, false},
		{"sender domain: parent takes subdomain", config.RecipeWhen{SenderDomain: []string{"example.com"}}, mail, true},
		{"sender domain: no suffix trick", config.RecipeWhen{SenderDomain: []string{"ample.com"}}, mail, false},
		{"types", config.RecipeWhen{Types: []string{"mail.archived"}}, mail, false},
		{"set", config.RecipeWhen{Set: []string{"ticket_id"}}, mail, true},
		{"set but empty", config.RecipeWhen{Set: []string{"empty"}}, mail, false},
		{"unset empty list", config.RecipeWhen{Unset: []string{"list", "nothing"}}, mail, true},
		{"mail condition on a channel event", config.RecipeWhen{Archive: &no}, facts{typ: "channel.error"}, false},
	} {
		if got := match(tc.w, tc.f, vars); got != tc.want {
			t.Errorf("%s: got %t, want %t", tc.name, got, tc.want)
		}
	}
}

// TestFuncNamesInStep: config checks recipe templates with the names in
// config.TemplateFuncNames and config.RecipeFuncNames; they must be the
// helpers this package runs them with.
func TestFuncNamesInStep(t *testing.T) {
	var have []string
	for n := range (&Recipe{}).funcs(t.Context(), 0) {
		have = append(have, n)
	}
	want := slices.Concat(config.TemplateFuncNames, config.RecipeFuncNames)
	slices.Sort(have)
	slices.Sort(want)
	if !slices.Equal(have, want) {
		t.Errorf("helpers %v, config knows %v", have, want)
	}
	for n := range stubFuncs() {
		if !slices.Contains(want, n) {
			t.Errorf("stub %s unknown to config", n)
		}
	}
}

func TestReplaceCIDs(t *testing.T) {
	got := replaceCIDs(`<img src="cid:a@x"><img src='cid:b@x'><img src="cid:c@x">`, map[string]string{"a@x": "https://u/1", "b@x": "data:image/png;base64,AA=="})
	want := `<img src="https://u/1"><img src='data:image/png;base64,AA=='><img src="cid:c@x">`
	if got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	if marker("<a@x>") == marker("<b@x>") || len(marker("x")) != 25 {
		t.Error("marker: not distinct or wrong length")
	}
}

func TestUTC(t *testing.T) {
	got, err := utc("2006-01-02 15:04:05", "2025-06-01T10:30:00+02:00")
	if err != nil || got != "2025-06-01 08:30:00" {
		t.Errorf("got %q, %v; want 2025-06-01 08:30:00", got, err)
	}
	if _, err := utc("2006", "yesterday"); err == nil {
		t.Error("utc took a time that is not RFC 3339")
	}
}
