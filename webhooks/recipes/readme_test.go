package recipes

import (
	"io/fs"
	"os"
	"strings"
	"testing"
)

// TestREADMEHasEachRecipe keeps the README's copy-paste recipes (one per
// helpdesk section) equal to the shipped files the tests run.
func TestREADMEHasEachRecipe(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	names, err := fs.Glob(Files, "*.yaml")
	if err != nil || len(names) != 4 {
		t.Fatalf("shipped recipes %v (%v), want 4", names, err)
	}
	for _, name := range names {
		body, err := fs.ReadFile(Files, name)
		if err != nil {
			t.Fatal(err)
		}
		block := "(webhooks/recipes/" + name + ")</summary>\n\n```yaml\n" + strings.TrimRight(string(body), "\n") + "\n```"
		if !strings.Contains(string(readme), block) {
			t.Errorf("README.md lacks the current %s in its helpdesk section (paste the file between ```yaml fences under its <details>)", name)
		}
	}
}
