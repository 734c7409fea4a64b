package config

import (
	"flag"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// TestThreeMistakes: a file with an unknown key, a duplicate channel name
// and a public_url that is not https yields exactly three errors in one
// run, each with line:col and the field path; the whole output is pinned.
func TestThreeMistakes(t *testing.T) {
	doc := readTestdata(t, "three_mistakes.yaml")
	_, err := Parse([]byte(doc), "three_mistakes.yaml", baseEnv())
	es := asErrors(t, err)
	if len(es) != 3 {
		t.Fatalf("got %d errors, want 3:\n%v", len(es), err)
	}
	for i, want := range []string{"public_url", "channels[0].after_imprt", "channels[1].name"} {
		if es[i].Path != want || es[i].Line == 0 || es[i].Col == 0 {
			t.Errorf("error %d = %v, want path %s with a position", i, es[i], want)
		}
	}
	got := err.Error() + "\n"
	const golden = "testdata/three_mistakes.golden"
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (go test -update to rewrite):\ngot:\n%s\nwant:\n%s", golden, got, want)
	}
	if strings.Count(got, "\n") != 3 {
		t.Errorf("want one line per error")
	}
}
