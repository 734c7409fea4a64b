package m365sim

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestCorpusTextAsWritten parses every message of testdata/corpus and
// compares the text body the simulator keeps (what Graph returns with
// Prefer: outlook.body-content-type="text" for a message that has a
// text/plain part) with the lines Python's email package read from the
// raw bytes: all of them, line for line. The bridge-level corpus test
// (bridge/corpus_test.go) checks the same through the runner's events.
func TestCorpusTextAsWritten(t *testing.T) {
	dir := filepath.Join("testdata", "corpus")
	b, err := os.ReadFile(filepath.Join(dir, "expectations.json"))
	if err != nil {
		t.Fatal(err)
	}
	var want []struct {
		File      string   `json:"file"`
		TextLines []string `json:"text_lines"`
		TextWhy   *string  `json:"text_why"`
	}
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	compared := 0
	for _, w := range want {
		raw, err := os.ReadFile(filepath.Join(dir, w.File))
		if err != nil {
			t.Fatal(err)
		}
		m, err := parseMIME(raw)
		if err != nil {
			t.Errorf("%s: %v", w.File, err)
			continue
		}
		if w.TextWhy != nil {
			continue
		}
		compared++
		_, text := m.bodies()
		if got := corpusLines(text); !slices.Equal(got, w.TextLines) {
			t.Errorf("%s: text body\n got %q\nwant %q", w.File, got, w.TextLines)
		}
	}
	t.Logf("%d text bodies compared", compared)
}

func corpusLines(t string) []string {
	lines := strings.Split(strings.ReplaceAll(strings.ReplaceAll(t, "\r\n", "\n"), "\r", "\n"), "\n")
	for len(lines) > 0 && strings.TrimSpace(lines[len(lines)-1]) == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}
