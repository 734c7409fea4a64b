package config_test

import (
	"slices"
	"testing"

	"github.com/m365bridge/m365bridge/config"
	"github.com/m365bridge/m365bridge/webhooks/deliver"
)

// TestTemplateFuncNamesMatchDeliver: check accepts exactly the helpers the
// deliverer runs templates with, and deliver's shipped templates pass it.
func TestTemplateFuncNamesMatchDeliver(t *testing.T) {
	var got []string
	for n := range deliver.TemplateFuncs() {
		got = append(got, n)
	}
	want := slices.Clone(config.TemplateFuncNames)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("deliver.TemplateFuncs has %q, config.TemplateFuncNames %q", got, want)
	}
	for name, body := range map[string]string{"zammad": deliver.ZammadTicketTemplate, "form": deliver.FormTemplate} {
		if _, err := config.ParseTemplate(body); err != nil {
			t.Errorf("%s template: %v", name, err)
		}
	}
}
