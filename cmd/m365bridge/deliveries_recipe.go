package main

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/m365bridge/m365bridge/bridge/admin"
)

// printRecipeTest prints a recipe test run: every request with its
// (redacted) headers and body, every answer, then the outcome.
func printRecipeTest(stdout, stderr io.Writer, r admin.WebhookTestResult) error {
	fmt.Fprintf(stdout, "webhook:  %s (recipe, %s, %s)\nevent:    synthetic mail %s\n", r.Endpoint, r.URL, r.EndpointState, r.EventID)
	for i, s := range r.Steps {
		fmt.Fprintf(stdout, "\nstep %d: %s\n  > %s %s\n", i+1, s.Step, s.Method, s.URL)
		names := make([]string, 0, len(s.Headers))
		for k := range s.Headers {
			names = append(names, k)
		}
		slices.Sort(names)
		for _, k := range names {
			fmt.Fprintf(stdout, "  > %s: %s\n", k, s.Headers[k])
		}
		if s.Body != "" {
			fmt.Fprintf(stdout, "  > %s\n", indentBody(s.Body, "  > "))
		}
		switch {
		case s.Error != "":
			fmt.Fprintf(stdout, "  < no answer: %s\n", s.Error)
		default:
			fmt.Fprintf(stdout, "  < HTTP %d\n", s.Status)
			if s.Answer != "" {
				fmt.Fprintf(stdout, "  < %s\n", indentBody(s.Answer, "  < "))
			}
		}
	}
	if len(r.Steps) == 0 {
		fmt.Fprintln(stdout, "\n(no request: the recipe took no step for this mail)")
	}
	fmt.Fprintf(stdout, "\nresult:   %s in %d ms", r.Outcome, r.DurationMS)
	if r.Response != "" {
		fmt.Fprintf(stdout, ": %s", r.Response)
	}
	fmt.Fprintln(stdout)
	if !r.OK {
		fmt.Fprintln(stderr, "the recipe did not deliver the test mail: the last step above says why; fix the recipe (or the helpdesk's setup) and try again")
		return exitError{code: 1}
	}
	return nil
}

func indentBody(s, pre string) string {
	return strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n"+pre)
}
