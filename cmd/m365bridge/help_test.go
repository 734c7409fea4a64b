package main

import (
	"context"
	"os"
	"strings"
	"testing"
)

// TestEveryCommandHelp runs `COMMAND -h` for every subcommand (and the
// subcommands of keys, channels and deliveries): exit status 0, the
// one-line description, a Flags section, an Example, and no side effect:
// no key printed, no state directory created, nothing started.
func TestEveryCommandHelp(t *testing.T) {
	var cases [][]string
	for name := range commands {
		cases = append(cases, []string{name})
	}
	cases = append(cases, []string{"keys", "generate"}, []string{"keys", "rotate"}, []string{"channels", "inspect"}, []string{"deliveries", "test"})
	for _, c := range cases {
		name := strings.Join(c, " ")
		for _, h := range []string{"-h", "--help"} {
			t.Run(name+" "+h, func(t *testing.T) {
				dir := t.TempDir()
				t.Chdir(dir)
				var stdout, stderr strings.Builder
				err := run(context.Background(), append(append([]string{}, c...), h), &stdout, &stderr)
				if code := exitCode(err, &stderr); code != 0 {
					t.Fatalf("exit status %d (%v)\nstdout: %s\nstderr: %s", code, err, stdout.String(), stderr.String())
				}
				if stdout.Len() != 0 {
					t.Errorf("help printed to stdout (a side effect such as a generated key?): %q", stdout.String())
				}
				out := stderr.String()
				d, ok := docs[name]
				if !ok || d.summary == "" || d.example == "" {
					t.Fatalf("docs[%q] lacks a summary or an example", name)
				}
				for _, want := range []string{"m365bridge " + name + ": " + d.summary, "Usage: m365bridge " + name, "\nFlags:", "\nExample:\n  "} {
					if !strings.Contains(out, want) {
						t.Errorf("help lacks %q:\n%s", want, out)
					}
				}
				if _, ex, _ := strings.Cut(out, "\nExample:\n"); !strings.Contains(ex, "m365bridge "+name) {
					t.Errorf("the example does not run m365bridge %s:\n%s", name, ex)
				}
				if strings.Contains(out, "Usage of ") {
					t.Errorf("bare flag-package usage:\n%s", out)
				}
				if entries, _ := os.ReadDir(dir); len(entries) != 0 {
					t.Errorf("help created %v in the working directory", entries)
				}
			})
		}
	}
}

// TestHelpListsEveryCommand: `m365bridge help` has each command's summary.
func TestHelpListsEveryCommand(t *testing.T) {
	var stdout strings.Builder
	if err := run(context.Background(), []string{"help"}, &stdout, &stdout); err != nil {
		t.Fatal(err)
	}
	for name := range commands {
		if !strings.Contains(stdout.String(), "  "+name) || !strings.Contains(stdout.String(), docs[name].summary) {
			t.Errorf("help lacks %s: %s", name, docs[name].summary)
		}
	}
}
